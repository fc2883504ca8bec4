package server_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mandate-dev/mandate/internal/store"
	"github.com/mandate-dev/mandate/verify"
)

// TestIngestDecodesVerifyRecord: a verify.Record, every field set and
// encoded as verify encodes it, is taken by POST /audit/ingest field for
// field; the wire format is the type's, declared once, and a member it
// does not declare refuses the record.
func TestIngestDecodesVerifyRecord(t *testing.T) {
	onEveryBackend(t, func(t *testing.T, h *harness) {
		at := time.Now().UTC().Truncate(time.Millisecond)
		rec := verify.Record{
			ID: "req_0123456789abcdef0123456789abcdef", Time: at,
			Action: "expense:approve", Resource: "expense/EXP-1042", Result: verify.ResultRefused, Reason: "over_limit",
			PerformedBy: "agent:expense", OnBehalfOf: "user:alice", Chain: []string{"agent:expense", "agent:planner"},
			Scopes: []string{"expense:approve", "expense:read"}, Audience: "https://expense.example", JTI: "tok-9",
			RequestID: "api-req-9", Attributes: map[string]string{"amount": "487.50"},
			Context: map[string]any{"environment": "prod", "attempt": 2},
		}
		raw, err := json.Marshal(rec)
		if err != nil {
			t.Fatal(err)
		}
		before := h.lastSeq()
		r, _ := h.ingest("rs:reporter", "rs-reporter-secret", map[string]any{"records": []json.RawMessage{raw}})
		if r.status != 200 || r.body["accepted"] != 1.0 {
			t.Fatalf("got %d %s, want the record accepted", r.status, r.raw)
		}
		added := h.eventsSince(before)
		if len(added) != 1 {
			t.Fatalf("%d records added, want 1", len(added))
		}
		got := added[0]
		want := store.Event{
			ID: rec.ID, Action: "request", Operation: rec.Action, Resource: rec.Resource, Result: rec.Result, Reason: rec.Reason,
			Performer: rec.PerformedBy, OnBehalf: rec.OnBehalfOf, Chain: rec.Chain, Scopes: rec.Scopes, Audience: rec.Audience,
			JTI: rec.JTI, RequestID: rec.RequestID, ReportedBy: "rs:reporter",
			Attributes: json.RawMessage(`{"amount":"487.50"}`), Context: json.RawMessage(`{"attempt":2,"environment":"prod"}`),
		}
		if !got.Time.Equal(at) {
			t.Errorf("time = %v, want %v", got.Time, at)
		}
		opts := cmp.Options{cmp.FilterPath(func(p cmp.Path) bool {
			switch p.Last().String() {
			case ".Time", ".Seq", ".Hash", ".PrevHash":
				return true
			}
			return false
		}, cmp.Ignore())}
		if diff := cmp.Diff(want, got, opts); diff != "" {
			t.Errorf("stored record (-want +got):\n%s", diff)
		}

		// A member verify.Record does not declare refuses the record.
		var m map[string]any
		_ = json.Unmarshal(raw, &m)
		m["id"], m["token"] = "req_1123456789abcdef0123456789abcdef", "x"
		r, _ = h.ingest("rs:reporter", "rs-reporter-secret", map[string]any{"records": []any{m}})
		if refused, _ := r.body["refused"].([]any); r.status != 200 || len(refused) != 1 {
			t.Fatalf("got %d %s, want the record refused", r.status, r.raw)
		}
	})
}
