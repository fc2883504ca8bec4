package storetest

import (
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mandate-dev/mandate/internal/store"
)

// WindowEvents returns n records whose times mostly follow their order,
// as the server's do, with the exceptions a log holds: a verifier's record
// from hours before (kept through an outage) or minutes ahead (its clock
// runs fast), the second half written after the clock was set back an
// hour, and records with no time. Agents, people, actions and resources vary, so
// that every filter of a time window selects a part of them.
func WindowEvents(n int) []store.Event {
	evs := make([]store.Event, n)
	for i := range evs {
		at := base().Add(time.Duration(i) * time.Second)
		switch {
		case i%89 == 0:
			at = time.Time{}
		case i%97 == 0:
			at = at.Add(-30 * time.Hour)
		case i%101 == 0:
			at = at.Add(5 * time.Minute)
		}
		if i >= n/2 && !at.IsZero() {
			at = at.Add(-time.Hour)
		}
		agent := "agent:w" + strconv.Itoa(i%5)
		ev := store.Event{
			ID: fmt.Sprintf("w%05d", i), Time: at, Action: "token.exchange", Result: "granted",
			Performer: agent, ClientID: agent, Chain: []string{agent}, OnBehalf: "user:w" + strconv.Itoa(i%7),
		}
		switch i % 3 {
		case 1:
			ev.Action, ev.Resource = "request", "res/"+strconv.Itoa(i%11)
		case 2:
			ev.Result = "refused"
		}
		evs[i] = ev
	}
	return evs
}

// CheckTimeWindows checks that QueryEvents, read page by page as the
// forensic reports read it, returns every record of a time window and no
// other, whatever the order of the records' times: for windows that start
// and end at the log's own times (each just before, at and after them),
// alone and with an actor, a person, an action, a result or a resource,
// against the log read forward with EventsAfter.
func CheckTimeWindows(t *testing.T, log store.AuditLog) {
	t.Helper()
	ctx := t.Context()
	var all []store.Event
	for {
		page, err := log.EventsAfter(ctx, int64(len(all)), store.MaxPageLimit)
		if err != nil {
			t.Fatalf("EventsAfter(%d): %v", len(all), err)
		}
		all = append(all, page...)
		if len(page) < store.MaxPageLimit {
			break
		}
	}
	// The edges are the times of records out of order and a few others,
	// at most maxWindows of them, each also a microsecond either side.
	const maxWindows = 20
	var times []time.Time
	for i, e := range all {
		if !e.Time.IsZero() && (i%311 == 0 || i > 0 && e.Time.Before(all[i-1].Time) ||
			i+1 < len(all) && all[i+1].Time.Before(e.Time)) {
			times = append(times, e.Time)
		}
	}
	var edges []time.Time
	for i, at := range times {
		if i%max(1, len(times)/maxWindows) == 0 {
			edges = append(edges, at.Add(-time.Microsecond), at, at.Add(time.Microsecond))
		}
	}
	slices.SortFunc(edges, time.Time.Compare)
	edges = slices.Compact(edges)
	filters := []store.EventFilter{
		{}, {Actor: "agent:w1"}, {Subject: "user:w3"}, {Action: "request"}, {Result: "refused"},
		{Resource: "res/4"}, {Action: "token.exchange", Result: "granted"},
	}
	for i, since := range edges {
		// Each window ends at a later edge, or is open.
		var until time.Time
		if i%2 == 1 {
			until = edges[min(i+1+i%7*5, len(edges)-1)]
		}
		for _, f := range filters {
			f.Since, f.Until = since, until
			var want []string
			for _, e := range slices.Backward(all) {
				if inWindow(e, f) {
					want = append(want, e.ID)
				}
			}
			got := queryAll(t, log, f)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Fatalf("QueryEvents(%+v) (-want +got):\n%s", f, diff)
			}
		}
	}
}

// inWindow is whether e matches f's time window and the fields
// CheckTimeWindows filters by.
func inWindow(e store.Event, f store.EventFilter) bool {
	switch {
	case e.Time.IsZero(), e.Time.Before(f.Since), !f.Until.IsZero() && !e.Time.Before(f.Until):
		return false
	case f.Actor != "" && e.Performer != f.Actor && e.ClientID != f.Actor && !slices.Contains(e.Chain, f.Actor):
		return false
	}
	for _, c := range [][2]string{{f.Subject, e.OnBehalf}, {f.Action, e.Action}, {f.Result, e.Result}, {f.Resource, e.Resource}} {
		if c[0] != "" && c[0] != c[1] {
			return false
		}
	}
	return true
}

// queryAll is the IDs of every event f selects, newest first, read in
// pages of 250 with BeforeSeq.
func queryAll(t *testing.T, log store.AuditLog, f store.EventFilter) []string {
	t.Helper()
	var ids []string
	f.Limit = 250
	for {
		page, err := log.QueryEvents(t.Context(), f)
		if err != nil {
			t.Fatalf("QueryEvents(%+v): %v", f, err)
		}
		ids = append(ids, eventIDs(page)...)
		if len(page) < f.Limit {
			return ids
		}
		f.BeforeSeq = page[len(page)-1].Seq
	}
}

// testTimeWindows commits WindowEvents in commits of one to 2,100
// records, so that the log passes any spacing a backend's time bounds use
// both within a commit and across commits, and checks the windows
// (CheckTimeWindows).
func testTimeWindows(t *testing.T, open func(t *testing.T) store.Store) {
	s := open(t)
	evs := WindowEvents(5200)
	for _, n := range []int{1, 700, 2100, 3, 300, 2096} {
		if err := s.Commit(t.Context(), store.Batch{Events: evs[:n]}); err != nil {
			t.Fatalf("Commit: %v", err)
		}
		evs = evs[n:]
	}
	CheckTimeWindows(t, s)
}
