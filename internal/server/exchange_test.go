package server_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mandate-dev/mandate/internal/store"
	"github.com/mandate-dev/mandate/oauth"
)

// exchangeCase is one token request against a fresh server. setup prepares
// state and returns the request; want* describe the answer.
type exchangeCase struct {
	name       string
	setup      func(h *harness) (client string, form url.Values)
	wantStatus int
	wantError  oauth.ErrorCode
	wantReason string
	check      func(t *testing.T, h *harness, tok string, body map[string]any)
}

func exchangeForm(subject, subjectType string, kv ...string) url.Values {
	f := url.Values{
		"grant_type":         {oauth.GrantTokenExchange},
		"subject_token":      {subject},
		"subject_token_type": {subjectType},
	}
	for i := 0; i+1 < len(kv); i += 2 {
		f.Add(kv[i], kv[i+1])
	}
	return f
}

// unsignedJWT builds header.payload.signature by hand, for forged tokens.
func unsignedJWT(header, payload map[string]any, sign func(string) string) string {
	h, _ := json.Marshal(header)
	p, _ := json.Marshal(payload)
	in := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(p)
	return in + "." + sign(in)
}

func samClaims(h *harness) map[string]any {
	now := time.Now()
	return map[string]any{"iss": h.idp.srv.URL, "sub": "user:sam", "aud": idpAudience, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
}

func wantChain(t *testing.T, tok string, want ...string) {
	t.Helper()
	var got []string
	for a, _ := claims(t, tok)["act"].(map[string]any); a != nil; a, _ = a["act"].(map[string]any) {
		got = append(got, a["sub"].(string))
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("act chain (-want +got):\n%s", diff)
	}
}

func TestTokenExchange(t *testing.T) {
	idTok := oauth.TokenTypeIDToken
	atTok := oauth.TokenTypeAccessToken
	cases := []exchangeCase{
		{
			name: "ok/infrabot-scope-filter",
			setup: func(h *harness) (string, url.Values) {
				return "agent:infrabot", exchangeForm(h.samToken(), idTok, "audience", "https://deploy.example", "scope", "monitoring:read deploy:comment")
			},
			wantStatus: 200,
			check: func(t *testing.T, h *harness, tok string, body map[string]any) {
				if body["scope"] != "monitoring:read" {
					t.Errorf("scope = %v, want exactly monitoring:read", body["scope"])
				}
				c := claims(t, tok)
				if c["scope"] != "monitoring:read" || c["sub"] != "user:sam" || c["aud"] != "https://deploy.example" || c["client_id"] != "agent:infrabot" {
					t.Errorf("claims = %v", c)
				}
				wantChain(t, tok, "agent:infrabot")
				if body["issued_token_type"] != oauth.TokenTypeAccessToken || body["token_type"] != "Bearer" {
					t.Errorf("response = %v", body)
				}
				if _, ok := body["refresh_token"]; ok {
					t.Error("a refresh token was issued from a token exchange")
				}
				exp, iat := c["exp"].(float64), c["iat"].(float64)
				if exp-iat > 600 || exp-iat < 590 {
					t.Errorf("lifetime = %vs, want 600s", exp-iat)
				}
				for _, k := range []string{"jti", "nbf", "delegation_id", "revocation_url", "log_url"} {
					if _, ok := c[k]; !ok {
						t.Errorf("claim %s missing", k)
					}
				}
				// Nobody asserted a context: the token invents no facts
				// (an empty environment would be one a later hop could
				// not set).
				if ctx, ok := c["context"]; ok {
					t.Errorf("context = %v, want none asserted", ctx)
				}
			},
		},
		{
			name: "ok/no-scope-means-largest-allowed",
			setup: func(h *harness) (string, url.Values) {
				return "agent:infrabot", exchangeForm(h.samToken(), idTok, "audience", "https://deploy.example")
			},
			wantStatus: 200,
			check: func(t *testing.T, _ *harness, _ string, body map[string]any) {
				if body["scope"] != "monitoring:read deploy:create deploy:tag" {
					t.Errorf("scope = %v", body["scope"])
				}
			},
		},
		{
			name: "ok/three-hop-chain",
			setup: func(h *harness) (string, url.Values) {
				hop1 := h.hop1("monitoring:read deploy:tag")
				hop2 := h.mustExchange("agent:argocd", hop1, atTok, url.Values{"audience": {"agent:cleanup_agent"}, "scope": {"deploy:tag"}})
				return "agent:cleanup_agent", exchangeForm(hop2, atTok, "resource", "https://aws.example/tags")
			},
			wantStatus: 200,
			check: func(t *testing.T, _ *harness, tok string, body map[string]any) {
				wantChain(t, tok, "agent:cleanup_agent", "agent:argocd", "agent:infrabot")
				c := claims(t, tok)
				if c["sub"] != "user:sam" || c["scope"] != "deploy:tag" || c["aud"] != "https://aws.example/tags" {
					t.Errorf("claims = %v", c)
				}
			},
		},
		{
			name: "ok/narrow-scope-on-chain-hop",
			setup: func(h *harness) (string, url.Values) {
				return "agent:argocd", exchangeForm(h.hop1("monitoring:read deploy:tag"), atTok, "audience", "https://deploy.example", "scope", "deploy:tag")
			},
			wantStatus: 200,
			check: func(t *testing.T, _ *harness, tok string, body map[string]any) {
				if body["scope"] != "deploy:tag" {
					t.Errorf("scope = %v", body["scope"])
				}
				wantChain(t, tok, "agent:argocd", "agent:infrabot")
			},
		},
		{
			name: "ok/policy-prod-from-ci",
			setup: func(h *harness) (string, url.Values) {
				return "agent:infrabot", exchangeForm(h.samToken(), idTok, "audience", "https://deploy.example", "scope", "deploy:create",
					"context", `{"environment":"prod","trigger":"ci_pipeline"}`)
			},
			wantStatus: 200,
			check: func(t *testing.T, _ *harness, tok string, _ map[string]any) {
				ctx, _ := claims(t, tok)["context"].(map[string]any)
				if ctx["environment"] != "prod" || ctx["trigger"] != "ci_pipeline" {
					t.Errorf("context = %v", ctx)
				}
			},
		},
		{
			name: "ok/may-act",
			setup: func(h *harness) (string, url.Values) {
				tok := h.idp.token(h.t, "user:sam", map[string]any{"may_act": map[string]any{"sub": "agent:mallory"}})
				return "agent:mallory", exchangeForm(tok, idTok, "audience", "https://deploy.example", "scope", "monitoring:read")
			},
			wantStatus: 200,
		},
		{
			name: "ok/person-token-starts-chain",
			setup: func(h *harness) (string, url.Values) {
				r := h.admin(http.MethodPost, "/admin/users/user:sam/token", nil)
				return "agent:infrabot", exchangeForm(r.str("access_token"), atTok, "audience", "agent:argocd", "scope", "deploy:tag")
			},
			wantStatus: 200,
			check: func(t *testing.T, _ *harness, tok string, _ map[string]any) {
				wantChain(t, tok, "agent:infrabot")
			},
		},
		{
			name: "ok/authorization-details-clamped-to-limit",
			setup: func(h *harness) (string, url.Values) {
				return "agent:expense", exchangeForm(h.idp.token(h.t, "user:alice", nil), idTok, "audience", "https://expenses.example",
					"authorization_details", `[{"type":"expense_approval","max_amount":5000,"currency":"USD"}]`)
			},
			wantStatus: 200,
			check: func(t *testing.T, _ *harness, tok string, body map[string]any) {
				want := `[{"currency":"USD","max_amount":1000,"type":"expense_approval"}]`
				got, _ := json.Marshal(claims(t, tok)["authorization_details"])
				inResp, _ := json.Marshal(body["authorization_details"])
				if string(got) != want || string(inResp) != want {
					t.Errorf("authorization_details: token %s, response %s, want %s", got, inResp, want)
				}
			},
		},
		{
			name: "fail/authorization-details-not-held",
			setup: func(h *harness) (string, url.Values) {
				return "agent:expense", exchangeForm(h.idp.token(h.t, "user:alice", nil), idTok, "audience", "https://expenses.example",
					"authorization_details", `[{"type":"expense_approval","max_amount":10,"currency":"EUR"}]`)
			},
			wantStatus: 400, wantError: "invalid_authorization_details", wantReason: "authorization_details_not_held",
		},
		{
			name: "fail/authorization-details-malformed",
			setup: func(h *harness) (string, url.Values) {
				return "agent:expense", exchangeForm(h.idp.token(h.t, "user:alice", nil), idTok, "audience", "https://expenses.example",
					"authorization_details", `{"type":"expense_approval"}`)
			},
			wantStatus: 400, wantError: "invalid_authorization_details", wantReason: "authorization_details_invalid",
		},
		{
			name: "fail/depth-exceeded",
			setup: func(h *harness) (string, url.Values) {
				hop1 := h.hop1("deploy:tag")
				hop2 := h.mustExchange("agent:argocd", hop1, atTok, url.Values{"audience": {"agent:cleanup_agent"}})
				hop3 := h.mustExchange("agent:cleanup_agent", hop2, atTok, url.Values{"audience": {"agent:reaper"}})
				return "agent:reaper", exchangeForm(hop3, atTok, "audience", "https://aws.example")
			},
			wantStatus: 400, wantError: oauth.ErrInvalidRequest, wantReason: "delegation_depth_exceeded",
		},
		{
			name: "fail/loop",
			setup: func(h *harness) (string, url.Values) {
				back := h.mustExchange("agent:argocd", h.hop1("deploy:tag"), atTok, url.Values{"audience": {"agent:infrabot"}})
				return "agent:infrabot", exchangeForm(back, atTok, "audience", "https://deploy.example")
			},
			wantStatus: 400, wantError: oauth.ErrInvalidRequest, wantReason: "actor_loop",
		},
		{
			name: "fail/widen-scope",
			setup: func(h *harness) (string, url.Values) {
				return "agent:argocd", exchangeForm(h.hop1("monitoring:read"), atTok, "audience", "https://deploy.example", "scope", "monitoring:read deploy:create")
			},
			wantStatus: 400, wantError: oauth.ErrInvalidScope, wantReason: "scope_widening",
		},
		{
			name: "fail/scope-case-trick",
			setup: func(h *harness) (string, url.Values) {
				return "agent:infrabot", exchangeForm(h.samToken(), idTok, "audience", "https://deploy.example", "scope", "MONITORING:read")
			},
			wantStatus: 400, wantError: oauth.ErrInvalidScope, wantReason: "no_scope_granted",
		},
		{
			name: "fail/no-delegation",
			setup: func(h *harness) (string, url.Values) {
				return "agent:mallory", exchangeForm(h.samToken(), idTok, "audience", "https://deploy.example")
			},
			wantStatus: 400, wantError: oauth.ErrInvalidRequest, wantReason: "actor_not_delegated",
		},
		{
			name: "fail/may-act-names-another-agent",
			setup: func(h *harness) (string, url.Values) {
				tok := h.idp.token(h.t, "user:sam", map[string]any{"may_act": map[string]any{"sub": "agent:argocd"}})
				return "agent:mallory", exchangeForm(tok, idTok, "audience", "https://deploy.example")
			},
			wantStatus: 400, wantError: oauth.ErrInvalidRequest, wantReason: "actor_not_delegated",
		},
		{
			name: "fail/foreign-actor-token",
			setup: func(h *harness) (string, url.Values) {
				r := h.post("/token", "agent:argocd", url.Values{"grant_type": {oauth.GrantClientCredentials}})
				return "agent:infrabot", exchangeForm(h.samToken(), idTok, "audience", "https://deploy.example",
					"actor_token", r.str("access_token"), "actor_token_type", atTok)
			},
			wantStatus: 400, wantError: oauth.ErrInvalidRequest, wantReason: "actor_token_mismatch",
		},
		{
			name: "ok/own-actor-token",
			setup: func(h *harness) (string, url.Values) {
				r := h.post("/token", "agent:infrabot", url.Values{"grant_type": {oauth.GrantClientCredentials}})
				return "agent:infrabot", exchangeForm(h.samToken(), idTok, "audience", "https://deploy.example",
					"actor_token", r.str("access_token"), "actor_token_type", atTok)
			},
			wantStatus: 200,
		},
		{
			name: "fail/audience-not-holder",
			setup: func(h *harness) (string, url.Values) {
				return "agent:cleanup_agent", exchangeForm(h.hop1("deploy:tag"), atTok, "audience", "https://aws.example")
			},
			wantStatus: 400, wantError: oauth.ErrInvalidRequest, wantReason: "audience_not_holder",
		},
		{
			name: "fail/alg-none",
			setup: func(h *harness) (string, url.Values) {
				tok := unsignedJWT(map[string]any{"alg": "none", "typ": "JWT", "kid": h.idp.kid}, samClaims(h), func(string) string { return "" })
				return "agent:infrabot", exchangeForm(tok, idTok, "audience", "https://deploy.example")
			},
			wantStatus: 400, wantError: oauth.ErrInvalidRequest, wantReason: "subject_token_invalid",
		},
		{
			name: "fail/hs256-key-confusion",
			setup: func(h *harness) (string, url.Values) {
				der, _ := x509.MarshalPKIXPublicKey(&h.idp.key.PublicKey)
				pemKey := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
				tok := unsignedJWT(map[string]any{"alg": "HS256", "typ": "JWT", "kid": h.idp.kid}, samClaims(h), func(in string) string {
					m := hmac.New(sha256.New, pemKey)
					m.Write([]byte(in))
					return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
				})
				return "agent:infrabot", exchangeForm(tok, idTok, "audience", "https://deploy.example")
			},
			wantStatus: 400, wantError: oauth.ErrInvalidRequest, wantReason: "subject_token_invalid",
		},
		{
			name: "fail/expired-subject",
			setup: func(h *harness) (string, url.Values) {
				old := time.Now().Add(-2 * time.Hour)
				tok := h.idp.token(h.t, "user:sam", map[string]any{"iat": old.Unix(), "exp": old.Add(time.Hour).Unix()})
				return "agent:infrabot", exchangeForm(tok, idTok, "audience", "https://deploy.example")
			},
			wantStatus: 400, wantError: oauth.ErrInvalidRequest, wantReason: "subject_token_expired",
		},
		{
			name: "fail/subject-type-mismatch",
			setup: func(h *harness) (string, url.Values) {
				return "agent:infrabot", exchangeForm(h.samToken(), atTok, "audience", "https://deploy.example")
			},
			wantStatus: 400, wantError: oauth.ErrInvalidRequest, wantReason: "subject_token_type_mismatch",
		},
		{
			name: "fail/idp-token-wrong-audience",
			setup: func(h *harness) (string, url.Values) {
				return "agent:infrabot", exchangeForm(h.idp.token(h.t, "user:sam", map[string]any{"aud": "someone-else"}), idTok, "audience", "https://deploy.example")
			},
			wantStatus: 400, wantError: oauth.ErrInvalidRequest, wantReason: "subject_token_invalid",
		},
		{
			name: "fail/policy-prod-without-ci",
			setup: func(h *harness) (string, url.Values) {
				return "agent:infrabot", exchangeForm(h.samToken(), idTok, "audience", "https://deploy.example", "scope", "deploy:create",
					"context", `{"environment":"prod","trigger":"chat"}`)
			},
			wantStatus: 400, wantError: oauth.ErrInvalidRequest, wantReason: "policy_denied:prod-deploys-only-from-ci",
		},
		{
			// THREATS T32: a policy that cannot be evaluated refuses, as
			// the server's failure (503), not the client's.
			name: "fail/policy-engine-error",
			setup: func(h *harness) (string, url.Values) {
				return "agent:infrabot", exchangeForm(h.samToken(), idTok, "audience", "https://deploy.example", "scope", "deploy:create",
					"context", `{"environment":"chaos","trigger":"chat"}`)
			},
			wantStatus: 503, wantError: oauth.ErrTemporarilyUnavailable, wantReason: "policy_error",
		},
		{
			name: "fail/disabled-agent-in-chain",
			setup: func(h *harness) (string, url.Values) {
				hop1 := h.hop1("deploy:tag")
				if r := h.admin(http.MethodPost, "/admin/agents/agent:infrabot/disable", nil); r.status != 200 {
					h.t.Fatalf("disable: %d %s", r.status, r.raw)
				}
				return "agent:argocd", exchangeForm(hop1, atTok, "audience", "https://deploy.example")
			},
			wantStatus: 400, wantError: oauth.ErrInvalidRequest, wantReason: "agent_disabled",
		},
		{
			name: "fail/parent-revoked",
			setup: func(h *harness) (string, url.Values) {
				hop1 := h.hop1("deploy:tag")
				hop2 := h.mustExchange("agent:argocd", hop1, atTok, url.Values{"audience": {"agent:cleanup_agent"}})
				if r := h.admin(http.MethodPost, "/admin/revoke", map[string]string{"jti": claims(h.t, hop1)["jti"].(string)}); r.status != 200 {
					h.t.Fatalf("revoke: %d %s", r.status, r.raw)
				}
				return "agent:cleanup_agent", exchangeForm(hop2, atTok, "audience", "https://aws.example")
			},
			wantStatus: 400, wantError: oauth.ErrInvalidRequest, wantReason: "parent_revoked",
		},
		{
			name: "fail/permission-removed",
			setup: func(h *harness) (string, url.Values) {
				hop1 := h.hop1("monitoring:read")
				r := h.admin(http.MethodPut, "/admin/users/user%3Asam/permissions", map[string]any{"permissions": []string{"deploy:create", "deploy:tag"}})
				if r.status != 200 {
					h.t.Fatalf("permissions: %d %s", r.status, r.raw)
				}
				return "agent:argocd", exchangeForm(hop1, atTok, "audience", "https://deploy.example")
			},
			wantStatus: 400, wantError: oauth.ErrInvalidRequest, wantReason: "permission_removed",
		},
		{
			name: "fail/subject-revoked",
			setup: func(h *harness) (string, url.Values) {
				hop1 := h.hop1("monitoring:read")
				if r := h.admin(http.MethodPost, "/admin/revoke", map[string]string{"subject": "user:sam"}); r.status != 200 {
					h.t.Fatalf("revoke: %d %s", r.status, r.raw)
				}
				return "agent:argocd", exchangeForm(hop1, atTok, "audience", "https://deploy.example")
			},
			wantStatus: 400, wantError: oauth.ErrInvalidRequest, wantReason: "subject_revoked",
		},
		{
			name: "fail/delegation-revoked",
			setup: func(h *harness) (string, url.Values) {
				hop1 := h.hop1("monitoring:read")
				dlg := claims(h.t, hop1)["delegation_id"].(string)
				if r := h.admin(http.MethodDelete, "/admin/delegations/"+dlg, nil); r.status != 200 {
					h.t.Fatalf("delete delegation: %d %s", r.status, r.raw)
				}
				return "agent:argocd", exchangeForm(hop1, atTok, "audience", "https://deploy.example")
			},
			wantStatus: 400, wantError: oauth.ErrInvalidRequest, wantReason: "delegation_revoked",
		},
		{
			name: "fail/audience-not-allowed",
			setup: func(h *harness) (string, url.Values) {
				return "agent:infrabot", exchangeForm(h.idp.token(h.t, "user:alex", nil), idTok, "audience", "https://evil.example")
			},
			wantStatus: 400, wantError: oauth.ErrInvalidTarget, wantReason: "audience_not_allowed",
		},
		{
			name: "ok/delegation-single-audience-is-default",
			setup: func(h *harness) (string, url.Values) {
				return "agent:infrabot", exchangeForm(h.idp.token(h.t, "user:alex", nil), idTok)
			},
			wantStatus: 200,
			check: func(t *testing.T, _ *harness, tok string, _ map[string]any) {
				if aud := claims(t, tok)["aud"]; aud != "https://metrics.example" {
					t.Errorf("aud = %v", aud)
				}
			},
		},
		{
			name: "fail/two-audiences",
			setup: func(h *harness) (string, url.Values) {
				return "agent:infrabot", exchangeForm(h.samToken(), idTok, "audience", "https://deploy.example", "audience", "https://admin.example")
			},
			wantStatus: 400, wantError: oauth.ErrInvalidTarget, wantReason: "audience_multiple",
		},
		{
			name: "fail/refresh-token-requested",
			setup: func(h *harness) (string, url.Values) {
				return "agent:infrabot", exchangeForm(h.samToken(), idTok, "audience", "https://deploy.example", "requested_token_type", oauth.TokenTypeRefreshToken)
			},
			wantStatus: 400, wantError: oauth.ErrInvalidRequest, wantReason: "requested_token_type_unsupported",
		},
		{
			name: "fail/subject-unknown",
			setup: func(h *harness) (string, url.Values) {
				tok := h.idp.token(h.t, "user:nobody", map[string]any{"may_act": map[string]any{"sub": "agent:infrabot"}})
				return "agent:infrabot", exchangeForm(tok, idTok, "audience", "https://deploy.example")
			},
			wantStatus: 400, wantError: oauth.ErrInvalidRequest, wantReason: "subject_unknown",
		},
		{
			name: "fail/context-not-object",
			setup: func(h *harness) (string, url.Values) {
				return "agent:infrabot", exchangeForm(h.samToken(), idTok, "audience", "https://deploy.example", "context", `["prod"]`)
			},
			wantStatus: 400, wantError: oauth.ErrInvalidRequest, wantReason: "context_invalid",
		},
		{
			name: "fail/wrong-client-secret",
			setup: func(h *harness) (string, url.Values) {
				f := exchangeForm(h.samToken(), idTok, "audience", "https://deploy.example")
				f.Set("client_id", "agent:infrabot")
				f.Set("client_secret", "wrong")
				return "", f
			},
			wantStatus: 401, wantError: oauth.ErrInvalidClient, wantReason: "client_secret_mismatch",
		},
		// THREATS T19: a resource outside the delegation's audiences.
		{
			name: "fail/resource-not-allowed",
			setup: func(h *harness) (string, url.Values) {
				return "agent:infrabot", exchangeForm(h.idp.token(h.t, "user:alex", nil), idTok, "resource", "https://evil.example/")
			},
			wantStatus: 400, wantError: oauth.ErrInvalidTarget, wantReason: "audience_not_allowed",
		},
		// THREATS T21: the client's own token, but addressed to an API,
		// not to this server.
		{
			name: "fail/actor-token-other-audience",
			setup: func(h *harness) (string, url.Values) {
				r := h.post("/token", "agent:infrabot", url.Values{"grant_type": {oauth.GrantClientCredentials}, "audience": {"https://deploy.example"}})
				return "agent:infrabot", exchangeForm(h.samToken(), idTok, "audience", "https://deploy.example",
					"actor_token", r.str("access_token"), "actor_token_type", atTok)
			},
			wantStatus: 400, wantError: oauth.ErrInvalidRequest, wantReason: "actor_token_mismatch",
		},
		// THREATS T22: subject and actor swapped: the agent's own token as
		// the subject, the person's as the actor.
		{
			name: "fail/subject-and-actor-swapped",
			setup: func(h *harness) (string, url.Values) {
				r := h.post("/token", "agent:infrabot", url.Values{"grant_type": {oauth.GrantClientCredentials}})
				return "agent:infrabot", exchangeForm(r.str("access_token"), atTok, "audience", "https://deploy.example",
					"actor_token", h.samToken(), "actor_token_type", atTok)
			},
			wantStatus: 400, wantError: oauth.ErrInvalidRequest, wantReason: "actor_token_mismatch",
		},
		// THREATS T24: not yet valid, a revoked actor token, and a missing,
		// empty or repeated subject token or type; never a fallback to the
		// client's own identity.
		{
			name: "fail/subject-not-yet-valid",
			setup: func(h *harness) (string, url.Values) {
				later := time.Now().Add(10 * time.Minute)
				tok := h.idp.token(h.t, "user:sam", map[string]any{"nbf": later.Unix(), "iat": later.Unix(), "exp": later.Add(time.Hour).Unix()})
				return "agent:infrabot", exchangeForm(tok, idTok, "audience", "https://deploy.example")
			},
			wantStatus: 400, wantError: oauth.ErrInvalidRequest, wantReason: "subject_token_invalid",
		},
		{
			name: "fail/actor-token-revoked",
			setup: func(h *harness) (string, url.Values) {
				at := h.post("/token", "agent:infrabot", url.Values{"grant_type": {oauth.GrantClientCredentials}}).str("access_token")
				if r := h.post("/revoke", "agent:infrabot", url.Values{"token": {at}}); r.status != 200 {
					h.t.Fatalf("revoke: %d %s", r.status, r.raw)
				}
				return "agent:infrabot", exchangeForm(h.samToken(), idTok, "audience", "https://deploy.example",
					"actor_token", at, "actor_token_type", atTok)
			},
			wantStatus: 400, wantError: oauth.ErrInvalidRequest, wantReason: "token_revoked",
		},
		{
			name: "fail/subject-token-missing",
			setup: func(h *harness) (string, url.Values) {
				f := exchangeForm("", idTok, "audience", "https://deploy.example")
				f.Del("subject_token")
				return "agent:infrabot", f
			},
			wantStatus: 400, wantError: oauth.ErrInvalidRequest, wantReason: "subject_token_missing",
		},
		{
			name: "fail/subject-token-empty",
			setup: func(h *harness) (string, url.Values) {
				return "agent:infrabot", exchangeForm("", idTok, "audience", "https://deploy.example")
			},
			wantStatus: 400, wantError: oauth.ErrInvalidRequest, wantReason: "subject_token_missing",
		},
		{
			name: "fail/subject-token-repeated",
			setup: func(h *harness) (string, url.Values) {
				return "agent:infrabot", exchangeForm(h.samToken(), idTok, "audience", "https://deploy.example", "subject_token", h.samToken())
			},
			wantStatus: 400, wantError: oauth.ErrInvalidRequest, wantReason: "duplicate_parameter",
		},
		{
			name: "fail/subject-token-type-missing",
			setup: func(h *harness) (string, url.Values) {
				f := exchangeForm(h.samToken(), idTok, "audience", "https://deploy.example")
				f.Del("subject_token_type")
				return "agent:infrabot", f
			},
			wantStatus: 400, wantError: oauth.ErrInvalidRequest, wantReason: "subject_token_type_unsupported",
		},
		// THREATS T25: an ID token is not issued from an exchange, and
		// offline_access grants nothing: no refresh token.
		{
			name: "fail/id-token-requested",
			setup: func(h *harness) (string, url.Values) {
				return "agent:infrabot", exchangeForm(h.samToken(), idTok, "audience", "https://deploy.example", "requested_token_type", oauth.TokenTypeIDToken)
			},
			wantStatus: 400, wantError: oauth.ErrInvalidRequest, wantReason: "requested_token_type_unsupported",
		},
		{
			name: "ok/offline-access-grants-nothing",
			setup: func(h *harness) (string, url.Values) {
				return "agent:infrabot", exchangeForm(h.samToken(), idTok, "audience", "https://deploy.example", "scope", "monitoring:read offline_access")
			},
			wantStatus: 200,
			check: func(t *testing.T, _ *harness, tok string, body map[string]any) {
				if _, ok := body["refresh_token"]; ok || body["scope"] != "monitoring:read" || body["issued_token_type"] != oauth.TokenTypeAccessToken {
					t.Errorf("answer %v, want an access token for monitoring:read only, and no refresh token", body)
				}
			},
		},
		// THREATS T26: the lifetime never outlives the subject token.
		{
			name: "ok/lifetime-capped-by-subject",
			setup: func(h *harness) (string, url.Values) {
				tok := h.idp.token(h.t, "user:sam", map[string]any{"exp": time.Now().Add(2 * time.Minute).Unix()})
				return "agent:infrabot", exchangeForm(tok, idTok, "audience", "https://deploy.example")
			},
			wantStatus: 200,
			check: func(t *testing.T, h *harness, tok string, body map[string]any) {
				exp, _ := claims(t, tok)["exp"].(float64)
				if limit := time.Now().Add(2*time.Minute + time.Second).Unix(); int64(exp) > limit {
					t.Errorf("exp %v outlives the subject token (%d)", exp, limit)
				}
				if ttl, _ := body["expires_in"].(float64); ttl > 121 {
					t.Errorf("expires_in %v, want at most the subject's 120 s", ttl)
				}
			},
		},
		// THREATS T26 across a hop: a person's token that ends in 3
		// minutes caps the first hop, and the first hop caps the second.
		{
			name: "ok/lifetime-capped-across-hops",
			setup: func(h *harness) (string, url.Values) {
				short := h.idp.token(h.t, "user:sam", map[string]any{"exp": time.Now().Add(3 * time.Minute).Unix()})
				hop1 := h.mustExchange("agent:infrabot", short, idTok, url.Values{"audience": {"agent:argocd"}, "scope": {"deploy:create"}})
				return "agent:argocd", exchangeForm(hop1, atTok, "audience", "https://deploy.example")
			},
			wantStatus: 200,
			check: func(t *testing.T, _ *harness, tok string, _ map[string]any) {
				exp, _ := claims(t, tok)["exp"].(float64)
				if limit := time.Now().Add(3*time.Minute + time.Second).Unix(); exp <= 0 || int64(exp) > limit {
					t.Errorf("the second hop's exp %v outlives the person's token (%d)", exp, limit)
				}
			},
		},
		// THREATS T28: a subject token from an identity provider that
		// carries its own act (here nested deep, and naming a privileged
		// agent) is refused; only Mandate's own tokens carry a chain.
		{
			name: "fail/idp-token-with-act",
			setup: func(h *harness) (string, url.Values) {
				act := map[string]any{"sub": "agent:root"}
				for range 50 {
					act = map[string]any{"sub": "agent:x", "act": act}
				}
				tok := h.idp.token(h.t, "user:sam", map[string]any{"act": act})
				return "agent:infrabot", exchangeForm(tok, idTok, "audience", "https://deploy.example")
			},
			wantStatus: 400, wantError: oauth.ErrInvalidRequest, wantReason: "subject_token_invalid",
		},
		{
			name: "fail/no-client-authentication",
			setup: func(h *harness) (string, url.Values) {
				return "", exchangeForm(h.samToken(), idTok, "audience", "https://deploy.example")
			},
			wantStatus: 401, wantError: oauth.ErrInvalidClient,
		},
		{
			name: "fail/disabled-client",
			setup: func(h *harness) (string, url.Values) {
				h.admin(http.MethodPost, "/admin/agents/agent%3Ainfrabot/disable", nil)
				return "agent:infrabot", exchangeForm(h.samToken(), idTok, "audience", "https://deploy.example")
			},
			wantStatus: 401, wantError: oauth.ErrInvalidClient, wantReason: "client_disabled",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			client, form := tc.setup(h)
			r := h.post("/token", client, form)
			checkResponse(t, h, r, tc.wantStatus, tc.wantError, tc.wantReason)
			if tc.check != nil && r.status == 200 {
				tc.check(t, h, r.str("access_token"), r.body)
			}
		})
	}
}

// checkResponse applies the harness conventions of THREATS.md Part 2: exact
// status and code, JSON, no-store, a clean description, no token on a
// refusal, and exactly one audit record of the refusal with its reason.
func checkResponse(t *testing.T, h *harness, r response, status int, code oauth.ErrorCode, reason string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status = %d, want %d; body %s", r.status, status, r.raw)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type = %q", ct)
	}
	if cc := r.header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", cc)
	}
	if status == 200 {
		if r.str("access_token") == "" {
			t.Errorf("no access_token in %s", r.raw)
		}
		return
	}
	if got := oauth.ErrorCode(r.str("error")); got != code {
		t.Errorf("error = %q, want %q (%s)", got, code, r.raw)
	}
	if _, ok := r.body["access_token"]; ok {
		t.Error("a refusal carried an access token")
	}
	desc := r.str("error_description")
	if desc != oauth.CleanDescription(desc) || strings.ContainsAny(desc, "\r\n\t") {
		t.Errorf("error_description %q is outside the RFC 6749 charset", desc)
	}
	if status >= 500 {
		return
	}
	reqID := r.header.Get("X-Request-Id")
	var refusals []store.Event
	for _, ev := range h.events(store.EventFilter{}) {
		if ev.RequestID == reqID && ev.Result == "refused" {
			refusals = append(refusals, ev)
		}
	}
	if len(refusals) != 1 {
		t.Fatalf("%d refusal records for request %s, want 1", len(refusals), reqID)
	}
	if reason != "" && refusals[0].Reason != reason {
		t.Errorf("audit reason = %q, want %q", refusals[0].Reason, reason)
	}
}

func TestAuditUnwritable(t *testing.T) {
	t.Run("fail/audit-unwritable", testAuditUnwritable)
}

// testAuditUnwritable: when the audit record cannot be written the exchange
// answers 503 and issues nothing; once the store heals it works again.
func testAuditUnwritable(t *testing.T) {
	h := newHarness(t)
	before := len(h.events(store.EventFilter{}))
	h.faulty.Fail("Commit", errors.New("disk full"))
	r := h.post("/token", "agent:infrabot", exchangeForm(h.samToken(), oauth.TokenTypeIDToken, "audience", "https://deploy.example"))
	checkResponse(t, h, r, http.StatusServiceUnavailable, oauth.ErrTemporarilyUnavailable, "")
	if r.header.Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
	if strings.Contains(r.raw, "disk full") {
		t.Error("the internal cause leaked into the response")
	}
	h.faulty.Heal()
	if after := len(h.events(store.EventFilter{})); after != before {
		t.Errorf("%d events written while the audit log was unwritable", after-before)
	}
	// Once the store heals, the same request succeeds: nothing is stuck.
	r = h.post("/token", "agent:infrabot", exchangeForm(h.samToken(), oauth.TokenTypeIDToken, "audience", "https://deploy.example"))
	checkResponse(t, h, r, http.StatusOK, "", "")
	granted := h.events(store.EventFilter{Action: "token.exchange"})
	if len(granted) != 1 || !slices.Contains(granted[0].Chain, "agent:infrabot") {
		t.Errorf("granted events = %+v", granted)
	}
}
