package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mandate-dev/mandate/internal/store"
)

// The grants rechecks at identity providers redeem (store.UpstreamGrants).
// A touch is one UPDATE … WHERE checked_at = was: of concurrent ones, from
// any number of instances, the first takes the row's lock and the others
// wait for it, then find checked_at moved and change nothing.

// errBadGrant refuses a grant without its subject, provider, sealed token
// or check time.
var errBadGrant = errors.New("an upstream grant needs a subject, a provider, a sealed token and a check time")

const upstreamGrantCols = "subject, provider, sealed, checked_at, created_at"

func scanUpstreamGrant(row pgx.CollectableRow) (store.UpstreamGrant, error) {
	var (
		g        store.UpstreamGrant
		chk, cre *time.Time
	)
	if err := row.Scan(&g.Subject, &g.Provider, &g.Sealed, &chk, &cre); err != nil {
		return store.UpstreamGrant{}, err
	}
	g.Sealed = bytesOut(g.Sealed)
	g.CheckedAt, g.CreatedAt = timeOut(chk), timeOut(cre)
	return g, nil
}

// PutUpstreamGrant stores g, replacing the grant of its subject and
// provider.
func (s *Store) PutUpstreamGrant(ctx context.Context, g store.UpstreamGrant) error {
	if g.Subject == "" || g.Provider == "" || len(g.Sealed) == 0 || g.CheckedAt.IsZero() {
		return fmt.Errorf("postgres: put upstream grant: %w", errBadGrant)
	}
	if !storable(g.Subject) || !storable(g.Provider) {
		return fmt.Errorf("postgres: put upstream grant: %w", errNotStorable)
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	_, err := s.pool.Exec(ctx, `INSERT INTO upstream_grants (`+upstreamGrantCols+`) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (subject, provider) DO UPDATE SET sealed = excluded.sealed, checked_at = excluded.checked_at,
		created_at = excluded.created_at`,
		g.Subject, g.Provider, g.Sealed, g.CheckedAt, timeIn(g.CreatedAt))
	if err != nil {
		return fmt.Errorf("postgres: put upstream grant: %w", dbErr(err))
	}
	return nil
}

// DueUpstreamGrants returns at most limit grants of provider checked
// before before, oldest first.
func (s *Store) DueUpstreamGrants(ctx context.Context, provider string, before time.Time, limit int) ([]store.UpstreamGrant, error) {
	if limit <= 0 || !storable(provider) {
		return nil, nil
	}
	return list(ctx, s, "upstream grants", "SELECT "+upstreamGrantCols+
		" FROM upstream_grants WHERE provider = $1 AND checked_at < $2 ORDER BY checked_at, subject LIMIT $3", scanUpstreamGrant, provider, before, limit)
}

// TouchUpstreamGrant sets the grant's checked_at to at, and its sealed
// token unless sealed is nil, if its checked_at is still was.
func (s *Store) TouchUpstreamGrant(ctx context.Context, subject, provider string, was time.Time, sealed []byte, at time.Time) error {
	if at.IsZero() {
		return fmt.Errorf("postgres: touch upstream grant: %w", errZeroTime)
	}
	if !storable(subject) || !storable(provider) {
		return fmt.Errorf("postgres: touch upstream grant: %w", notFound())
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	tag, err := s.pool.Exec(ctx, `UPDATE upstream_grants SET checked_at = $4, sealed = COALESCE($5, sealed)
		WHERE subject = $1 AND provider = $2 AND checked_at = $3`, subject, provider, was, at, bytesIn(sealed))
	if err != nil {
		return fmt.Errorf("postgres: touch upstream grant: %w", dbErr(err))
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	// Tell a grant gone from one checked or replaced meanwhile.
	var one int
	err = s.pool.QueryRow(ctx, "SELECT 1 FROM upstream_grants WHERE subject = $1 AND provider = $2", subject, provider).Scan(&one)
	if err = dbErr(err); err == nil {
		err = fmt.Errorf("%w: the grant was checked or replaced meanwhile", store.ErrConflict)
	}
	return fmt.Errorf("postgres: touch upstream grant: %w", err)
}

// DeleteUpstreamGrant removes the grant, if stored, and appends events in
// one transaction.
func (s *Store) DeleteUpstreamGrant(ctx context.Context, subject, provider string, events ...store.Event) error {
	q, args := "DELETE FROM upstream_grants WHERE subject = $1 AND provider = $2", []any{subject, provider}
	if !storable(subject) || !storable(provider) {
		// No grant can have them; the events are appended all the same.
		q, args = "SELECT 1 WHERE false", nil
	}
	if err := s.writeWithEvents(ctx, q, args, nil, events); err != nil {
		return fmt.Errorf("postgres: delete upstream grant: %w", err)
	}
	return nil
}

// UpstreamGrantKey returns the stored sealing key, or stores the one
// create returns when there is none. When instances race, the first insert
// to commit wins (ON CONFLICT DO NOTHING) and every caller reads that key
// back, in a statement of its own, which sees the winner's commit.
func (s *Store) UpstreamGrantKey(ctx context.Context, create func() ([]byte, error)) ([]byte, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	key, err := s.upstreamGrantKey(ctx)
	if err == nil {
		return key, nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("postgres: upstream grant key: %w", err)
	}
	fresh, err := create()
	if err != nil {
		return nil, fmt.Errorf("postgres: upstream grant key: create: %w", err)
	}
	if len(fresh) == 0 {
		return nil, errors.New("postgres: upstream grant key: create returned an empty key")
	}
	if _, err := s.pool.Exec(ctx, "INSERT INTO upstream_grant_key (id, key, created_at) VALUES (1, $1, $2) ON CONFLICT (id) DO NOTHING",
		fresh, s.now()); err != nil {
		return nil, fmt.Errorf("postgres: upstream grant key: %w", dbErr(err))
	}
	if key, err = s.upstreamGrantKey(ctx); err != nil {
		return nil, fmt.Errorf("postgres: upstream grant key: %w", err)
	}
	return key, nil
}

// upstreamGrantKey reads the stored key: store.ErrNotFound when none.
func (s *Store) upstreamGrantKey(ctx context.Context) ([]byte, error) {
	var key []byte
	if err := s.pool.QueryRow(ctx, "SELECT key FROM upstream_grant_key WHERE id = 1").Scan(&key); err != nil {
		return nil, dbErr(err)
	}
	return bytesOut(key), nil
}
