package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mandate-dev/mandate/internal/store"
)

// NotBefore returns the global not-before epoch, or the zero time when it
// was never set.
func (s *Store) NotBefore(ctx context.Context) (time.Time, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	var v *time.Time
	if err := s.pool.QueryRow(ctx, "SELECT value FROM not_before WHERE id = 1").Scan(&v); err != nil {
		return time.Time{}, fmt.Errorf("postgres: not-before: %w", dbErr(err))
	}
	return timeOut(v), nil
}

// AdvanceNotBefore sets the epoch to the later of its value and t, bumps the
// generation (notifying every instance's Listen) and appends the events, in
// one transaction, and returns the epoch in force. It never moves the epoch
// back: concurrent advances wait for each other's row lock and the latest
// time wins. A zero t is refused.
func (s *Store) AdvanceNotBefore(ctx context.Context, t time.Time, events ...store.Event) (time.Time, error) {
	if t.IsZero() {
		return time.Time{}, errors.New("postgres: advance not-before: zero time")
	}
	var out time.Time
	err := s.write(ctx, "advance not-before", func(ctx context.Context, tx pgx.Tx) error {
		// GREATEST ignores NULL: the first advance sets the value.
		var v *time.Time
		if err := tx.QueryRow(ctx, "UPDATE not_before SET value = GREATEST(value, $1) WHERE id = 1 RETURNING value",
			t).Scan(&v); err != nil {
			return dbErr(err)
		}
		out = timeOut(v)
		b := &pgx.Batch{}
		queueGeneration(b, s.channel)
		s.queueEvents(b, events)
		return send(ctx, tx, b)
	})
	if err != nil {
		return time.Time{}, fmt.Errorf("postgres: advance not-before to %s: %w", t.UTC().Format(time.RFC3339Nano), err)
	}
	return out, nil
}
