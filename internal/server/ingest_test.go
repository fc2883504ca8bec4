package server_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mandate-dev/mandate/internal/store"
)

// ingestRecord is a record as forward.Forwarder sends it.
func ingestRecord(n int, at time.Time) map[string]any {
	return map[string]any{
		"id": fmt.Sprintf("req_%032x", n), "time": at.UTC().Format(time.RFC3339Nano), "action": "expense:approve",
		"resource": "expense/EXP-1042", "result": "granted", "performed_by": "agent:expense", "on_behalf_of": "user:alice",
		"chain": []string{"agent:expense"}, "scopes": []string{"expense:approve"}, "audience": "https://expense.example",
		"jti": "tok-1", "request_id": "api-req-1", "attributes": map[string]string{"amount": "487.50", "currency": "USD"},
		"context": map[string]any{"environment": "prod"},
	}
}

// ingest posts records to /audit/ingest as client (HTTP Basic).
func (h *harness) ingest(client, secret string, body any) (response, *http.Request) {
	h.t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, h.url+"/audit/ingest", bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	if client != "" {
		req.SetBasicAuth(url.QueryEscape(client), url.QueryEscape(secret))
	}
	return h.do(req), req
}

// TestAuditIngest: a verifier's records become "request" records with
// reported_by set by the server; a resent batch adds nothing; a client
// without audit:report, bad credentials and malformed bodies are refused
// whole, audited, and add no request record; a malformed record is refused
// alone, named in the answer, and recorded, and the rest of its batch is
// stored (THREATS T99).
func TestAuditIngest(t *testing.T) {
	onEveryBackend(t, func(t *testing.T, h *harness) {
		now := time.Now()
		records := func(ns ...int) map[string]any {
			var l []map[string]any
			for _, n := range ns {
				l = append(l, ingestRecord(n, now))
			}
			return map[string]any{"records": l}
		}
		cases := []struct {
			name           string
			client, secret string
			body           any
			status         int
			errCode        string
			accepted, dups int
			// refused is the reason of each refused record, by index.
			refused map[int]string
		}{
			{name: "ok/two-records", client: "rs:reporter", secret: "rs-reporter-secret", body: records(1, 2), status: 200, accepted: 2},
			{name: "ok/resent-batch-adds-nothing", client: "rs:reporter", secret: "rs-reporter-secret", body: records(1, 2), status: 200, dups: 2},
			{name: "ok/half-resent", client: "rs:reporter", secret: "rs-reporter-secret", body: records(2, 3), status: 200, accepted: 1, dups: 1},
			{name: "ok/twice-in-one-batch", client: "rs:reporter", secret: "rs-reporter-secret", body: records(6, 6), status: 200, accepted: 1, dups: 1},
			{name: "refused/no-credentials", body: records(4), status: 401, errCode: "invalid_client"},
			{name: "refused/bad-secret", client: "rs:reporter", secret: "wrong", body: records(4), status: 401, errCode: "invalid_client"},
			{name: "refused/client-without-audit-report", client: "agent:infrabot", secret: "infrabot-secret", body: records(4), status: 403, errCode: "access_denied"},
			{name: "refused/no-records", client: "rs:reporter", secret: "rs-reporter-secret", body: map[string]any{"records": []any{}}, status: 400, errCode: "invalid_request"},
			{name: "refused/unknown-field", client: "rs:reporter", secret: "rs-reporter-secret", body: map[string]any{"records": []any{ingestRecord(4, now)}, "token": "x"}, status: 400, errCode: "invalid_request"},
			{name: "refused/too-many-records", client: "rs:reporter", secret: "rs-reporter-secret", body: records(seq(10, 511)...), status: 400, errCode: "invalid_request"},
			{name: "record-refused/bad-id", client: "rs:reporter", secret: "rs-reporter-secret", body: edit(records(4), "id", "evt_1"), status: 200,
				refused: map[int]string{0: "id_invalid"}},
			{name: "record-refused/future-time", client: "rs:reporter", secret: "rs-reporter-secret", body: edit(records(4), "time", now.Add(time.Hour).Format(time.RFC3339)), status: 200,
				refused: map[int]string{0: "time_out_of_range"}},
			{name: "record-refused/bad-result", client: "rs:reporter", secret: "rs-reporter-secret", body: edit(records(4), "result", "maybe"), status: 200,
				refused: map[int]string{0: "result_invalid"}},
			{name: "record-refused/long-resource", client: "rs:reporter", secret: "rs-reporter-secret", body: edit(records(4), "resource", strings.Repeat("r", 2000)), status: 200,
				refused: map[int]string{0: "field_too_long"}},
			{name: "record-refused/unknown-field-in-a-record", client: "rs:reporter", secret: "rs-reporter-secret", body: edit(records(4), "token", "x"), status: 200,
				refused: map[int]string{0: "record_malformed"}},
			{name: "record-refused/server-attribute", client: "rs:reporter", secret: "rs-reporter-secret",
				body: edit(records(4), "attributes", map[string]string{"mandate.token_mismatch": ""}), status: 200,
				refused: map[int]string{0: "attribute_reserved"}},
			{name: "ok/one-bad-record-refuses-only-itself", client: "rs:reporter", secret: "rs-reporter-secret", body: func() any {
				b := records(4, 5)
				b["records"].([]map[string]any)[0]["result"] = "maybe"
				return b
			}(), status: 200, accepted: 1, refused: map[int]string{0: "result_invalid"}},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				before := h.lastSeq()
				r, _ := h.ingest(tc.client, tc.secret, tc.body)
				if r.status != tc.status || tc.errCode != "" && r.str("error") != tc.errCode {
					t.Fatalf("got %d %s, want %d %s", r.status, r.raw, tc.status, tc.errCode)
				}
				added := h.eventsSince(before)
				if tc.status != 200 {
					// Exactly the refusal's record, and it is not a request record.
					if len(added) != 1 || added[0].Result != "refused" || added[0].ReportedBy != "" {
						t.Fatalf("a refused ingest must leave one refusal record, got %+v", added)
					}
					return
				}
				if got := [2]int{int(r.body["accepted"].(float64)), int(r.body["duplicates"].(float64))}; got != [2]int{tc.accepted, tc.dups} {
					t.Errorf("accepted, duplicates = %v, want %d, %d", got, tc.accepted, tc.dups)
				}
				refused := map[int]string{}
				for _, x := range r.body["refused"].([]any) {
					ref := x.(map[string]any)
					if ref["status"] != 400.0 || ref["error"] != "invalid_request" {
						t.Errorf("refusal %v, want status 400 invalid_request", ref)
					}
					refused[int(ref["index"].(float64))] = ref["reason"].(string)
				}
				if fmt.Sprint(refused) != fmt.Sprint(tc.refused) {
					t.Errorf("refused %v, want %v", refused, tc.refused)
				}
				var requests []store.Event
				for _, ev := range added {
					if ev.Result == "refused" && ev.Reason == "records_refused" && ev.ReportedBy == "" {
						continue
					}
					requests = append(requests, ev)
				}
				if want := len(tc.refused) > 0; (len(added) > len(requests)) != want {
					t.Errorf("a record of the refused records: %v, want %v", len(added) > len(requests), want)
				}
				if len(requests) != tc.accepted {
					t.Fatalf("%d records appended, want %d", len(requests), tc.accepted)
				}
				for _, ev := range requests {
					if ev.Action != "request" || ev.ReportedBy != "rs:reporter" || ev.Operation != "expense:approve" ||
						ev.Resource != "expense/EXP-1042" || ev.Performer != "agent:expense" || ev.OnBehalf != "user:alice" ||
						string(ev.Attributes) != `{"amount":"487.50","currency":"USD"}` || ev.JTI != "tok-1" || ev.ClientID != "" {
						t.Errorf("record %+v", ev)
					}
				}
			})
		}
		// The records are found by the forensics filters.
		if evs := h.events(store.EventFilter{Resource: "expense/EXP-1042", Action: "request"}); len(evs) != 5 {
			t.Errorf("resource filter found %d request records, want 5", len(evs))
		}
	})
}

// TestAuditIngestFailsClosed: when the log cannot be written the batch is
// answered 503 (the forwarder keeps it and resends), and once the store
// heals the same batch is stored once.
func TestAuditIngestFailsClosed(t *testing.T) {
	onEveryBackend(t, func(t *testing.T, h *harness) {
		body := map[string]any{"records": []map[string]any{ingestRecord(1, time.Now())}}
		h.faulty.Fail("Commit", errors.New("disk full"))
		r, _ := h.ingest("rs:reporter", "rs-reporter-secret", body)
		h.faulty.Heal()
		if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" {
			t.Fatalf("got %d %s, want 503 with Retry-After", r.status, r.raw)
		}
		if n := len(h.events(store.EventFilter{Action: "request", Result: "granted"})); n != 0 {
			t.Fatalf("%d request records after a failed ingest", n)
		}
		if r, _ := h.ingest("rs:reporter", "rs-reporter-secret", body); r.status != 200 {
			t.Fatalf("after healing: %d %s", r.status, r.raw)
		}
		if n := len(h.events(store.EventFilter{Action: "request", Result: "granted"})); n != 1 {
			t.Fatalf("%d request records, want 1", n)
		}
	})
}

func edit(body map[string]any, key string, v any) map[string]any {
	body["records"].([]map[string]any)[0][key] = v
	return body
}

func seq(from, to int) []int {
	var out []int
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}
