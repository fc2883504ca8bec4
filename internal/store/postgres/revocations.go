package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/mandate-dev/mandate/internal/store"
	"github.com/mandate-dev/mandate/revocation"
)

const revocationCols = "seq, kind, id, scope, gen, at, expires"

// appendRevocations appends a list of entries in one statement: it advances
// revocations_head by their number ($1), which locks its row until the
// transaction commits, and numbers the entries on from the previous value
// in list order, as appendEvents does for events.
const appendRevocations = `WITH h AS (
	UPDATE revocations_head SET last_seq = last_seq + $1 WHERE id = 1 RETURNING last_seq - $1 AS base
)
INSERT INTO revocations (` + revocationCols + `)
SELECT h.base + u.ord, u.kind, u.id, u.scope, u.gen, u.at, u.expires
FROM h, unnest($2::text[], $3::text[], $4::text[], $5::bigint[], $6::timestamptz[], $7::timestamptz[])
	WITH ORDINALITY AS u(kind, id, scope, gen, at, expires, ord)`

// queueRevocations queues the statement that appends entries in the order
// given; their own Seq is ignored. Queue it after the transaction's other
// writes but before its events, so that the lock on revocations_head is
// held briefly and every transaction takes the two head rows in one order.
func queueRevocations(b *pgx.Batch, entries []store.Revocation) {
	n := len(entries)
	if n == 0 {
		return
	}
	var (
		kind, id, scope = make([]string, n), make([]string, n), make([]string, n)
		gen             = make([]int64, n)
		at, expires     = make([]pgtype.Timestamptz, n), make([]pgtype.Timestamptz, n)
	)
	for i, r := range entries {
		kind[i], id[i], scope[i], gen[i] = r.Kind, r.ID, r.Scope, r.Gen
		at[i], expires[i] = timestamp(r.At), timestamp(r.Expires)
	}
	b.Queue(appendRevocations, n, kind, id, scope, gen, at, expires)
}

func scanRevocation(row pgx.CollectableRow) (store.Revocation, error) {
	var (
		r           store.Revocation
		at, expires *time.Time
	)
	if err := row.Scan(&r.Seq, &r.Kind, &r.ID, &r.Scope, &r.Gen, &at, &expires); err != nil {
		return store.Revocation{}, err
	}
	r.At, r.Expires = timeOut(at), timeOut(expires)
	return r, nil
}

// ListRevocations returns up to limit entries with Seq above after, in Seq
// order; limit defaults to 1000 and is capped at 10000. Seqs are handed out
// in commit order, so a reader that has seen Seq n never sees a lower one
// appear later.
func (s *Store) ListRevocations(ctx context.Context, after int64, limit int) ([]store.Revocation, error) {
	return list(ctx, s, "revocations", "SELECT "+revocationCols+" FROM revocations WHERE seq > $1 ORDER BY seq LIMIT $2",
		scanRevocation, after, store.RevocationLimit(limit))
}

// RevocationSeq returns the last Seq handed out, 0 when none; collecting
// entries does not lower it.
func (s *Store) RevocationSeq(ctx context.Context) (int64, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	var seq int64
	if err := s.pool.QueryRow(ctx, "SELECT last_seq FROM revocations_head WHERE id = 1").Scan(&seq); err != nil {
		return 0, fmt.Errorf("postgres: revocation seq: %w", dbErr(err))
	}
	return seq, nil
}

// CollectRevocations deletes the token entries that expire before
// tokensBefore and the other entries made before othersBefore, in one
// statement, and returns how many it deleted. A zero cutoff deletes nothing
// of its kind, and a token entry without an expiry is never collected.
func (s *Store) CollectRevocations(ctx context.Context, tokensBefore, othersBefore time.Time) (int, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	// NULL (a zero cutoff) compares as unknown: nothing of that kind goes.
	// The kind is in the text, not a parameter, so that a generic plan can
	// use the partial indexes.
	const token = "'" + revocation.KindToken + "'"
	tag, err := s.pool.Exec(ctx, `DELETE FROM revocations
		WHERE (kind = `+token+` AND expires < $1) OR (kind <> `+token+` AND at < $2)`,
		timeIn(tokensBefore), timeIn(othersBefore))
	if err != nil {
		return 0, fmt.Errorf("postgres: collect revocations: %w", dbErr(err))
	}
	return int(tag.RowsAffected()), nil
}
