package forensics

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mandate-dev/mandate/internal/audit"
	"github.com/mandate-dev/mandate/internal/exchange"
	"github.com/mandate-dev/mandate/internal/store"
	"github.com/mandate-dev/mandate/internal/store/postgres/pgtest"
	"github.com/mandate-dev/mandate/internal/store/sqlite"
)

// agentsModel is Agents as it was before it counted from a tally: it reads
// every record of the window and counts them one by one, with the same
// rules (issued, tokenRefusal, refusals, refused, ReportedBy).
// TestAgentsMatchesModel holds Agents to it.
func agentsModel(ctx context.Context, src Source, w Window) ([]AgentStats, error) {
	evs, err := All(ctx, src, w.filter())
	if err != nil {
		return nil, err
	}
	rows := statsTable{}
	// issuedTo maps a jti to the agent and version it was issued to.
	issuedTo := map[string]statsKey{}
	for _, ev := range evs {
		if issued(ev) && ev.JTI != "" {
			issuedTo[ev.JTI] = statsKey{ev.ClientID, ev.AgentVersion}
		}
	}
	for _, ev := range evs {
		switch {
		case ev.ClientID == exchange.SignInClientID:
			// A person's own token: no agent asked for it.
		case issued(ev) && ev.ClientID != "":
			rows.count(ev.ClientID, ev.AgentVersion, func(r *AgentStats) { r.Issued++ })
		case tokenRefusal(ev) && ev.ClientID != "":
			rows.count(ev.ClientID, ev.AgentVersion, func(r *AgentStats) { r.Refused += refusals(ev) })
		case ev.Action == audit.ActionTokenRevoked && ev.Result != audit.ResultRefused && ev.JTI != "":
			k, ok := issuedTo[ev.JTI]
			if !ok {
				// Issued before the window: find who it was issued to.
				anc, err := ancestry(ctx, src, ev.JTI)
				if err != nil {
					return nil, err
				}
				if len(anc) > 0 {
					k, ok = statsKey{anc[len(anc)-1].ClientID, anc[len(anc)-1].AgentVersion}, true
				}
			}
			if ok && k.agent != "" {
				rows.count(k.agent, k.version, func(r *AgentStats) { r.Revoked++ })
			}
		case ev.Action == audit.ActionRequest && ev.Performer != "":
			rows.count(ev.Performer, "", func(r *AgentStats) {
				if refused(ev) {
					r.APIRefused++
				} else {
					r.APIGranted++
				}
				r.APIReportedBy = addReporter(r.APIReportedBy, ev)
			})
		}
	}
	return rows.sorted(), nil
}

// refusalRatesModel is RefusalRates as it was before it counted from a
// tally: one query per kind of token request, every record read.
func refusalRatesModel(ctx context.Context, src Source, w Window) ([]AgentStats, error) {
	rows := statsTable{}
	kinds := []struct{ action, result string }{
		{audit.ActionTokenIssue, audit.ResultGranted},
		{audit.ActionTokenExchange, audit.ResultGranted},
		{audit.ActionTokenRefused, ""},
		{audit.ActionClientAuth, audit.ResultRefused},
	}
	for _, k := range kinds {
		f := w.filter()
		f.Action, f.Result = k.action, k.result
		err := Each(ctx, src, f, func(ev store.Event) error {
			switch {
			case ev.ClientID == exchange.SignInClientID, ev.ClientID == "":
			case issued(ev):
				rows.count(ev.ClientID, ev.AgentVersion, func(r *AgentStats) { r.Issued++ })
			case tokenRefusal(ev):
				rows.count(ev.ClientID, ev.AgentVersion, func(r *AgentStats) { r.Refused += refusals(ev) })
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return rows.sorted(), nil
}

// modelT0 is when a random log starts.
var modelT0 = time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)

// randomLog returns n records of the kinds Agents counts and others, with
// random clients, versions, performers and reporters: tokens issued and
// exchanged from earlier ones (a jti now and then issued twice), refused,
// failed client authentications with "refusals" attributes odd and
// well formed, revocations of tokens issued before and after them or
// never (some refused, some by the sign-in client, some without a jti),
// and verifiers' records, flagged or not. Times mostly follow the order,
// with records from hours before and minutes ahead.
func randomLog(rng *rand.Rand, n int) []store.Event {
	pick := func(l ...string) string { return l[rng.IntN(len(l))] }
	attrs := []string{
		"", "", "", `{"refusals":"3"}`, `{"refusals":"1"}`, `{"refusals":"0"}`, `{"refusals":"+4"}`, `{"refusals":"-2"}`,
		`{"refusals":7}`, `{"distinct_client_ids":"a,b","refusals":"12"}`, `{"Refusals":"5"}`, `{"refu\u0073als":"6"}`,
		`{"refusals":"2","refusals":"9"}`, `{"refusals":"x"}`, `{"refusals":" 5"}`, `{"refusals":"007"}`,
		`{"refusals":"99999999999999999999"}`, `{"amount":"1"}`, `{"mandate.token_mismatch":"subject"}`,
		`{"amount":"2","mandate.token_mismatch":"chain,audience"}`, `{"amount":2,"mandate.token_mismatch":"chain"}`,
		`{"mandate.token_mismatch":""}`, `{"mandate.token_mismatch":3}`, `{"note":"refusals"}`, `[]`, `"refusals"`, `null`,
	}
	var jtis []string
	at := modelT0
	evs := make([]store.Event, n)
	for i := range evs {
		at = at.Add(time.Duration(1+rng.IntN(90)) * time.Second)
		t := at
		switch rng.IntN(30) {
		case 0:
			t = t.Add(-time.Duration(1+rng.IntN(5)) * time.Hour)
		case 1:
			t = t.Add(time.Duration(1+rng.IntN(10)) * time.Minute)
		}
		ev := store.Event{
			ID: fmt.Sprintf("r%04d", i), Time: t,
			Action: pick(audit.ActionTokenIssue, audit.ActionTokenExchange, audit.ActionTokenExchange, audit.ActionTokenRefused,
				audit.ActionClientAuth, audit.ActionTokenRevoked, audit.ActionTokenRevoked, audit.ActionRequest, audit.ActionRequest,
				audit.ActionTokenIntrospect),
			ClientID:     pick("agent:a", "agent:b", "agent:c", "agent:c", exchange.SignInClientID, ""),
			AgentVersion: pick("", "", "1.0", "2.0"),
			Performer:    pick("agent:a", "agent:b", "agent:c", "user:sam", ""),
			ReportedBy:   pick("", "", "rs:x", "rs:y"),
			Attributes:   json.RawMessage(attrs[rng.IntN(len(attrs))]),
		}
		if len(ev.Attributes) == 0 || rng.IntN(3) > 0 {
			ev.Attributes = nil
		}
		if rng.IntN(3) > 0 {
			// Most records are alike but for their times and tokens, as
			// a log's are: many count in one row of a tally.
			ev.ReportedBy, ev.Performer = "", ev.ClientID
			if ev.Action == audit.ActionRequest {
				ev.ReportedBy = "rs:x"
			}
		}
		earlier := func() string {
			if len(jtis) == 0 {
				return ""
			}
			return jtis[rng.IntN(len(jtis))]
		}
		switch ev.Action {
		case audit.ActionTokenIssue, audit.ActionTokenExchange:
			ev.Result = pick(audit.ResultGranted, audit.ResultGranted, audit.ResultGranted, audit.ResultRefused)
			ev.JTI = fmt.Sprintf("j%d", i)
			if rng.IntN(15) == 0 && len(jtis) > 0 {
				ev.JTI = earlier() // issued twice
			}
			if ev.Action == audit.ActionTokenExchange && rng.IntN(3) > 0 {
				ev.ParentJTI = earlier()
			}
			jtis = append(jtis, ev.JTI)
		case audit.ActionTokenRevoked:
			ev.Result = pick(audit.ResultOK, audit.ResultOK, audit.ResultOK, audit.ResultRefused, audit.ResultGranted)
			if rng.IntN(4) > 0 {
				ev.Result, ev.ClientID, ev.AgentVersion, ev.Performer, ev.ReportedBy, ev.Attributes = audit.ResultOK, "", "", "admin", "", nil
			}
			switch rng.IntN(8) {
			case 0:
				ev.JTI = "" // no jti
			case 1:
				ev.JTI = fmt.Sprintf("j%d", i+1+rng.IntN(20)) // issued later, or never
			case 2:
				ev.JTI, ev.ParentJTI = earlier(), earlier()
			default:
				ev.JTI = earlier()
			}
		case audit.ActionTokenRefused:
			ev.Result = pick(audit.ResultRefused, audit.ResultRefused, audit.ResultFailed)
			ev.ParentJTI = earlier()
		case audit.ActionRequest:
			ev.Result = pick(audit.ResultGranted, audit.ResultGranted, audit.ResultRefused, audit.ResultFailed)
			ev.JTI = earlier()
		default:
			ev.Result = pick(audit.ResultRefused, audit.ResultOK, audit.ResultGranted, audit.ResultFailed)
			ev.JTI = earlier()
		}
		evs[i] = ev
	}
	return evs
}

// randomWindow cuts the log anywhere: at a record's time, a microsecond
// either side, or open.
func randomWindow(rng *rand.Rand, evs []store.Event) Window {
	at := func() time.Time {
		if rng.IntN(5) == 0 {
			return time.Time{}
		}
		return evs[rng.IntN(len(evs))].Time.Add(time.Duration(rng.IntN(3)-1) * time.Microsecond)
	}
	w := Window{Since: at(), Until: at()}
	if !w.Since.IsZero() && !w.Until.IsZero() && w.Until.Before(w.Since) && rng.IntN(5) > 0 {
		w.Since, w.Until = w.Until, w.Since
	}
	return w
}

// TestAgentsMatchesModel: on random logs and windows, Agents and
// RefusalRates, counting from the store's tally, answer what the record
// by record models answer, on SQLite, on PostgreSQL when it runs here,
// and on the log read back into memory.
func TestAgentsMatchesModel(t *testing.T) {
	ctx := context.Background()
	rounds := 25
	if testing.Short() {
		rounds = 5
	}
	rng := rand.New(rand.NewPCG(7, 11))
	for round := range rounds {
		evs := randomLog(rng, 100+rng.IntN(300))
		srcs := map[string]interface {
			Source
			Commit(context.Context, store.Batch) error
		}{}
		sq, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), fmt.Sprintf("mandate%d.db", round)))
		if err != nil {
			t.Fatal(err)
		}
		srcs["sqlite"] = sq
		if os.Getenv(pgtest.EnvURL) != "" && round%5 == 0 {
			srcs["postgres"] = pgtest.Open(t)
		}
		for name, s := range srcs {
			// In commits of random sizes, so that the SQLite indexer is
			// behind some of them.
			for rest := evs; len(rest) > 0; {
				n := min(len(rest), 1+rng.IntN(150))
				if err := s.Commit(ctx, store.Batch{Events: rest[:n]}); err != nil {
					t.Fatalf("%s: Commit: %v", name, err)
				}
				rest = rest[n:]
			}
		}
		var back []store.Event
		if err := store.EachEvent(ctx, sq, 0, func(ev store.Event) error { back = append(back, ev); return nil }); err != nil {
			t.Fatal(err)
		}
		all := map[string]Source{"memory": NewMemory(back)}
		for name, s := range srcs {
			all[name] = s
		}
		for range 6 {
			w := randomWindow(rng, evs)
			for name, src := range all {
				want, err := agentsModel(ctx, src, w)
				if err != nil {
					t.Fatal(err)
				}
				got, err := Agents(ctx, src, w)
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Fatalf("round %d, %s, window %v – %v: Agents (-model +got):\n%s", round, name, w.Since, w.Until, diff)
				}
				want, err = refusalRatesModel(ctx, src, w)
				if err != nil {
					t.Fatal(err)
				}
				got, err = RefusalRates(ctx, src, w, 0)
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Fatalf("round %d, %s, window %v – %v: RefusalRates (-model +got):\n%s", round, name, w.Since, w.Until, diff)
				}
			}
		}
		sq.Close()
	}
}
