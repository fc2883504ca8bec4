package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mandate-dev/mandate/internal/store"
)

func testTokens(t *testing.T, open func(t *testing.T) store.Store) {
	s, ctx := open(t), t.Context()
	own := store.IssuedToken{ // a client's own token: no chain, no parent
		JTI:       "own",
		GrantType: "client_credentials",
		Subject:   "agent:argocd",
		ClientID:  "agent:argocd",
		Scopes:    []string{"deploy:read"},
		IssuedAt:  base(),
		ExpiresAt: base().Add(time.Minute),
	}
	want := []store.IssuedToken{newToken("t1"), newToken("t2"), own}
	if err := s.Commit(ctx, store.Batch{Tokens: want}); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	for _, w := range want {
		got, err := s.GetToken(ctx, w.JTI)
		if err != nil {
			t.Fatalf("GetToken %s: %v", w.JTI, err)
		}
		if diff := cmp.Diff(w, got, opts()); diff != "" {
			t.Errorf("GetToken %s (-want +got):\n%s", w.JTI, diff)
		}
	}
	if _, err := s.GetToken(ctx, "missing"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetToken missing: err = %v, want ErrNotFound", err)
	}
}

func testRevokeToken(t *testing.T, open func(t *testing.T) store.Store) {
	s, ctx := open(t), t.Context()
	if err := s.Commit(ctx, store.Batch{Tokens: []store.IssuedToken{newToken("t1"), newToken("t2")}}); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	first, second := base().Add(time.Minute), base().Add(time.Hour)
	if err := s.RevokeToken(ctx, "t1", first, newEvent("rev-1", "token.revoke")); err != nil {
		t.Fatalf("RevokeToken: %v", err)
	}
	// RFC 7009 §2.2: revoking a revoked token succeeds; the first time stays.
	if err := s.RevokeToken(ctx, "t1", second, newEvent("rev-2", "token.revoke")); err != nil {
		t.Fatalf("RevokeToken again: %v", err)
	}
	err := s.RevokeToken(ctx, "missing", second, newEvent("rev-3", "token.revoke"))
	if !errors.Is(err, store.ErrNotFound) {
		t.Errorf("RevokeToken missing: err = %v, want ErrNotFound", err)
	}
	want := newToken("t1")
	want.Revoked, want.RevokedAt = true, first
	got, err := s.GetToken(ctx, "t1")
	if err != nil {
		t.Fatalf("GetToken: %v", err)
	}
	if diff := cmp.Diff(want, got, opts()); diff != "" {
		t.Errorf("revoked token (-want +got):\n%s", diff)
	}
	other, err := s.GetToken(ctx, "t2")
	if err != nil {
		t.Fatalf("GetToken t2: %v", err)
	}
	if other.Revoked {
		t.Error("revoking t1 revoked t2")
	}
	if diff := cmp.Diff([]string{"rev-2", "rev-1"}, eventIDs(mustEvents(t, s))); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}

func testCommit(t *testing.T, open func(t *testing.T) store.Store) {
	t.Run("ok/tokens-and-events", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		b := store.Batch{
			Tokens: []store.IssuedToken{newToken("t1"), newToken("t2")},
			Events: []store.Event{newEvent("e1", "token.issue"), newEvent("e2", "token.issue")},
		}
		if err := s.Commit(ctx, b); err != nil {
			t.Fatalf("Commit: %v", err)
		}
		for _, tok := range b.Tokens {
			if _, err := s.GetToken(ctx, tok.JTI); err != nil {
				t.Errorf("GetToken %s: %v", tok.JTI, err)
			}
		}
		if diff := cmp.Diff([]string{"e2", "e1"}, eventIDs(mustEvents(t, s))); diff != "" {
			t.Errorf("events (-want +got):\n%s", diff)
		}
	})
	t.Run("ok/empty", func(t *testing.T) {
		s := open(t)
		if err := s.Commit(t.Context(), store.Batch{}); err != nil {
			t.Errorf("Commit of an empty batch: %v", err)
		}
	})
	t.Run("ok/events-only", func(t *testing.T) {
		s := open(t)
		if err := s.Commit(t.Context(), store.Batch{Events: []store.Event{newEvent("deny", "token.exchange")}}); err != nil {
			t.Fatalf("Commit: %v", err)
		}
		if diff := cmp.Diff([]string{"deny"}, eventIDs(mustEvents(t, s))); diff != "" {
			t.Errorf("events (-want +got):\n%s", diff)
		}
	})
	// A batch is all or nothing: a duplicate jti anywhere fails it whole.
	for _, tc := range []struct {
		name   string
		tokens []string
	}{
		{name: "fail/jti-exists", tokens: []string{"new-1", "old", "new-2"}},
		{name: "fail/jti-twice-in-batch", tokens: []string{"new-1", "new-2", "new-1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, ctx := open(t), t.Context()
			err := s.Commit(ctx, store.Batch{
				Tokens: []store.IssuedToken{newToken("old")},
				Events: []store.Event{newEvent("e-old", "token.issue")},
			})
			if err != nil {
				t.Fatalf("Commit: %v", err)
			}
			b := store.Batch{Events: []store.Event{newEvent("e-new-1", "token.issue"), newEvent("e-new-2", "token.issue")}}
			for _, jti := range tc.tokens {
				b.Tokens = append(b.Tokens, newToken(jti))
			}
			if err := s.Commit(ctx, b); !errors.Is(err, store.ErrAlreadyExists) {
				t.Fatalf("Commit: err = %v, want ErrAlreadyExists", err)
			}
			for _, jti := range []string{"new-1", "new-2"} {
				if _, err := s.GetToken(ctx, jti); !errors.Is(err, store.ErrNotFound) {
					t.Errorf("GetToken %s after a failed batch: err = %v, want ErrNotFound", jti, err)
				}
			}
			if diff := cmp.Diff([]string{"e-old"}, eventIDs(mustEvents(t, s))); diff != "" {
				t.Errorf("events after a failed batch (-want +got):\n%s", diff)
			}
		})
	}
}

func testEventRoundTrip(t *testing.T, open func(t *testing.T) store.Store) {
	s, ctx := open(t), t.Context()
	full := store.Event{
		ID:           "ev-full",
		Time:         base(),
		RequestID:    "req-1",
		Action:       "token.exchange",
		Result:       "deny",
		Reason:       "scope_widening",
		Detail:       "requested deploy:delete",
		Performer:    "agent:argocd",
		OnBehalf:     "user:sam",
		Chain:        []string{"agent:argocd", "agent:infrabot"},
		ClientID:     "agent:argocd",
		Scopes:       []string{"deploy:create"},
		Requested:    []string{"deploy:create", "deploy:delete"},
		Audience:     "https://deploy.example",
		Resource:     "https://deploy.example/api",
		Context:      []byte(`{"environment":"prod","trigger":"ci_pipeline"}`),
		DelegationID: "dlg_1",
		JTI:          "jti-2",
		ParentJTI:    "jti-1",
		AgentVersion: "1.4.2+build.7",
		// Spacing, key order, duplicate keys, escapes and unicode that a
		// JSON-normalizing column (jsonb) would not keep: the record must
		// read back byte for byte as it was hashed.
		AuthorizationDetails: []byte("[ {\"type\" : \"expense_approval\",\n\t\"max_amount\":500.10, \"currency\":\"EUR\"} ,{\"type\":\"x\"}]"),
		Operation:            "expense:approve",
		Attributes:           []byte(`{"zeta":1,  "amount":"487.50", "amount":"9", "city":"Zürich 日本 🚀", "esc":"\u00e9\n"}`),
		ReportedBy:           "agent:gateway",
	}
	bare := store.Event{ID: "ev-bare", Action: "noop"}
	// one has a single v2 field set: a v2 record that is mostly empty.
	one := store.Event{ID: "ev-one", Action: "request", ReportedBy: "agent:gateway"}
	if err := s.Commit(ctx, store.Batch{Events: []store.Event{full, bare, one}}); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	got := mustEvents(t, s)
	if diff := cmp.Diff([]store.Event{one, bare, full}, got, opts()); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	chained := VerifyChain(t, s)
	if diff := cmp.Diff([]store.Event{full, bare, one}, chained, opts()); diff != "" {
		t.Errorf("events read forward (-want +got):\n%s", diff)
	}
	for _, e := range append(got, chained...) {
		if e.ID != full.ID {
			continue
		}
		for _, f := range []struct {
			name      string
			got, want []byte
		}{
			{"Context", e.Context, full.Context},
			{"AuthorizationDetails", e.AuthorizationDetails, full.AuthorizationDetails},
			{"Attributes", e.Attributes, full.Attributes},
		} {
			if !bytes.Equal(f.got, f.want) {
				t.Errorf("%s reads back %q, want %q byte for byte", f.name, f.got, f.want)
			}
		}
	}
}

// testEventSeq checks that every write path appends events with a Seq that
// grows strictly in commit order.
func testEventSeq(t *testing.T, open func(t *testing.T) store.Store) {
	s, ctx := open(t), t.Context()
	steps := []func(id string) error{
		func(id string) error { return s.CreateUser(ctx, newUser("u"), newEvent(id, "user.create")) },
		func(id string) error {
			return s.Commit(ctx, store.Batch{Tokens: []store.IssuedToken{newToken("t")}, Events: []store.Event{newEvent(id, "token.issue")}})
		},
		func(id string) error {
			_, err := s.UpdateUser(ctx, "u", func(u store.User) (store.User, error) { return u, nil }, newEvent(id, "user.update"))
			return err
		},
		func(id string) error { return s.RevokeToken(ctx, "t", base(), newEvent(id, "token.revoke")) },
		func(id string) error { return s.CreateAgent(ctx, newAgent("a"), newEvent(id, "agent.create")) },
		func(id string) error {
			return s.CreateDelegation(ctx, newDelegation("d"), newEvent(id, "delegation.create"))
		},
		func(id string) error { return s.CreateKey(ctx, newKey("k"), newEvent(id, "key.create")) },
		func(id string) error { return s.Commit(ctx, store.Batch{Events: []store.Event{newEvent(id, "deny")}}) },
	}
	var want []string
	for i, step := range steps {
		id := fmt.Sprintf("ev-%d", i)
		if err := step(id); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		want = append([]string{id}, want...)
	}
	got := mustEvents(t, s)
	if diff := cmp.Diff(want, eventIDs(got)); diff != "" {
		t.Errorf("events newest first (-want +got):\n%s", diff)
	}
	for i := 1; i < len(got); i++ {
		if got[i].Seq <= 0 || got[i].Seq >= got[i-1].Seq {
			t.Errorf("Seq of %s is %d, not below %d of %s", got[i].ID, got[i].Seq, got[i-1].Seq, got[i-1].ID)
		}
	}
}

func testQueryEvents(t *testing.T, open func(t *testing.T) store.Store) {
	s, ctx := open(t), t.Context()
	at := func(m int) time.Time { return base().Add(time.Duration(m) * time.Minute) }
	evs := []store.Event{
		{ID: "e1", Time: at(0), Action: "token.exchange", Result: "granted", Performer: "agent:a", OnBehalf: "user:sam",
			Chain: []string{"agent:a"}, ClientID: "agent:a", Audience: "agent:argocd", DelegationID: "dlg_1",
			AgentVersion: "1.4.2", JTI: "j1"},
		{ID: "e2", Time: at(1), Action: "token.exchange", Result: "granted", Performer: "agent:b", OnBehalf: "user:sam",
			Chain: []string{"agent:b", "agent:a"}, ClientID: "agent:b", Audience: "agent:argocd",
			Resource: "https://deploy.example/api", DelegationID: "dlg_1", AgentVersion: "1.5.0", JTI: "j2", ParentJTI: "j1"},
		{ID: "e3", Time: at(2), Action: "token.revoke", Result: "ok", Performer: "admin:root", OnBehalf: "user:kim", JTI: "j3"},
		{ID: "e4", Time: at(3), Action: "token.exchange", Result: "granted", Performer: "agent:c", OnBehalf: "user:kim",
			Chain: []string{"agent:c", "agent:d", "agent:e"}, ClientID: "agent:c", Audience: "https://deploy.example",
			Resource: "https://deploy.example/api", DelegationID: "dlg_2", AgentVersion: "1.4.2", JTI: "j4"},
		{ID: "e5", Time: at(4), Action: "client.auth", Result: "deny", ClientID: "agent:f", AgentVersion: "1.4.2"},
		{ID: "e6", Time: at(5), Action: "token.revoke", Result: "ok", Performer: "user:sam", OnBehalf: "user:sam", JTI: "j1",
			DelegationID: "dlg_1"},
	}
	// One commit each, so that commit order is unambiguous.
	for _, e := range evs {
		if err := s.Commit(ctx, store.Batch{Events: []store.Event{e}}); err != nil {
			t.Fatalf("Commit %s: %v", e.ID, err)
		}
	}
	seq := map[string]int64{}
	for _, e := range mustEvents(t, s) {
		seq[e.ID] = e.Seq
	}
	for _, tc := range []struct {
		name   string
		filter store.EventFilter
		want   []string
	}{
		{name: "ok/all-newest-first", want: []string{"e6", "e5", "e4", "e3", "e2", "e1"}},
		{name: "ok/actor-in-chain", filter: store.EventFilter{Actor: "agent:a"}, want: []string{"e2", "e1"}},
		{name: "ok/actor-deep-in-chain", filter: store.EventFilter{Actor: "agent:e"}, want: []string{"e4"}},
		{name: "ok/actor-is-client", filter: store.EventFilter{Actor: "agent:f"}, want: []string{"e5"}},
		{name: "ok/actor-is-performer", filter: store.EventFilter{Actor: "admin:root"}, want: []string{"e3"}},
		{name: "ok/actor-not-subject", filter: store.EventFilter{Actor: "user:sam"}, want: []string{"e6"}},
		{name: "ok/actor-no-match", filter: store.EventFilter{Actor: "agent:"}, want: nil},
		{name: "ok/subject", filter: store.EventFilter{Subject: "user:sam"}, want: []string{"e6", "e2", "e1"}},
		{name: "ok/action", filter: store.EventFilter{Action: "token.revoke"}, want: []string{"e6", "e3"}},
		{name: "ok/jti-or-parent", filter: store.EventFilter{JTI: "j1"}, want: []string{"e6", "e2", "e1"}},
		{name: "ok/since-inclusive", filter: store.EventFilter{Since: at(4)}, want: []string{"e6", "e5"}},
		{name: "ok/until-exclusive", filter: store.EventFilter{Until: at(2)}, want: []string{"e2", "e1"}},
		{name: "ok/since-until", filter: store.EventFilter{Since: at(1), Until: at(3)}, want: []string{"e3", "e2"}},
		{name: "ok/subject-and-action", filter: store.EventFilter{Subject: "user:sam", Action: "token.exchange"}, want: []string{"e2", "e1"}},
		{name: "ok/actor-and-subject", filter: store.EventFilter{Actor: "agent:b", Subject: "user:sam"}, want: []string{"e2"}},
		{name: "ok/limit", filter: store.EventFilter{Limit: 2}, want: []string{"e6", "e5"}},
		{name: "ok/before-seq", filter: store.EventFilter{BeforeSeq: seq["e4"]}, want: []string{"e3", "e2", "e1"}},
		{name: "ok/before-seq-limit", filter: store.EventFilter{BeforeSeq: seq["e4"], Limit: 1}, want: []string{"e3"}},
		{name: "ok/before-seq-and-actor", filter: store.EventFilter{BeforeSeq: seq["e2"], Actor: "agent:a"}, want: []string{"e1"}},
		{name: "ok/before-first", filter: store.EventFilter{BeforeSeq: seq["e1"]}, want: nil},
		{name: "ok/result", filter: store.EventFilter{Result: "granted"}, want: []string{"e4", "e2", "e1"}},
		{name: "ok/result-exact-not-prefix", filter: store.EventFilter{Result: "grant"}, want: nil},
		{name: "ok/result-and-action", filter: store.EventFilter{Result: "ok", Action: "token.revoke"}, want: []string{"e6", "e3"}},
		{name: "ok/audience", filter: store.EventFilter{Audience: "agent:argocd"}, want: []string{"e2", "e1"}},
		{name: "ok/audience-is-not-resource", filter: store.EventFilter{Audience: "https://deploy.example/api"}, want: nil},
		{name: "ok/resource", filter: store.EventFilter{Resource: "https://deploy.example/api"}, want: []string{"e4", "e2"}},
		{name: "ok/resource-is-not-audience", filter: store.EventFilter{Resource: "agent:argocd"}, want: nil},
		{name: "ok/delegation", filter: store.EventFilter{DelegationID: "dlg_1"}, want: []string{"e6", "e2", "e1"}},
		{name: "ok/delegation-exact-not-prefix", filter: store.EventFilter{DelegationID: "dlg"}, want: nil},
		{name: "ok/delegation-and-before-seq", filter: store.EventFilter{DelegationID: "dlg_1", BeforeSeq: seq["e6"], Limit: 1},
			want: []string{"e2"}},
		{name: "ok/agent-version", filter: store.EventFilter{AgentVersion: "1.4.2"}, want: []string{"e5", "e4", "e1"}},
		{name: "ok/agent-version-and-result", filter: store.EventFilter{AgentVersion: "1.4.2", Result: "deny"}, want: []string{"e5"}},
		{name: "ok/agent-version-and-delegation", filter: store.EventFilter{AgentVersion: "1.4.2", DelegationID: "dlg_1"},
			want: []string{"e1"}},
		{name: "ok/every-new-filter", filter: store.EventFilter{Result: "granted", Audience: "agent:argocd",
			Resource: "https://deploy.example/api", DelegationID: "dlg_1", AgentVersion: "1.5.0"}, want: []string{"e2"}},
		{name: "ok/ids", filter: store.EventFilter{IDs: []string{"e5", "e1", "e9", "e1"}}, want: []string{"e5", "e1"}},
		{name: "ok/ids-and-action", filter: store.EventFilter{IDs: []string{"e3", "e4", "e6"}, Action: "token.revoke"},
			want: []string{"e6", "e3"}},
		{name: "ok/ids-none-known", filter: store.EventFilter{IDs: []string{"e0", "x\x00", "\xff"}}, want: nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.QueryEvents(ctx, tc.filter)
			if err != nil {
				t.Fatalf("QueryEvents: %v", err)
			}
			if diff := cmp.Diff(tc.want, eventIDs(got), opts()); diff != "" {
				t.Errorf("ids (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("ok/request-ids", func(t *testing.T) {
		// Verifiers' records by id, as POST /audit/ingest finds those of a
		// batch it already holds, among the server's own records.
		s, ctx := open(t), t.Context()
		var b store.Batch
		for i := range 300 {
			ev := newEvent(fmt.Sprintf("req_%03d", i), "request")
			ev.ReportedBy = "rs:api"
			b.Events = append(b.Events, ev, newEvent(fmt.Sprintf("req_%03d", i), "token.issue"))
		}
		if err := s.Commit(ctx, b); err != nil {
			t.Fatalf("Commit: %v", err)
		}
		ids := make([]string, store.MaxEventIDs)
		for i := range ids {
			ids[i] = fmt.Sprintf("req_%03d", 299-i)
		}
		got, err := s.QueryEvents(ctx, store.EventFilter{IDs: ids, Action: "request", Limit: 1000})
		if err != nil {
			t.Fatalf("QueryEvents: %v", err)
		}
		if len(got) != 300 || got[0].ID != "req_299" || got[0].Action != "request" || got[299].ID != "req_000" {
			t.Errorf("QueryEvents by %d ids: %d records, want the 300 request records", len(ids), len(got))
		}
		if _, err := s.QueryEvents(ctx, store.EventFilter{IDs: append(ids, "one-more")}); err == nil {
			t.Errorf("QueryEvents with %d ids succeeded, want an error", store.MaxEventIDs+1)
		}
	})
	t.Run("ok/paginate", func(t *testing.T) {
		var got []string
		f := store.EventFilter{Limit: 4}
		for range 10 {
			page, err := s.QueryEvents(ctx, f)
			if err != nil {
				t.Fatalf("QueryEvents: %v", err)
			}
			if len(page) == 0 {
				break
			}
			got = append(got, eventIDs(page)...)
			f.BeforeSeq = page[len(page)-1].Seq
		}
		if diff := cmp.Diff([]string{"e6", "e5", "e4", "e3", "e2", "e1"}, got); diff != "" {
			t.Errorf("pages (-want +got):\n%s", diff)
		}
	})
}

func testQueryEventsLimit(t *testing.T, open func(t *testing.T) store.Store) {
	s, ctx := open(t), t.Context()
	var b store.Batch
	for i := range 1005 {
		b.Events = append(b.Events, newEvent(fmt.Sprintf("e%04d", i), "bulk"))
	}
	if err := s.Commit(ctx, b); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	for _, tc := range []struct {
		name  string
		limit int
		want  int
	}{
		{name: "ok/zero-means-100", limit: 0, want: 100},
		{name: "ok/explicit", limit: 7, want: 7},
		{name: "ok/capped-at-1000", limit: 5000, want: 1000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.QueryEvents(ctx, store.EventFilter{Limit: tc.limit})
			if err != nil {
				t.Fatalf("QueryEvents: %v", err)
			}
			if len(got) != tc.want {
				t.Errorf("got %d events, want %d", len(got), tc.want)
			}
			if len(got) > 0 && got[0].ID != "e1004" {
				t.Errorf("first event is %s, want the newest, e1004", got[0].ID)
			}
		})
	}
}

// testQueryRightAfterCommit: a record is found by every filter as soon as
// its commit returns, whatever a backend does later to index it (SQLite's
// query indexes are built in batches behind the appends).
func testQueryRightAfterCommit(t *testing.T, open func(t *testing.T) store.Store) {
	s, ctx := open(t), t.Context()
	for i := range 20 {
		e := store.Event{ID: fmt.Sprintf("e%d", i), Time: base(), Action: "token.exchange", Result: "granted",
			Performer: "agent:a", OnBehalf: "user:sam", Chain: []string{"agent:a", fmt.Sprintf("agent:hop%d", i)},
			ClientID: "agent:a", DelegationID: "dlg_1", JTI: fmt.Sprintf("j%d", i), ParentJTI: fmt.Sprintf("j%d", i-1),
			Resource: "https://api.example/repo"}
		if err := s.Commit(ctx, store.Batch{Events: []store.Event{e}}); err != nil {
			t.Fatalf("Commit %s: %v", e.ID, err)
		}
		for _, f := range []store.EventFilter{
			{}, {Actor: "agent:a"}, {Actor: fmt.Sprintf("agent:hop%d", i)}, {Subject: "user:sam"},
			{Action: "token.exchange"}, {JTI: e.JTI}, {DelegationID: "dlg_1"}, {Actor: "agent:a", Subject: "user:sam"},
			{Resource: e.Resource}, {Resource: e.Resource, Since: base()}, {Since: base()},
		} {
			f.Limit = 1
			got, err := s.QueryEvents(ctx, f)
			if err != nil {
				t.Fatalf("QueryEvents %+v: %v", f, err)
			}
			if len(got) != 1 || got[0].ID != e.ID {
				t.Fatalf("right after committing %s, QueryEvents %+v = %v, want it", e.ID, f, eventIDs(got))
			}
		}
		// The record before it, through the parent jti.
		if got, err := s.QueryEvents(ctx, store.EventFilter{JTI: fmt.Sprintf("j%d", i-1)}); err != nil || (i > 0 && len(got) != 2) {
			t.Fatalf("QueryEvents jti j%d = %v, %v; want two records", i-1, eventIDs(got), err)
		}
	}
}
