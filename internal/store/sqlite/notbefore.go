package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/mandate-dev/mandate/internal/store"
)

// NotBefore returns the global not-before epoch, or the zero time when it
// was never set.
func (s *Store) NotBefore(ctx context.Context) (time.Time, error) {
	t, err := notBefore(ctx, s.r)
	if err != nil {
		return time.Time{}, fmt.Errorf("sqlite: not-before: %w", err)
	}
	return t, nil
}

// AdvanceNotBefore sets the epoch to the later of its value and t, bumps the
// generation and appends the events, in one transaction, and returns the
// epoch in force. It never moves the epoch back; a zero t is refused.
func (s *Store) AdvanceNotBefore(ctx context.Context, t time.Time, events ...store.Event) (time.Time, error) {
	if t.IsZero() {
		return time.Time{}, errors.New("sqlite: advance not-before: zero time")
	}
	var out time.Time
	err := s.write(ctx, "advance not-before", func(tx *sql.Tx) error {
		micros := t.UnixMicro()
		if _, err := tx.ExecContext(ctx, "UPDATE not_before SET value = ? WHERE id = 1 AND (value IS NULL OR value < ?)",
			micros, micros); err != nil {
			return dbErr(err)
		}
		var err error
		if out, err = notBefore(ctx, tx); err != nil {
			return err
		}
		if _, err := bumpGeneration(ctx, tx); err != nil {
			return err
		}
		return s.insertEvents(ctx, tx, events)
	})
	if err != nil {
		return time.Time{}, fmt.Errorf("sqlite: advance not-before to %s: %w", t.UTC().Format(time.RFC3339Nano), err)
	}
	return out, nil
}

// notBefore reads the epoch with q.
func notBefore(ctx context.Context, q querier) (time.Time, error) {
	var v sql.NullInt64
	if err := q.QueryRowContext(ctx, "SELECT value FROM not_before WHERE id = 1").Scan(&v); err != nil {
		return time.Time{}, dbErr(err)
	}
	return timeOut(v), nil
}
