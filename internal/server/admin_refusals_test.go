package server_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mandate-dev/mandate/internal/audit"
	"github.com/mandate-dev/mandate/internal/config"
	"github.com/mandate-dev/mandate/internal/store"
	"github.com/mandate-dev/mandate/oauth"
)

// TestAdminRefusalsAggregated is THREATS T77 for the admin API: a flood of
// wrong admin bearer tokens writes one admin.auth record per second, each
// counting the refusals since the record before, so the log cannot be
// flooded and no refusal goes uncounted.
func TestAdminRefusalsAggregated(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			h, advance := newClockedHarness(t, b.open)
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

// TestClientAuthRefusalsAggregated is THREATS T77 for client
// authentication: failures are counted per client_id, each client's first
// failure of a second is recorded with the count since its previous record,
// and a flood of made-up client ids is recorded once a second.
func TestClientAuthRefusalsAggregated(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			h, advance := newClockedHarness(t, b.open)
			bad := func(client string) {
				t.Helper()
				form := url.Values{"grant_type": {oauth.GrantClientCredentials}}
				if r := h.postAs("/token", client, "not-the-secret", form, nil); r.status != http.StatusUnauthorized {
					t.Fatalf("wrong secret for %s: %d", client, r.status)
				}
			}
			records := func(client string) []string {
				var out []string
				for _, ev := range h.events(store.EventFilter{Action: audit.ActionClientAuth}) {
					if ev.ClientID == client {
						out = append(out, string(ev.Attributes))
					}
				}
				return out
			}
			for range 50 {
				bad("agent:infrabot")
			}
			bad("agent:argocd")
			if got := records("agent:infrabot"); len(got) != 1 || got[0] != `{"refusals":"1"}` {
				t.Fatalf("infrabot after a flood of 50 in one second: %q, want one record of the first", got)
			}
			if got := records("agent:argocd"); len(got) != 1 || got[0] != `{"refusals":"1"}` {
				t.Fatalf("argocd, refused once in the same second: %q, want its own record", got)
			}
			advance(1100 * time.Millisecond)
			bad("agent:infrabot")
			if got := records("agent:infrabot"); len(got) != 2 || got[0] != `{"refusals":"50"}` {
				t.Fatalf("infrabot's next second: %q, want a record counting the 49 held back and itself", got)
			}

			// Made-up ids are summed: one record a second, whatever their
			// number (T86), carrying the count and the distinct ids.
			advance(1100 * time.Millisecond)
			before := len(h.events(store.EventFilter{Action: audit.ActionClientAuth}))
			for i := range 300 {
				bad(fmt.Sprintf("agent:made-up-%d", i))
			}
			if n := len(h.events(store.EventFilter{Action: audit.ActionClientAuth})) - before; n != 1 {
				t.Errorf("300 made-up client ids in one second wrote %d records, want 1", n)
			}
			advance(1100 * time.Millisecond)
			bad("agent:made-up-0")
			if got := records(""); len(got) != 1 || got[0] != `{"distinct_client_ids":"300","refusals":"300"}` {
				t.Errorf("the next second's sum: %q, want one record naming no client, for the 299 held back and itself, 300 distinct ids", got)
			}
		})
	}
}

// TestMalformedFormsRecorded: a form that cannot be read is refused before
// any client authenticates, and still recorded (T66), as the endpoint's
// refused action, at most once a second per endpoint with the count of
// refusals since the endpoint's previous record (T77).
func TestMalformedFormsRecorded(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			h, advance := newClockedHarness(t, b.open)
			send := func(path, contentType, body string) {
				t.Helper()
				req, _ := http.NewRequest(http.MethodPost, h.url+path, strings.NewReader(body))
				req.Header.Set("Content-Type", contentType)
				if r := h.do(req); r.status != http.StatusBadRequest {
					t.Fatalf("%s %q: %d %s", path, body, r.status, r.raw)
				}
			}
			records := func(action string) []string {
				var out []string
				for _, ev := range h.events(store.EventFilter{Action: action, Result: audit.ResultRefused}) {
					out = append(out, ev.Reason+" "+string(ev.Attributes))
				}
				return out
			}
			const form = "application/x-www-form-urlencoded"
			for range 20 {
				send("/token", form, "grant_type=client_credentials&grant_type=password")
			}
			send("/revoke", "text/plain", "token=x")
			if got := records(audit.ActionTokenRefused); len(got) != 1 || got[0] != `duplicate_parameter {"refusals":"1"}` {
				t.Fatalf("/token after 20 repeated parameters in one second: %q, want one record of the first", got)
			}
			if got := records(audit.ActionTokenRevoked); len(got) != 1 || got[0] != `content_type {"refusals":"1"}` {
				t.Fatalf("/revoke with the wrong content type: %q, want its own record", got)
			}
			advance(1100 * time.Millisecond)
			send("/token", form, "grant_type=client_credentials&grant_type=password")
			if got := records(audit.ActionTokenRefused); len(got) != 2 || got[0] != `duplicate_parameter {"refusals":"20"}` {
				t.Fatalf("/token the next second: %q, want a record counting the 19 held back and itself", got)
			}
		})
	}
}

// newClockedHarness is a harness on open whose clock stands still until
// advance moves it, for the once-a-second refusal records.
func newClockedHarness(t *testing.T, open func(t *testing.T) store.Store) (*harness, func(time.Duration)) {
	return newClockedHarnessEdited(t, open, nil)
}

// newClockedHarnessEdited is newClockedHarness with testConfig changed by
// edit (newHarnessEdited).
func newClockedHarnessEdited(t *testing.T, open func(t *testing.T) store.Store, edit func(*config.Config)) (*harness, func(time.Duration)) {
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	return newHarnessEdited(t, open, clock, edit), advance
}
