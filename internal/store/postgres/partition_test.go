package postgres_test

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mandate-dev/mandate/internal/auditchain"
	"github.com/mandate-dev/mandate/internal/store"
	"github.com/mandate-dev/mandate/internal/store/postgres"
	"github.com/mandate-dev/mandate/internal/store/storetest"
)

// partitionsOf lists the range partitions of table, in seq order.
func partitionsOf(t *testing.T, conn *pgx.Conn, table string) []string {
	t.Helper()
	rows, err := conn.Query(t.Context(), `SELECT c.relname FROM pg_inherits AS i JOIN pg_class AS c ON c.oid = i.inhrelid
		WHERE i.inhparent = $1::regclass AND c.relname ~ '_p[0-9]+$'
		ORDER BY substring(c.relname from '[0-9]+$')::bigint`, table)
	if err != nil {
		t.Fatal(err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// countIn is the number of rows of table.
func countIn(t *testing.T, conn *pgx.Conn, table string) int {
	t.Helper()
	var n int
	if err := conn.QueryRow(t.Context(), "SELECT count(*) FROM "+pgx.Identifier{table}.Sanitize()).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// commitEvents appends n records in one commit, the i-th (from first)
// with id prefix+i, action action and time at(i).
func commitEvents(t *testing.T, s store.Store, first, n int, prefix, action string, at func(i int) time.Time) {
	t.Helper()
	evs := make([]store.Event, n)
	for i := range evs {
		evs[i] = store.Event{ID: prefix + strconv.Itoa(first+i), Action: action, Result: "ok",
			Performer: "agent:a", OnBehalf: "user:sam", Time: at(first + i)}
	}
	if err := s.Commit(t.Context(), store.Batch{Events: evs}); err != nil {
		t.Fatalf("Commit: %v", err)
	}
}

// TestPartitionedRetention: with partitions of 4 records, retention drops
// the partitions archived whole, with a count of the records they held,
// and deletes row by row in the DEFAULT partition (records that outran the
// upkeep) and in a partition archived in part; the upkeep then moves the
// rest of the DEFAULT partition into the range partition made for it; the
// chain and the request ids' uniqueness hold throughout.
func TestPartitionedRetention(t *testing.T) {
	testURL(t)
	t.Parallel()
	ctx := t.Context()
	schema := newSchema(t)
	s := openStore(t, postgres.WithoutUpkeep(postgres.WithAuditLayout(config(t, schema), 4, 4)))
	conn := rawConn(t, schema)
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(i int) time.Time { return base.Add(time.Duration(i) * time.Minute) }

	// 14 records in one commit, past the two partitions Open made (0-3,
	// 4-7): 8 to 14 land in the DEFAULT partition.
	commitEvents(t, s, 1, 14, "r", "request", at)
	if n := countIn(t, conn, "events_default"); n != 7 {
		t.Fatalf("%d records in the DEFAULT partition, want 7 (8 to 14)", n)
	}
	all := storetest.VerifyChain(t, s)
	if len(all) != 14 {
		t.Fatalf("%d records, want 14", len(all))
	}
	if err := s.Commit(ctx, store.Batch{Events: []store.Event{{ID: "r3", Action: "request"}}}); !errors.Is(err, store.ErrAlreadyExists) {
		t.Fatalf("a request record's id again: err = %v, want ErrAlreadyExists", err)
	}

	mark := store.ArchivedLog{Size: 13, Head: all[12].Hash, Tree: []byte(`{"n":0}`)}
	if err := s.MarkArchived(ctx, 0, mark); err != nil {
		t.Fatalf("MarkArchived: %v", err)
	}
	var counts []int
	for {
		n, err := s.DeleteArchivedEvents(ctx, 13, 2)
		if err != nil {
			t.Fatalf("DeleteArchivedEvents: %v", err)
		}
		if n == 0 {
			break
		}
		counts = append(counts, n)
	}
	// Partition 0 (records 1-3), partition 1 (4-7), then 8 to 13 from
	// the DEFAULT partition, 2 at a time.
	if got, want := fmt.Sprint(counts), "[3 4 2 2 2]"; got != want {
		t.Errorf("DeleteArchivedEvents deleted %s, want %s", got, want)
	}
	if got := partitionsOf(t, conn, "events"); len(got) != 0 {
		t.Errorf("partitions %v left, want none", got)
	}
	if got := partitionsOf(t, conn, "event_actors"); len(got) != 0 {
		t.Errorf("event_actors partitions %v left, want none", got)
	}

	if err := s.Upkeep(ctx); err != nil {
		t.Fatalf("Upkeep: %v", err)
	}
	if n := countIn(t, conn, "events_default"); n != 0 {
		t.Errorf("%d records in the DEFAULT partition after the upkeep, want 0", n)
	}
	if n := countIn(t, conn, "event_actors_p3"); n != 1 {
		t.Errorf("event_actors_p3 holds %d rows, want 1 (record 14's)", n)
	}
	if got, want := strings.Join(partitionsOf(t, conn, "events"), " "), "events_p3 events_p4"; got != want {
		t.Errorf("partitions %q, want %q", got, want)
	}
	if n := countIn(t, conn, "event_request_ids"); n != 1 { // r14
		t.Errorf("%d request ids kept, want 1", n)
	}
	// An archived request record's id is free again, as before the
	// partitions; the chain carries on from the cut.
	commitEvents(t, s, 3, 1, "r", "request", at)
	commitEvents(t, s, 16, 2, "x", "token.issue", at)
	live, err := s.EventsAfter(ctx, 0, 0)
	if err != nil || len(live) != 4 || live[0].Seq != 14 {
		t.Fatalf("EventsAfter: %d records, %v; want 4 from 14", len(live), err)
	}
	head := [32]byte(all[12].Hash)
	for _, e := range live {
		if next := auditchain.Next(head, e); !bytes.Equal(e.Hash, next[:]) {
			t.Fatalf("record %d does not chain on", e.Seq)
		}
		head = [32]byte(e.Hash)
	}
	if evs, err := s.QueryEvents(ctx, store.EventFilter{Actor: "agent:a"}); err != nil || len(evs) != 4 {
		t.Errorf("QueryEvents by actor: %d records, %v; want 4", len(evs), err)
	}
}

// TestQueryPlanPruning: a seq bound (EventFilter.BeforeSeq, EventsAfter)
// and a time window (EventFilter.Since, through the time marks) read only
// the partitions that can hold the records asked for, with times out of
// seq order.
func TestQueryPlanPruning(t *testing.T) {
	testURL(t)
	t.Parallel()
	ctx := t.Context()
	schema := newSchema(t)
	s := openStore(t, postgres.WithAuditLayout(config(t, schema), 8, 4))
	conn := rawConn(t, schema)
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	// Record i is i minutes after base, but every fifth is an hour late
	// (a verifier's clock).
	at := func(i int) time.Time {
		if i%5 == 0 {
			return base.Add(time.Duration(i)*time.Minute - time.Hour)
		}
		return base.Add(time.Duration(i) * time.Minute)
	}
	for first := 1; first <= 64; first += 4 {
		commitEvents(t, s, first, 4, "e", "token.issue", at)
		if err := s.Upkeep(ctx); err != nil {
			t.Fatalf("Upkeep: %v", err)
		}
	}
	if n := countIn(t, conn, "events_default"); n != 0 {
		t.Fatalf("%d records in the DEFAULT partition, want 0", n)
	}

	// partitions lists the partitions of events in the plan of f, and
	// those it read, each sorted.
	partitions := func(t *testing.T, f store.EventFilter) (planned, read string) {
		t.Helper()
		q, args := postgres.EventQuery(f)
		rows, err := conn.Query(ctx, "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) "+q, args...)
		if err != nil {
			t.Fatal(err)
		}
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		var in, ran []string
		scan := regexp.MustCompile(`Scan.* on (events_p[0-9]+|events_default)`)
		for _, l := range lines {
			if m := scan.FindStringSubmatch(l); m != nil {
				in = append(in, m[1])
				if !strings.Contains(l, "never executed") {
					ran = append(ran, m[1])
				}
			}
		}
		slices.Sort(in)
		slices.Sort(ran)
		return strings.Join(slices.Compact(in), " "), strings.Join(slices.Compact(ran), " ")
	}
	// The DEFAULT partition, which may hold any seq past the ranges (or
	// below 0), is in every plan; it is empty.
	for _, c := range []struct {
		name          string
		f             store.EventFilter
		planned, read string
	}{
		// Records below 30: the planner leaves out partitions 4 to 9.
		{"ok/seq-range", store.EventFilter{BeforeSeq: 30},
			"events_default events_p0 events_p1 events_p2 events_p3", ""},
		// The last 10 minutes of the log: from record 54 on (record 60,
		// an hour late, is not in it). The last time mark before the
		// window is record 52's, so the executor skips partitions 0 to 5
		// and reads 6 (48-55), 7, 8 (64-71) and 9 (made ahead, empty).
		{"ok/time-window", store.EventFilter{Since: at(54)}, "",
			"events_default events_p6 events_p7 events_p8 events_p9"},
	} {
		t.Run(c.name, func(t *testing.T) {
			planned, read := partitions(t, c.f)
			if c.planned != "" && planned != c.planned {
				t.Errorf("partitions planned: %q, want %q", planned, c.planned)
			}
			if c.read != "" && read != c.read {
				t.Errorf("partitions read: %q, want %q", read, c.read)
			}
			evs, err := s.QueryEvents(ctx, c.f)
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			for i := 64; i >= 1; i-- {
				if (c.f.BeforeSeq == 0 || int64(i) < c.f.BeforeSeq) && !at(i).Before(c.f.Since) {
					want = append(want, "e"+strconv.Itoa(i))
				}
			}
			want = want[:min(len(want), 10)]
			var got []string
			for _, e := range evs {
				got = append(got, e.ID)
			}
			if fmt.Sprint(got[:min(len(got), 10)]) != fmt.Sprint(want) {
				t.Errorf("records %v, want %v", got, want)
			}
		})
	}
}

// TestPartitionExistingRecords: a log written before the partitions is
// moved into them by the migration, in one transaction: every record in
// the range partition of its seq, none in the DEFAULT partition, the chain
// whole, the actors' index and the request ids' uniqueness kept, and the
// time marks made.
func TestPartitionExistingRecords(t *testing.T) {
	testURL(t)
	t.Parallel()
	ctx := t.Context()
	schema := newSchema(t)
	conn := rawConn(t, schema)
	applyUpTo(t, conn, schema, 15)
	const old = 11
	head := auditchain.Genesis
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := 1; i <= old; i++ {
		e := store.Event{Seq: int64(i), ID: "e" + strconv.Itoa(i), Time: base.Add(time.Duration(i) * time.Minute),
			Action: "token.issue", Result: "ok", Performer: "agent:a", OnBehalf: "user:sam", Chain: []string{"agent:a"}}
		if i%4 == 0 {
			e.Action, e.ID = "request", "q"+strconv.Itoa(i)
		}
		head = auditchain.Next(head, e)
		if _, err := conn.Exec(ctx, `INSERT INTO events (seq, id, time, request_id, action, result, reason, detail,
			performer, on_behalf, chain, client_id, scopes, requested, audience, resource, delegation_id, jti,
			parent_jti, hash) VALUES ($1, $2, $3, '', $4, 'ok', '', '', 'agent:a', 'user:sam', '{agent:a}', '', '{}',
			'{}', '', '', '', '', '', $5)`, e.Seq, e.ID, e.Time, e.Action, head[:]); err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Exec(ctx, "INSERT INTO event_actors (actor, seq) VALUES ('agent:a', $1)", e.Seq); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := conn.Exec(ctx, "UPDATE events_head SET last_seq = $1, last_hash = $2", old, head[:]); err != nil {
		t.Fatal(err)
	}

	cfg := postgres.WithAuditLayout(config(t, schema), 4, 4)
	if err := postgres.Migrate(ctx, cfg); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	if got, want := strings.Join(partitionsOf(t, conn, "events"), " "), "events_p0 events_p1 events_p2 events_p3"; got != want {
		t.Errorf("partitions %q, want %q", got, want)
	}
	for table, want := range map[string]int{"events_p0": 3, "events_p1": 4, "events_p2": 4, "events_default": 0,
		"event_actors_p2": 4, "event_actors_default": 0, "event_request_ids": 2} {
		if n := countIn(t, conn, table); n != want {
			t.Errorf("%s holds %d rows, want %d", table, n, want)
		}
	}
	s := openStore(t, cfg)
	// The migration marks every 4,096 records; Open's upkeep marks the
	// rest at the spacing it is given.
	if n := countIn(t, conn, "event_time_marks"); n != 2 {
		t.Errorf("%d time marks, want 2 (records 4 and 8)", n)
	}
	if got := storetest.VerifyChain(t, s); len(got) != old {
		t.Fatalf("%d records chained, want %d", len(got), old)
	}
	if err := s.Commit(ctx, store.Batch{Events: []store.Event{{ID: "q8", Action: "request"}}}); !errors.Is(err, store.ErrAlreadyExists) {
		t.Errorf("a request record's id written before the migration, again: err = %v, want ErrAlreadyExists", err)
	}
	if evs, err := s.QueryEvents(ctx, store.EventFilter{Actor: "agent:a", Since: base.Add(6 * time.Minute)}); err != nil || len(evs) != 6 {
		t.Errorf("QueryEvents by actor since record 6: %d records, %v; want 6", len(evs), err)
	}
	if err := s.Commit(ctx, store.Batch{Events: []store.Event{{ID: "new", Action: "token.issue"}}}); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	if got := storetest.VerifyChain(t, s); len(got) != old+1 {
		t.Errorf("%d records after a new one, want %d", len(got), old+1)
	}
}

// TestTokenLookupPruning: a lookup by jti reads only the partitions from
// the token's issue on (the last time mark an hour before it), when the
// store holds the token; without its row, every partition.
func TestTokenLookupPruning(t *testing.T) {
	testURL(t)
	t.Parallel()
	ctx := t.Context()
	schema := newSchema(t)
	s := openStore(t, postgres.WithAuditLayout(config(t, schema), 8, 4))
	conn := rawConn(t, schema)
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(i int) time.Time { return base.Add(time.Duration(i) * 20 * time.Minute) }
	// Record i is i × 20 minutes after base; record 50 issues token t50
	// and 60 exchanges it, and t0 has no row. Every fifth record before
	// 50 names t50 too, with a verifier's clock: seq, not its time, puts
	// it before the token's issue, and only there.
	for i := 1; i <= 64; i++ {
		e := store.Event{ID: "e" + strconv.Itoa(i), Action: "token.issue", Result: "ok", Performer: "agent:a",
			OnBehalf: "user:sam", Time: at(i)}
		b := store.Batch{}
		switch {
		case i == 50:
			e.JTI = "t50"
			b.Tokens = []store.IssuedToken{{JTI: "t50", GrantType: "client_credentials", ClientID: "agent:a",
				IssuedAt: at(50), ExpiresAt: at(53)}}
		case i == 60:
			e.JTI, e.ParentJTI = "t60", "t50"
		case i > 50 && i%5 == 0:
			e.Action, e.JTI, e.Time = "request", "t50", base
		case i%7 == 0:
			e.JTI = "t0"
		}
		b.Events = []store.Event{e}
		if err := s.Commit(ctx, b); err != nil {
			t.Fatalf("Commit %d: %v", i, err)
		}
		if err := s.Upkeep(ctx); err != nil {
			t.Fatalf("Upkeep: %v", err)
		}
	}
	read := func(t *testing.T, f store.EventFilter) string {
		t.Helper()
		q, args := postgres.EventQuery(f)
		rows, err := conn.Query(ctx, "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) "+q, args...)
		if err != nil {
			t.Fatal(err)
		}
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		var ran []string
		scan := regexp.MustCompile(`Scan.* on (events_p[0-9]+)`)
		for _, l := range lines {
			if m := scan.FindStringSubmatch(l); m != nil && !strings.Contains(l, "never executed") {
				ran = append(ran, m[1])
			}
		}
		slices.Sort(ran)
		return strings.Join(slices.Compact(ran), " ")
	}
	for _, c := range []struct {
		name, jti, read string
		want            []string
	}{
		// The last mark an hour (three records) before record 50 is
		// record 44's: partitions 0 to 4 are skipped; 9 is made ahead.
		{"ok/token-held", "t50", "events_p5 events_p6 events_p7 events_p8 events_p9",
			[]string{"e60", "e55", "e50"}},
		{"ok/token-not-held", "t0", "events_p0 events_p1 events_p2 events_p3 events_p4 events_p5 events_p6 events_p7 events_p8 events_p9",
			[]string{"e63", "e56", "e49", "e42", "e35", "e28", "e21", "e14", "e7"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := store.EventFilter{JTI: c.jti}
			if got := read(t, f); got != c.read {
				t.Errorf("partitions read: %q, want %q", got, c.read)
			}
			evs, err := s.QueryEvents(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, e := range evs {
				got = append(got, e.ID)
			}
			if fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Errorf("records %v, want %v", got, c.want)
			}
		})
	}
}
