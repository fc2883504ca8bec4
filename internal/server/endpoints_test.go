package server_test

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/mandate-dev/mandate/internal/store"
	"github.com/mandate-dev/mandate/oauth"
)

func TestIntrospection(t *testing.T) {
	h := newHarness(t)
	hop1 := h.hop1("monitoring:read deploy:tag")
	tests := []struct {
		name       string
		caller     string
		token      string
		prepare    func()
		wantStatus int
		wantActive bool
	}{
		{name: "ok/issued-to-caller", caller: "agent:infrabot", token: hop1, wantStatus: 200, wantActive: true},
		{name: "ok/addressed-to-caller", caller: "agent:argocd", token: hop1, wantStatus: 200, wantActive: true},
		{name: "fail/other-agent-sees-inactive", caller: "agent:mallory", token: hop1, wantStatus: 200},
		{name: "fail/garbage", caller: "agent:infrabot", token: "not.a.token", wantStatus: 200},
		{name: "fail/unauthenticated", caller: "", token: hop1, wantStatus: 401},
		{
			name: "fail/permission-removed", caller: "agent:infrabot", token: hop1, wantStatus: 200,
			prepare: func() {
				h.admin(http.MethodPut, "/admin/users/user:sam/permissions", map[string]any{"permissions": []string{"deploy:tag"}})
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.prepare != nil {
				tc.prepare()
			}
			r := h.post("/introspect", tc.caller, url.Values{"token": {tc.token}})
			if r.status != tc.wantStatus {
				t.Fatalf("status = %d, want %d: %s", r.status, tc.wantStatus, r.raw)
			}
			if r.status != 200 {
				return
			}
			if active, _ := r.body["active"].(bool); active != tc.wantActive {
				t.Fatalf("active = %v, want %v: %s", active, tc.wantActive, r.raw)
			}
			if !tc.wantActive && len(r.body) != 1 {
				t.Errorf("an inactive answer has other members: %s", r.raw)
			}
			if tc.wantActive {
				act, _ := r.body["act"].(map[string]any)
				if r.body["sub"] != "user:sam" || act["sub"] != "agent:infrabot" || r.body["scope"] != "monitoring:read deploy:tag" {
					t.Errorf("introspection = %s", r.raw)
				}
			}
		})
	}
}

func TestRevocation(t *testing.T) {
	h := newHarness(t)
	introspect := func(tok string) bool {
		r := h.post("/introspect", "agent:infrabot", url.Values{"token": {tok}})
		active, _ := r.body["active"].(bool)
		return active
	}
	status := func(tok string) response {
		req, _ := http.NewRequest(http.MethodGet, h.url+"/revocations/"+claims(t, tok)["jti"].(string), nil)
		return h.do(req)
	}

	t.Run("fail/other-client-cannot-revoke", func(t *testing.T) {
		tok := h.hop1("monitoring:read")
		r := h.post("/revoke", "agent:mallory", url.Values{"token": {tok}})
		if r.status != 200 || !introspect(tok) {
			t.Fatalf("another client's revocation: status %d, still active %v", r.status, introspect(tok))
		}
	})
	t.Run("ok/garbage-is-200", func(t *testing.T) {
		if r := h.post("/revoke", "agent:infrabot", url.Values{"token": {"garbage"}}); r.status != 200 {
			t.Fatalf("status = %d", r.status)
		}
	})
	t.Run("fail/unauthenticated", func(t *testing.T) {
		r := h.post("/revoke", "", url.Values{"token": {"garbage"}})
		checkResponse(t, h, r, 401, oauth.ErrInvalidClient, "")
	})
	t.Run("fail/store-down-is-503-and-nothing-revoked", func(t *testing.T) {
		tok := h.hop1("monitoring:read")
		h.faulty.Fail("RevokeToken", errors.New("i/o error"))
		r := h.post("/revoke", "agent:infrabot", url.Values{"token": {tok}})
		h.faulty.Heal()
		if r.status != 503 || r.header.Get("Retry-After") == "" {
			t.Fatalf("status = %d, Retry-After %q", r.status, r.header.Get("Retry-After"))
		}
		if !introspect(tok) {
			t.Fatal("a failed revocation revoked the token")
		}
		// The client retries once the store is back (RFC 7009 §2.2.1).
		if r := h.post("/revoke", "agent:infrabot", url.Values{"token": {tok}}); r.status != 200 || introspect(tok) {
			t.Fatalf("retry: status %d, still active %v", r.status, introspect(tok))
		}
	})
	t.Run("ok/revoke-own-token-cascades", func(t *testing.T) {
		tok := h.hop1("monitoring:read deploy:tag")
		child := h.mustExchange("agent:argocd", tok, oauth.TokenTypeAccessToken, url.Values{"audience": {"agent:cleanup_agent"}})
		if r := status(tok); r.status != 200 || r.body["revoked"] != false || len(r.body) != 2 {
			t.Fatalf("before: %d %s", r.status, r.raw)
		}
		if r := h.post("/revoke", "agent:infrabot", url.Values{"token": {tok}, "token_type_hint": {"refresh_token"}}); r.status != 200 {
			t.Fatalf("revoke: %d %s", r.status, r.raw)
		}
		if introspect(tok) {
			t.Error("revoked token still active")
		}
		if r := status(tok); r.body["revoked"] != true {
			t.Errorf("revocation_url says %s", r.raw)
		}
		if r := status(child); r.body["revoked"] != true {
			t.Errorf("child of a revoked token: %s", r.raw)
		}
		evs := h.events(store.EventFilter{Action: "token.revoked", JTI: claims(t, tok)["jti"].(string)})
		if len(evs) != 1 || evs[0].Performer != "agent:infrabot" {
			t.Errorf("revocation audit = %+v", evs)
		}
	})
}

func TestTokenEndpointHygiene(t *testing.T) {
	h := newHarness(t)
	send := func(method, path, contentType, body string) response {
		req, _ := http.NewRequest(method, h.url+path, strings.NewReader(body))
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		return h.do(req)
	}
	form := "grant_type=client_credentials&client_id=agent%3Ainfrabot&client_secret=infrabot-secret"
	tests := []struct {
		name        string
		method      string
		path        string
		contentType string
		body        string
		wantStatus  int
		wantError   oauth.ErrorCode
	}{
		{"ok/client-credentials", http.MethodPost, "/token", "application/x-www-form-urlencoded", form, 200, ""},
		{"fail/get", http.MethodGet, "/token", "", "", 405, oauth.ErrMethodNotAllowed},
		{"fail/json-body", http.MethodPost, "/token", "application/json", `{"grant_type":"client_credentials"}`, 400, oauth.ErrInvalidRequest},
		{"fail/duplicate-grant-type", http.MethodPost, "/token", "application/x-www-form-urlencoded", form + "&grant_type=client_credentials", 400, oauth.ErrInvalidRequest},
		{"fail/query-parameters", http.MethodPost, "/token?scope=secrets:manage", "application/x-www-form-urlencoded", form, 400, oauth.ErrInvalidRequest},
		{"fail/unknown-grant", http.MethodPost, "/token", "application/x-www-form-urlencoded", strings.Replace(form, "client_credentials", "password", 1), 400, oauth.ErrUnsupportedGrantType},
		{"fail/body-too-large", http.MethodPost, "/token", "application/x-www-form-urlencoded", form + "&pad=" + strings.Repeat("a", 70<<10), 413, oauth.ErrRequestTooLarge},
		{"fail/too-many-parameters", http.MethodPost, "/token", "application/x-www-form-urlencoded", form + strings.Repeat("&x=1", 120), 400, oauth.ErrInvalidRequest},
		{"fail/scope-with-tab", http.MethodPost, "/token", "application/x-www-form-urlencoded", form + "&scope=monitoring:read%09deploy:create", 400, oauth.ErrInvalidScope},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := send(tc.method, tc.path, tc.contentType, tc.body)
			if r.status != tc.wantStatus {
				t.Fatalf("status = %d, want %d: %s", r.status, tc.wantStatus, r.raw)
			}
			if cc := r.header.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control = %q", cc)
			}
			if tc.wantError != "" && r.str("error") != string(tc.wantError) {
				t.Errorf("error = %q, want %q", r.str("error"), tc.wantError)
			}
		})
	}
}

func TestClientCredentialsToken(t *testing.T) {
	h := newHarness(t)
	r := h.post("/token", "agent:argocd", url.Values{"grant_type": {oauth.GrantClientCredentials}, "scope": {"deploy:tag secrets:manage"}})
	checkResponse(t, h, r, 200, "", "")
	c := claims(t, r.str("access_token"))
	if c["sub"] != "agent:argocd" || c["client_id"] != "agent:argocd" || c["scope"] != "deploy:tag" || c["aud"] != h.url {
		t.Errorf("claims = %v", c)
	}
	if _, ok := c["act"]; ok {
		t.Error("a client's own token carries act")
	}
}

func TestDiscoveryAndJWKS(t *testing.T) {
	h := newHarness(t)
	get := func(path string) response {
		req, _ := http.NewRequest(http.MethodGet, h.url+path, nil)
		return h.do(req)
	}
	a, b := get("/.well-known/oauth-authorization-server"), get("/.well-known/openid-configuration")
	if a.status != 200 || a.raw != b.raw {
		t.Fatalf("metadata differ or fail: %d %s / %s", a.status, a.raw, b.raw)
	}
	if a.body["issuer"] != h.url || a.body["jwks_uri"] != h.url+"/jwks" || a.body["token_endpoint"] != h.url+"/token" {
		t.Errorf("metadata = %s", a.raw)
	}
	grants, _ := a.body["grant_types_supported"].([]any)
	if fmt.Sprint(grants) != fmt.Sprint([]any{"authorization_code", "refresh_token", oauth.GrantTokenExchange, oauth.GrantClientCredentials}) {
		t.Errorf("grant_types_supported = %v", grants)
	}
	if a.body["authorization_endpoint"] != h.url+"/authorize" || a.body["authorization_response_iss_parameter_supported"] != true ||
		fmt.Sprint(a.body["code_challenge_methods_supported"]) != "[S256]" || fmt.Sprint(a.body["response_types_supported"]) != "[code]" {
		t.Errorf("the authorization endpoint's metadata: %s", a.raw)
	}
	j := get("/jwks")
	keys, _ := j.body["keys"].([]any)
	if j.status != 200 || len(keys) == 0 {
		t.Fatalf("jwks: %d %s", j.status, j.raw)
	}
	for _, k := range keys {
		key := k.(map[string]any)
		for _, private := range []string{"d", "p", "q", "dp", "dq", "qi", "k"} {
			if _, ok := key[private]; ok {
				t.Errorf("JWKS publishes private member %q", private)
			}
		}
		if key["kid"] == nil || key["alg"] != "EdDSA" {
			t.Errorf("key = %v", key)
		}
	}
	// The kid of an issued token names a key the JWKS publishes.
	tok := h.hop1("monitoring:read")
	hdrJSON, err := base64.RawURLEncoding.DecodeString(strings.SplitN(tok, ".", 2)[0])
	if err != nil {
		t.Fatal(err)
	}
	var hdr struct {
		Kid string `json:"kid"`
		Typ string `json:"typ"`
	}
	_ = json.Unmarshal(hdrJSON, &hdr)
	published := false
	for _, k := range keys {
		published = published || k.(map[string]any)["kid"] == hdr.Kid
	}
	if hdr.Kid == "" || !published || hdr.Typ != "at+jwt" {
		t.Errorf("token header %s: kid not published in the JWKS, or typ not at+jwt", hdrJSON)
	}
	if r := get("/healthz"); r.status != 200 {
		t.Errorf("healthz = %d", r.status)
	}
	h.faulty.Fail("Ping", errors.New("down"))
	if r := get("/healthz"); r.status != 503 {
		t.Errorf("healthz with the store down = %d", r.status)
	}
	h.faulty.Heal()
	resp, err := http.Get(h.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "mandate_tokens_issued_total") {
		t.Error("metrics lack mandate_tokens_issued_total")
	}
}

func TestAdminAPI(t *testing.T) {
	h := newHarness(t)
	t.Run("fail/no-bearer", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, h.url+"/audit", nil)
		if r := h.do(req); r.status != 401 {
			t.Errorf("status = %d", r.status)
		}
	})
	t.Run("fail/wrong-bearer", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, h.url+"/audit", nil)
		req.Header.Set("Authorization", "Bearer "+adminToken+"x")
		if r := h.do(req); r.status != 401 {
			t.Errorf("status = %d", r.status)
		}
	})
	t.Run("ok/delegation-lifecycle", func(t *testing.T) {
		r := h.admin(http.MethodPost, "/admin/delegations", map[string]any{
			"subject": "user:sam", "actor": "agent:mallory", "scopes": []string{"monitoring:read"}, "audiences": []string{"https://metrics.example"},
		})
		if r.status != 201 {
			t.Fatalf("create: %d %s", r.status, r.raw)
		}
		tok := h.mustExchange("agent:mallory", h.samToken(), oauth.TokenTypeIDToken, nil)
		if c := claims(t, tok); c["delegation_id"] != r.str("id") || c["aud"] != "https://metrics.example" {
			t.Errorf("claims = %v", c)
		}
		if d := h.admin(http.MethodDelete, "/admin/delegations/"+r.str("id"), nil); d.status != 200 {
			t.Fatalf("delete: %d %s", d.status, d.raw)
		}
		if x := h.exchange("agent:mallory", h.samToken(), oauth.TokenTypeIDToken, nil); x.status != 400 {
			t.Errorf("exchange after delete: %d %s", x.status, x.raw)
		}
		if i := h.post("/introspect", "agent:mallory", url.Values{"token": {tok}}); i.body["active"] != false {
			t.Errorf("token of a deleted delegation: %s", i.raw)
		}
	})
	t.Run("fail/delegation-unknown-actor", func(t *testing.T) {
		r := h.admin(http.MethodPost, "/admin/delegations", map[string]any{"subject": "user:sam", "actor": "agent:nobody", "scopes": []string{"x"}})
		if r.status != 404 {
			t.Errorf("status = %d %s", r.status, r.raw)
		}
	})
	t.Run("fail/revoke-needs-exactly-one", func(t *testing.T) {
		r := h.admin(http.MethodPost, "/admin/revoke", map[string]any{"jti": "a", "subject": "user:sam"})
		if r.status != 400 {
			t.Errorf("status = %d %s", r.status, r.raw)
		}
	})
	t.Run("ok/revoke-agent-kills-chain", func(t *testing.T) {
		tok := h.hop1("deploy:tag")
		child := h.mustExchange("agent:argocd", tok, oauth.TokenTypeAccessToken, url.Values{"audience": {"agent:cleanup_agent"}})
		if r := h.admin(http.MethodPost, "/admin/revoke", map[string]any{"agent": "agent:infrabot"}); r.status != 200 {
			t.Fatalf("revoke agent: %d %s", r.status, r.raw)
		}
		if i := h.post("/introspect", "agent:argocd", url.Values{"token": {child}}); i.body["active"] != false {
			t.Errorf("a token with a disabled prior actor is active: %s", i.raw)
		}
		h.admin(http.MethodPost, "/admin/agents/agent:infrabot/enable", nil)
	})
	t.Run("ok/audit-query", func(t *testing.T) {
		h.hop1("monitoring:read")
		h.exchange("agent:mallory", h.samToken(), oauth.TokenTypeIDToken, url.Values{"audience": {"https://deploy.example"}})
		// actor matches anywhere in the chain.
		r := h.admin(http.MethodGet, "/audit?actor=agent%3Ainfrabot&limit=2", nil)
		evs, _ := r.body["events"].([]any)
		if r.status != 200 || len(evs) != 2 || r.str("next_cursor") == "" {
			t.Fatalf("audit page: %d %s", r.status, r.raw)
		}
		first := evs[0].(map[string]any)
		for _, k := range []string{"time", "action", "result", "seq"} {
			if _, ok := first[k]; !ok {
				t.Errorf("event lacks %s: %v", k, first)
			}
		}
		next := h.admin(http.MethodGet, "/audit?actor=agent:infrabot&limit=2&cursor="+r.str("next_cursor"), nil)
		evs2, _ := next.body["events"].([]any)
		if len(evs2) == 0 || evs2[0].(map[string]any)["seq"].(float64) >= evs[1].(map[string]any)["seq"].(float64) {
			t.Errorf("second page does not continue the first: %s", next.raw)
		}
		refused := h.admin(http.MethodGet, "/audit?action=token.refused&subject=user:sam", nil)
		found := false
		for _, e := range refused.body["events"].([]any) {
			ev := e.(map[string]any)
			if ev["performed_by"] == "agent:mallory" && ev["reason"] == "actor_not_delegated" && ev["on_behalf_of"] == "user:sam" {
				found = true
			}
		}
		if !found {
			t.Errorf("refusal of mallory not found: %s", refused.raw)
		}
	})
}
