package postgres

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/mandate-dev/mandate/internal/store"
)

// Query limits for QueryEvents.
const (
	defaultEventLimit = 100
	maxEventLimit     = 1000
)

const eventCols = `id, time, request_id, action, result, reason, detail, performer, on_behalf, chain,
	client_id, scopes, requested, audience, resource, context, delegation_id, jti, parent_jti`

// appendEvents appends a list of events in one statement, whatever its
// length: it advances events_head by their number ($1), which locks its row
// until the transaction commits, and numbers the events on from the
// previous value in list order. Each column is an array with one element per
// event; a list column is one flat array ($18-$20) with each event's 1-based
// bounds in it; event_actors gets (actor, position of its event) pairs.
const appendEvents = `WITH h AS (
	UPDATE events_head SET last_seq = last_seq + $1 WHERE id = 1 RETURNING last_seq - $1 AS base
), e AS (
	INSERT INTO events (seq, ` + eventCols + `)
	SELECT h.base + u.ord, u.id, u.time, u.request_id, u.action, u.result, u.reason, u.detail, u.performer,
		u.on_behalf, ($18::text[])[u.chain_lo:u.chain_hi], u.client_id, ($19::text[])[u.scopes_lo:u.scopes_hi],
		($20::text[])[u.requested_lo:u.requested_hi], u.audience, u.resource, u.context, u.delegation_id,
		u.jti, u.parent_jti
	FROM h, unnest($2::text[], $3::timestamptz[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
		$9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[], $15::text[], $16::text[],
		$17::text[], $21::int[], $22::int[], $23::int[], $24::int[], $25::int[], $26::int[])
		WITH ORDINALITY AS u(id, time, request_id, action, result, reason, detail, performer, on_behalf,
			client_id, audience, resource, context, delegation_id, jti, parent_jti,
			chain_lo, chain_hi, scopes_lo, scopes_hi, requested_lo, requested_hi, ord)
	RETURNING seq
)
INSERT INTO event_actors (actor, seq)
SELECT a.actor, h.base + a.ord FROM h, unnest($27::text[], $28::bigint[]) AS a(actor, ord)`

// queueEvents queues the statement that appends events in the order given.
// Queue it after the transaction's other writes, so that the lock on
// events_head, which makes Seq follow commit order across every instance,
// is held as briefly as possible.
func queueEvents(b *pgx.Batch, events []store.Event) {
	n := len(events)
	if n == 0 {
		return
	}
	var (
		id, request, action, result, reason, detail, performer, onBehalf = make([]string, n), make([]string, n),
			make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		client, audience, resource, delegation, jti, parent = make([]string, n), make([]string, n),
			make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		at                       = make([]pgtype.Timestamptz, n)
		evctx                    = make([]pgtype.Text, n)
		chain, scopes, requested ragged
		actors                   []string
		actorOf                  []int64
	)
	for i, e := range events {
		id[i], at[i], request[i], action[i], result[i] = e.ID, timestamp(e.Time), e.RequestID, e.Action, e.Result
		reason[i], detail[i], performer[i], onBehalf[i] = e.Reason, e.Detail, e.Performer, e.OnBehalf
		client[i], audience[i], resource[i] = e.ClientID, e.Audience, e.Resource
		evctx[i] = pgtype.Text{String: string(e.Context), Valid: len(e.Context) > 0}
		delegation[i], jti[i], parent[i] = e.DelegationID, e.JTI, e.ParentJTI
		chain.add(e.Chain)
		scopes.add(e.Scopes)
		requested.add(e.Requested)
		for _, a := range eventActors(e) {
			actors = append(actors, a)
			actorOf = append(actorOf, int64(i+1))
		}
	}
	b.Queue(appendEvents, n, id, at, request, action, result, reason, detail, performer, onBehalf,
		client, audience, resource, evctx, delegation, jti, parent,
		chain.flat(), scopes.flat(), requested.flat(), chain.lo, chain.hi, scopes.lo, scopes.hi, requested.lo, requested.hi,
		listIn(actors), actorOf)
}

// eventActors is every actor e names, each once: its chain, performer and
// client. EventFilter.Actor matches any of them.
func eventActors(e store.Event) []string {
	out := make([]string, 0, len(e.Chain)+2)
	for _, a := range append([]string{e.Performer, e.ClientID}, e.Chain...) {
		if a != "" && !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}

func scanEvent(row pgx.CollectableRow) (store.Event, error) {
	var (
		e                        store.Event
		t                        *time.Time
		chain, scopes, requested []string
		evctx                    *string
	)
	err := row.Scan(&e.Seq, &e.ID, &t, &e.RequestID, &e.Action, &e.Result, &e.Reason, &e.Detail, &e.Performer,
		&e.OnBehalf, &chain, &e.ClientID, &scopes, &requested, &e.Audience, &e.Resource, &evctx,
		&e.DelegationID, &e.JTI, &e.ParentJTI)
	if err != nil {
		return store.Event{}, err
	}
	e.Time = timeOut(t)
	e.Context = textOut(evctx)
	e.Chain, e.Scopes, e.Requested = listOut(chain), listOut(scopes), listOut(requested)
	return e, nil
}

// QueryEvents returns the events f selects, newest (highest Seq) first.
// Actor matches the chain, performer or client; Subject matches OnBehalf;
// JTI matches the event's JTI or ParentJTI (an exchange from the token
// concerns it too); Since is inclusive and Until exclusive. Limit defaults
// to 100 and is capped at 1000.
func (s *Store) QueryEvents(ctx context.Context, f store.EventFilter) ([]store.Event, error) {
	// A filter value that cannot be stored matches nothing, like any other
	// unknown value; PostgreSQL would refuse it as a parameter.
	for _, v := range []string{f.Actor, f.Subject, f.Action, f.JTI} {
		if !storable(v) {
			return nil, nil
		}
	}
	var (
		where []string
		args  []any
	)
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if f.Actor != "" {
		where = append(where, "seq IN (SELECT seq FROM event_actors WHERE actor = "+arg(f.Actor)+")")
	}
	if f.Subject != "" {
		where = append(where, "on_behalf = "+arg(f.Subject))
	}
	if f.Action != "" {
		where = append(where, "action = "+arg(f.Action))
	}
	if f.JTI != "" {
		p := arg(f.JTI)
		where = append(where, "(jti = "+p+" OR parent_jti = "+p+")")
	}
	if !f.Since.IsZero() {
		where = append(where, "time >= "+arg(f.Since))
	}
	if !f.Until.IsZero() {
		where = append(where, "time < "+arg(f.Until))
	}
	if f.BeforeSeq > 0 {
		where = append(where, "seq < "+arg(f.BeforeSeq))
	}
	limit := f.Limit
	if limit <= 0 {
		limit = defaultEventLimit
	}
	limit = min(limit, maxEventLimit)
	q := "SELECT seq, " + eventCols + " FROM events"
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY seq DESC LIMIT " + arg(limit)
	return list(ctx, s, "events", q, scanEvent, args...)
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
