package server_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mandate-dev/mandate/internal/auditlog"
	"github.com/mandate-dev/mandate/internal/config"
	"github.com/mandate-dev/mandate/internal/store"
)

// verifyLog replays the whole log against every signed checkpoint, as
// `mandate audit verify --server` does, and fails the test unless it
// verifies. It returns the result.
func (h *harness) verifyLog() auditlog.Result {
	h.t.Helper()
	r := h.admin(http.MethodGet, "/audit/checkpoints", nil)
	if r.status != http.StatusOK {
		h.t.Fatalf("GET /audit/checkpoints: %d %s", r.status, r.raw)
	}
	key := r.str("verifier_key")
	var checkpoints []auditlog.Checkpoint
	for _, c := range r.body["checkpoints"].([]any) {
		cp, err := auditlog.Open(c.(map[string]any)["note"].(string), key)
		if err != nil {
			h.t.Fatalf("a checkpoint does not open: %v", err)
		}
		checkpoints = append(checkpoints, cp)
	}
	replay := auditlog.NewReplay(checkpoints)
	err := store.EachEvent(context.Background(), h.store, 0, func(ev store.Event) error {
		replay.Add(ev)
		return nil
	})
	if err != nil {
		h.t.Fatal(err)
	}
	res := replay.Finish()
	if !res.OK() {
		h.t.Fatalf("audit verify: FAILED at record %d: %s", res.FirstBad, res.Problem)
	}
	return res
}

// checkpointNow signs a checkpoint (POST /audit/checkpoints) and fails the
// test unless it is signed at the log's size.
func (h *harness) checkpointNow() {
	h.t.Helper()
	r := h.admin(http.MethodPost, "/audit/checkpoints", nil)
	if r.status != http.StatusOK {
		h.t.Fatalf("POST /audit/checkpoints: %d %s", r.status, r.raw)
	}
	if size := int64(r.body["size"].(float64)); size != h.lastSeq() {
		h.t.Fatalf("checkpoint at size %d, the log has %d records", size, h.lastSeq())
	}
}

// ingestAnswer is a decoded answer of POST /audit/ingest.
type ingestAnswer struct {
	accepted, duplicates int
	// refused maps the index of each refused record to its status and
	// reason ("400 time_out_of_range").
	refused map[int]string
}

func (h *harness) ingestOK(client, secret string, body any) ingestAnswer {
	h.t.Helper()
	r, _ := h.ingest(client, secret, body)
	if r.status != http.StatusOK {
		h.t.Fatalf("POST /audit/ingest: %d %s", r.status, r.raw)
	}
	a := ingestAnswer{accepted: int(r.body["accepted"].(float64)), duplicates: int(r.body["duplicates"].(float64)), refused: map[int]string{}}
	refused, _ := r.body["refused"].([]any)
	for _, x := range refused {
		ref := x.(map[string]any)
		if ref["error_description"] == "" {
			h.t.Errorf("refusal %v has no description", ref)
		}
		a.refused[int(ref["index"].(float64))] = fmt.Sprintf("%v %v", ref["status"], ref["reason"])
	}
	return a
}

// TestIngestCannotBreakChain (THREATS T99): records timed within a
// microsecond after the zero time, in year 9999, before 2000, with
// nanoseconds or in another zone, with a NUL or an over-long field, and a
// duplicate, all in one batch: the bad ones are refused and named, the
// others stored with their times as the log keeps them, and afterwards
// the log verifies and a new checkpoint is signed, on both backends. A
// batch holding an id the log has costs what a new one does.
func TestIngestCannotBreakChain(t *testing.T) {
	onEveryBackend(t, func(t *testing.T, h *harness) {
		now := time.Now()
		h.checkpointNow()
		rec := func(n int, edit func(map[string]any)) map[string]any {
			r := ingestRecord(n, now)
			if edit != nil {
				edit(r)
			}
			return r
		}
		at := func(s string) func(map[string]any) { return func(r map[string]any) { r["time"] = s } }
		// The record of the review, alone: whatever the answer, the log
		// verifies after it and a checkpoint is signed.
		r, _ := h.ingest("rs:reporter", "rs-reporter-secret", map[string]any{"records": []any{rec(30, at("0001-01-01T00:00:00.0000005Z"))}})
		h.verifyLog()
		h.checkpointNow()
		if r.status != http.StatusOK || !strings.Contains(r.raw, `"reason":"time_out_of_range"`) {
			t.Fatalf("the crafted time: %d %s, want it refused as time_out_of_range", r.status, r.raw)
		}
		subMicro := now.UTC().Truncate(time.Second).Add(123_456_789 * time.Nanosecond)
		zoned := now.In(time.FixedZone("UTC+14", 14*3600)).Truncate(time.Second).Add(999)
		records := []map[string]any{
			0:  rec(1, at("0001-01-01T00:00:00.0000005Z")),
			1:  rec(2, at("9999-12-31T23:59:59.999999999Z")),
			2:  rec(3, at(subMicro.Format(time.RFC3339Nano))),
			3:  rec(4, at("1999-12-31T23:59:59.9999995Z")),
			4:  rec(5, at("2000-01-01T00:00:00.0000005+00:00")),
			5:  rec(6, at(zoned.Format(time.RFC3339Nano))),
			6:  rec(7, func(r map[string]any) { r["resource"] = "expense/\x00EXP-1042" }),
			7:  rec(8, func(r map[string]any) { r["reason"] = strings.Repeat("r", 129) }),
			8:  rec(9, func(r map[string]any) { r["chain"] = []string{"agent:expense", "agent:\x00"} }),
			9:  rec(10, func(r map[string]any) { r["time"] = "yesterday" }),
			10: rec(3, nil), // record 2 again
			11: rec(11, func(r map[string]any) { r["attributes"] = map[string]string{"note": "a\nb"} }),
			12: rec(12, func(r map[string]any) { r["performed_by"] = strings.Repeat("a", 100_000) }),
		}
		got := h.ingestOK("rs:reporter", "rs-reporter-secret", map[string]any{"records": records})
		want := map[int]string{0: "400 time_out_of_range", 1: "400 time_out_of_range", 3: "400 time_out_of_range",
			6: "400 field_control_character", 7: "400 field_too_long", 8: "400 field_control_character",
			9: "400 record_malformed", 11: "400 field_control_character", 12: "400 field_too_long"}
		if got.accepted != 3 || got.duplicates != 1 || fmt.Sprint(got.refused) != fmt.Sprint(want) {
			t.Fatalf("accepted %d, duplicates %d, refused %v; want 3, 1, %v", got.accepted, got.duplicates, got.refused, want)
		}
		stored := map[string]time.Time{}
		for _, ev := range h.events(store.EventFilter{Action: "request", Result: "granted"}) {
			stored[ev.ID] = ev.Time
		}
		for n, want := range map[int]time.Time{
			3: subMicro.Truncate(time.Microsecond), 5: time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC),
			6: zoned.Truncate(time.Microsecond).UTC(),
		} {
			id := fmt.Sprintf("req_%032x", n)
			if got, ok := stored[id]; !ok || !got.Equal(want) || got.Location() != time.UTC {
				t.Errorf("record %s stored with time %v (stored %v), want %v in UTC", id, got, ok, want)
			}
		}
		if len(stored) != 3 {
			t.Errorf("%d request records stored, want 3", len(stored))
		}
		refusals := h.events(store.EventFilter{Action: "request", Result: "refused"})
		if len(refusals) != 2 || refusals[0].Reason != "records_refused" || refusals[0].ReportedBy != "" ||
			!strings.HasPrefix(refusals[0].Detail, "9 of 13 records refused: record 0 (req_") {
			t.Errorf("the refused records' record: %+v", refusals)
		}
		h.verifyLog()
		h.checkpointNow()
		// The log goes on: a new record, a checkpoint, and the log still
		// verifies against every checkpoint signed.
		if got := h.ingestOK("rs:reporter", "rs-reporter-secret", map[string]any{"records": []any{rec(20, nil)}}); got.accepted != 1 {
			t.Fatalf("a good record after: %+v", got)
		}
		h.checkpointNow()
		if res := h.verifyLog(); res.Checkpoints < 2 {
			t.Errorf("verified against %d checkpoints, want at least 2", res.Checkpoints)
		}
	})
}

// TestIngestDuplicateCostsABatch (THREATS T99): a 500-record batch holding
// one id the log has is stored with one commit, not one per record.
func TestIngestDuplicateCostsABatch(t *testing.T) {
	onEveryBackend(t, func(t *testing.T, h *harness) {
		now := time.Now()
		if got := h.ingestOK("rs:reporter", "rs-reporter-secret", map[string]any{"records": []any{ingestRecord(250, now)}}); got.accepted != 1 {
			t.Fatalf("first record: %+v", got)
		}
		var records []any
		for n := range 500 {
			records = append(records, ingestRecord(n, now))
		}
		before := h.faulty.Calls("Commit")
		got := h.ingestOK("rs:reporter", "rs-reporter-secret", map[string]any{"records": records})
		if got.accepted != 499 || got.duplicates != 1 || len(got.refused) != 0 {
			t.Fatalf("accepted %d, duplicates %d, refused %v; want 499, 1, none", got.accepted, got.duplicates, got.refused)
		}
		if n := h.faulty.Calls("Commit") - before; n != 1 {
			t.Errorf("the batch took %d commits, want 1", n)
		}
		// Sent again whole: nothing to store, no commit at all.
		before = h.faulty.Calls("Commit")
		if got := h.ingestOK("rs:reporter", "rs-reporter-secret", map[string]any{"records": records}); got.accepted != 0 || got.duplicates != 500 {
			t.Fatalf("resent: %+v", got)
		}
		if n := h.faulty.Calls("Commit") - before; n != 0 {
			t.Errorf("a resent batch took %d commits, want 0", n)
		}
		h.verifyLog()
	})
}

// TestIngestRateLimited (THREATS T99): a reporter beyond its rate is
// answered 429 with Retry-After before its batch is read, and its
// refusals are recorded once a second with their count; another reporter
// is not held back.
func TestIngestRateLimited(t *testing.T) {
	clock := time.Now()
	h := newHarnessEdited(t, openSQLite, func() time.Time { return clock }, func(c *config.Config) {
		c.RateLimits.IngestPerReporter = 1 // bursts of 2
		c.Agents = append(c.Agents, config.Agent{ID: "rs:other", Secret: "rs-other-secret", Scopes: []string{"audit:report"},
			Resources: []string{"https://expense.example"}})
	})
	body := func(n int) any { return map[string]any{"records": []any{ingestRecord(n, clock)}} }
	for n := range 2 {
		if r, _ := h.ingest("rs:reporter", "rs-reporter-secret", body(n)); r.status != http.StatusOK {
			t.Fatalf("batch %d of the burst: %d %s", n, r.status, r.raw)
		}
	}
	before := h.lastSeq()
	for n := 2; n < 5; n++ {
		r, _ := h.ingest("rs:reporter", "rs-reporter-secret", body(n))
		if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") == "" {
			t.Fatalf("batch %d beyond the rate: %d %s, want 429 with Retry-After", n, r.status, r.raw)
		}
	}
	added := h.eventsSince(before)
	if len(added) != 1 || added[0].Reason != "rate_limited_reporter" || string(added[0].Attributes) != `{"refusals":"1"}` {
		t.Errorf("records of the refusals: %+v, want one rate_limited_reporter record", added)
	}
	if r, _ := h.ingest("rs:other", "rs-other-secret", body(9)); r.status != http.StatusOK {
		t.Errorf("another reporter: %d %s", r.status, r.raw)
	}
	clock = clock.Add(time.Second)
	if r, _ := h.ingest("rs:reporter", "rs-reporter-secret", body(5)); r.status != http.StatusOK {
		t.Errorf("a second later: %d %s", r.status, r.raw)
	}
}
