package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/mandate-dev/mandate/internal/store"
	"github.com/mandate-dev/mandate/revocation"
)

// sweepStatements are Sweep's deletes, in the order it runs them. Each
// picks at most ? rows by key in a subquery that an index on the time
// answers (tokens_expires_at, nonces_expires, the sign-in tables'
// expires_at indexes, the revocations' partial indexes), so that a batch costs its size and not the table's. The kind of
// a revocation entry is in the text, not a parameter, so that SQLite can
// use the partial indexes.
var sweepStatements = []struct {
	what   string
	sql    string
	cutoff func(store.SweepCutoffs) time.Time
	count  func(*store.Swept) *int
}{
	{
		// indexed = 1 states the predicate of the partial index
		// tokens_expires_at (migration 20), which every row is in since
		// migration 23; Sweep indexes what is pending first, which writes
		// the rows of the tokens the pending records carry.
		"tokens", "DELETE FROM tokens WHERE jti IN (SELECT jti FROM tokens WHERE indexed = 1 AND expires_at < ? LIMIT ?)",
		func(c store.SweepCutoffs) time.Time { return c.Tokens }, func(s *store.Swept) *int { return &s.Tokens },
	},
	{
		"nonces", "DELETE FROM nonces WHERE rowid IN (SELECT rowid FROM nonces WHERE expires < ? LIMIT ?)",
		func(c store.SweepCutoffs) time.Time { return c.Nonces }, func(s *store.Swept) *int { return &s.Nonces },
	},
	// Sign-in rows go by their own expiry, used or not (store.SweepCutoffs.SignIn).
	{
		"codes", "DELETE FROM auth_codes WHERE rowid IN (SELECT rowid FROM auth_codes WHERE expires_at < ? LIMIT ?)",
		signInCutoff, signInCount,
	},
	{
		"refresh tokens", "DELETE FROM refresh_tokens WHERE rowid IN (SELECT rowid FROM refresh_tokens WHERE expires_at < ? LIMIT ?)",
		signInCutoff, signInCount,
	},
	{
		"sessions", "DELETE FROM sessions WHERE rowid IN (SELECT rowid FROM sessions WHERE expires_at < ? LIMIT ?)",
		signInCutoff, signInCount,
	},
	{
		"pending steps", "DELETE FROM pending WHERE rowid IN (SELECT rowid FROM pending WHERE expires_at < ? LIMIT ?)",
		signInCutoff, signInCount,
	},
	{
		"token revocations", "DELETE FROM revocations WHERE seq IN (SELECT seq FROM revocations WHERE kind = '" +
			revocation.KindToken + "' AND expires < ? LIMIT ?)",
		func(c store.SweepCutoffs) time.Time { return c.TokenRevocations }, func(s *store.Swept) *int { return &s.Revocations },
	},
	{
		"other revocations", "DELETE FROM revocations WHERE seq IN (SELECT seq FROM revocations WHERE kind <> '" +
			revocation.KindToken + "' AND at < ? LIMIT ?)",
		func(c store.SweepCutoffs) time.Time { return c.OtherRevocations }, func(s *store.Swept) *int { return &s.Revocations },
	},
}

// signInCutoff and signInCount are the cutoff and count of every sign-in
// table.
func signInCutoff(c store.SweepCutoffs) time.Time { return c.SignIn }
func signInCount(s *store.Swept) *int             { return &s.SignIn }

// Sweep deletes at most limit rows (store.SweepLimit) whose time is before
// c's cutoffs, in one write transaction: token rows first, then nonces,
// then sign-in rows, then revocation feed entries. Before the tokens, it
// indexes the audit records the background indexer has not reached yet (a
// batch of them at most), which writes the rows of the tokens they carry
// (migration 23), so that the sweep finds them. It holds the write lock for one batch; the caller
// pauses between batches so that requests' commits get in.
func (s *Store) Sweep(ctx context.Context, c store.SweepCutoffs, limit int) (store.Swept, error) {
	var swept store.Swept
	err := s.write(ctx, "sweep", func(tx *sql.Tx) error {
		swept = store.Swept{}
		if !c.Tokens.IsZero() {
			// One batch at most: should the indexer be further behind,
			// the tokens of the rest go at a later sweep.
			if _, _, err := indexTx(ctx, tx, indexBatch); err != nil {
				return fmt.Errorf("index events: %w", err)
			}
		}
		left := store.SweepLimit(limit)
		for _, st := range sweepStatements {
			cutoff := st.cutoff(c)
			if cutoff.IsZero() || left == 0 {
				continue
			}
			res, err := tx.ExecContext(ctx, st.sql, cutoff.UnixMicro(), left)
			if err != nil {
				return fmt.Errorf("%s: %w", st.what, dbErr(err))
			}
			n, err := res.RowsAffected()
			if err != nil {
				return fmt.Errorf("%s: %w", st.what, dbErr(err))
			}
			*st.count(&swept) += int(n)
			left -= int(n)
		}
		return nil
	})
	if err != nil {
		return store.Swept{}, fmt.Errorf("sqlite: sweep: %w", err)
	}
	return swept, nil
}
