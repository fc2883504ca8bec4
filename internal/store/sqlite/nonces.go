package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/mandate-dev/mandate/internal/store"
)

// sweepEvery is how many UseNonce calls pass between sweeps of expired
// nonces; the first call sweeps too.
const sweepEvery = 256

// UseNonce records (namespace, id) until expires. A pair that is recorded
// and has not expired is store.ErrReplay; an expired one is replaced. Now
// and then it deletes expired pairs in the same transaction.
func (s *Store) UseNonce(ctx context.Context, namespace, id string, expires time.Time) error {
	if id == "" {
		return fmt.Errorf("sqlite: use nonce: empty id")
	}
	now := s.now().UnixMicro()
	sweep := s.nonceUses.Add(1)%sweepEvery == 1
	err := s.write(ctx, "use nonce", func(tx *sql.Tx) error {
		if sweep {
			if _, err := tx.ExecContext(ctx, "DELETE FROM nonces WHERE expires <= ?", now); err != nil {
				return fmt.Errorf("sweep: %w", dbErr(err))
			}
		}
		// The upsert replaces a stored pair only when it has expired; a
		// live one leaves the row alone and affects nothing.
		res, err := tx.ExecContext(ctx, `INSERT INTO nonces (namespace, id, expires) VALUES (?, ?, ?)
			ON CONFLICT (namespace, id) DO UPDATE SET expires = excluded.expires WHERE nonces.expires <= ?`,
			namespace, id, expires.UnixMicro(), now)
		if err != nil {
			return dbErr(err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return dbErr(err)
		}
		if n == 0 {
			return store.ErrReplay
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlite: use nonce %q: %w", namespace, err)
	}
	return nil
}
