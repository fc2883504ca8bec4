package server_test

import (
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/mandate-dev/mandate/internal/audit"
	"github.com/mandate-dev/mandate/internal/store"
)

// TestAdminRefusalsAggregated is THREATS T77 for the admin API: a flood of
// wrong admin bearer tokens writes one admin.auth record per second, each
// counting the refusals since the record before, so the log cannot be
// flooded and no refusal goes uncounted.
func TestAdminRefusalsAggregated(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			var mu sync.Mutex
			now := time.Now()
			clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
			advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
			h := newHarnessOn(t, b.open, clock)
			bad := func() {
				t.Helper()
				req, _ := http.NewRequest(http.MethodGet, h.url+"/admin/agents", nil)
				req.Header.Set("Authorization", "Bearer guess")
				if r := h.do(req); r.status != http.StatusUnauthorized {
					t.Fatalf("wrong bearer: %d", r.status)
				}
			}
			records := func() []string {
				var out []string
				for _, ev := range h.events(store.EventFilter{Action: audit.ActionAdminAuth}) {
					out = append(out, string(ev.Attributes))
				}
				return out
			}
			for range 50 {
				bad()
			}
			if got := records(); len(got) != 1 || got[0] != `{"refusals":"1"}` {
				t.Fatalf("after a flood of 50 in one second: %q, want one record of the first", got)
			}
			advance(1100 * time.Millisecond)
			bad()
			got := records() // newest first
			if len(got) != 2 || got[0] != `{"refusals":"50"}` {
				t.Fatalf("the next second's record: %q, want it to count the 49 held back and itself", got)
			}
		})
	}
}
