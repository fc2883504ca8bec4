package server_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mandate-dev/mandate/internal/audit"
	"github.com/mandate-dev/mandate/internal/store"
	"github.com/mandate-dev/mandate/oauth"
)

// The bounds rule (docs/security.md, "The rule every grant keeps"), case by
// case: each test is a way a review found to mint a token wider than a
// grant on its path. The model test (model_*_test.go) checks the rule
// itself over generated worlds.

// wantRefused fails unless r is a 400 with code and reason, and the refusal
// is in the audit log.
func wantRefused(t *testing.T, h *harness, r response, code oauth.ErrorCode, reason string) {
	t.Helper()
	if r.status != http.StatusBadRequest || r.str("error") != string(code) {
		var reasons []string
		for _, ev := range h.events(store.EventFilter{Action: audit.ActionTokenRefused}) {
			reasons = append(reasons, ev.Reason)
		}
		t.Fatalf("answer = %d %s, want 400 %s (refusals recorded: %v)", r.status, r.raw, code, reasons)
	}
	if evs := h.events(store.EventFilter{Action: audit.ActionTokenRefused}); !hasReason(evs, reason) {
		t.Errorf("no %s record with reason %s in %d refusals", audit.ActionTokenRefused, reason, len(evs))
	}
}

// untilFresh waits, at most two seconds, until the revocation feed's
// snapshot is served again: after the test clock jumps, the feed counts as
// stale (and the server fails closed) until its next read of the store,
// every 100 ms.
func (h *harness) untilFresh() {
	h.t.Helper()
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		r := h.admin(http.MethodGet, "/revocations", nil)
		if r.status == http.StatusOK {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("the revocation feed is still stale after the clock moved: %d %s", r.status, r.raw)
		}
	}
}

func hasReason(evs []store.Event, reason string) bool {
	for _, ev := range evs {
		if ev.Reason == reason {
			return true
		}
	}
	return false
}

// TestSpliceThroughOwnDelegation is THREATS T81. Sam gives CleanupAgent a
// narrow delegation of its own (monitoring:read, for https://clean.example,
// depth 1, three minutes). InfraBot, whose delegate_to names only ArgoCD,
// addresses a token to CleanupAgent; CleanupAgent's own delegation must not
// let it take the hop, or the token would be bounded by a delegation it
// does not carry (on main before the fix every case below was granted,
// with a scope, audience, depth and lifetime the delegation lacks). The
// delegation still admits CleanupAgent's own first hop, within it.
func TestSpliceThroughOwnDelegation(t *testing.T) {
	h := newHarness(t)
	expires := time.Now().Add(3 * time.Minute).UTC()
	r := h.admin(http.MethodPost, "/admin/delegations", map[string]any{
		"subject": "user:sam", "actor": "agent:cleanup_agent", "scopes": []string{"monitoring:read"},
		"audiences": []string{"https://clean.example"}, "max_depth": 1, "expires": expires,
	})
	if r.status != http.StatusCreated {
		t.Fatalf("create delegation: %d %s", r.status, r.raw)
	}
	dlg := r.str("id")
	spliced := h.mustExchange("agent:infrabot", h.samToken(), oauth.TokenTypeIDToken,
		url.Values{"audience": {"agent:cleanup_agent"}, "scope": {"monitoring:read deploy:tag"}})

	for _, tc := range []struct {
		name  string
		extra url.Values
	}{
		{name: "fail/scope-and-audience-outside-its-delegation", extra: url.Values{"audience": {"https://evil.example"}, "scope": {"deploy:tag"}}},
		{name: "fail/within-its-delegation", extra: url.Values{"audience": {"https://clean.example"}, "scope": {"monitoring:read"}}},
		{name: "fail/no-scope", extra: url.Values{"audience": {"https://clean.example"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := h.exchange("agent:cleanup_agent", spliced, oauth.TokenTypeAccessToken, tc.extra)
			wantRefused(t, h, r, oauth.ErrInvalidRequest, "actor_not_delegated")
		})
	}

	t.Run("ok/first-hop-within-its-delegation", func(t *testing.T) {
		tok := h.mustExchange("agent:cleanup_agent", h.samToken(), oauth.TokenTypeIDToken, url.Values{"scope": {"monitoring:read deploy:tag"}})
		c := claims(t, tok)
		if c["aud"] != "https://clean.example" || c["scope"] != "monitoring:read" || c["delegation_id"] != dlg {
			t.Errorf("claims = %v, want aud https://clean.example, scope monitoring:read, delegation %s", c, dlg)
		}
		if exp := int64(c["exp"].(float64)); exp > expires.Unix() {
			t.Errorf("exp %d is after the delegation's expiry %d", exp, expires.Unix())
		}
		if r := h.admin(http.MethodDelete, "/admin/delegations/"+dlg, nil); r.status != http.StatusOK && r.status != http.StatusNoContent {
			t.Fatalf("delete delegation: %d %s", r.status, r.raw)
		}
		if r := h.post("/introspect", "agent:cleanup_agent", url.Values{"token": {tok}}); r.body["active"] != false {
			t.Errorf("introspection after the delegation was deleted: %s", r.raw)
		}
	})
}

// TestLimitFieldsKeptFromLimit is THREATS T82: a granted
// authorization_details entry carries every constraint of the limit it
// came from. Alice's limit is 1,000 USD for travel and meals; a request
// that leaves out the currency or the categories gets the limit's, and a
// wider list is intersected (on main before the fix the currency and the
// list were dropped, and an API checking the amount accepted 1,000 KWD).
func TestLimitFieldsKeptFromLimit(t *testing.T) {
	h := newHarness(t)
	limit := []map[string]any{{"type": "expense_approval", "max_amount": 1000, "currency": "USD", "categories": []string{"travel", "meals"}}}
	if r := h.admin(http.MethodPut, "/admin/users/user:alice/limits", map[string]any{"limits": limit}); r.status != http.StatusOK {
		t.Fatalf("set limits: %d %s", r.status, r.raw)
	}
	alice := h.idp.token(t, "user:alice", nil)
	for _, tc := range []struct {
		name      string
		requested string
		want      string
		wantError oauth.ErrorCode
	}{
		{name: "ok/currency-and-list-copied", requested: `[{"type":"expense_approval","max_amount":1000}]`,
			want: `[{"categories":["travel","meals"],"currency":"USD","max_amount":1000,"type":"expense_approval"}]`},
		{name: "ok/type-only", requested: `[{"type":"expense_approval"}]`,
			want: `[{"categories":["travel","meals"],"currency":"USD","max_amount":1000,"type":"expense_approval"}]`},
		{name: "ok/list-intersected", requested: `[{"type":"expense_approval","max_amount":250,"categories":["gifts","meals"]}]`,
			want: `[{"categories":["meals"],"currency":"USD","max_amount":250,"type":"expense_approval"}]`},
		{name: "fail/list-disjoint", requested: `[{"type":"expense_approval","categories":["gifts"]}]`, wantError: "invalid_authorization_details"},
		{name: "fail/other-currency", requested: `[{"type":"expense_approval","currency":"KWD"}]`, wantError: "invalid_authorization_details"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := h.exchange("agent:expense", alice, oauth.TokenTypeIDToken, url.Values{
				"audience": {"https://expenses.example"}, "authorization_details": {tc.requested}})
			if tc.wantError != "" {
				wantRefused(t, h, r, tc.wantError, "authorization_details_not_held")
				return
			}
			if r.status != http.StatusOK {
				t.Fatalf("exchange: %d %s", r.status, r.raw)
			}
			got, _ := json.Marshal(claims(t, r.str("access_token"))["authorization_details"])
			if diff := cmp.Diff(tc.want, string(got)); diff != "" {
				t.Errorf("granted authorization_details (-want +got):\n%s", diff)
			}
		})
	}
}

// TestContextFactsFixed is THREATS T83: the context InfraBot asserted
// (staging, from chat) stays the context of every later hop. ArgoCD may
// add a fact but not change or drop one (on main before the fix ArgoCD's
// token said prod from CI, and the prod policy let it through).
func TestContextFactsFixed(t *testing.T) {
	h := newHarness(t)
	hop1 := h.mustExchange("agent:infrabot", h.samToken(), oauth.TokenTypeIDToken, url.Values{
		"audience": {"agent:argocd"}, "scope": {"deploy:create"},
		"context": {`{"environment":"staging","trigger":"chat"}`}})
	for _, tc := range []struct {
		name    string
		context string
		want    map[string]any
	}{
		{name: "fail/prod-from-ci", context: `{"environment":"prod","trigger":"ci_pipeline"}`},
		{name: "fail/one-fact-changed", context: `{"trigger":"ci_pipeline"}`},
		{name: "ok/new-facts-of-any-type", context: `{"environment":"staging","trigger":"chat","ticket":1,"change":{"id":"x"}}`, want: map[string]any{
			"environment": "staging", "trigger": "chat", "ticket": float64(1), "change": map[string]any{"id": "x"}}},
		{name: "ok/facts-kept-when-left-out", context: `{"ticket":"CHG-1"}`, want: map[string]any{
			"environment": "staging", "trigger": "chat", "ticket": "CHG-1"}},
		{name: "ok/same-facts", context: `{"environment":"staging","trigger":"chat"}`, want: map[string]any{
			"environment": "staging", "trigger": "chat"}},
		{name: "ok/no-context", want: map[string]any{"environment": "staging", "trigger": "chat"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			extra := url.Values{"audience": {"https://deploy.example"}, "scope": {"deploy:create"}}
			if tc.context != "" {
				extra.Set("context", tc.context)
			}
			r := h.exchange("agent:argocd", hop1, oauth.TokenTypeAccessToken, extra)
			if tc.want == nil {
				wantRefused(t, h, r, oauth.ErrInvalidRequest, "context_conflict")
				return
			}
			if r.status != http.StatusOK {
				t.Fatalf("exchange: %d %s", r.status, r.raw)
			}
			if diff := cmp.Diff(tc.want, claims(t, r.str("access_token"))["context"]); diff != "" {
				t.Errorf("context (-want +got):\n%s", diff)
			}
		})
	}
}

// TestActorTokenBoundsLifetime is THREATS T84: a token exchanged with an
// actor_token expires no later than the actor token (on main before the fix
// it took the subject token's lifetime, five minutes longer here).
func TestActorTokenBoundsLifetime(t *testing.T) {
	// A clock on a whole second, so that the actor token's exp (whole
	// seconds) is exactly ten minutes ahead.
	var mu sync.Mutex
	now := time.Now().Truncate(time.Second)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	h := newHarnessOn(t, openSQLite, clock)
	cc := h.post("/token", "agent:infrabot", url.Values{"grant_type": {oauth.GrantClientCredentials}, "scope": {"monitoring:read"}})
	if cc.status != http.StatusOK {
		t.Fatalf("client_credentials: %d %s", cc.status, cc.raw)
	}
	actorTok := cc.str("access_token")
	actorExp := int64(claims(t, actorTok)["exp"].(float64))
	advance(5 * time.Minute)
	h.untilFresh()
	sam := h.admin(http.MethodPost, "/admin/users/user:sam/token", nil)
	if sam.status != http.StatusOK {
		t.Fatalf("sign-in: %d %s", sam.status, sam.raw)
	}
	subjectExp := int64(claims(t, sam.str("access_token"))["exp"].(float64))
	if subjectExp <= actorExp {
		t.Fatalf("fixture: subject token exp %d not after the actor token's %d", subjectExp, actorExp)
	}
	tok := h.mustExchange("agent:infrabot", sam.str("access_token"), oauth.TokenTypeAccessToken, url.Values{
		"audience": {"https://deploy.example"}, "scope": {"monitoring:read"},
		"actor_token": {actorTok}, "actor_token_type": {oauth.TokenTypeAccessToken}})
	if exp := int64(claims(t, tok)["exp"].(float64)); exp > actorExp {
		t.Errorf("exp = %d, after the actor token's %d", exp, actorExp)
	}

	// An actor token about to expire leaves nothing to issue.
	advance(5*time.Minute - 500*time.Millisecond)
	h.untilFresh()
	r := h.exchange("agent:infrabot", sam.str("access_token"), oauth.TokenTypeAccessToken, url.Values{
		"audience": {"https://deploy.example"}, "scope": {"monitoring:read"},
		"actor_token": {actorTok}, "actor_token_type": {oauth.TokenTypeAccessToken}})
	wantRefused(t, h, r, oauth.ErrInvalidRequest, "token_lifetime_too_short")
}
