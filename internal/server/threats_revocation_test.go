package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mandate-dev/mandate/internal/store"
	"github.com/mandate-dev/mandate/oauth"
	"github.com/mandate-dev/mandate/verify"
	"github.com/mandate-dev/mandate/verify/feed"
)

// rs is a resource server in the test process: a verify.Verifier for one
// audience following the harness's revocation feed with the client
// credentials of rs:deploy (a client with no scopes).
type rs struct {
	t    *testing.T
	v    *verify.Verifier
	feed *feed.Feed
}

func (h *harness) resourceServer(audience string, now func() time.Time) *rs {
	h.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	h.t.Cleanup(cancel)
	sub, err := feed.New(ctx, feed.Config{
		URL: h.url + "/revocations/stream", ClientID: "rs:deploy", ClientSecret: "rs-deploy-secret",
		MaxStaleness: 5 * time.Second, Now: now,
	})
	if err != nil {
		h.t.Fatal(err)
	}
	ready, done := context.WithTimeout(ctx, 5*time.Second)
	defer done()
	if err := sub.Ready(ready); err != nil {
		h.t.Fatal(err)
	}
	v, err := verify.New(ctx, verify.Config{
		Issuer: h.url, Audience: audience, Algorithms: []string{"EdDSA", "ES256", "RS256"},
		JWKSURI: h.url + "/jwks", Revocation: sub, Now: now,
	})
	if err != nil {
		h.t.Fatal(err)
	}
	return &rs{t: h.t, v: v, feed: sub}
}

// accepts reports whether the resource server takes tok; an answer other
// than yes or "revoked" fails the test.
func (r *rs) accepts(tok string) bool {
	r.t.Helper()
	_, err := r.v.Verify(context.Background(), tok)
	switch {
	case err == nil:
		return true
	case errors.Is(err, verify.ErrRevoked):
		return false
	}
	r.t.Fatalf("Verify: %v", err)
	return false
}

// refusesWithin waits up to d for the resource server to refuse tok.
func (r *rs) refusesWithin(tok string, d time.Duration) bool {
	r.t.Helper()
	deadline := time.Now().Add(d)
	for r.accepts(tok) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(2 * time.Millisecond)
	}
	return true
}

// introspectActive asks as the token's own client.
func (h *harness) introspectActive(tok string) (bool, response) {
	h.t.Helper()
	r := h.post("/introspect", claims(h.t, tok)["client_id"].(string), url.Values{"token": {tok}})
	if r.status != http.StatusOK {
		h.t.Fatalf("introspect: %d %s", r.status, r.raw)
	}
	return r.body["active"] == true, r
}

// argoToken is ArgoCD's token for Sam (Sam → InfraBot → ArgoCD), addressed
// to the deploy API, and the hop-1 token it was exchanged from.
func (h *harness) argoToken(scope string) (argo, hop1 string) {
	hop1 = h.hop1(scope)
	argo = h.mustExchange("agent:argocd", hop1, oauth.TokenTypeAccessToken, url.Values{"audience": {"https://deploy.example"}})
	return argo, hop1
}

// TestT48RevocationSemantics: RFC 7009 at /revoke, seen by a resource
// server following the feed and by introspection.
func TestT48RevocationSemantics(t *testing.T) {
	onEveryBackend(t, func(t *testing.T, h *harness) {
		api := h.resourceServer("https://deploy.example", nil)
		revoke := func(client string, form url.Values) response {
			t.Helper()
			return h.post("/revoke", client, form)
		}
		t.Run("ok/valid-token-then-rs-refuses", func(t *testing.T) {
			argo, _ := h.argoToken("deploy:create")
			if !api.accepts(argo) {
				t.Fatal("the resource server refuses a valid token")
			}
			if r := revoke("agent:argocd", url.Values{"token": {argo}}); r.status != http.StatusOK {
				t.Fatalf("revoke: %d %s", r.status, r.raw)
			}
			if !api.refusesWithin(argo, time.Second) {
				t.Error("the resource server still accepts the token 1 s after its revocation")
			}
			if active, r := h.introspectActive(argo); active || len(r.body) != 1 {
				t.Errorf("introspection after revocation: %s", r.raw)
			}
		})
		t.Run("ok/wrong-hint-still-found", func(t *testing.T) {
			argo, _ := h.argoToken("deploy:create")
			revoke("agent:argocd", url.Values{"token": {argo}, "token_type_hint": {"refresh_token"}})
			if !api.refusesWithin(argo, time.Second) {
				t.Error("a revocation with the wrong hint did not reach the resource server")
			}
		})
		t.Run("ok/garbage-unknown-and-already-revoked-are-200", func(t *testing.T) {
			argo, _ := h.argoToken("deploy:create")
			for _, tok := range []string{"garbage", "a.b.c", argo, argo} {
				if r := revoke("agent:argocd", url.Values{"token": {tok}}); r.status != http.StatusOK {
					t.Errorf("revoke %.10s…: %d %s", tok, r.status, r.raw)
				}
			}
		})
		t.Run("fail/another-clients-token-is-not-revoked", func(t *testing.T) {
			argo, _ := h.argoToken("deploy:create")
			revoke("agent:mallory", url.Values{"token": {argo}})
			time.Sleep(300 * time.Millisecond) // three feed polls
			if !api.accepts(argo) {
				t.Error("another client revoked the token")
			}
		})
		t.Run("fail/unauthenticated-is-401", func(t *testing.T) {
			r := revoke("", url.Values{"token": {"garbage"}})
			checkResponse(t, h, r, http.StatusUnauthorized, oauth.ErrInvalidClient, "")
		})
	})
}

// TestT49NoFalseSuccess: a revocation the store cannot commit is 503, the
// token stays valid everywhere, and a retry succeeds once the store is back.
func TestT49NoFalseSuccess(t *testing.T) {
	onEveryBackend(t, func(t *testing.T, h *harness) {
		api := h.resourceServer("https://deploy.example", nil)
		cases := []struct {
			name   string
			method string
			call   func(argo string) response
		}{
			{name: "fail/revoke-endpoint", method: "RevokeToken", call: func(argo string) response {
				return h.post("/revoke", "agent:argocd", url.Values{"token": {argo}})
			}},
			{name: "fail/admin-subject", method: "UpdateUser", call: func(string) response {
				return h.admin(http.MethodPost, "/admin/revoke", map[string]string{"subject": "user:sam"})
			}},
			{name: "fail/admin-agent", method: "UpdateAgent", call: func(string) response {
				return h.admin(http.MethodPost, "/admin/revoke", map[string]string{"agent": "agent:argocd"})
			}},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				argo, _ := h.argoToken("deploy:create")
				h.faulty.Fail(tc.method, errors.New("i/o error"))
				r := tc.call(argo)
				h.faulty.Heal()
				if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" || r.str("error") != string(oauth.ErrTemporarilyUnavailable) {
					t.Fatalf("with the store failing: %d %s (Retry-After %q)", r.status, r.raw, r.header.Get("Retry-After"))
				}
				time.Sleep(300 * time.Millisecond)
				if !api.accepts(argo) {
					t.Fatal("a revocation that answered 503 revoked the token at the resource server")
				}
				if active, _ := h.introspectActive(argo); !active {
					t.Fatal("a revocation that answered 503 revoked the token at the server")
				}
				if r := tc.call(argo); r.status != http.StatusOK {
					t.Fatalf("retry: %d %s", r.status, r.raw)
				}
				if !api.refusesWithin(argo, time.Second) {
					t.Error("the retried revocation did not reach the resource server")
				}
				h.admin(http.MethodPost, "/admin/agents/agent:argocd/enable", nil)
			})
		}
	})
}

// TestT50IntrospectionLayers: every revocation layer alone and in each
// pair makes introspection answer {"active":false} and nothing else.
func TestT50IntrospectionLayers(t *testing.T) {
	onEveryBackend(t, func(t *testing.T, h *harness) {
		type layer struct {
			name  string
			apply func(argo, hop1 string)
			undo  func()
		}
		layers := []layer{
			{name: "jti", apply: func(argo, _ string) {
				h.admin(http.MethodPost, "/admin/revoke", map[string]string{"jti": claims(t, argo)["jti"].(string)})
			}},
			{name: "parent-jti", apply: func(_, hop1 string) {
				h.admin(http.MethodPost, "/admin/revoke", map[string]string{"jti": claims(t, hop1)["jti"].(string)})
			}},
			{name: "user-version", apply: func(string, string) {
				h.admin(http.MethodPost, "/admin/revoke", map[string]string{"subject": "user:sam"})
			}},
			{name: "agent-disabled", apply: func(string, string) {
				h.admin(http.MethodPost, "/admin/agents/agent:infrabot/disable", nil)
			}, undo: func() { h.admin(http.MethodPost, "/admin/agents/agent:infrabot/enable", nil) }},
			{name: "client-disabled", apply: func(string, string) {
				h.admin(http.MethodPost, "/admin/agents/agent:argocd/disable", nil)
			}, undo: func() { h.admin(http.MethodPost, "/admin/agents/agent:argocd/enable", nil) }},
		}
		// Sam → InfraBot → ArgoCD, addressed to cleanup_agent, which may
		// introspect it whatever happens to InfraBot and ArgoCD.
		token := func(t *testing.T) (argo, hop1 string) {
			t.Helper()
			hop1 = h.hop1("deploy:tag")
			argo = h.mustExchange("agent:argocd", hop1, oauth.TokenTypeAccessToken, url.Values{"audience": {"agent:cleanup_agent"}})
			if r := h.post("/introspect", "agent:cleanup_agent", url.Values{"token": {argo}}); r.body["active"] != true {
				t.Fatalf("introspection before any revocation = %s", r.raw)
			}
			return argo, hop1
		}
		check := func(t *testing.T, argo string) {
			t.Helper()
			r := h.post("/introspect", "agent:cleanup_agent", url.Values{"token": {argo}})
			if r.status != http.StatusOK || r.body["active"] != false || len(r.body) != 1 {
				t.Errorf("introspection = %d %s, want {\"active\":false} alone", r.status, r.raw)
			}
		}
		for i, a := range layers {
			t.Run("alone/"+a.name, func(t *testing.T) {
				argo, hop1 := token(t)
				a.apply(argo, hop1)
				check(t, argo)
				if a.undo != nil {
					a.undo()
				}
			})
			for _, b := range layers[i+1:] {
				t.Run("pair/"+a.name+"+"+b.name, func(t *testing.T) {
					argo, hop1 := token(t)
					a.apply(argo, hop1)
					b.apply(argo, hop1)
					check(t, argo)
					for _, l := range []layer{a, b} {
						if l.undo != nil {
							l.undo()
						}
					}
				})
			}
		}
		t.Run("fail/unauthenticated-is-401", func(t *testing.T) {
			checkResponse(t, h, h.post("/introspect", "", url.Values{"token": {"x"}}), http.StatusUnauthorized, oauth.ErrInvalidClient, "")
		})
		t.Run("fail/other-audience-sees-inactive-only", func(t *testing.T) {
			argo, _ := h.argoToken("deploy:create")
			if r := h.post("/introspect", "agent:mallory", url.Values{"token": {argo}}); r.body["active"] != false || len(r.body) != 1 {
				t.Errorf("another audience's introspection = %s", r.raw)
			}
		})
	})
}

// TestT51SubjectRevocationUnderLoad: Sam's revocation version is bumped
// while exchanges for Sam run. Every token whose request had finished
// before the bump began is refused by the resource server and the server;
// every token requested after the bump answered is accepted; tokens in
// flight across the bump may go either way, and the version never falls.
func TestT51SubjectRevocationUnderLoad(t *testing.T) {
	onEveryBackend(t, func(t *testing.T, h *harness) {
		api := h.resourceServer("https://deploy.example", nil)
		type minted struct {
			tok        string
			start, end time.Time
		}
		var (
			mu     sync.Mutex
			tokens []minted
			stop   atomic.Bool
			wg     sync.WaitGroup
		)
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for !stop.Load() {
					start := time.Now()
					// Not mustExchange: a hop 1 minted before the bump
					// and presented after it is refused, as it must be.
					hop1 := h.exchange("agent:infrabot", h.samToken(), oauth.TokenTypeIDToken,
						url.Values{"audience": {"agent:argocd"}, "scope": {"deploy:create"}}).str("access_token")
					if hop1 == "" {
						continue
					}
					tok := h.exchange("agent:argocd", hop1, oauth.TokenTypeAccessToken, url.Values{"audience": {"https://deploy.example"}}).str("access_token")
					if tok == "" {
						continue
					}
					mu.Lock()
					tokens = append(tokens, minted{tok, start, time.Now()})
					mu.Unlock()
				}
			}()
		}
		time.Sleep(300 * time.Millisecond)
		bumpStart := time.Now()
		if r := h.admin(http.MethodPost, "/admin/revoke", map[string]string{"subject": "user:sam"}); r.status != http.StatusOK {
			t.Fatalf("revoke subject: %d %s", r.status, r.raw)
		}
		bumpEnd := time.Now()
		time.Sleep(300 * time.Millisecond)
		stop.Store(true)
		wg.Wait()
		var before, after, between int
		for _, m := range tokens {
			switch {
			case m.end.Before(bumpStart):
				before++
				if !api.refusesWithin(m.tok, time.Second) {
					t.Errorf("a token minted before the bump is accepted by the resource server")
				}
				if active, _ := h.introspectActive(m.tok); active {
					t.Errorf("a token minted before the bump is active at the server")
				}
			case m.start.After(bumpEnd):
				after++
				if !api.accepts(m.tok) {
					t.Errorf("a token minted after the bump answered is refused")
				}
			default:
				between++
			}
		}
		t.Logf("%d tokens before the bump, %d after, %d in flight across it", before, after, between)
		if before == 0 || after == 0 {
			t.Fatalf("the load did not straddle the bump (%d before, %d after)", before, after)
		}
		u, err := h.store.GetUser(context.Background(), "user:sam")
		if err != nil || u.Version < 1 {
			t.Errorf("Sam's version = %d (%v), want it raised", u.Version, err)
		}
	})
}

// TestT52AgentAndLineage: disabling an agent refuses it as current and as
// prior actor, its client authentication and the exchanges of chains that
// hold it; revoking a parent refuses its children.
func TestT52AgentAndLineage(t *testing.T) {
	onEveryBackend(t, func(t *testing.T, h *harness) {
		api := h.resourceServer("https://deploy.example", nil)
		cleanup := h.resourceServer("agent:cleanup_agent", nil)
		argoDirect, hop1 := h.argoToken("deploy:tag")
		argoToCleanup := h.mustExchange("agent:argocd", hop1, oauth.TokenTypeAccessToken, url.Values{"audience": {"agent:cleanup_agent"}})
		if !api.accepts(argoDirect) || !cleanup.accepts(argoToCleanup) {
			t.Fatal("the resource servers refuse valid tokens")
		}
		h.admin(http.MethodPost, "/admin/agents/agent:infrabot/disable", nil)
		t.Run("fail/prior-actor-disabled", func(t *testing.T) {
			if !api.refusesWithin(argoDirect, time.Second) {
				t.Error("a token with the disabled agent as prior actor is accepted")
			}
		})
		t.Run("fail/chain-holding-it-cannot-be-exchanged", func(t *testing.T) {
			r := h.exchange("agent:cleanup_agent", argoToCleanup, oauth.TokenTypeAccessToken, url.Values{"audience": {"agent:reaper"}})
			if r.status != http.StatusBadRequest {
				t.Errorf("exchange of a chain holding a disabled agent: %d %s", r.status, r.raw)
			}
		})
		t.Run("fail/its-client-authentication", func(t *testing.T) {
			r := h.exchange("agent:infrabot", h.samToken(), oauth.TokenTypeIDToken, url.Values{"audience": {"agent:argocd"}})
			checkResponse(t, h, r, http.StatusUnauthorized, oauth.ErrInvalidClient, "")
		})
		h.admin(http.MethodPost, "/admin/agents/agent:infrabot/enable", nil)
		t.Run("fail/child-of-revoked-parent", func(t *testing.T) {
			argo, hop1 := h.argoToken("deploy:tag")
			if !api.accepts(argo) {
				t.Fatal("a token minted after the agent was enabled again is refused")
			}
			h.admin(http.MethodPost, "/admin/revoke", map[string]string{"jti": claims(t, hop1)["jti"].(string)})
			if !api.refusesWithin(argo, time.Second) {
				t.Error("the child of a revoked token is accepted")
			}
			r := h.exchange("agent:argocd", hop1, oauth.TokenTypeAccessToken, url.Values{"audience": {"https://deploy.example"}})
			if r.status != http.StatusBadRequest {
				t.Errorf("exchange of a revoked token: %d %s", r.status, r.raw)
			}
		})
		t.Run("fail/current-actor-disabled", func(t *testing.T) {
			argo, _ := h.argoToken("deploy:tag")
			h.admin(http.MethodPost, "/admin/agents/agent:argocd/disable", nil)
			if !api.refusesWithin(argo, time.Second) {
				t.Error("a token of a disabled current actor is accepted")
			}
		})
	})
}

// TestT55KeyRotationAndEmergencyRevocation: rotating the signing key while
// tokens are verified fails none of them; an emergency key revocation
// removes the key from the JWKS and reaches the resource server; the JWKS
// never holds private members or a kid twice.
func TestT55KeyRotationAndEmergencyRevocation(t *testing.T) {
	onEveryBackend(t, func(t *testing.T, h *harness) {
		api := h.resourceServer("https://deploy.example", nil)
		old, _ := h.argoToken("deploy:create")
		var failures, checks atomic.Int64
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				checks.Add(1)
				if _, err := api.v.Verify(context.Background(), old); err != nil {
					failures.Add(1)
				}
			}
		}()
		next, err := h.app.Keys.Rotate(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond)
		close(stop)
		wg.Wait()
		if failures.Load() != 0 {
			t.Errorf("%d of %d verifications failed during the rotation", failures.Load(), checks.Load())
		}
		jwks := h.do(mustRequest(t, h.url+"/jwks"))
		var set struct {
			Keys []map[string]any `json:"keys"`
		}
		if err := json.Unmarshal([]byte(jwks.raw), &set); err != nil {
			t.Fatal(err)
		}
		kids := map[string]bool{}
		for _, k := range set.Keys {
			for _, private := range []string{"d", "p", "q", "dp", "dq", "qi"} {
				if _, ok := k[private]; ok {
					t.Errorf("the JWKS publishes private member %q", private)
				}
			}
			kid := fmt.Sprint(k["kid"])
			if kids[kid] {
				t.Errorf("kid %s published twice", kid)
			}
			kids[kid] = true
		}
		if !kids[next.KID] {
			t.Errorf("the next key %s is not published before it signs", next.KID)
		}
		oldKID := h.app.Keys.ActiveKID()
		if err := h.app.Keys.RevokeKey(context.Background(), oldKID); err != nil {
			t.Fatal(err)
		}
		if !api.refusesWithin(old, time.Second) {
			t.Error("a token signed with an emergency-revoked key is accepted 1 s later")
		}
		if r := h.do(mustRequest(t, h.url+"/jwks")); json.Unmarshal([]byte(r.raw), &set) != nil || containsKID(set.Keys, oldKID) {
			t.Errorf("the revoked key %s is still in the JWKS", oldKID)
		}
	})
}

func containsKID(keys []map[string]any, kid string) bool {
	for _, k := range keys {
		if k["kid"] == kid {
			return true
		}
	}
	return false
}

// TestT56ClockStepBack: with the server's clock stepped back an hour,
// revocations made then still refuse the tokens minted before the step at
// a resource server whose clock is right: revocation compares generations,
// never times (THREATS T56 c). The store stamps entries with its own clock,
// which this test does not move; that an entry stamped an hour early is
// still kept is shown by feed.TestHubEntryLifetime and
// verify.TestFeedKeepsEntriesByItsOwnClock. T56 a (restart, SIGKILL) is in
// cmd/mandate, T56 b (restore epoch) in TestRestoredEpoch.
func TestT56ClockStepBack(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			var offset atomic.Int64
			now := func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
			h := newHarnessOn(t, b.open, now)
			api := h.resourceServer("https://deploy.example", nil)
			kinds := []struct {
				name   string
				token  func() string
				revoke func(tok string)
			}{
				{name: "subject", token: func() string { tok, _ := h.argoToken("deploy:create"); return tok }, revoke: func(string) {
					h.admin(http.MethodPost, "/admin/revoke", map[string]string{"subject": "user:sam"})
				}},
				{name: "agent", token: func() string { tok, _ := h.argoToken("deploy:create"); return tok }, revoke: func(string) {
					h.admin(http.MethodPost, "/admin/agents/agent:argocd/disable", nil)
				}},
				{name: "scope", token: func() string { tok, _ := h.argoToken("deploy:tag"); return tok }, revoke: func(string) {
					h.admin(http.MethodPut, "/admin/users/user:sam/permissions", map[string]any{"permissions": []string{"monitoring:read", "deploy:create"}})
				}},
				{name: "jti", token: func() string { tok, _ := h.argoToken("deploy:create"); return tok }, revoke: func(tok string) {
					h.admin(http.MethodPost, "/admin/revoke", map[string]string{"jti": claims(t, tok)["jti"].(string)})
				}},
			}
			tokens := make([]string, len(kinds))
			for i, k := range kinds {
				tokens[i] = k.token()
				if !api.accepts(tokens[i]) {
					t.Fatalf("%s: a fresh token is refused", k.name)
				}
			}
			offset.Store(int64(-time.Hour))
			for i, k := range kinds {
				k.revoke(tokens[i])
				if !api.refusesWithin(tokens[i], time.Second) {
					t.Errorf("%s: revoked with the clock an hour back, the token is still accepted", k.name)
				}
			}
			// A resource server that starts now loads the entries from the
			// snapshot, whose until the server's clock put an hour early,
			// and collects what it thinks expired at once: nothing of
			// what still hits a live token may go.
			restarted := h.resourceServer("https://deploy.example", nil)
			for i, k := range kinds {
				if restarted.accepts(tokens[i]) {
					t.Errorf("%s: a resource server started after the revocation accepts the token", k.name)
				}
			}
			if _, err := h.store.GetUser(context.Background(), "user:sam"); err != nil && !errors.Is(err, store.ErrNotFound) {
				t.Fatal(err)
			}
		})
	}
}
