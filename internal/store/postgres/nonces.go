package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/mandate-dev/mandate/internal/store"
)

// Sweeping expired nonces: every sweepEvery-th UseNonce call of a Store
// (the first too) deletes up to sweepMax expired pairs first.
const (
	sweepEvery = 256
	sweepMax   = 1000
)

// UseNonce records (namespace, id) until expires. A pair that is recorded
// and has not expired is store.ErrReplay; an expired one is replaced. Among
// concurrent uses of one pair, from any number of instances, exactly one
// succeeds: the upsert is one statement, and PostgreSQL makes the others wait
// for the winner's row and then see it. Now and then it deletes expired
// pairs first. Nonces are not counted by Generation.
func (s *Store) UseNonce(ctx context.Context, namespace, id string, expires time.Time) error {
	if id == "" {
		return fmt.Errorf("postgres: use nonce: empty id")
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	now := s.now()
	if s.nonceUses.Add(1)%sweepEvery == 1 {
		// Its own statement, skipping rows another sweep or an upsert has
		// locked: a sweep never waits and cannot deadlock with a use.
		_, err := s.pool.Exec(ctx, `DELETE FROM nonces WHERE (namespace, id) IN (
			SELECT namespace, id FROM nonces WHERE expires <= $1 LIMIT $2 FOR UPDATE SKIP LOCKED)`, now, sweepMax)
		if err != nil {
			return fmt.Errorf("postgres: use nonce %q: sweep: %w", namespace, dbErr(err))
		}
	}
	// The upsert replaces a stored pair only when it has expired; a live one
	// leaves the row alone and affects nothing.
	tag, err := s.pool.Exec(ctx, `INSERT INTO nonces (namespace, id, expires) VALUES ($1, $2, $3)
		ON CONFLICT (namespace, id) DO UPDATE SET expires = excluded.expires WHERE nonces.expires <= $4`,
		namespace, id, expires, now)
	if err != nil {
		return fmt.Errorf("postgres: use nonce %q: %w", namespace, dbErr(err))
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: use nonce %q: %w", namespace, store.ErrReplay)
	}
	return nil
}
