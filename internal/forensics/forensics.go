package forensics

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/mandate-dev/mandate/internal/store"
)

// Querier answers one page of an audit query: events matching f, newest
// first, at most f.Limit, older than f.BeforeSeq when it is set.
type Querier interface {
	QueryEvents(ctx context.Context, f store.EventFilter) ([]store.Event, error)
}

// Source is a log the reports read: a page of records at a time
// (QueryEvents), and the counts of a window's records (TallyEvents, as
// store.AuditLog's). A store, a running server (GET /audit) and an
// exported file all serve as one; those that cannot count in place count
// the records they read (TallyRecords).
type Source interface {
	Querier
	TallyEvents(ctx context.Context, f store.TallyFilter) ([]store.EventTally, error)
}

// TallyRecords counts the records q returns for f's window as a store's
// TallyEvents counts them (store.Tally), reading every one, up to
// MaxEvents (ErrTooMany past them): the tally of a source that cannot
// count in place.
func TallyRecords(ctx context.Context, q Querier, f store.TallyFilter) ([]store.EventTally, error) {
	evs, err := All(ctx, q, store.EventFilter{Since: f.Since, Until: f.Until})
	if err != nil {
		return nil, err
	}
	return store.Tally(evs, f), nil
}

// pageSize is the page Each asks for: the most a store returns at once.
const pageSize = 1000

// MaxEvents bounds what one report reads, so that a query over a huge log
// ends with ErrTooMany instead of eating the memory of the machine that runs
// it; narrow the time window and run it again.
const MaxEvents = 1_000_000

// ErrTooMany is returned when a report would read more than MaxEvents.
var ErrTooMany = errors.New("forensics: more than a million matching records: narrow the time window")

// errStop ends Each early without an error.
var errStop = errors.New("stop")

// Each calls fn with every event matching f, newest first, a page at a
// time. f.Limit, when set, caps the number of events; fn returning an error
// stops the walk with it.
func Each(ctx context.Context, src Querier, f store.EventFilter, fn func(store.Event) error) error {
	want := f.Limit
	seen := 0
	for {
		f.Limit = pageSize
		if want > 0 && want-seen < pageSize {
			f.Limit = want - seen
		}
		page, err := src.QueryEvents(ctx, f)
		if err != nil {
			return fmt.Errorf("audit query: %w", err)
		}
		for _, ev := range page {
			if err := fn(ev); err != nil {
				if errors.Is(err, errStop) {
					return nil
				}
				return err
			}
			seen++
		}
		if len(page) < f.Limit || (want > 0 && seen >= want) {
			return nil
		}
		f.BeforeSeq = page[len(page)-1].Seq
	}
}

// All returns every event matching f, newest first, up to MaxEvents.
func All(ctx context.Context, src Querier, f store.EventFilter) ([]store.Event, error) {
	var out []store.Event
	err := Each(ctx, src, f, func(ev store.Event) error {
		if len(out) == MaxEvents {
			return ErrTooMany
		}
		out = append(out, ev)
		return nil
	})
	return out, err
}

// Window is a time range: Since inclusive, Until exclusive; a zero bound
// is open.
type Window struct {
	Since, Until time.Time
}

// filter is w as an EventFilter.
func (w Window) filter() store.EventFilter { return store.EventFilter{Since: w.Since, Until: w.Until} }

// maxLineage bounds the tokens a lineage walk visits.
const maxLineage = 10_000

// Lineage returns every record about the token jti, its ancestors (the
// tokens it was exchanged from, up to the person's own) and its
// descendants (every token exchanged from it, at any depth): issuance,
// exchanges, introspections, revocations and the requests verifiers
// reported, oldest first. It walks the parent_jti links one query per
// token.
func Lineage(ctx context.Context, src Source, jti string) ([]store.Event, error) {
	bySeq := map[int64]store.Event{}
	visited := map[string]bool{}
	// keep holds the records about tok, a token of the lineage.
	keep := func(tok string, evs []store.Event) {
		visited[tok] = true
		for _, ev := range evs {
			bySeq[ev.Seq] = ev
		}
	}
	// Up: the token and each it was exchanged from.
	if err := walkUp(ctx, src, jti, keep); err != nil {
		return nil, err
	}
	// Down: a record whose parent is a token of the lineage issued a child.
	below := map[string]bool{jti: true}
	for queue := []string{jti}; len(queue) > 0; queue = queue[1:] {
		var children []string
		for _, ev := range bySeq {
			if ev.ParentJTI == queue[0] && ev.JTI != "" && !visited[ev.JTI] && !slices.Contains(children, ev.JTI) {
				children = append(children, ev.JTI)
			}
		}
		for _, child := range children {
			if len(visited) >= maxLineage {
				return nil, ErrTooMany
			}
			evs, err := All(ctx, src, store.EventFilter{JTI: child})
			if err != nil {
				return nil, err
			}
			keep(child, evs)
			below[child] = true
			queue = append(queue, child)
		}
	}
	// An ancestor's other children (siblings) and refused attempts to
	// exchange it came with its records: keep only what concerns the
	// lineage's tokens, and refusals (no jti) of requests that presented
	// the token or one of its descendants.
	out := make([]store.Event, 0, len(bySeq))
	for _, ev := range bySeq {
		if visited[ev.JTI] || ev.JTI == "" && below[ev.ParentJTI] {
			out = append(out, ev)
		}
	}
	slices.SortFunc(out, func(a, b store.Event) int { return compareSeq(a.Seq, b.Seq) })
	return out, nil
}

// walkUp calls fn with jti and every record that names it as its jti or
// its parent, then does the same for the token jti was exchanged from (the
// parent_jti of the record that issued it), and so on up to the first
// token of the chain; it stops at a loop or after maxLineage tokens
// (ErrTooMany).
func walkUp(ctx context.Context, src Source, jti string, fn func(tok string, evs []store.Event)) error {
	seen := map[string]bool{}
	for tok := jti; tok != "" && !seen[tok]; {
		if len(seen) == maxLineage {
			return ErrTooMany
		}
		seen[tok] = true
		evs, err := All(ctx, src, store.EventFilter{JTI: tok})
		if err != nil {
			return err
		}
		fn(tok, evs)
		parent := ""
		for _, ev := range evs {
			if ev.JTI == tok && ev.ParentJTI != "" {
				parent = ev.ParentJTI
			}
		}
		tok = parent
	}
	return nil
}

func compareSeq(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
