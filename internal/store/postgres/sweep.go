package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mandate-dev/mandate/internal/store"
	"github.com/mandate-dev/mandate/revocation"
)

// sweepStatements are Sweep's deletes, in the order it runs them. Each
// picks at most $2 rows by key in a subquery that an index on the time
// answers (tokens_expires_at, nonces_expires, the sign-in tables'
// expires_at indexes, the revocations' partial indexes), skipping rows another transaction holds (a revocation of that
// token, another instance's sweep), so that a sweep never waits for a
// request and two instances sweeping at once do not queue on each other.
// The kind of a revocation entry is in the text, not a parameter, so that a
// generic plan can use the partial indexes.
var sweepStatements = []struct {
	what   string
	sql    string
	cutoff func(store.SweepCutoffs) time.Time
	count  func(*store.Swept) *int
}{
	{
		"tokens", `DELETE FROM tokens WHERE jti IN (
			SELECT jti FROM tokens WHERE expires_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)`,
		func(c store.SweepCutoffs) time.Time { return c.Tokens }, func(s *store.Swept) *int { return &s.Tokens },
	},
	{
		"nonces", `DELETE FROM nonces WHERE (namespace, id) IN (
			SELECT namespace, id FROM nonces WHERE expires < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)`,
		func(c store.SweepCutoffs) time.Time { return c.Nonces }, func(s *store.Swept) *int { return &s.Nonces },
	},
	// Sign-in rows go by their own expiry, used or not (store.SweepCutoffs.SignIn).
	{
		"codes", `DELETE FROM auth_codes WHERE hash IN (
			SELECT hash FROM auth_codes WHERE expires_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)`,
		signInCutoff, signInCount,
	},
	{
		"refresh tokens", `DELETE FROM refresh_tokens WHERE hash IN (
			SELECT hash FROM refresh_tokens WHERE expires_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)`,
		signInCutoff, signInCount,
	},
	{
		"sessions", `DELETE FROM sessions WHERE hash IN (
			SELECT hash FROM sessions WHERE expires_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)`,
		signInCutoff, signInCount,
	},
	{
		"pending steps", `DELETE FROM pending WHERE (kind, hash) IN (
			SELECT kind, hash FROM pending WHERE expires_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)`,
		signInCutoff, signInCount,
	},
	{
		"token revocations", `DELETE FROM revocations WHERE seq IN (
			SELECT seq FROM revocations WHERE kind = '` + revocation.KindToken + `' AND expires < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)`,
		func(c store.SweepCutoffs) time.Time { return c.TokenRevocations }, func(s *store.Swept) *int { return &s.Revocations },
	},
	{
		"other revocations", `DELETE FROM revocations WHERE seq IN (
			SELECT seq FROM revocations WHERE kind <> '` + revocation.KindToken + `' AND at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)`,
		func(c store.SweepCutoffs) time.Time { return c.OtherRevocations }, func(s *store.Swept) *int { return &s.Revocations },
	},
}

// signInCutoff and signInCount are the cutoff and count of every sign-in
// table.
func signInCutoff(c store.SweepCutoffs) time.Time { return c.SignIn }
func signInCount(s *store.Swept) *int             { return &s.SignIn }

// Sweep deletes at most limit rows (store.SweepLimit) whose time is before
// c's cutoffs, in one transaction: token rows first, then nonces, then
// sign-in rows, then revocation feed entries. Rows locked by another
// transaction are left for the next sweep, so a batch may come back short
// while some remain.
// Several instances may sweep at once.
func (s *Store) Sweep(ctx context.Context, c store.SweepCutoffs, limit int) (store.Swept, error) {
	var swept store.Swept
	err := s.write(ctx, "sweep", func(ctx context.Context, tx pgx.Tx) error {
		swept = store.Swept{}
		left := store.SweepLimit(limit)
		for _, st := range sweepStatements {
			cutoff := st.cutoff(c)
			if cutoff.IsZero() || left == 0 {
				continue
			}
			tag, err := tx.Exec(ctx, st.sql, cutoff, left)
			if err != nil {
				return fmt.Errorf("%s: %w", st.what, dbErr(err))
			}
			*st.count(&swept) += int(tag.RowsAffected())
			left -= int(tag.RowsAffected())
		}
		return nil
	})
	if err != nil {
		return store.Swept{}, fmt.Errorf("postgres: sweep: %w", err)
	}
	return swept, nil
}
