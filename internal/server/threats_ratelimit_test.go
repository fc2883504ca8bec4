package server_test

import (
	"net/http"
	"net/url"
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
			h, advance := newClockedHarnessEdited(t, b.open, func(c *config.Config) {
				c.RateLimits = config.RateLimits{PerClient: 1} // bursts of 2
			})
			grant := func(client, secret string) response {
				t.Helper()
				return h.postAs("/token", client, secret, url.Values{"grant_type": {oauth.GrantClientCredentials}}, nil)
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

// TestRateLimitPerAddress (T78, T50): the limits hold at /introspect and
// /revoke too. With a per-address rate, every client from one address
// shares it; with a per-client rate, a client scanning /introspect with
// guessed tokens is stopped after its burst.
func TestRateLimitPerAddress(t *testing.T) {
	for _, c := range []struct {
		name          string
		limits        config.RateLimits
		path          string
		first, second string // the clients of the two requests
		action        string
		reason        string
	}{
		{"introspect/per-address", config.RateLimits{PerIP: 0.001}, "/introspect", "agent:infrabot", "agent:argocd",
			audit.ActionTokenIntrospect, "rate_limited_address"},
		{"introspect/per-client-scan", config.RateLimits{PerClient: 0.001}, "/introspect", "agent:infrabot", "agent:infrabot",
			audit.ActionTokenIntrospect, "rate_limited_client"},
		{"revoke/per-client", config.RateLimits{PerClient: 0.001}, "/revoke", "agent:infrabot", "agent:infrabot",
			audit.ActionTokenRevoked, "rate_limited_client"},
	} {
		t.Run(c.name, func(t *testing.T) {
			// A rate of one in 1,000 s: a burst of one request.
			h := newHarnessEdited(t, openSQLite, nil, func(cfg *config.Config) { cfg.RateLimits = c.limits })
			if r := h.post(c.path, c.first, url.Values{"token": {"guess-1"}}); r.status != http.StatusOK {
				t.Fatalf("first request: %d %s", r.status, r.raw)
			}
			r := h.post(c.path, c.second, url.Values{"token": {"guess-2"}})
			if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") == "" {
				t.Fatalf("second request: %d %s", r.status, r.raw)
			}
			evs := h.events(store.EventFilter{Action: c.action})
			if len(evs) == 0 || evs[0].Reason != c.reason || evs[0].ClientID != c.second || evs[0].Result != audit.ResultRefused {
				t.Errorf("newest %s record = %+v, want the refusal", c.action, evs)
			}
		})
	}
}

// TestRateLimitIgnoresForwardedFor (T32): the per-address limit keys on the
// connection's address; an X-Forwarded-For header, which any client can
// write, changes nothing.
func TestRateLimitIgnoresForwardedFor(t *testing.T) {
	h := newHarnessEdited(t, openSQLite, nil, func(cfg *config.Config) { cfg.RateLimits = config.RateLimits{PerIP: 0.001} })
	send := func(forwardedFor string) response {
		t.Helper()
		return h.postAs("/introspect", "agent:infrabot", "infrabot-secret", url.Values{"token": {"x"}},
			http.Header{"X-Forwarded-For": {forwardedFor}})
	}
	if r := send("203.0.113.1"); r.status != http.StatusOK {
		t.Fatalf("first request: %d %s", r.status, r.raw)
	}
	if r := send("203.0.113.2"); r.status != http.StatusTooManyRequests {
		t.Fatalf("second request, claiming another address: %d, want 429", r.status)
	}
	evs := h.events(store.EventFilter{Action: audit.ActionTokenIntrospect})
	if len(evs) == 0 {
		t.Fatal("no introspection record")
	}
	if evs[0].Detail != "ip 127.0.0.1" {
		t.Errorf("the refusal's record names %q, want the connection's address", evs[0].Detail)
	}
}
