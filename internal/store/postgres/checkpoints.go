package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mandate-dev/mandate/internal/store"
)

const checkpointCols = "size, root, head, tree, note, created_at"

// checkpointLock is the first key of the advisory lock that serializes
// AddCheckpoint; the second is hashtext of the schema. 0x636b7074 is
// "ckpt". An advisory lock needs no privilege on the table.
const checkpointLock = 0x636b7074

func scanCheckpoint(row pgx.CollectableRow) (store.Checkpoint, error) {
	var (
		c  store.Checkpoint
		at time.Time
	)
	if err := row.Scan(&c.Size, &c.Root, &c.Head, &c.Tree, &c.Note, &at); err != nil {
		return store.Checkpoint{}, err
	}
	c.Root, c.Head, c.Tree = bytesOut(c.Root), bytesOut(c.Head), bytesOut(c.Tree)
	c.CreatedAt = at.UTC()
	return c, nil
}

// checkCheckpoint refuses a checkpoint no store would keep, nor
// PostgreSQL text hold.
func checkCheckpoint(c store.Checkpoint) error {
	if err := c.Check(); err != nil {
		return err
	}
	if !storable(c.Note) {
		return fmt.Errorf("note is %w", errNotStorable)
	}
	return nil
}

// AddCheckpoint stores c unless a checkpoint of its Size is stored (then it
// succeeds when that one has the same Root and Head and fails with
// store.ErrConflict otherwise) or a later one is (store.ErrAlreadyExists),
// in one transaction under an advisory lock, so that instances adding
// checkpoints at once store them in Size order. A zero CreatedAt is the
// store's clock.
func (s *Store) AddCheckpoint(ctx context.Context, c store.Checkpoint) error {
	if err := checkCheckpoint(c); err != nil {
		return fmt.Errorf("postgres: add checkpoint: %w", err)
	}
	if c.CreatedAt.IsZero() {
		c.CreatedAt = s.now()
	}
	err := s.write(ctx, "add checkpoint", func(ctx context.Context, tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))", checkpointLock); err != nil {
			return dbErr(err)
		}
		var (
			root, head []byte
			latest     *int64
		)
		err := tx.QueryRow(ctx, `SELECT (SELECT root FROM audit_checkpoints WHERE size = $1),
			(SELECT head FROM audit_checkpoints WHERE size = $1), (SELECT max(size) FROM audit_checkpoints)`,
			c.Size).Scan(&root, &head, &latest)
		switch {
		case err != nil:
			return dbErr(err)
		case root != nil:
			if !bytes.Equal(root, c.Root) || !bytes.Equal(head, c.Head) {
				return fmt.Errorf("%w: the checkpoint stored at this size has another root or head", store.ErrConflict)
			}
			return nil
		case latest != nil && *latest > c.Size:
			return fmt.Errorf("%w: a later checkpoint, at size %d, is stored", store.ErrAlreadyExists, *latest)
		}
		_, err = tx.Exec(ctx, "INSERT INTO audit_checkpoints ("+checkpointCols+") VALUES ($1, $2, $3, $4, $5, $6)",
			c.Size, c.Root, c.Head, bytesIn(c.Tree), c.Note, c.CreatedAt)
		return dbErr(err)
	})
	if err != nil {
		return fmt.Errorf("postgres: add checkpoint at size %d: %w", c.Size, err)
	}
	return nil
}

// Checkpoints returns up to limit checkpoints with Size above after, oldest
// first; limit defaults to 1000 and is capped at 10000.
func (s *Store) Checkpoints(ctx context.Context, after int64, limit int) ([]store.Checkpoint, error) {
	return list(ctx, s, "checkpoints",
		"SELECT "+checkpointCols+" FROM audit_checkpoints WHERE size > $1 ORDER BY size LIMIT $2",
		scanCheckpoint, after, store.PageLimit(limit))
}

// LatestCheckpoint returns the checkpoint with the largest Size, or
// store.ErrNotFound.
func (s *Store) LatestCheckpoint(ctx context.Context) (store.Checkpoint, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	rows, err := s.pool.Query(ctx, "SELECT "+checkpointCols+" FROM audit_checkpoints ORDER BY size DESC LIMIT 1")
	if err != nil {
		return store.Checkpoint{}, fmt.Errorf("postgres: latest checkpoint: %w", dbErr(err))
	}
	c, err := pgx.CollectExactlyOneRow(rows, scanCheckpoint)
	if err != nil {
		return store.Checkpoint{}, fmt.Errorf("postgres: latest checkpoint: %w", dbErr(err))
	}
	return c, nil
}

// CheckpointKey returns the stored checkpoint signing key, or stores the
// one create returns when there is none. When instances race, the first
// insert to commit wins (ON CONFLICT DO NOTHING) and every caller reads
// that key back, in a statement of its own, which sees the winner's commit.
func (s *Store) CheckpointKey(ctx context.Context, create func() (string, error)) (string, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	key, err := s.checkpointKey(ctx)
	if err == nil {
		return key, nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return "", fmt.Errorf("postgres: checkpoint key: %w", err)
	}
	fresh, err := create()
	if err != nil {
		return "", fmt.Errorf("postgres: checkpoint key: create: %w", err)
	}
	if fresh == "" || !storable(fresh) {
		return "", errors.New("postgres: checkpoint key: create returned an empty key or one that is not UTF-8 text without NUL")
	}
	if _, err := s.pool.Exec(ctx, "INSERT INTO audit_checkpoint_key (id, key, created_at) VALUES (1, $1, $2) ON CONFLICT (id) DO NOTHING",
		fresh, s.now()); err != nil {
		return "", fmt.Errorf("postgres: checkpoint key: %w", dbErr(err))
	}
	if key, err = s.checkpointKey(ctx); err != nil {
		return "", fmt.Errorf("postgres: checkpoint key: %w", err)
	}
	return key, nil
}

// checkpointKey reads the stored key: store.ErrNotFound when none.
func (s *Store) checkpointKey(ctx context.Context) (string, error) {
	var key string
	if err := s.pool.QueryRow(ctx, "SELECT key FROM audit_checkpoint_key WHERE id = 1").Scan(&key); err != nil {
		return "", dbErr(err)
	}
	return key, nil
}
