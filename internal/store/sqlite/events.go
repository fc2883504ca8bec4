package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/mandate-dev/mandate/internal/store"
)

// Query limits for QueryEvents.
const (
	defaultEventLimit = 100
	maxEventLimit     = 1000
)

const eventCols = `id, time, request_id, action, result, reason, detail, performer, on_behalf, chain,
	client_id, scopes, requested, audience, resource, context, delegation_id, jti, parent_jti`

// eventWriter appends events inside one transaction with the statements
// prepared once on the write connection (Store.prepared), so that a commit
// parses no SQL.
type eventWriter struct {
	event, actor *sql.Stmt
}

func (s *Store) newEventWriter(ctx context.Context, tx *sql.Tx) (*eventWriter, error) {
	return &eventWriter{event: tx.StmtContext(ctx, s.stmts.event), actor: tx.StmtContext(ctx, s.stmts.actor)}, nil
}

// write appends e; the store assigns its Seq, so e.Seq is ignored.
func (w *eventWriter) write(ctx context.Context, e store.Event) error {
	var evctx any
	if len(e.Context) > 0 {
		evctx = string(e.Context)
	}
	var seq int64
	err := w.event.QueryRowContext(ctx, e.ID, timeIn(e.Time), e.RequestID, e.Action, e.Result, e.Reason,
		e.Detail, e.Performer, e.OnBehalf, listIn(e.Chain), e.ClientID, listIn(e.Scopes), listIn(e.Requested),
		e.Audience, e.Resource, evctx, e.DelegationID, e.JTI, e.ParentJTI).Scan(&seq)
	if err != nil {
		return fmt.Errorf("insert event %q: %w", e.ID, dbErr(err))
	}
	for _, a := range eventActors(e) {
		if _, err := w.actor.ExecContext(ctx, a, seq); err != nil {
			return fmt.Errorf("insert event %q actor: %w", e.ID, dbErr(err))
		}
	}
	return nil
}

func (w *eventWriter) close() {
	w.event.Close()
	w.actor.Close()
}

// eventActors is every actor e names, each once: its chain, performer and
// client. EventFilter.Actor matches any of them.
func eventActors(e store.Event) []string {
	out := make([]string, 0, len(e.Chain)+2)
	for _, a := range append([]string{e.Performer, e.ClientID}, e.Chain...) {
		if a != "" && !contains(out, a) {
			out = append(out, a)
		}
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

// insertEvents appends events inside tx.
func (s *Store) insertEvents(ctx context.Context, tx *sql.Tx, events []store.Event) error {
	if len(events) == 0 {
		return nil
	}
	w, err := s.newEventWriter(ctx, tx)
	if err != nil {
		return err
	}
	defer w.close()
	for _, e := range events {
		if err := w.write(ctx, e); err != nil {
			return err
		}
	}
	return nil
}

func scanEvent(sc scanner) (store.Event, error) {
	var (
		e                        store.Event
		t                        sql.NullInt64
		chain, scopes, requested string
		evctx                    sql.NullString
	)
	err := sc.Scan(&e.Seq, &e.ID, &t, &e.RequestID, &e.Action, &e.Result, &e.Reason, &e.Detail, &e.Performer,
		&e.OnBehalf, &chain, &e.ClientID, &scopes, &requested, &e.Audience, &e.Resource, &evctx,
		&e.DelegationID, &e.JTI, &e.ParentJTI)
	if err != nil {
		return store.Event{}, dbErr(err)
	}
	e.Time = timeOut(t)
	if evctx.Valid && evctx.String != "" {
		e.Context = []byte(evctx.String)
	}
	err = decodeLists(listCol{"chain", chain, &e.Chain}, listCol{"scopes", scopes, &e.Scopes},
		listCol{"requested", requested, &e.Requested})
	return e, err
}

// QueryEvents returns the events f selects, newest (highest Seq) first.
// Actor matches the chain, performer or client; Subject matches OnBehalf;
// JTI matches the event's JTI or ParentJTI (an exchange from the token
// concerns it too); Since is inclusive and Until exclusive. Limit defaults
// to 100 and is capped at 1000.
func (s *Store) QueryEvents(ctx context.Context, f store.EventFilter) ([]store.Event, error) {
	var (
		where []string
		args  []any
	)
	if f.Actor != "" {
		where = append(where, "seq IN (SELECT seq FROM event_actors WHERE actor = ?)")
		args = append(args, f.Actor)
	}
	if f.Subject != "" {
		where = append(where, "on_behalf = ?")
		args = append(args, f.Subject)
	}
	if f.Action != "" {
		where = append(where, "action = ?")
		args = append(args, f.Action)
	}
	if f.JTI != "" {
		where = append(where, "(jti = ? OR parent_jti = ?)")
		args = append(args, f.JTI, f.JTI)
	}
	if !f.Since.IsZero() {
		where = append(where, "time >= ?")
		args = append(args, f.Since.UnixMicro())
	}
	if !f.Until.IsZero() {
		where = append(where, "time < ?")
		args = append(args, f.Until.UnixMicro())
	}
	if f.BeforeSeq > 0 {
		where = append(where, "seq < ?")
		args = append(args, f.BeforeSeq)
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
	q += " ORDER BY seq DESC LIMIT ?"
	args = append(args, limit)
	return list(ctx, s.r, "events", q, scanEvent, args...)
}
