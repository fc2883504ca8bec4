package storetest

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/mandate-dev/mandate/internal/store"
)

// tallyFilter is the tally the forensic reports ask for, over a window.
func tallyFilter(since, until time.Time) store.TallyFilter {
	return store.TallyFilter{
		Since: since, Until: until,
		Attributes:   []string{"refusals", "mandate.token_mismatch"},
		Revoked:      "token.revoked",
		Issued:       []string{"token.issue", "token.exchange"},
		IssuedResult: "granted",
	}
}

// tallyLog returns n records for a tally to count: token requests
// granted and refused, failed client authentications that stand for
// several, revocations of tokens issued before and after them (or never),
// verifiers' records, flagged or not, and records of other kinds, with
// attributes that spell the names a tally reads and some that almost do.
// Times mostly follow the order, with records from hours before and
// minutes ahead, and records with no time.
func tallyLog(rng *rand.Rand, n int) []store.Event {
	pick := func(l ...string) string { return l[rng.IntN(len(l))] }
	attrs := []string{
		"", `{"refusals":"3"}`, `{"refusals":"0"}`, `{"refusals":"+4"}`, `{"refusals":"-2"}`, `{"refusals":7}`,
		`{"refusals":"12","distinct_client_ids":"a,b"}`, `{"Refusals":"5"}`, `{"refu\u0073als":"6"}`,
		`{"refusals":"2","refusals":"9"}`, `{"refusals":"x"}`, `{"refusals":" 5"}`, `{"refusals":"99999999999999999999"}`,
		`{"amount":"1"}`, `{"mandate.token_mismatch":"subject"}`, `{"amount":"2","mandate.token_mismatch":"chain,audience"}`,
		`{"mandate.token_mismatch":""}`, `{"mandate.token_mismatch":3}`, `{"note":"refusals"}`, `[]`, `"refusals"`, `null`,
	}
	start := base()
	var jtis []string
	evs := make([]store.Event, n)
	for i := range evs {
		at := start.Add(time.Duration(i) * 7 * time.Second)
		switch rng.IntN(40) {
		case 0:
			at = time.Time{}
		case 1:
			at = at.Add(-time.Duration(1+rng.IntN(30)) * time.Hour)
		case 2:
			at = at.Add(time.Duration(1+rng.IntN(10)) * time.Minute)
		}
		ev := store.Event{
			ID: fmt.Sprintf("t%05d", i), Time: at,
			Action:       pick("token.issue", "token.exchange", "token.exchange", "token.refused", "client.auth", "token.revoked", "request", "request", "token.introspect", ""),
			Result:       pick("granted", "granted", "refused", "failed", "ok", ""),
			ClientID:     pick("agent:a", "agent:b", "agent:c", "mandate", ""),
			AgentVersion: pick("", "", "1.0", "2.0"),
			Performer:    pick("agent:a", "agent:b", "user:sam", ""),
			ReportedBy:   pick("", "", "rs:x", "rs:y"),
			Attributes:   json.RawMessage(attrs[rng.IntN(len(attrs))]),
		}
		if len(ev.Attributes) == 0 {
			ev.Attributes = nil
		}
		switch {
		case ev.Action == "token.revoked" && len(jtis) > 0 && rng.IntN(5) > 0:
			ev.JTI = jtis[rng.IntN(len(jtis))]
		case ev.Action == "token.revoked" && rng.IntN(2) == 0:
			// A token issued later, or never.
			ev.JTI = fmt.Sprintf("j%d", i+rng.IntN(50))
		case rng.IntN(4) > 0:
			ev.JTI = fmt.Sprintf("j%d", i)
			if rng.IntN(10) == 0 && len(jtis) > 0 {
				ev.JTI = jtis[rng.IntN(len(jtis))] // a jti issued twice
			}
			jtis = append(jtis, ev.JTI)
		}
		evs[i] = ev
	}
	return evs
}

// testTallyEvents commits tallyLog in commits of one to 1,500 records
// and checks, right after each commit and at the end for many windows,
// that TallyEvents counts what QueryEvents returns for the window as
// store.Tally counts it.
func testTallyEvents(t *testing.T, open func(t *testing.T) store.Store) {
	s := open(t)
	rng := rand.New(rand.NewPCG(1, 2))
	evs := tallyLog(rng, 4000)
	end := base().Add(time.Duration(len(evs)) * 7 * time.Second)
	for _, n := range []int{1, 2, 600, 1500, 3, 1100, 794} {
		if err := s.Commit(t.Context(), store.Batch{Events: evs[:n]}); err != nil {
			t.Fatalf("Commit: %v", err)
		}
		evs = evs[n:]
		// Right after the commit, before any background work.
		CheckTally(t, s, tallyFilter(time.Time{}, time.Time{}))
		CheckTally(t, s, tallyFilter(base().Add(3*time.Hour), time.Time{}))
	}
	for range 40 {
		at := func() time.Time {
			if rng.IntN(8) == 0 {
				return time.Time{}
			}
			return base().Add(-2 * time.Hour).Add(time.Duration(rng.Int64N(int64(end.Sub(base()) + 4*time.Hour))))
		}
		since, until := at(), at()
		if !since.IsZero() && !until.IsZero() && until.Before(since) && rng.IntN(4) > 0 {
			since, until = until, since
		}
		CheckTally(t, s, tallyFilter(since, until))
		CheckTally(t, s, store.TallyFilter{Since: since, Until: until})
	}
}

// CheckTally checks that log's TallyEvents(f) counts the records
// QueryEvents returns for f's window as store.Tally counts them.
func CheckTally(t *testing.T, log store.AuditLog, f store.TallyFilter) {
	t.Helper()
	want := store.Tally(queryEvents(t, log, store.EventFilter{Since: f.Since, Until: f.Until}), f)
	got, err := log.TallyEvents(t.Context(), f)
	if err != nil {
		t.Fatalf("TallyEvents(%v, %v): %v", f.Since, f.Until, err)
	}
	slices.SortFunc(got, store.CompareTally)
	if slices.EqualFunc(want, got, func(a, b store.EventTally) bool { return store.CompareTally(a, b) == 0 }) {
		return // cmp.Diff of thousands of rows takes long
	}
	if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
		t.Fatalf("TallyEvents(%v, %v) (-Tally of QueryEvents +TallyEvents):\n%s", f.Since, f.Until, diff)
	}
}

// queryEvents is every event f selects, newest first, read in pages.
func queryEvents(t *testing.T, log store.AuditLog, f store.EventFilter) []store.Event {
	t.Helper()
	var out []store.Event
	f.Limit = 1000
	for {
		page, err := log.QueryEvents(t.Context(), f)
		if err != nil {
			t.Fatalf("QueryEvents(%+v): %v", f, err)
		}
		out = append(out, page...)
		if len(page) < f.Limit {
			return out
		}
		f.BeforeSeq = page[len(page)-1].Seq
	}
}
