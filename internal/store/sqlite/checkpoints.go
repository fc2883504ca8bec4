package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/mandate-dev/mandate/internal/store"
)

const checkpointCols = "size, root, head, tree, note, created_at"

func scanCheckpoint(sc scanner) (store.Checkpoint, error) {
	var (
		c  store.Checkpoint
		at int64
	)
	if err := sc.Scan(&c.Size, &c.Root, &c.Head, &c.Tree, &c.Note, &at); err != nil {
		return store.Checkpoint{}, dbErr(err)
	}
	c.Root, c.Head, c.Tree = bytesOut(c.Root), bytesOut(c.Head), bytesOut(c.Tree)
	c.CreatedAt = timeOut(sql.NullInt64{Int64: at, Valid: true})
	return c, nil
}

// AddCheckpoint stores c unless a checkpoint of its Size is stored (then it
// succeeds when that one has the same Root and Head and fails with
// store.ErrConflict otherwise) or a later one is (store.ErrAlreadyExists),
// in one write transaction. A zero CreatedAt is the store's clock.
func (s *Store) AddCheckpoint(ctx context.Context, c store.Checkpoint) error {
	if err := c.Check(); err != nil {
		return fmt.Errorf("sqlite: add checkpoint: %w", err)
	}
	if c.CreatedAt.IsZero() {
		c.CreatedAt = s.now()
	}
	err := s.write(ctx, "add checkpoint", func(tx *sql.Tx) error {
		var root, head []byte
		err := tx.QueryRowContext(ctx, "SELECT root, head FROM audit_checkpoints WHERE size = ?", c.Size).Scan(&root, &head)
		switch {
		case err == nil:
			if !bytes.Equal(root, c.Root) || !bytes.Equal(head, c.Head) {
				return fmt.Errorf("%w: the checkpoint stored at this size has another root or head", store.ErrConflict)
			}
			return nil
		case !errors.Is(err, sql.ErrNoRows):
			return dbErr(err)
		}
		var latest sql.NullInt64
		if err := tx.QueryRowContext(ctx, "SELECT max(size) FROM audit_checkpoints").Scan(&latest); err != nil {
			return dbErr(err)
		}
		if latest.Valid && latest.Int64 > c.Size {
			return fmt.Errorf("%w: a later checkpoint, at size %d, is stored", store.ErrAlreadyExists, latest.Int64)
		}
		_, err = tx.ExecContext(ctx, "INSERT INTO audit_checkpoints ("+checkpointCols+") VALUES (?, ?, ?, ?, ?, ?)",
			c.Size, c.Root, c.Head, bytesIn(c.Tree), c.Note, c.CreatedAt.UnixMicro())
		return dbErr(err)
	})
	if err != nil {
		return fmt.Errorf("sqlite: add checkpoint at size %d: %w", c.Size, err)
	}
	return nil
}

// Checkpoints returns up to limit checkpoints with Size above after, oldest
// first; limit defaults to 1000 and is capped at 10000.
func (s *Store) Checkpoints(ctx context.Context, after int64, limit int) ([]store.Checkpoint, error) {
	return list(ctx, s.r, "checkpoints",
		"SELECT "+checkpointCols+" FROM audit_checkpoints WHERE size > ? ORDER BY size LIMIT ?",
		scanCheckpoint, after, store.PageLimit(limit))
}

// LatestCheckpoint returns the checkpoint with the largest Size, or
// store.ErrNotFound.
func (s *Store) LatestCheckpoint(ctx context.Context) (store.Checkpoint, error) {
	c, err := scanCheckpoint(s.r.QueryRowContext(ctx,
		"SELECT "+checkpointCols+" FROM audit_checkpoints ORDER BY size DESC LIMIT 1"))
	if err != nil {
		return store.Checkpoint{}, fmt.Errorf("sqlite: latest checkpoint: %w", err)
	}
	return c, nil
}

// CheckpointKey returns the stored checkpoint signing key, or stores the
// one create returns when there is none. create runs outside the write
// lock; when another caller stored a key meanwhile, that key is returned
// and create's is dropped.
func (s *Store) CheckpointKey(ctx context.Context, create func() (string, error)) (string, error) {
	key, err := checkpointKey(ctx, s.r)
	if err == nil {
		return key, nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return "", fmt.Errorf("sqlite: checkpoint key: %w", err)
	}
	fresh, err := create()
	if err != nil {
		return "", fmt.Errorf("sqlite: checkpoint key: create: %w", err)
	}
	if fresh == "" {
		return "", errors.New("sqlite: checkpoint key: create returned an empty key")
	}
	err = s.write(ctx, "checkpoint key", func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, "INSERT INTO audit_checkpoint_key (id, key, created_at) VALUES (1, ?, ?) ON CONFLICT (id) DO NOTHING",
			fresh, s.now().UnixMicro()); err != nil {
			return dbErr(err)
		}
		key, err = checkpointKey(ctx, tx)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("sqlite: checkpoint key: %w", err)
	}
	return key, nil
}

// checkpointKey reads the stored key with q: store.ErrNotFound when none.
func checkpointKey(ctx context.Context, q querier) (string, error) {
	var key string
	if err := q.QueryRowContext(ctx, "SELECT key FROM audit_checkpoint_key WHERE id = 1").Scan(&key); err != nil {
		return "", dbErr(err)
	}
	return key, nil
}
