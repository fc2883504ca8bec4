package postgres_test

import (
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mandate-dev/mandate/internal/auditchain"
	"github.com/mandate-dev/mandate/internal/store"
	"github.com/mandate-dev/mandate/internal/store/postgres"
	"github.com/mandate-dev/mandate/internal/store/storetest"
)

// compactCases are records of every shape migration 18 stores apart: a
// chain that is the performer alone or not, requested scopes equal to the
// granted ones or not, empty lists, a jti with and without a parent, a
// verifier's record.
func compactCases(base time.Time) []store.Event {
	at := func(m int) time.Time { return base.Add(time.Duration(m) * time.Minute) }
	return []store.Event{
		{ID: "e1", Time: at(1), RequestID: "req_1", Action: "token.exchange", Result: "granted", Performer: "agent:a",
			OnBehalf: "user:sam", Chain: []string{"agent:a"}, ClientID: "agent:a", Scopes: []string{"read"},
			Requested: []string{"read"}, Audience: "https://api.example", DelegationID: "dlg_1", JTI: "j1"},
		{ID: "e2", Time: at(2), Action: "token.exchange", Result: "granted", Performer: "agent:b", OnBehalf: "user:sam",
			Chain: []string{"agent:b", "agent:a"}, ClientID: "agent:b", Scopes: []string{"read"},
			Requested: []string{"read", "write"}, Audience: "https://api.example", JTI: "j2", ParentJTI: "j1",
			Context: []byte(`{"environment":"prod"}`)},
		{ID: "e3", Time: at(3), Action: "client.auth", Result: "deny", Reason: "bad_secret", ClientID: "agent:c",
			AgentVersion: "1.4.2"},
		{ID: "e4", Time: at(4), Action: "token.revoke", Result: "ok", Performer: "admin:root", Chain: []string{"agent:x"},
			JTI: "j1"},
		{ID: "q5", Time: at(5), Action: "request", Result: "allowed", Performer: "agent:a", Chain: []string{"agent:a"},
			Scopes: []string{"read"}, Resource: "https://api.example/x", JTI: "j2", Operation: "GET /x",
			ReportedBy: "verifier:api", Attributes: []byte(`{"k":"v"}`)},
		{ID: "e6", Time: at(6), Action: "token.exchange", Result: "granted", Performer: "", Chain: []string{""},
			Scopes: []string{"a", "b"}, Requested: []string{"b", "a"}, JTI: "j6",
			AuthorizationDetails: []byte(`[{"type":"x"}]`)},
	}
}

// TestCompactRecordsReadTheSame: a log written before migration 18 (the
// lists stored whole, the indexes of migration 17) reads back the same
// after it, record for record, and its chain verifies; the same records
// appended after it read back the same too, though their rows leave out
// a chain that is the performer and requested scopes that are the granted
// ones; and the lookups by jti and by a verifier's record id find both.
func TestCompactRecordsReadTheSame(t *testing.T) {
	testURL(t)
	t.Parallel()
	ctx := t.Context()
	schema := newSchema(t)
	conn := rawConn(t, schema)
	cfg := postgres.WithAuditLayout(config(t, schema), 4, 4)
	if err := postgres.MigrateTo(ctx, cfg, 17); err != nil {
		t.Fatalf("MigrateTo 17: %v", err)
	}
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	old := compactCases(base)
	head := auditchain.Genesis
	for i := range old {
		e := &old[i]
		e.Seq = int64(i + 1)
		head = auditchain.Next(head, *e)
		e.Hash = slices.Clone(head[:])
		// As migration 17's appends wrote them.
		if _, err := conn.Exec(ctx, `INSERT INTO events (seq, id, time, request_id, action, result, reason, detail,
			performer, on_behalf, chain, client_id, scopes, requested, audience, resource, context, delegation_id, jti,
			parent_jti, hash, agent_version, authorization_details, operation, attributes, reported_by)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21,
			$22, $23, $24, $25, $26)`,
			e.Seq, e.ID, e.Time, e.RequestID, e.Action, e.Result, e.Reason, e.Detail, e.Performer, e.OnBehalf,
			list(e.Chain), e.ClientID, list(e.Scopes), list(e.Requested), e.Audience, e.Resource, text(e.Context),
			e.DelegationID, e.JTI, e.ParentJTI, e.Hash, e.AgentVersion, text(e.AuthorizationDetails), e.Operation,
			text(e.Attributes), e.ReportedBy); err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{"": true}
		for _, a := range append([]string{e.Performer, e.ClientID}, e.Chain...) {
			if !seen[a] {
				seen[a] = true
				if _, err := conn.Exec(ctx, "INSERT INTO event_actors (actor, seq) VALUES ($1, $2)", a, e.Seq); err != nil {
					t.Fatal(err)
				}
			}
		}
		if e.Action == "request" {
			if _, err := conn.Exec(ctx, "INSERT INTO event_request_ids (id, seq) VALUES ($1, $2)", e.ID, e.Seq); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := conn.Exec(ctx, "UPDATE events_head SET last_seq = $1, last_hash = $2", len(old), head[:]); err != nil {
		t.Fatal(err)
	}

	s := openStore(t, cfg)
	got := storetest.VerifyChain(t, s)
	if diff := cmp.Diff(old, got); diff != "" {
		t.Fatalf("the log written before migration 18, read after it (-before +after):\n%s", diff)
	}

	// The same records again, appended by this build (verifiers' ids are
	// unique: the copy's get another).
	again := compactCases(base)
	for i := range again {
		again[i].ID += "-again"
	}
	if err := s.Commit(ctx, store.Batch{Events: again}); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	all := storetest.VerifyChain(t, s)
	if len(all) != 2*len(old) {
		t.Fatalf("%d records, want %d", len(all), 2*len(old))
	}
	for i, e := range all[len(old):] {
		want := again[i]
		want.Seq, want.Hash = e.Seq, e.Hash
		if diff := cmp.Diff(want, e); diff != "" {
			t.Errorf("record %s appended after migration 18 (-want +got):\n%s", want.ID, diff)
		}
	}
	var nullChains, nullRequested int
	if err := conn.QueryRow(ctx, "SELECT count(*) FILTER (WHERE chain IS NULL), count(*) FILTER (WHERE requested IS NULL) FROM events").
		Scan(&nullChains, &nullRequested); err != nil {
		t.Fatal(err)
	}
	// e1, q5 and e6 have a chain of their performer alone; e1, e3 and e4
	// requested the scopes granted (the same, or none).
	if nullChains != 3 || nullRequested != 3 {
		t.Errorf("rows without a chain %d, without requested scopes %d; want 3 and 3", nullChains, nullRequested)
	}

	// The old records' actors (7), and the new ones' less their clients:
	// e2's second in its chain, e4's performer and chain, q5's performer;
	// e1 and e3 name none but their client.
	if n, want := countIn(t, conn, "event_actors"), 7+4; n != want {
		t.Errorf("%d rows in event_actors, want %d", n, want)
	}
	for _, c := range []struct {
		name string
		f    store.EventFilter
		want []string
	}{
		{"ok/jti-or-parent", store.EventFilter{JTI: "j1"}, []string{"e4-again", "e2-again", "e1-again", "e4", "e2", "e1"}},
		{"ok/jti", store.EventFilter{JTI: "j6"}, []string{"e6-again", "e6"}},
		{"ok/request-ids", store.EventFilter{Action: "request", IDs: []string{"q5", "q5-again", "e1"}}, []string{"q5-again", "q5"}},
		{"ok/ids", store.EventFilter{IDs: []string{"q5", "e1"}}, []string{"q5", "e1"}},
		// agent:a is e1's client and performer, e2's chain, q5's
		// performer; agent:b e2's client and performer.
		{"ok/actor", store.EventFilter{Actor: "agent:a"}, []string{"q5-again", "e2-again", "e1-again", "q5", "e2", "e1"}},
		{"ok/actor-client", store.EventFilter{Actor: "agent:b"}, []string{"e2-again", "e2"}},
		{"ok/actor-client-page", store.EventFilter{Actor: "agent:a", Limit: 2, BeforeSeq: all[len(old)+1].Seq},
			[]string{"e1-again", "q5"}},
		{"ok/actor-and-subject", store.EventFilter{Actor: "agent:a", Subject: "user:sam"},
			[]string{"e2-again", "e1-again", "e2", "e1"}},
		{"ok/action-indexed", store.EventFilter{Action: "token.revoke"}, []string{"e4-again", "e4"}},
		{"ok/action-common", store.EventFilter{Action: "token.exchange"},
			[]string{"e6-again", "e2-again", "e1-again", "e6", "e2", "e1"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			evs, err := s.QueryEvents(ctx, c.f)
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, e := range evs {
				ids = append(ids, e.ID)
			}
			if diff := cmp.Diff(c.want, ids); diff != "" {
				t.Errorf("records (-want +got):\n%s", diff)
			}
		})
	}
}

// list is l as migration 17's appends stored a list: never NULL.
func list(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}

// text is b as a nullable text column: NULL when empty.
func text(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return string(b)
}
