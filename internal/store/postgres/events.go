package postgres

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/mandate-dev/mandate/internal/auditchain"
	"github.com/mandate-dev/mandate/internal/store"
)

// Query limits for QueryEvents.
const (
	defaultEventLimit = 100
	maxEventLimit     = 1000
)

// eventColsV1 are the columns of the fields of a mandate-audit-v1 record,
// the events table before migration 6.
const eventColsV1 = `id, time, request_id, action, result, reason, detail, performer, on_behalf, chain,
	client_id, scopes, requested, audience, resource, context, delegation_id, jti, parent_jti`

// eventCols are the columns of every field of a record, all but seq and
// hash.
const eventCols = eventColsV1 + `, agent_version, authorization_details, operation, attributes, reported_by`

// eventSelect is the columns scanEvent reads: eventCols with chain and
// requested put back from the NULL an append stores when they are the
// performer alone and the granted scopes (migration 18).
const eventSelect = `seq, id, time, request_id, action, result, reason, detail, performer, on_behalf,
	coalesce(chain, ARRAY[performer]), client_id, scopes, coalesce(requested, scopes), audience, resource, context,
	delegation_id, jti, parent_jti, agent_version, authorization_details, operation, attributes, reported_by, hash`

// eventSelectV1 is the columns scanEventV1 reads: chainExisting runs at
// migration 5, before the columns of migration 6 exist.
const eventSelectV1 = "seq, " + eventColsV1 + ", hash"

// appendEvents appends a list of events in one statement, whatever its
// length. It locks the events_head row (h), which it holds until the
// transaction commits, numbers the events on from last_seq in list order,
// chains them on from last_hash (c), inserts them (e), their actors (a)
// and the ids of the verifiers' records (r: event_request_ids, whose key
// keeps those ids unique across the partitions of events), and advances
// the head to the last one's seq and hash, which it returns. Each column is an
// array with one element per event; a list column is one flat array
// ($18-$20) with each event's 1-based bounds in it, a chain that is the
// performer alone and requested scopes that are the granted ones stored as
// NULL (eventSelect puts them back); event_actors gets
// (actor, position of its event) pairs. The fields of mandate-audit-v2
// are $32-$36, after the chain's parameters.
//
// Taking the lock with FOR NO KEY UPDATE (the lock an UPDATE takes) and
// updating the row at the end of the same statement is safe under READ
// COMMITTED: a writer that waited for the
// lock reads the row as the previous holder committed it, and the final
// UPDATE, which finds that row updated since the statement's snapshot,
// rechecks and updates the latest version, which this transaction has
// locked. So the seqs and the chain follow commit order across every
// instance, without gaps or forks (THREATS T72).
//
// The chain is auditchain.Next, computed by the server under the lock, so
// that it costs no round trip, and the lock is not held for one more:
// record i's hash is SHA-256(chainDomain ($31) || hash of
// record i-1 || leaf), where leaf is tlog.RecordHash, SHA-256(0x00 ||
// encoding), of the record's auditchain.Encode made in Go with Seq 0 ($29)
// and the Seq, 8 bytes big-endian, laid over it at seqAt ($30, 1-based) once
// it is known. TestChainMatchesAuditchain and the conformance suite's
// VerifyChain hold it to auditchain.
const appendEvents = `WITH RECURSIVE h AS (
	SELECT last_seq AS base, last_hash FROM events_head WHERE id = 1 FOR NO KEY UPDATE
), c(ord, hash) AS (
	SELECT 0::bigint, h.last_hash FROM h
	UNION ALL
	SELECT c.ord + 1, sha256($31::bytea || c.hash || sha256('\x00'::bytea ||
		overlay(($29::bytea[])[c.ord + 1] PLACING int8send(h.base + c.ord + 1) FROM $30::int FOR 8)))
	FROM c, h WHERE c.ord < $1
), e AS (
	INSERT INTO events (seq, hash, ` + eventCols + `)
	SELECT h.base + u.ord, c.hash, u.id, u.time, u.request_id, u.action, u.result, u.reason, u.detail, u.performer,
		u.on_behalf, nullif(($18::text[])[u.chain_lo:u.chain_hi], ARRAY[u.performer]), u.client_id,
		($19::text[])[u.scopes_lo:u.scopes_hi],
		nullif(($20::text[])[u.requested_lo:u.requested_hi], ($19::text[])[u.scopes_lo:u.scopes_hi]),
		u.audience, u.resource, u.context, u.delegation_id, u.jti, u.parent_jti, u.agent_version,
		u.authorization_details, u.operation, u.attributes, u.reported_by
	FROM h, unnest($2::text[], $3::timestamptz[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
		$9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[], $15::text[], $16::text[],
		$17::text[], $21::int[], $22::int[], $23::int[], $24::int[], $25::int[], $26::int[],
		$32::text[], $33::text[], $34::text[], $35::text[], $36::text[])
		WITH ORDINALITY AS u(id, time, request_id, action, result, reason, detail, performer, on_behalf,
			client_id, audience, resource, context, delegation_id, jti, parent_jti,
			chain_lo, chain_hi, scopes_lo, scopes_hi, requested_lo, requested_hi,
			agent_version, authorization_details, operation, attributes, reported_by, ord)
		JOIN c ON c.ord = u.ord
), a AS (
	INSERT INTO event_actors (actor, seq)
	SELECT a.actor, h.base + a.ord FROM h, unnest($27::text[], $28::bigint[]) AS a(actor, ord)
), r AS (
	INSERT INTO event_request_ids (id, seq)
	SELECT r.id, h.base + r.ord FROM h, unnest($2::text[], $5::text[]) WITH ORDINALITY AS r(id, action, ord)
	WHERE r.action = 'request'
)
UPDATE events_head SET last_seq = h.base + $1, last_hash = c.hash
FROM h, c WHERE events_head.id = 1 AND c.ord = $1
RETURNING events_head.last_seq`

// chainDomain is auditchain's domain tag of chain links.
const chainDomain = "mandate-audit-chain-v1\x00"

// seqAt is where auditchain.Encode puts Seq: 8 bytes big-endian, found
// once by encoding two records that differ only in Seq. It panics if the
// encoding has changed so that Seq is not there; TestChainMatchesAuditchain
// holds appendEvents to auditchain.Next.
var seqAt = func() int {
	a, b := auditchain.Encode(store.Event{Seq: 0}), auditchain.Encode(store.Event{Seq: -1})
	for i := range a {
		if a[i] != b[i] {
			if len(a) != len(b) || i+8 > len(a) || !bytes.Equal(a[i:i+8], make([]byte, 8)) ||
				!bytes.Equal(b[i:i+8], bytes.Repeat([]byte{0xff}, 8)) || !bytes.Equal(a[i+8:], b[i+8:]) {
				break
			}
			return i
		}
	}
	panic("postgres: auditchain.Encode does not hold Seq as 8 bytes big-endian")
}()

// queueEvents queues the statement that appends events in the order given
// and chains them; their own Seq and Hash are ignored, and their times are
// auditchain.Time of them (whole microseconds in UTC, as timestamptz keeps
// them), so that each reads back as it was hashed. Queue them after the
// transaction's other writes, so that the lock on events_head, which makes
// Seq and the chain follow commit order across every instance (THREATS
// T72), is held as briefly as possible. Every write that audits appends
// through here. The head it moves the log to starts the partitions'
// upkeep when it passes a mark (observeHead).
func (s *Store) queueEvents(b *pgx.Batch, events []store.Event) {
	n := len(events)
	if n == 0 {
		return
	}
	var (
		id, request, action, result, reason, detail, performer, onBehalf = make([]string, n), make([]string, n),
			make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		client, audience, resource, delegation, jti, parent = make([]string, n), make([]string, n),
			make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		agentVersion, operation, reportedBy = make([]string, n), make([]string, n), make([]string, n)
		at                                  = make([]pgtype.Timestamptz, n)
		evctx, authz, attrs                 = make([]pgtype.Text, n), make([]pgtype.Text, n), make([]pgtype.Text, n)
		encoded                             = make([][]byte, n)
		chain, scopes, requested            ragged
		actors                              []string
		actorOf                             []int64
	)
	for i, e := range events {
		// What timestamptz keeps, hashed as it reads back.
		e.Time = auditchain.Time(e.Time)
		id[i], at[i], request[i], action[i], result[i] = e.ID, timestamp(e.Time), e.RequestID, e.Action, e.Result
		reason[i], detail[i], performer[i], onBehalf[i] = e.Reason, e.Detail, e.Performer, e.OnBehalf
		client[i], audience[i], resource[i] = e.ClientID, e.Audience, e.Resource
		evctx[i] = pgtype.Text{String: string(e.Context), Valid: len(e.Context) > 0}
		delegation[i], jti[i], parent[i] = e.DelegationID, e.JTI, e.ParentJTI
		agentVersion[i], operation[i], reportedBy[i] = e.AgentVersion, e.Operation, e.ReportedBy
		authz[i] = pgtype.Text{String: string(e.AuthorizationDetails), Valid: len(e.AuthorizationDetails) > 0}
		attrs[i] = pgtype.Text{String: string(e.Attributes), Valid: len(e.Attributes) > 0}
		chain.add(e.Chain)
		scopes.add(e.Scopes)
		requested.add(e.Requested)
		for _, a := range eventActors(e) {
			if a == e.ClientID {
				// Found through events_client (migration 18).
				continue
			}
			actors = append(actors, a)
			actorOf = append(actorOf, int64(i+1))
		}
		e.Seq = 0
		encoded[i] = auditchain.Encode(e)
	}
	b.Queue(appendEvents, n, id, at, request, action, result, reason, detail, performer, onBehalf,
		client, audience, resource, evctx, delegation, jti, parent,
		chain.flat(), scopes.flat(), requested.flat(), chain.lo, chain.hi, scopes.lo, scopes.hi, requested.lo, requested.hi,
		listIn(actors), actorOf, encoded, seqAt+1, []byte(chainDomain),
		agentVersion, authz, operation, attrs, reportedBy).QueryRow(func(row pgx.Row) error {
		var last int64
		if err := row.Scan(&last); err != nil {
			return err
		}
		s.observeHead(last)
		return nil
	})
}

// chainMigration is the migration that adds the hash chain; chainExisting
// runs in its transaction.
const chainMigration = 5

// chainExisting chains the records written before chainMigration: in seq
// order from auditchain.Genesis, each as it reads back, a page at a time;
// sets events_head's last_hash to the last one's; and then requires a hash
// of every record (NOT NULL), so that an instance of an older build still
// running on the schema fails to append (closed) instead of breaking the
// chain. It runs once, in the migration's transaction: either every record
// is chained or the schema is not migrated.
func chainExisting(ctx context.Context, tx pgx.Tx) error {
	const page = 1000
	hash, after := auditchain.Genesis, int64(0)
	for {
		rows, err := tx.Query(ctx, "SELECT "+eventSelectV1+" FROM events WHERE seq > $1 ORDER BY seq LIMIT $2", after, page)
		if err != nil {
			return fmt.Errorf("chain existing events: %w", dbErr(err))
		}
		evs, err := pgx.CollectRows(rows, scanEventV1)
		if err != nil {
			return fmt.Errorf("chain existing events: %w", dbErr(err))
		}
		seqs, hashes := make([]int64, len(evs)), make([][]byte, len(evs))
		for i, e := range evs {
			hash = auditchain.Next(hash, e)
			seqs[i], hashes[i] = e.Seq, bytes.Clone(hash[:])
			after = e.Seq
		}
		if _, err := tx.Exec(ctx, `UPDATE events SET hash = u.hash FROM unnest($1::bigint[], $2::bytea[]) AS u(seq, hash)
			WHERE events.seq = u.seq`, seqs, hashes); err != nil {
			return fmt.Errorf("chain existing events: %w", dbErr(err))
		}
		if len(evs) < page {
			break
		}
	}
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{"UPDATE events_head SET last_hash = $1 WHERE id = 1", []any{hash[:]}},
		{"ALTER TABLE events ALTER COLUMN hash SET NOT NULL", nil},
	} {
		if _, err := tx.Exec(ctx, q.sql, q.args...); err != nil {
			return fmt.Errorf("chain existing events: %w", dbErr(err))
		}
	}
	return nil
}

// eventActors is every actor e names, each once: its chain, performer and
// client. EventFilter.Actor matches any of them. Since migration 18,
// event_actors holds them less the client, which events_client finds.
func eventActors(e store.Event) []string {
	out := make([]string, 0, len(e.Chain)+2)
	for _, a := range append([]string{e.Performer, e.ClientID}, e.Chain...) {
		if a != "" && !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}

// scanEvent reads the columns of eventSelect.
func scanEvent(row pgx.CollectableRow) (store.Event, error) { return newEventRow(true).scan(row) }

// scanEventV1 reads the columns of eventSelectV1.
func scanEventV1(row pgx.CollectableRow) (store.Event, error) { return newEventRow(false).scan(row) }

// scanEvents returns a scan function for the rows of one query of
// eventSelect, which reuses its destinations from row to row: a forward
// read of the log scans millions of rows, and each allocation of a row's
// own counts.
func scanEvents() pgx.RowToFunc[store.Event] { return newEventRow(true).scan }

// eventRow holds the scan destinations of a row of eventSelect (or
// eventSelectV1), reused from row to row of one query. The nullable
// columns scan into values, not pointers, which pgx would allocate for
// each row. Not safe for concurrent use.
type eventRow struct {
	e                        store.Event
	t                        pgtype.Timestamptz
	chain, scopes, requested []string
	evctx, authz, attrs      pgtype.Text
	dest                     []any
}

func newEventRow(v2 bool) *eventRow {
	r := &eventRow{}
	e := &r.e
	r.dest = []any{&e.Seq, &e.ID, &r.t, &e.RequestID, &e.Action, &e.Result, &e.Reason, &e.Detail, &e.Performer,
		&e.OnBehalf, &r.chain, &e.ClientID, &r.scopes, &r.requested, &e.Audience, &e.Resource, &r.evctx,
		&e.DelegationID, &e.JTI, &e.ParentJTI}
	if v2 {
		r.dest = append(r.dest, &e.AgentVersion, &r.authz, &e.Operation, &r.attrs, &e.ReportedBy)
	}
	r.dest = append(r.dest, &e.Hash)
	return r
}

// scan reads the current row into a new event.
func (r *eventRow) scan(row pgx.CollectableRow) (store.Event, error) {
	r.e = store.Event{}
	// pgx scans an array into the slice it finds when that has room:
	// each event gets lists of its own.
	r.chain, r.scopes, r.requested = nil, nil, nil
	if err := row.Scan(r.dest...); err != nil {
		return store.Event{}, err
	}
	e := r.e
	e.Hash = bytesOut(e.Hash)
	if r.t.Valid {
		e.Time = r.t.Time.UTC()
	}
	e.Context, e.AuthorizationDetails, e.Attributes = textValue(r.evctx), textValue(r.authz), textValue(r.attrs)
	e.Chain, e.Scopes, e.Requested = listOut(r.chain), listOut(r.scopes), listOut(r.requested)
	return e, nil
}

// textValue is a scanned nullable text column holding JSON: nil for NULL
// or empty, as textOut.
func textValue(t pgtype.Text) []byte {
	if !t.Valid || t.String == "" {
		return nil
	}
	return []byte(t.String)
}

// clientsFrom is the first seq whose record's client event_actors leaves
// out (migration 18): events_client finds those.
const clientsFrom = "(SELECT clients_from FROM audit_partitioning WHERE id = 1)"

// commonAction reports whether action is one of those written for every
// token request, left out of the partial index events_action (migration
// 18): a query for one of them walks the log along the primary key, where
// they are dense. commonActionList is them as SQL literals, as in the
// index's predicate.
func commonAction(action string) bool {
	switch action {
	case requestAction, "token.exchange", "token.issue":
		return true
	}
	return false
}

const commonActionList = "'request', 'token.exchange', 'token.issue'"

// requestAction is the action of verifiers' records, whose ids are unique
// and found through event_request_ids.
const requestAction = "request"

// QueryEvents returns the events f selects, newest (highest Seq) first.
// Actor matches the chain, performer or client; Subject matches OnBehalf;
// JTI matches the event's JTI or ParentJTI (an exchange from the token
// concerns it too); IDs matches any of the ids; Result, Audience,
// Resource, DelegationID and AgentVersion match their field exactly; Since
// is inclusive and Until exclusive. Limit defaults to 100 and is capped at
// 1000.
func (s *Store) QueryEvents(ctx context.Context, f store.EventFilter) ([]store.Event, error) {
	// A filter value that cannot be stored matches nothing, like any other
	// unknown value; PostgreSQL would refuse it as a parameter.
	for _, v := range []string{f.Actor, f.Subject, f.Action, f.JTI, f.Result, f.Audience, f.Resource,
		f.DelegationID, f.AgentVersion} {
		if !storable(v) {
			return nil, nil
		}
	}
	if len(f.IDs) > store.MaxEventIDs {
		return nil, fmt.Errorf("postgres: query events: %d ids, at most %d", len(f.IDs), store.MaxEventIDs)
	}
	// An id that cannot be stored names no event.
	ids := slices.DeleteFunc(slices.Clone(f.IDs), func(id string) bool { return !storable(id) })
	if len(f.IDs) > 0 && len(ids) == 0 {
		return nil, nil
	}
	q, args, limit := eventQuery(f, ids)
	return listEvents(ctx, s, q, limit, args...)
}

// eventQuery is QueryEvents' statement for f (ids are its storable ids),
// its parameters and its limit. An actor's records are its rows of
// event_actors, walked backwards by their (actor, seq) key and joined to
// events by seq, with the seq bounds on both sides: each partition's key
// gives the seqs in order, so a page reads only its own rows. (`seq IN
// (SELECT seq FROM event_actors …)` made the planner collect every seq of
// the actor first once the tables were partitioned.) Since migration 18,
// event_actors leaves out a record's client: the records whose client the
// actor is, from clientsFrom on, are a page of their own, walked backwards
// along events_client, and the page is the newest of the two. (One walk
// of both merged, a UNION ALL under the join, was planned as a sort of
// every seq of the actor.)
func eventQuery(f store.EventFilter, ids []string) (string, []any, int) {
	actor := f.Actor
	f.Actor = ""
	where, bounds, args := eventConds(f, ids)
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	limit := f.Limit
	if limit <= 0 {
		limit = defaultEventLimit
	}
	limit = min(limit, maxEventLimit)
	where = append(where, bounds...)
	if actor == "" {
		q := "SELECT " + eventSelect + " FROM events"
		if len(where) > 0 {
			q += " WHERE " + strings.Join(where, " AND ")
		}
		return q + " ORDER BY seq DESC LIMIT " + arg(limit), args, limit
	}
	p := arg(actor)
	actors := append([]string{"actor = " + p}, bounds...)
	client := append([]string{"client_id = " + p, "client_id <> ''", "seq >= " + clientsFrom}, where...)
	lim := arg(limit)
	viaActors := "SELECT " + eventSelect + " FROM (SELECT seq AS actor_seq FROM event_actors WHERE " +
		strings.Join(actors, " AND ") + ") AS a JOIN events ON seq = a.actor_seq"
	if len(where) > 0 {
		viaActors += " WHERE " + strings.Join(where, " AND ")
	}
	viaActors += " ORDER BY a.actor_seq DESC LIMIT " + lim
	viaClient := "SELECT " + eventSelect + " FROM events WHERE " + strings.Join(client, " AND ") +
		" ORDER BY seq DESC LIMIT " + lim
	// The two sides are disjoint, unless an instance of a build from
	// before migration 18 appended after it (with the client among the
	// actors): a record is listed once all the same.
	q := "SELECT DISTINCT ON (seq) * FROM ((" + viaActors + ") UNION ALL (" + viaClient + ")) AS u" +
		" ORDER BY seq DESC LIMIT " + lim
	return q, args, limit
}

// eventWhere is the WHERE conditions of f (ids are its storable ids) and
// their parameters, numbered from $1.
func eventWhere(f store.EventFilter, ids []string) ([]string, []any) {
	where, bounds, args := eventConds(f, ids)
	return append(where, bounds...), args
}

// eventConds is eventWhere's conditions in two parts: those on the
// record's fields, and its bounds on seq (BeforeSeq, and the time marks'
// bound of Since), which hold on event_actors too.
func eventConds(f store.EventFilter, ids []string) (where, bounds []string, args []any) {
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if f.Actor != "" {
		p := arg(f.Actor)
		where = append(where, "(client_id = "+p+" OR seq IN (SELECT seq FROM event_actors WHERE actor = "+p+"))")
	}
	if f.Subject != "" {
		where = append(where, "on_behalf = "+arg(f.Subject))
	}
	if f.Action != "" {
		where = append(where, "action = "+arg(f.Action))
		if !commonAction(f.Action) {
			// Implies the predicate of the partial index events_action
			// (migration 18), which a parameter does not in a generic
			// plan.
			where = append(where, "action NOT IN ("+commonActionList+")")
		}
	}
	if f.JTI != "" {
		// Each side implies the predicate of its partial index
		// (migration 18), which a parameter does not in a generic plan.
		p := arg(f.JTI)
		where = append(where, "((jti = "+p+" AND jti <> '') OR (parent_jti = "+p+" AND parent_jti <> ''))")
		bounds = append(bounds, "seq > "+tokenSeq(p))
	}
	if len(ids) > 0 {
		p := arg(ids)
		where = append(where, "id = ANY("+p+"::text[])")
		if f.Action == requestAction {
			// A verifier's record is found by its id in
			// event_request_ids, whose key keeps those ids unique.
			where = append(where, "action = '"+requestAction+"'",
				"seq IN (SELECT seq FROM event_request_ids WHERE id = ANY("+p+"::text[]))")
		}
	}
	for _, c := range []struct{ col, v string }{
		{"result", f.Result}, {"audience", f.Audience}, {"resource", f.Resource},
		{"agent_version", f.AgentVersion}, {"delegation_id", f.DelegationID},
	} {
		if c.v != "" {
			where = append(where, c.col+" = "+arg(c.v))
		}
	}
	if f.DelegationID != "" {
		// Implies the predicate of the partial index events_delegation,
		// which a parameter does not in a generic plan.
		where = append(where, "delegation_id <> ''")
	}
	if f.Resource != "" {
		// Likewise for events_resource (migration 15).
		where = append(where, "resource <> ''")
	}
	if !f.Since.IsZero() {
		// The time marks turn Since into a seq bound, which skips the
		// partitions wholly before it.
		p := arg(f.Since)
		where = append(where, "time >= "+p)
		bounds = append(bounds, "seq > "+sinceSeq(p))
	}
	if !f.Until.IsZero() {
		where = append(where, "time < "+arg(f.Until))
	}
	if f.BeforeSeq > 0 {
		bounds = append(bounds, "seq < "+arg(f.BeforeSeq))
	}
	return where, bounds, args
}

// EventsAfter returns up to limit events with Seq above afterSeq, oldest
// first; limit defaults to 1000 and is capped at 10000.
func (s *Store) EventsAfter(ctx context.Context, afterSeq int64, limit int) ([]store.Event, error) {
	limit = store.PageLimit(limit)
	return listEvents(ctx, s, "SELECT "+eventSelect+" FROM events WHERE seq > $1 ORDER BY seq LIMIT $2",
		limit, afterSeq, limit)
}

// listEvents runs query, which returns at most limit rows of eventSelect,
// and scans them into a slice sized for a page.
func listEvents(ctx context.Context, s *Store, query string, limit int, args ...any) ([]store.Event, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("postgres: list events: %w", dbErr(err))
	}
	out, err := pgx.AppendRows(make([]store.Event, 0, min(limit, store.EachEventPage)), rows, scanEvents())
	if err != nil {
		return nil, fmt.Errorf("postgres: list events: %w", dbErr(err))
	}
	return out, nil
}

// list runs query and scans every row with scan.
func list[T any](ctx context.Context, s *Store, what, query string, scan pgx.RowToFunc[T], args ...any) ([]T, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("postgres: list %s: %w", what, dbErr(err))
	}
	out, err := pgx.AppendRows([]T(nil), rows, scan)
	if err != nil {
		return nil, fmt.Errorf("postgres: list %s: %w", what, dbErr(err))
	}
	return out, nil
}
