package forensics_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mandate-dev/mandate/internal/forensics"
	"github.com/mandate-dev/mandate/internal/store"
	"github.com/mandate-dev/mandate/internal/store/postgres/pgtest"
	"github.com/mandate-dev/mandate/internal/store/sqlite"
)

// t0 is when the recorded story starts.
var t0 = time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)

// story is a small log with the shapes an incident query meets: Sam signs
// in (j0); InfraBot exchanges it twice (j1, and j1b for another task);
// ArgoCD exchanges j1 (j2) and deploys with it at an API; CleanupAgent
// exchanges j2 (j3); a fourth hop from j3 is refused; j1b is revoked;
// InfraBot version 2 is refused by policy; Alice's expense agent approves
// an expense and is refused a bigger one at the API.
func story() []store.Event {
	at := func(min int) time.Time { return t0.Add(time.Duration(min) * time.Minute) }
	return []store.Event{
		{ID: "e01", Time: at(0), Action: "token.issue", Result: "granted", Performer: "mandate", ClientID: "mandate", OnBehalf: "user:sam", JTI: "j0", Audience: "http://mandate"},
		{ID: "e02", Time: at(1), Action: "token.exchange", Result: "granted", Performer: "agent:infrabot", ClientID: "agent:infrabot", AgentVersion: "1.4.0",
			OnBehalf: "user:sam", Chain: []string{"agent:infrabot"}, Scopes: []string{"deploy:create"}, Audience: "agent:argocd", DelegationID: "d-sam-infrabot", JTI: "j1", ParentJTI: "j0"},
		{ID: "e03", Time: at(2), Action: "token.exchange", Result: "granted", Performer: "agent:infrabot", ClientID: "agent:infrabot", AgentVersion: "1.4.0",
			OnBehalf: "user:sam", Chain: []string{"agent:infrabot"}, Scopes: []string{"monitoring:read"}, Audience: "http://monitoring", DelegationID: "d-sam-infrabot", JTI: "j1b", ParentJTI: "j0"},
		{ID: "e04", Time: at(3), Action: "token.exchange", Result: "granted", Performer: "agent:argocd", ClientID: "agent:argocd",
			OnBehalf: "user:sam", Chain: []string{"agent:argocd", "agent:infrabot"}, Scopes: []string{"deploy:create"}, Audience: "http://deploy", DelegationID: "d-sam-infrabot", JTI: "j2", ParentJTI: "j1"},
		{ID: "e05", Time: at(4), Action: "request", Operation: "deploy:create", Resource: "service/checkout", Result: "granted", Performer: "agent:argocd",
			OnBehalf: "user:sam", Chain: []string{"agent:argocd", "agent:infrabot"}, Audience: "http://deploy", JTI: "j2", ReportedBy: "rs:deploy"},
		{ID: "e06", Time: at(5), Action: "token.exchange", Result: "granted", Performer: "agent:cleanup_agent", ClientID: "agent:cleanup_agent",
			OnBehalf: "user:sam", Chain: []string{"agent:cleanup_agent", "agent:argocd", "agent:infrabot"}, Audience: "agent:reaper", JTI: "j3", ParentJTI: "j2"},
		{ID: "e07", Time: at(6), Action: "token.refused", Result: "refused", Reason: "delegation_depth_exceeded", Performer: "agent:reaper", ClientID: "agent:reaper",
			OnBehalf: "user:sam", Chain: []string{"agent:reaper", "agent:cleanup_agent", "agent:argocd", "agent:infrabot"}, ParentJTI: "j3"},
		{ID: "e08", Time: at(7), Action: "token.revoked", Result: "ok", Performer: "admin", JTI: "j1b"},
		{ID: "e09", Time: at(8), Action: "token.refused", Result: "refused", Reason: "policy_denied:prod-deploys-only-from-ci", Performer: "agent:infrabot",
			ClientID: "agent:infrabot", AgentVersion: "2.0.0", OnBehalf: "user:sam", Chain: []string{"agent:infrabot"}, ParentJTI: "j0"},
		{ID: "e10", Time: at(9), Action: "token.issue", Result: "granted", Performer: "mandate", ClientID: "mandate", OnBehalf: "user:alice", JTI: "a0"},
		{ID: "e11", Time: at(10), Action: "token.exchange", Result: "granted", Performer: "agent:expense", ClientID: "agent:expense", OnBehalf: "user:alice",
			Chain: []string{"agent:expense"}, Scopes: []string{"expense:approve"}, Audience: "http://expense", DelegationID: "d-alice-expense",
			AuthorizationDetails: json.RawMessage(`[{"type":"expense_approval","max_amount":1000,"currency":"USD"}]`), JTI: "a1", ParentJTI: "a0"},
		{ID: "e12", Time: at(11), Action: "request", Operation: "expense:approve", Resource: "expense/EXP-1042", Result: "granted", Performer: "agent:expense",
			OnBehalf: "user:alice", Chain: []string{"agent:expense"}, Audience: "http://expense", JTI: "a1", ReportedBy: "rs:expense",
			Attributes: json.RawMessage(`{"amount":"487.50","currency":"USD"}`)},
		{ID: "e13", Time: at(12), Action: "request", Operation: "expense:approve", Resource: "expense/EXP-1043", Result: "refused", Reason: "limit_exceeded",
			Performer: "agent:expense", OnBehalf: "user:alice", Chain: []string{"agent:expense"}, Audience: "http://expense", JTI: "a1", ReportedBy: "rs:expense"},
	}
}

// sources returns the story appended to every backend that can run here,
// and read into a Memory source from what the first store gives back.
func sources(t *testing.T) map[string]forensics.Source {
	t.Helper()
	ctx := context.Background()
	out := map[string]forensics.Source{}
	sq, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "mandate.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sq.Close() })
	stores := map[string]interface {
		forensics.Source
		Commit(context.Context, store.Batch) error
	}{"sqlite": sq}
	if pg := postgresIfAny(t); pg != nil {
		stores["postgres"] = pg
	}
	for name, s := range stores {
		if err := s.Commit(ctx, store.Batch{Events: story()}); err != nil {
			t.Fatalf("%s: append the story: %v", name, err)
		}
		out[name] = s
	}
	var back []store.Event
	if err := store.EachEvent(ctx, sq, 0, func(ev store.Event) error { back = append(back, ev); return nil }); err != nil {
		t.Fatal(err)
	}
	out["memory"] = forensics.NewMemory(back)
	return out
}

// postgresIfAny opens a fresh PostgreSQL schema when
// MANDATE_TEST_POSTGRES_URL is set.
func postgresIfAny(t *testing.T) store.Store {
	if os.Getenv(pgtest.EnvURL) == "" {
		return nil
	}
	return pgtest.Open(t)
}

func ids(evs []store.Event) []string {
	out := make([]string, 0, len(evs))
	for _, ev := range evs {
		out = append(out, ev.ID)
	}
	return out
}

// TestQueryFilters: every filter selects the same records from every
// backend and from an export read into memory (Matches agrees with the
// stores' SQL).
func TestQueryFilters(t *testing.T) {
	srcs := sources(t)
	cases := []struct {
		name   string
		filter store.EventFilter
		want   []string // oldest first
	}{
		{name: "actor-anywhere-in-chain", filter: store.EventFilter{Actor: "agent:argocd"}, want: []string{"e04", "e05", "e06", "e07"}},
		{name: "actor-as-client-only", filter: store.EventFilter{Actor: "agent:reaper"}, want: []string{"e07"}},
		{name: "subject", filter: store.EventFilter{Subject: "user:alice"}, want: []string{"e10", "e11", "e12", "e13"}},
		{name: "action", filter: store.EventFilter{Action: "request"}, want: []string{"e05", "e12", "e13"}},
		{name: "result", filter: store.EventFilter{Result: "refused"}, want: []string{"e07", "e09", "e13"}},
		{name: "audience", filter: store.EventFilter{Audience: "http://deploy"}, want: []string{"e04", "e05"}},
		{name: "resource", filter: store.EventFilter{Resource: "expense/EXP-1042"}, want: []string{"e12"}},
		{name: "delegation", filter: store.EventFilter{DelegationID: "d-sam-infrabot"}, want: []string{"e02", "e03", "e04"}},
		{name: "agent-version", filter: store.EventFilter{AgentVersion: "2.0.0"}, want: []string{"e09"}},
		{name: "jti-or-parent", filter: store.EventFilter{JTI: "j1"}, want: []string{"e02", "e04"}},
		{name: "time-window", filter: store.EventFilter{Since: t0.Add(4 * time.Minute), Until: t0.Add(6 * time.Minute)}, want: []string{"e05", "e06"}},
		{name: "combined", filter: store.EventFilter{Actor: "agent:infrabot", Result: "refused"}, want: []string{"e07", "e09"}},
		{name: "no-match", filter: store.EventFilter{Actor: "agent:nobody"}, want: nil},
		{name: "limit-keeps-newest", filter: store.EventFilter{Subject: "user:alice", Limit: 2}, want: []string{"e12", "e13"}},
	}
	for name, src := range srcs {
		for _, tc := range cases {
			t.Run(name+"/"+tc.name, func(t *testing.T) {
				got, err := forensics.All(context.Background(), src, tc.filter)
				if err != nil {
					t.Fatal(err)
				}
				if tc.filter.Limit > 0 {
					got = got[:min(len(got), tc.filter.Limit)]
				}
				slices.Reverse(got)
				if !slices.Equal(ids(got), tc.want) {
					t.Errorf("got %v, want %v", ids(got), tc.want)
				}
			})
		}
	}
}

// TestLineage: a token's records with its ancestors' and descendants', and
// none of a sibling's.
func TestLineage(t *testing.T) {
	cases := []struct {
		name, jti string
		want      []string
	}{
		{name: "middle-of-chain", jti: "j2", want: []string{"e01", "e02", "e04", "e05", "e06", "e07"}},
		{name: "first-hop-has-every-descendant", jti: "j1", want: []string{"e01", "e02", "e04", "e05", "e06", "e07"}},
		{name: "sibling-and-its-revocation", jti: "j1b", want: []string{"e01", "e03", "e08"}},
		{name: "root-has-every-token", jti: "j0", want: []string{"e01", "e02", "e03", "e04", "e05", "e06", "e07", "e08", "e09"}},
		{name: "unknown-token", jti: "nope", want: []string{}},
	}
	for name, src := range sources(t) {
		for _, tc := range cases {
			t.Run(name+"/"+tc.name, func(t *testing.T) {
				got, err := forensics.Lineage(context.Background(), src, tc.jti)
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(ids(got), tc.want) {
					t.Errorf("got %v, want %v", ids(got), tc.want)
				}
			})
		}
	}
}

func TestAgentActivity(t *testing.T) {
	for name, src := range sources(t) {
		t.Run(name, func(t *testing.T) {
			a, err := forensics.AgentActivity(context.Background(), src, "agent:argocd", forensics.Window{})
			if err != nil {
				t.Fatal(err)
			}
			if got := ids(a.Events); !slices.Equal(got, []string{"e04", "e05", "e06", "e07"}) {
				t.Errorf("events %v", got)
			}
			want := []forensics.Subject{{Subject: "user:sam", Tokens: 1, Requests: 1, Refused: 1, ReportedBy: []string{"rs:deploy"}}}
			if fmt.Sprint(a.For) != fmt.Sprint(want) {
				t.Errorf("for %+v, want %+v", a.For, want)
			}
			if got := ids(a.Refusals); !slices.Equal(got, []string{"e07"}) {
				t.Errorf("refusals %v", got)
			}
		})
	}
}

func TestWhoApproved(t *testing.T) {
	for name, src := range sources(t) {
		t.Run(name, func(t *testing.T) {
			aps, err := forensics.WhoApproved(context.Background(), src, "expense/EXP-1042", forensics.Window{})
			if err != nil {
				t.Fatal(err)
			}
			if len(aps) != 1 {
				t.Fatalf("got %d approvals, want 1", len(aps))
			}
			ap := aps[0]
			if ap.Event.OnBehalf != "user:alice" || ap.Event.Performer != "agent:expense" || string(ap.Event.Attributes) != `{"amount":"487.50","currency":"USD"}` {
				t.Errorf("approval %+v", ap.Event)
			}
			if got := ids(ap.Authority); !slices.Equal(got, []string{"e10", "e11"}) {
				t.Errorf("authority %v, want the sign-in and the exchange", got)
			}
			if ap.Authority[1].DelegationID != "d-alice-expense" || len(ap.Authority[1].AuthorizationDetails) == 0 {
				t.Errorf("the exchange lacks its delegation or its authorization_details: %+v", ap.Authority[1])
			}
		})
	}
}

func TestAgents(t *testing.T) {
	type row struct {
		agent, version                                   string
		issued, refused, revoked, apiGranted, apiRefused int
		reportedBy                                       string
	}
	want := []row{
		{"agent:infrabot", "2.0.0", 0, 1, 0, 0, 0, ""},
		{"agent:reaper", "", 0, 1, 0, 0, 0, ""},
		{"agent:infrabot", "", 2, 1, 1, 0, 0, ""},
		{"agent:argocd", "", 1, 0, 0, 1, 0, "rs:deploy"},
		{"agent:cleanup_agent", "", 1, 0, 0, 0, 0, ""},
		{"agent:expense", "", 1, 0, 0, 1, 1, "rs:expense"},
		{"agent:infrabot", "1.4.0", 2, 0, 1, 0, 0, ""},
	}
	for name, src := range sources(t) {
		t.Run(name, func(t *testing.T) {
			stats, err := forensics.Agents(context.Background(), src, forensics.Window{})
			if err != nil {
				t.Fatal(err)
			}
			var got []row
			for _, s := range stats {
				got = append(got, row{s.Agent, s.Version, s.Issued, s.Refused, s.Revoked, s.APIGranted, s.APIRefused,
					strings.Join(s.APIReportedBy, " ")})
			}
			if !slices.Equal(got, want) {
				t.Errorf("got\n%v\nwant\n%v", got, want)
			}
			for _, s := range stats {
				if s.Agent == "agent:infrabot" && s.Version == "" && fmt.Sprintf("%.3f", s.RefusalRate) != "0.333" {
					t.Errorf("infrabot refusal rate %v, want 1/3", s.RefusalRate)
				}
			}
		})
	}
}

// TestAgentsRevocationBeforeWindow: a token issued before the window and
// revoked in it counts against the agent it was issued to.
func TestAgentsRevocationBeforeWindow(t *testing.T) {
	for name, src := range sources(t) {
		t.Run(name, func(t *testing.T) {
			stats, err := forensics.Agents(context.Background(), src, forensics.Window{Since: t0.Add(7 * time.Minute)})
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range stats {
				if s.Agent == "agent:infrabot" && s.Version == "1.4.0" && s.Revoked != 1 {
					t.Errorf("revoked %d, want 1", s.Revoked)
				}
			}
		})
	}
}

// TestAgentsCountsAggregatedRefusals: a client.auth record that stands for
// several failures (at most one a second per client, THREATS T77) counts
// them all in the agent's refusals.
func TestAgentsCountsAggregatedRefusals(t *testing.T) {
	src := forensics.NewMemory([]store.Event{
		{ID: "e1", Seq: 1, Time: t0, Action: "client.auth", Result: "refused", Reason: "client_secret_mismatch", ClientID: "agent:x",
			Attributes: json.RawMessage(`{"refusals":"5"}`)},
		{ID: "e2", Seq: 2, Time: t0.Add(time.Second), Action: "client.auth", Result: "refused", Reason: "client_secret_mismatch", ClientID: "agent:x"},
		{ID: "e3", Seq: 3, Time: t0.Add(2 * time.Second), Action: "token.issue", Result: "granted", Performer: "agent:x", ClientID: "agent:x", JTI: "j"},
	})
	stats, err := forensics.Agents(context.Background(), src, forensics.Window{})
	if err != nil {
		t.Fatal(err)
	}
	if len(stats) != 1 || stats[0].Refused != 6 || stats[0].Issued != 1 || fmt.Sprintf("%.3f", stats[0].RefusalRate) != "0.857" {
		t.Errorf("stats %+v, want agent:x refused 6 (5 + 1), issued 1, rate 6/7", stats)
	}
}

// TestReportedBy (THREATS T101): the reports name who reported each
// verifier's record, and say when the server found it contradicting the
// token it names.
func TestReportedBy(t *testing.T) {
	flagged := store.Event{ID: "r2", Action: "request", Result: "granted", Performer: "agent:argocd", OnBehalf: "user:kim",
		Chain: []string{"agent:argocd"}, JTI: "j2", ReportedBy: "rs:rogue",
		Attributes: json.RawMessage(`{"amount":"1","mandate.token_mismatch":"subject,chain"}`)}
	for _, tc := range []struct {
		name string
		ev   store.Event
		want string
	}{
		{name: "ok/server-record", ev: story()[0], want: ""},
		{name: "ok/reported", ev: story()[4], want: "rs:deploy"},
		{name: "ok/flagged", ev: flagged, want: "rs:rogue (token mismatch: subject,chain)"},
		{name: "ok/attributes-not-json", ev: store.Event{ReportedBy: "rs:x", Attributes: json.RawMessage(`[`)}, want: "rs:x"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := forensics.ReportedBy(tc.ev); got != tc.want {
				t.Errorf("ReportedBy = %q, want %q", got, tc.want)
			}
		})
	}
	src := forensics.NewMemory(append(story(), func() store.Event { e := flagged; e.Seq = 100; return e }()))
	stats, err := forensics.Agents(context.Background(), src, forensics.Window{})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range stats {
		if s.Agent == "agent:argocd" && s.Version == "" &&
			!slices.Equal(s.APIReportedBy, []string{"rs:deploy", "rs:rogue (token mismatch: subject,chain)"}) {
			t.Errorf("agent:argocd reported by %q", s.APIReportedBy)
		}
	}
	a, err := forensics.AgentActivity(context.Background(), src, "agent:argocd", forensics.Window{})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range a.For {
		if s.Subject == "user:kim" && !slices.Equal(s.ReportedBy, []string{"rs:rogue (token mismatch: subject,chain)"}) {
			t.Errorf("for user:kim reported by %q", s.ReportedBy)
		}
	}
}

// TestRefusalRatesAgreeWithAgents: RefusalRates counts the token requests
// as Agents does, from every backend, aggregated refusals included, and
// stops at its limit.
func TestRefusalRatesAgreeWithAgents(t *testing.T) {
	type row struct {
		agent, version  string
		issued, refused int
		rate            string
	}
	rowsOf := func(stats []forensics.AgentStats) []row {
		var out []row
		for _, s := range stats {
			if s.Issued+s.Refused > 0 {
				out = append(out, row{s.Agent, s.Version, s.Issued, s.Refused, fmt.Sprintf("%.3f", s.RefusalRate)})
			}
		}
		return out
	}
	srcs := sources(t)
	srcs["aggregated"] = forensics.NewMemory([]store.Event{
		{ID: "e1", Seq: 1, Time: t0, Action: "client.auth", Result: "refused", ClientID: "agent:x", Attributes: json.RawMessage(`{"refusals":"5"}`)},
		{ID: "e2", Seq: 2, Time: t0.Add(time.Second), Action: "token.issue", Result: "granted", ClientID: "agent:x", JTI: "j"},
	})
	ctx := context.Background()
	for name, src := range srcs {
		t.Run(name, func(t *testing.T) {
			for _, w := range []forensics.Window{{}, {Since: t0.Add(7 * time.Minute)}} {
				all, err := forensics.Agents(ctx, src, w)
				if err != nil {
					t.Fatal(err)
				}
				rates, err := forensics.RefusalRates(ctx, src, w, 0)
				if err != nil {
					t.Fatal(err)
				}
				if got, want := rowsOf(rates), rowsOf(all); !slices.Equal(got, want) || len(want) == 0 && w.Since.IsZero() {
					t.Errorf("window %v: RefusalRates\n%v\nAgents\n%v", w, got, want)
				}
			}
			if _, err := forensics.RefusalRates(ctx, src, forensics.Window{}, 1); !errors.Is(err, forensics.ErrTooMany) {
				t.Errorf("past the limit: %v, want ErrTooMany", err)
			}
		})
	}
}
