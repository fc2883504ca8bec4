package server_test

import (
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

// TestRateLimits (THREATS T78): a client over its rate, or an address over
// its own, is answered 429 with Retry-After and a JSON error before its
// credentials are checked; other clients go on; the caller passes again
// once the window has refilled; the refusals are recorded, one record a
// second per caller with the count.
func TestRateLimits(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			var mu sync.Mutex
			now := time.Now()
			clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
			advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
			h := newHarnessEdited(t, b.open, clock, func(c *config.Config) {
				c.RateLimits = config.RateLimits{PerClient: 1} // bursts of 2
			})
			grant := func(client, secret string) response {
				t.Helper()
				form := url.Values{"grant_type": {oauth.GrantClientCredentials}, "client_id": {client}, "client_secret": {secret}}
				req, _ := http.NewRequest(http.MethodPost, h.url+"/token", strings.NewReader(form.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				return h.do(req)
			}
			for i := range 2 {
				if r := grant("agent:infrabot", "infrabot-secret"); r.status != http.StatusOK {
					t.Fatalf("request %d of the burst: %d %s", i+1, r.status, r.raw)
				}
			}
			r := grant("agent:infrabot", "infrabot-secret")
			if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") == "" ||
				r.str("error") != string(oauth.ErrTemporarilyUnavailable) || r.header.Get("Content-Type") != "application/json" {
				t.Fatalf("over the rate: %d Retry-After %q %s", r.status, r.header.Get("Retry-After"), r.raw)
			}
			// Checked before the credentials: a wrong secret gets 429, not 401.
			if r := grant("agent:infrabot", "wrong"); r.status != http.StatusTooManyRequests {
				t.Fatalf("over the rate with a wrong secret: %d, want 429", r.status)
			}
			if r := grant("agent:argocd", "argocd-secret"); r.status != http.StatusOK {
				t.Fatalf("another client: %d %s", r.status, r.raw)
			}
			advance(time.Second)
			if r := grant("agent:infrabot", "infrabot-secret"); r.status != http.StatusOK {
				t.Fatalf("after a second: %d %s", r.status, r.raw)
			}
			var got []string
			for _, ev := range h.events(store.EventFilter{Action: audit.ActionTokenRefused}) {
				if ev.Reason == "rate_limited_client" {
					got = append(got, ev.ClientID+" "+string(ev.Attributes))
				}
			}
			if len(got) != 1 || got[0] != `agent:infrabot {"refusals":"1"}` {
				t.Errorf("records of the refusals = %q, want one for infrabot's first (the second is counted into its next)", got)
			}
		})
	}
}

// TestRateLimitPerAddress (T78): with a per-address rate, every client
// from one address shares it, at /introspect too.
func TestRateLimitPerAddress(t *testing.T) {
	h := newHarnessEdited(t, openSQLite, nil, func(c *config.Config) {
		c.RateLimits = config.RateLimits{PerIP: 0.001} // a burst of 1, then one in 1,000 s
	})
	if r := h.post("/introspect", "agent:infrabot", url.Values{"token": {"x"}}); r.status != http.StatusOK {
		t.Fatalf("first request: %d %s", r.status, r.raw)
	}
	r := h.post("/introspect", "agent:argocd", url.Values{"token": {"x"}})
	if r.status != http.StatusTooManyRequests {
		t.Fatalf("second request from the address, another client: %d %s", r.status, r.raw)
	}
	evs := h.events(store.EventFilter{Action: audit.ActionTokenIntrospect})
	if len(evs) == 0 || evs[0].Reason != "rate_limited_address" || evs[0].ClientID != "agent:argocd" {
		t.Errorf("newest introspection record = %+v, want the refusal", evs)
	}
}
