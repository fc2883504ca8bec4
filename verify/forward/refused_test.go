package forward_test

import (
	"encoding/json"
	"github.com/mandate-dev/mandate/verify/internal/feedtest"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/mandate-dev/mandate/verify/forward"
)

// TestForwarderDropsOnlyRefusedRecords (THREATS T100): records the issuer
// refuses on their own, named in its 200 answer, are dropped and counted
// as Rejected (also in the metrics) and logged once; the rest of their
// batch is stored and counted as Sent.
func TestForwarderDropsOnlyRefusedRecords(t *testing.T) {
	s := newIngestServer(t)
	bad := map[string]bool{testRecord(2).ID: true, testRecord(7).ID: true, testRecord(8).ID: true}
	s.set(func(s *ingestServer) {
		s.refuse = func(rec map[string]any) string {
			if bad[rec["id"].(string)] {
				return "field_too_long"
			}
			return ""
		}
	})
	var logs feedtest.SyncBuffer
	f := startForwarder(t, t.Context(), forwarderConfig(s, func(c *forward.Config) {
		c.Dir = t.TempDir()
		c.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
	}))
	recordRange(f, 1, 10)
	if err := f.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	want := slices.DeleteFunc(ids(1, 10), func(id string) bool { return bad[id] })
	if got := s.storedIDs(); !slices.Equal(got, want) {
		t.Errorf("stored %v, want %v", got, want)
	}
	if st := f.Stats(); st.Sent != 7 || st.Rejected != 3 || st.Dropped != 0 || st.Buffered != 0 {
		t.Errorf("Stats = %+v, want 7 sent, 3 rejected", st)
	}
	if n := len(s.entered); n != 2 {
		t.Errorf("%d requests, want 2: refused records are not sent again", n)
	}
	var b strings.Builder
	if err := f.WriteMetrics(&b); err != nil || !strings.Contains(b.String(), "mandate_records_rejected_total 3\n") {
		t.Errorf("metrics: %v\n%s", err, b.String())
	}
	var errs []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["level"] == "ERROR" {
			errs = append(errs, m)
		}
	}
	if len(errs) != 1 || errs[0]["reason"] != "field_too_long" {
		t.Errorf("error logs %v, want one naming field_too_long", errs)
	}
}
