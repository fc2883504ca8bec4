package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/mandate-dev/mandate/internal/store"
)

// The grants rechecks at identity providers redeem (store.UpstreamGrants).
// A touch compares checked_at inside its write transaction, so of
// concurrent touches from the same time exactly one changes the row.

// errBadGrant refuses a grant without its subject, provider, sealed token
// or check time.
var errBadGrant = errors.New("an upstream grant needs a subject, a provider, a sealed token and a check time")

const upstreamGrantCols = "subject, provider, sealed, checked_at, created_at"

func scanUpstreamGrant(sc scanner) (store.UpstreamGrant, error) {
	var (
		g        store.UpstreamGrant
		sealed   []byte
		chk, cre sql.NullInt64
	)
	if err := sc.Scan(&g.Subject, &g.Provider, &sealed, &chk, &cre); err != nil {
		return store.UpstreamGrant{}, dbErr(err)
	}
	g.Sealed = bytesOut(sealed)
	g.CheckedAt, g.CreatedAt = timeOut(chk), timeOut(cre)
	return g, nil
}

// PutUpstreamGrant stores g, replacing the grant of its subject and
// provider.
func (s *Store) PutUpstreamGrant(ctx context.Context, g store.UpstreamGrant) error {
	if g.Subject == "" || g.Provider == "" || len(g.Sealed) == 0 || g.CheckedAt.IsZero() {
		return fmt.Errorf("sqlite: put upstream grant: %w", errBadGrant)
	}
	err := s.write(ctx, "put upstream grant", func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO upstream_grants (`+upstreamGrantCols+`) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (subject, provider) DO UPDATE SET sealed = excluded.sealed, checked_at = excluded.checked_at,
			created_at = excluded.created_at`,
			g.Subject, g.Provider, g.Sealed, timeIn(g.CheckedAt), timeIn(g.CreatedAt))
		return dbErr(err)
	})
	if err != nil {
		return fmt.Errorf("sqlite: put upstream grant: %w", err)
	}
	return nil
}

// DueUpstreamGrants returns at most limit grants of provider checked
// before before, oldest first.
func (s *Store) DueUpstreamGrants(ctx context.Context, provider string, before time.Time, limit int) ([]store.UpstreamGrant, error) {
	if limit <= 0 {
		return nil, nil
	}
	rows, err := s.r.QueryContext(ctx, "SELECT "+upstreamGrantCols+
		" FROM upstream_grants WHERE provider = ? AND checked_at < ? ORDER BY checked_at, subject LIMIT ?", provider, before.UnixMicro(), limit)
	return collect(rows, err, "upstream grants", scanUpstreamGrant, limit)
}

// TouchUpstreamGrant sets the grant's checked_at to at, and its sealed
// token unless sealed is nil, if its checked_at is still was.
func (s *Store) TouchUpstreamGrant(ctx context.Context, subject, provider string, was time.Time, sealed []byte, at time.Time) error {
	if at.IsZero() {
		return fmt.Errorf("sqlite: touch upstream grant: %w", errZeroTime)
	}
	err := s.write(ctx, "touch upstream grant", func(tx *sql.Tx) error {
		var chk int64
		err := tx.QueryRowContext(ctx, "SELECT checked_at FROM upstream_grants WHERE subject = ? AND provider = ?",
			subject, provider).Scan(&chk)
		switch {
		case err != nil:
			return dbErr(err)
		case chk != was.UnixMicro():
			return fmt.Errorf("%w: the grant was checked or replaced meanwhile", store.ErrConflict)
		}
		if sealed == nil {
			_, err = tx.ExecContext(ctx, "UPDATE upstream_grants SET checked_at = ? WHERE subject = ? AND provider = ?",
				timeIn(at), subject, provider)
		} else {
			_, err = tx.ExecContext(ctx, "UPDATE upstream_grants SET checked_at = ?, sealed = ? WHERE subject = ? AND provider = ?",
				timeIn(at), sealed, subject, provider)
		}
		return dbErr(err)
	})
	if err != nil {
		return fmt.Errorf("sqlite: touch upstream grant: %w", err)
	}
	return nil
}

// DeleteUpstreamGrant removes the grant, if stored, and appends events in
// one transaction.
func (s *Store) DeleteUpstreamGrant(ctx context.Context, subject, provider string, events ...store.Event) error {
	err := s.write(ctx, "delete upstream grant", func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, "DELETE FROM upstream_grants WHERE subject = ? AND provider = ?", subject, provider); err != nil {
			return dbErr(err)
		}
		return s.insertEvents(ctx, tx, events)
	})
	if err != nil {
		return fmt.Errorf("sqlite: delete upstream grant: %w", err)
	}
	return nil
}

// UpstreamGrantKey returns the stored sealing key, or stores the one
// create returns when there is none. create runs outside the write lock;
// when another caller stored a key meanwhile, that key is returned.
func (s *Store) UpstreamGrantKey(ctx context.Context, create func() ([]byte, error)) ([]byte, error) {
	key, err := upstreamGrantKey(ctx, s.r)
	if err == nil {
		return key, nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("sqlite: upstream grant key: %w", err)
	}
	fresh, err := create()
	if err != nil {
		return nil, fmt.Errorf("sqlite: upstream grant key: create: %w", err)
	}
	if len(fresh) == 0 {
		return nil, errors.New("sqlite: upstream grant key: create returned an empty key")
	}
	err = s.write(ctx, "upstream grant key", func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, "INSERT INTO upstream_grant_key (id, key, created_at) VALUES (1, ?, ?) ON CONFLICT (id) DO NOTHING",
			fresh, s.now().UnixMicro()); err != nil {
			return dbErr(err)
		}
		key, err = upstreamGrantKey(ctx, tx)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: upstream grant key: %w", err)
	}
	return key, nil
}

// upstreamGrantKey reads the stored key with q: store.ErrNotFound when
// none.
func upstreamGrantKey(ctx context.Context, q querier) ([]byte, error) {
	var key []byte
	if err := q.QueryRowContext(ctx, "SELECT key FROM upstream_grant_key WHERE id = 1").Scan(&key); err != nil {
		return nil, dbErr(err)
	}
	return bytesOut(key), nil
}
