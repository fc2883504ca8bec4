package postgres

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/mandate-dev/mandate/internal/store"
)

// TallyEvents counts the records of f's window in one statement, so from
// one snapshot, and groups them in the database, so that a window of a
// hundred thousand records costs one read of it (along the primary key,
// from the time marks' bound) and a few thousand rows instead of decoding
// every record.
//
// The records are grouped first, a revocation with a jti keeping its jti
// (g); the jtis of those groups are then looked up among the window's
// records that issue a token (i: DISTINCT ON the jti, lowest seq first),
// and the groups regrouped with what that found. Pairing the grouped rows
// rather than every record saves about a quarter of the time over a day
// of ten million records.
//
// It runs in a read-only transaction that raises work_mem to tallyWorkMem
// for the statement: with the default 4 MB, a day of ten million records
// (about 110,000 records, 10,000 groups) is grouped by an external merge
// sort on disk; with more, in a hash table, in half the time. The time
// marks' bound of the window is read first, in the same transaction, and
// given to the statement as a value that its plan is made for
// (force_custom_plan): as a subquery, its estimate was a third of the log,
// and the planner grouped the window by a parallel sort, several times
// slower. A bound read before the statement still holds for it: every
// record up to it is older than Since, and later appends come after it.
func (s *Store) TallyEvents(ctx context.Context, f store.TallyFilter) ([]store.EventTally, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, fmt.Errorf("postgres: event tally: %w", dbErr(err))
	}
	// Read only: nothing to undo, and the rollback ends SET LOCAL.
	defer func() { _ = tx.Rollback(ctx) }()
	b := &pgx.Batch{}
	b.Queue("SET LOCAL work_mem = '" + tallyWorkMem + "'")
	b.Queue("SET LOCAL plan_cache_mode = force_custom_plan")
	var after int64
	if !f.Since.IsZero() {
		b.Queue("SELECT "+sinceSeq("$1"), f.Since).QueryRow(func(row pgx.Row) error { return row.Scan(&after) })
	}
	if err := send(ctx, tx, b); err != nil {
		return nil, fmt.Errorf("postgres: event tally: %w", err)
	}
	q, args := tallyQuery(f, after)
	rows, err := tx.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("postgres: event tally: %w", dbErr(err))
	}
	out, err := pgx.AppendRows([]store.EventTally(nil), rows, scanTally)
	if err != nil {
		return nil, fmt.Errorf("postgres: event tally: %w", dbErr(err))
	}
	return out, nil
}

// tallyWorkMem is the work_mem TallyEvents' statement runs with.
const tallyWorkMem = "64MB"

// tallyQuery is TallyEvents' statement and its arguments; after is the
// time marks' bound of f.Since (sinceSeq).
func tallyQuery(f store.TallyFilter, after int64) (string, []any) {
	// A value that cannot be stored names nothing a record holds;
	// PostgreSQL would refuse it as a parameter.
	names := slices.DeleteFunc(slices.Clone(f.Attributes), func(n string) bool { return !storable(n) })
	issued := slices.DeleteFunc(slices.Clone(f.Issued), func(a string) bool { return !storable(a) })
	if !storable(f.IssuedResult) {
		issued = nil
	}
	pair := f.Revoked != "" && storable(f.Revoked)

	var (
		where []string
		args  []any
	)
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if !f.Since.IsZero() {
		// The time marks' bound lets the executor skip the partitions
		// before the window, as QueryEvents does.
		where = append(where, "time >= "+arg(f.Since), "seq > "+arg(after))
	}
	if !f.Until.IsZero() {
		where = append(where, "time < "+arg(f.Until))
	}
	window := "TRUE"
	if len(where) > 0 {
		window = strings.Join(where, " AND ")
	}
	// spells is whether a record spells one of the names in quotes, as
	// store.SpellsAttribute looks for it.
	spells := "FALSE"
	for _, name := range names {
		spells += " OR strpos(attributes, " + arg(`"`+name+`"`) + ") > 0"
	}
	// revoked is whether a record is a revocation with a jti, which
	// TallyFilter.Revoked pairs with its issuer.
	revoked := "FALSE"
	if pair {
		revoked = "(action = " + arg(f.Revoked) + " AND jti <> '')"
	}
	issuer := "SELECT NULL::text AS jti, NULL::text AS client_id, NULL::text AS agent_version WHERE FALSE"
	if pair && len(issued) > 0 {
		issuer = "SELECT DISTINCT ON (jti) jti, client_id, agent_version FROM events WHERE " + window +
			" AND action = ANY(" + arg(issued) + "::text[]) AND result = " + arg(f.IssuedResult) +
			" AND jti IN (SELECT g.jti FROM g WHERE g.jti <> '') ORDER BY jti, seq"
	}
	q := "WITH g AS MATERIALIZED (SELECT action, result, client_id, agent_version, performer, reported_by," +
		" CASE WHEN " + spells + " THEN attributes END AS attributes," +
		" CASE WHEN " + revoked + " THEN jti ELSE '' END AS jti, count(*) AS n" +
		" FROM events WHERE " + window + " GROUP BY 1, 2, 3, 4, 5, 6, 7, 8)," +
		" i AS (" + issuer + ")" +
		" SELECT g.action, g.result, g.client_id, g.agent_version, g.performer, g.reported_by, g.attributes," +
		" i.jti IS NOT NULL, coalesce(i.client_id, ''), coalesce(i.agent_version, '')," +
		" CASE WHEN i.jti IS NULL THEN g.jti ELSE '' END, sum(g.n)::bigint" +
		" FROM g LEFT JOIN i ON g.jti <> '' AND i.jti = g.jti" +
		" GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11"
	return q, args
}

// scanTally reads a row of tallyQuery.
func scanTally(row pgx.CollectableRow) (store.EventTally, error) {
	var (
		r      store.EventTally
		attrs  pgtype.Text
		issued bool
		issuer store.TallyIssuer
		count  int64
	)
	if err := row.Scan(&r.Action, &r.Result, &r.ClientID, &r.AgentVersion, &r.Performer, &r.ReportedBy,
		&attrs, &issued, &issuer.ClientID, &issuer.AgentVersion, &r.JTI, &count); err != nil {
		return store.EventTally{}, err
	}
	r.Attributes = textValue(attrs)
	if issued {
		r.Issuer = &issuer
	}
	r.Count = int(count)
	return r, nil
}
