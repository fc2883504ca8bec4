package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/mandate-dev/mandate/internal/auditchain"
	"github.com/mandate-dev/mandate/internal/store"
)

// Query limits for QueryEvents.
const (
	defaultEventLimit = 100
	maxEventLimit     = 1000
)

// eventColsV1 are the columns of the fields of a mandate-audit-v1 record,
// the events table before migration 7.
const eventColsV1 = `id, time, request_id, action, result, reason, detail, performer, on_behalf, chain,
	client_id, scopes, requested, audience, resource, context, delegation_id, jti, parent_jti`

// eventCols are the columns of every field of a record, all but seq and
// hash.
const eventCols = eventColsV1 + `, agent_version, authorization_details, operation, attributes, reported_by`

// eventSelect is the columns scanEvent reads.
const eventSelect = "seq, " + eventCols + ", hash"

// eventSelectV1 is the columns scanEventV1 reads: chainExisting runs at
// migration 6, before the columns of migration 7 exist.
const eventSelectV1 = "seq, " + eventColsV1 + ", hash"

// eventWriter appends events inside one transaction with the statements
// prepared once on the write connection (Store.prepared), so that a commit
// parses no SQL.
type eventWriter struct {
	last, event, eventIndexed, actor, head, setHead, mark *sql.Stmt
}

func (s *Store) newEventWriter(ctx context.Context, tx *sql.Tx) *eventWriter {
	st := s.stmts
	return &eventWriter{
		last:         tx.StmtContext(ctx, st.last),
		event:        tx.StmtContext(ctx, st.event),
		eventIndexed: tx.StmtContext(ctx, st.eventIndexed),
		actor:        tx.StmtContext(ctx, st.actor),
		head:         tx.StmtContext(ctx, st.head),
		setHead:      tx.StmtContext(ctx, st.setHead),
		mark:         tx.StmtContext(ctx, st.mark),
	}
}

func (w *eventWriter) close() {
	for _, st := range []*sql.Stmt{w.last, w.event, w.eventIndexed, w.actor, w.head, w.setHead, w.mark} {
		st.Close()
	}
}

// write appends e as record seq with chain hash hash, and the token facts
// it carries (tokenfacts.go; nil for none). Unless indexed, it is appended
// outside the query indexes, and its event_actors rows are the indexer's
// (indexer.go).
func (w *eventWriter) write(ctx context.Context, e store.Event, seq int64, hash []byte, indexed bool, facts []byte) error {
	stmt := w.event
	if indexed {
		stmt = w.eventIndexed
	}
	// The row's compact forms (eventcodec.go, migration 22); the token
	// the record carries (tokenfacts.go, migration 23).
	_, err := stmt.ExecContext(ctx, seq, hash, bytesIn(facts), idIn(e.ID), timeIn(e.Time), idIn(e.RequestID), e.Action, e.Result, e.Reason,
		e.Detail, e.Performer, e.OnBehalf, chainIn(e.Chain, e.Performer), e.ClientID, listIn(e.Scopes),
		requestedIn(e.Requested, e.Scopes), e.Audience, e.Resource, jsonIn(e.Context), idIn(e.DelegationID),
		idIn(e.JTI), idIn(e.ParentJTI),
		e.AgentVersion, jsonIn(e.AuthorizationDetails), e.Operation, jsonIn(e.Attributes), e.ReportedBy)
	if err != nil {
		return fmt.Errorf("insert event %q: %w", e.ID, dbErr(err))
	}
	if indexed {
		for _, a := range eventActors(e) {
			if _, err := w.actor.ExecContext(ctx, a, seq); err != nil {
				return fmt.Errorf("insert event %q actor: %w", e.ID, dbErr(err))
			}
		}
	}
	return nil
}

// inlineIndexAt is the size from which an append indexes its records
// itself, in its own transaction: a bulk write (mandate-bench fill, an
// import), whose records share the indexes' pages as the indexer's batches
// do, and which would otherwise leave the indexer a tail of millions to
// catch up with while every query walks it. It is above the groups of a
// loaded server (one record per request in flight), which leave their
// records to the indexer: indexing them in the group's own transaction
// gave back the bytes the indexer saves at c=32 (17.5 KB an exchange
// against 8.4) without a better p99.
const inlineIndexAt = 128

// indexInline reports whether an append of n records after record last
// indexes them itself; it does when n reaches inlineIndexAt and the
// records after the index head are few (indexBatch at most), which it then
// indexes first, so that the indexed records stay those at or below the
// head.
func (w *eventWriter) indexInline(ctx context.Context, tx *sql.Tx, n int, last int64) (bool, error) {
	if n < inlineIndexAt {
		return false, nil
	}
	var head int64
	if err := w.head.QueryRowContext(ctx).Scan(&head); err != nil {
		return false, fmt.Errorf("read the index head: %w", dbErr(err))
	}
	if last-head > indexBatch {
		return false, nil
	}
	if head < last {
		if _, _, err := indexTx(ctx, tx, indexBatch); err != nil {
			return false, fmt.Errorf("index events: %w", err)
		}
	}
	return true, nil
}

// eventActors is every actor e names, each once: its chain, performer and
// client. EventFilter.Actor matches any of them; the indexer's actorRows
// and QueryEvents' actorInTail say the same in SQL.
func eventActors(e store.Event) []string {
	out := make([]string, 0, len(e.Chain)+2)
	add := func(a string) {
		if a != "" && !contains(out, a) {
			out = append(out, a)
		}
	}
	add(e.Performer)
	add(e.ClientID)
	for _, a := range e.Chain {
		add(a)
	}
	return out
}

func contains(l []string, s string) bool {
	for _, v := range l {
		if v == s {
			return true
		}
	}
	return false
}

// lastEvent reads where the log ends, for the next append: the newest
// record's seq and chain hash (the rightmost leaf of events, a page the
// append writes anyway, so the chain costs no page of its own in the
// WAL), the archived mark's size and head (audit_archived), and the index
// head (event_index_head). Each is 0 or NULL when there is none.
const lastEvent = `WITH e AS (SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1)
SELECT coalesce((SELECT seq FROM e), 0), (SELECT hash FROM e),
	coalesce((SELECT size FROM audit_archived WHERE id = 1), 0), (SELECT head FROM audit_archived WHERE id = 1),
	coalesce((SELECT seq FROM event_index_head WHERE id = 1), 0)`

// logEnd is where the log ends, as lastEvent reads it.
type logEnd struct {
	newest, archived, indexed int64
	newestHash, archivedHead  []byte
}

// next returns the seq and chain hash the next record chains on from. A
// seq is never handed out again while the archive holds it: past the
// newest record, the archived mark numbers on (a mark never reaches the
// newest record through MarkArchived, but a store whose every record was
// archived and deleted would otherwise start over). A log that ends below
// the index head (indexed records were cut), or whose last record has no
// chain hash, is refused: nothing is appended on a broken chain. A cut of
// records not yet indexed is not seen here; the signed checkpoints see it
// (migration 21).
func (l logEnd) next() (int64, auditchain.Hash, error) {
	var h auditchain.Hash
	last, head := l.newest, l.newestHash
	if l.archived > l.newest {
		last, head = l.archived, l.archivedHead
	}
	switch {
	case l.indexed > last:
		return 0, h, fmt.Errorf("the audit log ends at record %d, below the indexed record %d: the audit log was cut", last, l.indexed)
	case last == 0:
		return 0, auditchain.Genesis, nil
	case len(head) != len(h):
		return 0, h, fmt.Errorf("record %d, the last appended, has no chain hash: the audit log was edited", last)
	}
	copy(h[:], head)
	return last, h, nil
}

// insertEvents appends events inside tx, the one path every write that
// audits takes: it reads where the log ends (lastEvent, logEnd.next),
// numbers the events on from there in slice order, chains each to the one
// before (auditchain.Next over the record as it will be read back, Seq
// included; auditchain.Genesis before the first record) and writes each
// with its hash. SQLite has one writer at a time, so the chain follows
// commit order whichever process writes (THREATS T72); the events' own Seq
// and Hash are ignored. A log whose end was cut below the index head or
// edited fails the append: nothing is written on a broken chain. The
// records are left to the indexer, unless the append is a bulk write that
// indexes them itself (indexInline).
func (s *Store) insertEvents(ctx context.Context, tx *sql.Tx, events []store.Event) error {
	return s.insertEventsCarrying(ctx, tx, events, nil)
}

// insertEventsCarrying is insertEvents with the token facts each record
// carries: facts[i] is events[i]'s (Commit, carryTokens), or facts is nil.
func (s *Store) insertEventsCarrying(ctx context.Context, tx *sql.Tx, events []store.Event, facts [][]byte) error {
	if len(events) == 0 {
		return nil
	}
	w := s.newEventWriter(ctx, tx)
	defer w.close()
	var end logEnd
	if err := w.last.QueryRowContext(ctx).Scan(&end.newest, &end.newestHash, &end.archived, &end.archivedHead,
		&end.indexed); err != nil {
		return fmt.Errorf("read the last event: %w", dbErr(err))
	}
	seq, hash, err := end.next()
	if err != nil {
		return err
	}
	inline, err := w.indexInline(ctx, tx, len(events), seq)
	if err != nil {
		return err
	}
	first, prev, prevHash := seq+1, seq, hash
	var carried map[int64]string
	for i, e := range events {
		seq++
		e = asStored(e)
		e.Seq = seq
		hash = auditchain.Next(hash, e)
		var f []byte
		if facts != nil && facts[i] != nil {
			f = facts[i]
			if carried == nil {
				carried = make(map[int64]string, 1)
			}
			carried[seq] = e.JTI
		}
		if err := w.write(ctx, e, seq, hash[:], inline, f); err != nil {
			return err
		}
	}
	if inline {
		if _, err := w.setHead.ExecContext(ctx, seq); err != nil {
			return fmt.Errorf("move the index head: %w", dbErr(err))
		}
	}
	if block := seq / timeMarkEvery; block > (first-1)/timeMarkEvery {
		if _, err := w.mark.ExecContext(ctx, block*timeMarkEvery); err != nil {
			return fmt.Errorf("mark the times up to record %d: %w", block*timeMarkEvery, dbErr(err))
		}
	}
	s.carried.appended(prev, prevHash[:], seq, hash[:], carried)
	return nil
}

// timeMarkEvery is how many records apart the append writes the time
// marks of migration 17, which made the marks of the records before it at
// the same spacing. A time window reads at most this many records, and
// those with a time out of seq order, outside it.
const timeMarkEvery = 1024

// markTimes writes the time mark of the records up to ?1, a multiple of
// timeMarkEvery that the append has just passed: the running maximum of
// their times, the last mark's and the greatest time written since it (a
// record without a time counts as 0). Marks run up in both max_time and
// seq, so the last is the greatest in the table's key.
const markTimes = `WITH last AS (SELECT max_time, seq FROM event_time_marks ORDER BY max_time DESC, seq DESC LIMIT 1)
INSERT INTO event_time_marks (max_time, seq)
SELECT max(coalesce((SELECT max_time FROM last), 0),
	coalesce((SELECT max(time) FROM events WHERE seq > coalesce((SELECT seq FROM last), 0) AND seq <= ?1), 0)), ?1`

// sinceSeq is the seq after which every record whose time is ? or later
// lies: the seq of the last mark whose running maximum is before ?, or 0.
// Every record up to that seq has a time before ?, whatever the order the
// times were written in.
const sinceSeq = `coalesce((SELECT seq FROM event_time_marks WHERE max_time < ? ORDER BY max_time DESC, seq DESC LIMIT 1), 0)`

// asStored is e as it reads back, so that its hash verifies: its time is
// auditchain.Time of it (whole microseconds in UTC; within a microsecond
// after the zero time it reads back as no time); a list is kept as a JSON
// array, and encoding/json replaces each invalid UTF-8 byte of an item
// with U+FFFD. Strings, and the JSON values (Context,
// AuthorizationDetails, Attributes: TEXT, never re-encoded), are kept byte
// for byte; an empty JSON value reads back nil, which encodes the same.
func asStored(e store.Event) store.Event {
	e.Time = auditchain.Time(e.Time)
	for _, l := range []*[]string{&e.Chain, &e.Scopes, &e.Requested} {
		if validList(*l) {
			continue
		}
		var back []string
		_ = json.Unmarshal([]byte(listIn(*l)), &back) // what listIn wrote decodes
		*l = back
	}
	return e
}

func validList(l []string) bool {
	for _, s := range l {
		if !utf8.ValidString(s) {
			return false
		}
	}
	return true
}

// chainMigration is the migration that adds the hash chain; chainExisting
// runs in its transaction.
const chainMigration = 6

// chainExisting chains the records written before chainMigration: in seq
// order from auditchain.Genesis, each as it reads back, a page at a time.
// It runs once, in the migration's transaction, so that either every
// record is chained or none and the schema is not migrated.
func chainExisting(ctx context.Context, tx *sql.Tx) error {
	const page = 1000
	set, err := tx.PrepareContext(ctx, "UPDATE events SET hash = ? WHERE seq = ?")
	if err != nil {
		return fmt.Errorf("chain existing events: %w", dbErr(err))
	}
	defer set.Close()
	hash, after := auditchain.Genesis, int64(0)
	for {
		evs, err := list(ctx, tx, "events", "SELECT "+eventSelectV1+" FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
			scanEventV1, after, page)
		if err != nil {
			return fmt.Errorf("chain existing events: %w", err)
		}
		for _, e := range evs {
			hash = auditchain.Next(hash, e)
			if _, err := set.ExecContext(ctx, hash[:], e.Seq); err != nil {
				return fmt.Errorf("chain existing event %d: %w", e.Seq, dbErr(err))
			}
			after = e.Seq
		}
		if len(evs) < page {
			return nil
		}
	}
}

// scanEvent reads the columns of eventSelect.
func scanEvent(sc scanner) (store.Event, error) { return newEventRow(true).scan(sc) }

// scanEventV1 reads the columns of eventSelectV1.
func scanEventV1(sc scanner) (store.Event, error) { return newEventRow(false).scan(sc) }

// scanEvents returns a scan function for the rows of one query of
// eventSelect, which reuses its destinations from row to row: a forward
// read of the log scans millions of rows, and each allocation of a row's
// own counts.
func scanEvents() func(scanner) (store.Event, error) { return newEventRow(true).scan }

// eventRow holds the scan destinations of a row of eventSelect (or
// eventSelectV1), reused from row to row of one query. Not safe for
// concurrent use.
type eventRow struct {
	v2                  bool
	t                   sql.NullInt64
	scopes              string
	chain, requested    sql.NullString
	evctx, authz, attrs sql.NullString
	// hash is valid until the next row; finish copies it.
	hash sql.RawBytes
	dest []any
	// at is the event dest points into.
	at *store.Event
	// e is where scan reads a row.
	e store.Event
}

func newEventRow(v2 bool) *eventRow { return &eventRow{v2: v2} }

// point makes dest the fields of e, in the order of the columns.
func (r *eventRow) point(e *store.Event) {
	if r.at == e {
		return
	}
	r.at = e
	r.dest = append(r.dest[:0], &e.Seq, idDest{"id", &e.ID}, &r.t, idDest{"request_id", &e.RequestID}, &e.Action, &e.Result,
		&e.Reason, &e.Detail, &e.Performer, &e.OnBehalf, &r.chain, &e.ClientID, &r.scopes, &r.requested, &e.Audience,
		&e.Resource, &r.evctx, idDest{"delegation_id", &e.DelegationID}, idDest{"jti", &e.JTI},
		idDest{"parent_jti", &e.ParentJTI})
	if r.v2 {
		r.dest = append(r.dest, &e.AgentVersion, &r.authz, &e.Operation, &r.attrs, &e.ReportedBy)
	}
	r.dest = append(r.dest, &r.hash)
}

// scan reads the current row into a new event.
func (r *eventRow) scan(sc scanner) (store.Event, error) {
	r.e = store.Event{}
	if err := r.scanInto(sc, &r.e); err != nil {
		return store.Event{}, err
	}
	return r.e, nil
}

// scanInto reads the current row into *e, which must be the zero Event:
// a forward read of the log scans each row in its place in the page, with
// no copy of the event.
func (r *eventRow) scanInto(sc scanner, e *store.Event) error {
	r.point(e)
	if err := sc.Scan(r.dest...); err != nil {
		return dbErr(err)
	}
	e.Hash = bytesOut(r.hash)
	e.Time = timeOut(r.t)
	e.Context, e.AuthorizationDetails, e.Attributes = jsonOut(r.evctx), jsonOut(r.authz), jsonOut(r.attrs)
	var err error
	// NULL is the compact form of migration 22 (chainIn, requestedIn).
	if !r.chain.Valid {
		e.Chain = []string{e.Performer}
	} else if e.Chain, err = listOut("chain", r.chain.String); err != nil {
		return err
	}
	if e.Scopes, err = listOut("scopes", r.scopes); err != nil {
		return err
	}
	if !r.requested.Valid {
		e.Requested = slices.Clone(e.Scopes)
		return nil
	}
	e.Requested, err = listOut("requested", r.requested.String)
	return err
}

// readEvents scans the rows of a query of eventSelect (rows, err), at most
// limit of them, into a slice sized for a page.
func readEvents(rows *sql.Rows, err error, limit int) ([]store.Event, error) {
	return appendEvents(make([]store.Event, 0, min(limit, store.EachEventPage)), rows, err, limit)
}

// jtiMatch is QueryEvents' jti filter: the event's jti or parent_jti. In
// the indexed part each side states the predicate of its partial index
// (migrations 8 and 19), which a bound parameter does not imply, so that
// SQLite answers it from the two indexes instead of walking the log.
func jtiMatch(indexed bool) string {
	if !indexed {
		return "(jti = ? OR parent_jti = ?)"
	}
	return "((jti = ? AND jti <> '' AND indexed = 1) OR (parent_jti = ? AND parent_jti <> '' AND indexed = 1))"
}

// requestAction is the action of verifiers' records, whose ids are unique
// (the partial index events_request_id).
const requestAction = "request"

// idsMatch is QueryEvents' filter by n ids. For verifiers' records it
// states the predicate of the partial index events_request_id (migration
// 7), which a bound parameter does not imply, in a subquery of its own, so
// that SQLite answers it from that index instead of walking the log by
// events_action, which serves the ORDER BY.
func idsMatch(n int, requests bool) string {
	in := "id IN (?" + strings.Repeat(", ?", n-1) + ")"
	if requests {
		in = "seq IN (SELECT seq FROM events WHERE " + in + " AND action = '" + requestAction + "')"
	}
	return in
}

// indexHead is the last record the indexer has indexed (indexer.go): the
// records at or below it are in the query indexes and event_actors, those
// above it in none.
const indexHead = "(SELECT seq FROM event_index_head WHERE id = 1)"

// actorInTail is EventFilter.Actor for a record the indexer has not reached
// yet, which has no event_actors rows: what eventActors and the indexer's
// actorRows say, in SQL.
const actorInTail = "(performer = ? OR client_id = ? OR EXISTS (SELECT 1 FROM json_each(" + chainJSON + ") AS j " +
	"WHERE j.type = 'text' AND j.value = ?))"

// chainJSON is a record's chain as a JSON array, or an empty one if the
// column does not hold valid JSON (a list is always written as JSON; this
// keeps one bad row from failing every query and the indexer). A NULL
// chain, the performer alone (chainIn), is an empty one here: the
// performer is matched on its own.
const chainJSON = "CASE WHEN json_valid(chain) THEN chain ELSE '[]' END"

// eventWhere is QueryEvents' WHERE clause and its arguments for one of its
// two parts: the indexed records (through the indexes, an actor's through
// event_actors AS a), or the records after the index head (by seq).
func eventWhere(f store.EventFilter, indexed bool) (string, []any) {
	var (
		where []string
		args  []any
	)
	seq := "seq"
	switch {
	case indexed && f.Actor != "":
		seq = "a.seq"
		where = append(where, "a.actor = ?", "a.seq <= "+indexHead)
		args = append(args, f.Actor)
	case indexed:
		// Every record at or below the head is indexed. indexed = 1 is
		// stated only for the filters a partial index answers, which need
		// it to use the index: read from the end of every row, it cost a
		// walk of the whole log a fifth more.
		where = append(where, "seq <= "+indexHead)
		if f.Subject != "" || f.Action != "" || f.JTI != "" || f.DelegationID != "" || f.Resource != "" {
			where = append(where, "indexed = 1")
		}
	default:
		where = append(where, "seq > "+indexHead)
		if f.Actor != "" {
			where = append(where, actorInTail)
			args = append(args, f.Actor, f.Actor, f.Actor)
		}
	}
	if f.Subject != "" {
		where = append(where, "on_behalf = ?")
		args = append(args, f.Subject)
	}
	if f.Action != "" && (len(f.IDs) == 0 || f.Action != requestAction) {
		// (idsMatch states the action of verifiers' records.)
		where = append(where, "action = ?")
		args = append(args, f.Action)
	}
	// An identifier is compared in the form idIn writes it.
	if f.JTI != "" {
		where = append(where, jtiMatch(indexed && f.Actor == ""))
		args = append(args, idIn(f.JTI), idIn(f.JTI))
	}
	if len(f.IDs) > 0 {
		where = append(where, idsMatch(len(f.IDs), f.Action == requestAction))
		for _, id := range f.IDs {
			args = append(args, idIn(id))
		}
	}
	for _, c := range []struct {
		col, v string
		arg    any
	}{
		{"result", f.Result, f.Result}, {"audience", f.Audience, f.Audience}, {"resource", f.Resource, f.Resource},
		{"agent_version", f.AgentVersion, f.AgentVersion}, {"delegation_id", f.DelegationID, idIn(f.DelegationID)},
	} {
		if c.v != "" {
			where = append(where, c.col+" = ?")
			args = append(args, c.arg)
		}
	}
	if f.DelegationID != "" && indexed {
		// Implies the predicate of the partial index events_delegation,
		// which a bound parameter does not.
		where = append(where, "delegation_id <> ''")
	}
	if f.Resource != "" && indexed {
		// Likewise for events_resource (migrations 18 and 19).
		where = append(where, "resource <> ''")
	}
	if !f.Since.IsZero() {
		// The seq bound lets the walk stop at the window's start instead
		// of reading every older record to find that none matches.
		// Both parts take it: the marks bound every record by seq,
		// indexed or not.
		where = append(where, "time >= ?", seq+" > "+sinceSeq)
		args = append(args, f.Since.UnixMicro(), f.Since.UnixMicro())
	}
	if !f.Until.IsZero() {
		where = append(where, "time < ?")
		args = append(args, f.Until.UnixMicro())
	}
	if f.BeforeSeq > 0 {
		where = append(where, seq+" < ?")
		args = append(args, f.BeforeSeq)
	}
	return strings.Join(where, " AND "), args
}

// QueryEvents returns the events f selects, newest (highest Seq) first.
// Actor matches the chain, performer or client; Subject matches OnBehalf;
// JTI matches the event's JTI or ParentJTI (an exchange from the token
// concerns it too); IDs matches any of the ids; Result, Audience,
// Resource, DelegationID and AgentVersion match their field exactly; Since
// is inclusive and Until exclusive. Limit defaults to 100 and is capped at
// 1000. Since bounds the walk by seq as well (the time marks, sinceSeq),
// so that a window reads the records from its start on, not the whole
// log.
//
// One statement reads both parts of the log, so from one snapshot: the
// records the indexer has not reached yet (after the index head, walked by
// seq), then the indexed ones through the indexes, merged newest first. An
// actor's indexed records are read from event_actors' (actor, seq) key,
// newest first, so that a page stops after its limit instead of gathering
// every record the actor ever appeared in first.
func (s *Store) QueryEvents(ctx context.Context, f store.EventFilter) ([]store.Event, error) {
	q, args, err := eventQuery(f)
	if err != nil {
		return nil, fmt.Errorf("sqlite: query events: %w", err)
	}
	return list(ctx, s.r, "events", q, scanEvents(), args...)
}

// eventQuery is QueryEvents' statement and its arguments.
func eventQuery(f store.EventFilter) (string, []any, error) {
	if len(f.IDs) > store.MaxEventIDs {
		return "", nil, fmt.Errorf("%d ids, at most %d", len(f.IDs), store.MaxEventIDs)
	}
	limit := f.Limit
	if limit <= 0 {
		limit = defaultEventLimit
	}
	limit = min(limit, maxEventLimit)
	tail, args := eventWhere(f, false)
	done, doneArgs := eventWhere(f, true)
	from, cols := "events", eventSelect
	if f.Actor != "" {
		// seq is the one column both tables have.
		from, cols = "event_actors AS a CROSS JOIN events ON events.seq = a.seq", "a."+eventSelect
	}
	q := "SELECT " + eventSelect + " FROM events WHERE " + tail +
		" UNION ALL SELECT " + cols + " FROM " + from + " WHERE " + done +
		" ORDER BY 1 DESC LIMIT ?"
	return q, append(append(args, doneArgs...), limit), nil
}

// EventsAfter returns up to limit events with Seq above afterSeq, oldest
// first; limit defaults to 1000 and is capped at 10000.
func (s *Store) EventsAfter(ctx context.Context, afterSeq int64, limit int) ([]store.Event, error) {
	return s.eventsAfter(ctx, afterSeq, store.PageLimit(limit))
}
