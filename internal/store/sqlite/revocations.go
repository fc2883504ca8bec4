package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/mandate-dev/mandate/internal/store"
	"github.com/mandate-dev/mandate/revocation"
)

const revocationCols = "seq, kind, id, scope, gen, at, expires"

// insertRevocations appends entries inside tx, numbering them on from
// revocations_head in slice order. SQLite has one writer at a time, so the
// seqs follow commit order without gaps; the entries' own Seq is ignored.
func insertRevocations(ctx context.Context, tx *sql.Tx, entries []store.Revocation) error {
	if len(entries) == 0 {
		return nil
	}
	var last int64
	if err := tx.QueryRowContext(ctx, "UPDATE revocations_head SET last_seq = last_seq + ? WHERE id = 1 RETURNING last_seq",
		len(entries)).Scan(&last); err != nil {
		return fmt.Errorf("advance revocations_head: %w", dbErr(err))
	}
	stmt, err := tx.PrepareContext(ctx, "INSERT INTO revocations ("+revocationCols+") VALUES (?, ?, ?, ?, ?, ?, ?)")
	if err != nil {
		return fmt.Errorf("insert revocations: %w", dbErr(err))
	}
	defer stmt.Close()
	base := last - int64(len(entries))
	for i, r := range entries {
		if _, err := stmt.ExecContext(ctx, base+int64(i)+1, r.Kind, r.ID, r.Scope, r.Gen, r.At.UnixMicro(), timeIn(r.Expires)); err != nil {
			return fmt.Errorf("insert revocation %s %q: %w", r.Kind, r.ID, dbErr(err))
		}
	}
	return nil
}

func scanRevocation(sc scanner) (store.Revocation, error) {
	var (
		r       store.Revocation
		at      int64
		expires sql.NullInt64
	)
	if err := sc.Scan(&r.Seq, &r.Kind, &r.ID, &r.Scope, &r.Gen, &at, &expires); err != nil {
		return store.Revocation{}, dbErr(err)
	}
	r.At = time.UnixMicro(at).UTC()
	r.Expires = timeOut(expires)
	return r, nil
}

// ListRevocations returns up to limit entries with Seq above after, in Seq
// order; limit defaults to 1000 and is capped at 10000.
func (s *Store) ListRevocations(ctx context.Context, after int64, limit int) ([]store.Revocation, error) {
	return list(ctx, s.r, "revocations", "SELECT "+revocationCols+" FROM revocations WHERE seq > ? ORDER BY seq LIMIT ?",
		scanRevocation, after, store.RevocationLimit(limit))
}

// RevocationSeq returns the last Seq handed out, 0 when none; collecting
// entries does not lower it.
func (s *Store) RevocationSeq(ctx context.Context) (int64, error) {
	var seq int64
	if err := s.r.QueryRowContext(ctx, "SELECT last_seq FROM revocations_head WHERE id = 1").Scan(&seq); err != nil {
		return 0, fmt.Errorf("sqlite: revocation seq: %w", dbErr(err))
	}
	return seq, nil
}

// CollectRevocations deletes the token entries that expire before
// tokensBefore and the other entries made before othersBefore, in one
// transaction, and returns how many it deleted. A zero cutoff deletes
// nothing of its kind, and a token entry without an expiry is never
// collected.
func (s *Store) CollectRevocations(ctx context.Context, tokensBefore, othersBefore time.Time) (int, error) {
	var n int64
	err := s.write(ctx, "collect revocations", func(tx *sql.Tx) error {
		for _, q := range []struct {
			sql    string
			cutoff time.Time
		}{
			// The kind is in the text, not a parameter, so that SQLite can
			// use the partial indexes.
			{"DELETE FROM revocations WHERE kind = '" + revocation.KindToken + "' AND expires < ?", tokensBefore},
			{"DELETE FROM revocations WHERE kind <> '" + revocation.KindToken + "' AND at < ?", othersBefore},
		} {
			if q.cutoff.IsZero() {
				continue
			}
			res, err := tx.ExecContext(ctx, q.sql, q.cutoff.UnixMicro())
			if err != nil {
				return dbErr(err)
			}
			d, err := res.RowsAffected()
			if err != nil {
				return dbErr(err)
			}
			n += d
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("sqlite: collect revocations: %w", err)
	}
	return int(n), nil
}
