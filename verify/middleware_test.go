package verify_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/google/go-cmp/cmp"

	"github.com/mandate-dev/mandate/verify"
)

const metadataURL = "https://deploy.example/.well-known/oauth-protected-resource"

// response is what a test reads back from a handler.
type response struct {
	Status          int
	WWWAuthenticate string
	ContentType     string
	CacheControl    string
	RetryAfter      string
	Error           string
	Description     string
}

func serve(t *testing.T, h http.Handler, r *http.Request) response {
	t.Helper()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	var body struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if w.Code != http.StatusOK {
		if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
			t.Fatalf("body %q: %v", w.Body.String(), err)
		}
	}
	return response{
		Status:          w.Code,
		WWWAuthenticate: w.Header().Get("WWW-Authenticate"),
		ContentType:     w.Header().Get("Content-Type"),
		CacheControl:    w.Header().Get("Cache-Control"),
		RetryAfter:      w.Header().Get("Retry-After"),
		Error:           body.Error,
		Description:     body.Description,
	}
}

func request(token string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/deploys", nil)
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	return r
}

var ok = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	if _, found := verify.FromContext(r.Context()); !found {
		http.Error(w, "no principal", http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusOK)
})

// failingKeys is a key source that cannot reach the issuer.
type failingKeys struct{}

func (failingKeys) Key(context.Context, string) (jose.JSONWebKey, error) {
	return jose.JSONWebKey{}, errors.New("connection refused")
}

func TestMiddlewareRefusals(t *testing.T) {
	f := newFixture(t)
	v := f.verifier(t)
	expired := f.token(with(claims(), "exp", epoch.Add(-time.Hour).Unix(), "iat", epoch.Add(-time.Hour-time.Minute).Unix(), "nbf", remove))
	hostileKid := compact(`{"alg":"EdDSA","kid":"<script>\"x\r\n","typ":"at+jwt"}`, mustJSON(claims()), edSigner(f.ed))
	twoHeaders := request(f.token(claims()))
	twoHeaders.Header.Add("Authorization", "Bearer "+f.token(claims()))
	inQuery := httptest.NewRequest(http.MethodGet, "/deploys?access_token="+f.token(claims()), nil)
	lower := httptest.NewRequest(http.MethodGet, "/deploys", nil)
	lower.Header.Set("Authorization", "bearer "+f.token(claims()))
	basic := httptest.NewRequest(http.MethodGet, "/deploys", nil)
	basic.SetBasicAuth("a", "b")
	invalid := func(desc string) response {
		return response{
			Status:          401,
			WWWAuthenticate: `Bearer error="invalid_token", error_description="` + desc + `", resource_metadata="` + metadataURL + `"`,
			ContentType:     "application/json", CacheControl: "no-store",
			Error: "invalid_token", Description: desc,
		}
	}
	unavailable := func(desc string) response {
		return response{Status: 503, RetryAfter: "30", ContentType: "application/json", CacheControl: "no-store", Error: "temporarily_unavailable", Description: desc}
	}
	missing := response{
		Status: 401, WWWAuthenticate: `Bearer resource_metadata="` + metadataURL + `"`,
		ContentType: "application/json", CacheControl: "no-store",
		Error: "invalid_token", Description: "an access token is required",
	}
	badRequest := response{
		Status:          400,
		WWWAuthenticate: `Bearer error="invalid_request", error_description="send the access token once, in the Authorization header", resource_metadata="` + metadataURL + `"`,
		ContentType:     "application/json", CacheControl: "no-store",
		Error: "invalid_request", Description: "send the access token once, in the Authorization header",
	}
	for _, tc := range []struct {
		name string
		v    *verify.Verifier
		r    *http.Request
		want response
	}{
		{name: "ok/valid", v: v, r: request(f.token(claims())), want: response{Status: 200}},
		{name: "ok/lowercase-scheme", v: v, r: lower, want: response{Status: 200}},
		{name: "fail/no-token", v: v, r: request(""), want: missing},
		{name: "fail/basic-scheme", v: v, r: basic, want: missing},
		{name: "fail/expired", v: v, r: request(expired), want: invalid("the access token has expired")},
		{name: "fail/garbage", v: v, r: request("not-a-token"), want: invalid("the access token is malformed")},
		{name: "fail/hostile-kid-not-reflected", v: v, r: request(hostileKid), want: invalid("the access token is signed with an unknown key")},
		{name: "fail/two-headers", v: v, r: twoHeaders, want: badRequest},
		{name: "fail/query-token", v: v, r: inQuery, want: badRequest},
		{name: "fail/keys-unavailable", v: f.verifier(t, func(c *verify.Config) { c.Keys = failingKeys{} }), r: request(f.token(claims())), want: unavailable("the token issuer's keys cannot be obtained; retry later")},
		{name: "fail/revocation-unavailable", v: f.verifier(t, func(c *verify.Config) { c.Revocation = revocationDown{} }), r: request(f.token(claims())), want: unavailable("the revocation state cannot be checked; retry later")},
		{name: "fail/revoked", v: f.verifier(t, func(c *verify.Config) { c.Revocation = revokedJTIs{"jti-1": true} }), r: request(f.token(claims())), want: invalid("the access token has been revoked")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := serve(t, tc.v.Middleware(ok), tc.r)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("response (-want +got):\n%s", diff)
			}
			if strings.ContainsAny(got.Description, "\r\n\t\"\\") {
				t.Errorf("error_description %q leaves the RFC 6749 charset", got.Description)
			}
		})
	}
}

func TestMiddlewareRules(t *testing.T) {
	f := newFixture(t)
	v := f.verifier(t)
	sam := f.token(claims()) // argocd (current) ← infrabot, prod via ci_pipeline
	manual := f.token(with(claims(), "context", map[string]any{"environment": "prod", "trigger": "manual"}))
	direct := f.token(with(claims(), "act", remove))
	prodNeedsCI := verify.RequireContext(func(c verify.Context) error {
		if c.String("environment") == "prod" && c.String("trigger") != "ci_pipeline" {
			return errors.New("prod deploys come from ci_pipeline")
		}
		return nil
	})
	forbidden := func(code, desc, scope string) response {
		r := response{Status: 403, ContentType: "application/json", CacheControl: "no-store", Error: code, Description: desc}
		if code == "insufficient_scope" {
			r.WWWAuthenticate = `Bearer error="insufficient_scope", error_description="` + desc + `", scope="` + scope + `", resource_metadata="` + metadataURL + `"`
		} else {
			r.WWWAuthenticate = `Bearer resource_metadata="` + metadataURL + `"`
		}
		return r
	}
	allowed := response{Status: 200}
	for _, tc := range []struct {
		name  string
		rule  verify.Rule
		token string
		want  response
	}{
		{name: "ok/scope", rule: verify.RequireScope("deploy:create"), token: sam, want: allowed},
		{name: "ok/two-scopes", rule: verify.RequireScope("deploy:create", "monitoring:read"), token: sam, want: allowed},
		{name: "fail/scope-missing", rule: verify.RequireScope("deploy:delete"), token: sam, want: forbidden("insufficient_scope", "the access token lacks a required scope", "deploy:delete")},
		{name: "fail/scope-case", rule: verify.RequireScope("DEPLOY:create"), token: sam, want: forbidden("insufficient_scope", "the access token lacks a required scope", "DEPLOY:create")},
		{name: "ok/any-scope", rule: verify.RequireAnyScope("x", "monitoring:read"), token: sam, want: allowed},
		{name: "fail/any-scope", rule: verify.RequireAnyScope("x", "y"), token: sam, want: forbidden("insufficient_scope", "the access token lacks a required scope", "x y")},
		{name: "ok/allow-current-actor", rule: verify.AllowActors("agent:argocd"), token: sam, want: allowed},
		{name: "fail/allow-prior-actor-only", rule: verify.AllowActors("agent:infrabot"), token: sam, want: forbidden("access_denied", "the acting agent is not allowed here", "")},
		{name: "fail/allow-no-actor", rule: verify.AllowActors("agent:argocd"), token: direct, want: forbidden("access_denied", "the acting agent is not allowed here", "")},
		{name: "fail/deny-current-actor", rule: verify.DenyActors("agent:argocd"), token: sam, want: forbidden("access_denied", "the acting agent is not allowed here", "")},
		{name: "ok/deny-prior-actor-does-not-deny", rule: verify.DenyActors("agent:infrabot"), token: sam, want: allowed},
		{name: "ok/max-depth-2", rule: verify.MaxDepth(2), token: sam, want: allowed},
		{name: "fail/max-depth-1", rule: verify.MaxDepth(1), token: sam, want: forbidden("access_denied", "the delegation chain is too deep for this resource", "")},
		{name: "ok/prod-from-ci", rule: prodNeedsCI, token: sam, want: allowed},
		{name: "fail/prod-manual", rule: prodNeedsCI, token: manual, want: forbidden("access_denied", "the request context does not allow this", "")},
		{name: "fail/chain-second-rule", rule: verify.Chain(verify.RequireScope("deploy:create"), verify.DenyActors("agent:argocd")), token: sam, want: forbidden("access_denied", "the acting agent is not allowed here", "")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := serve(t, v.Middleware(tc.rule.Then(ok)), request(tc.token))
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("response (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRuleWithoutMiddlewareFailsClosed(t *testing.T) {
	f := newFixture(t)
	got := serve(t, verify.RequireScope("deploy:create").Then(ok), request(f.token(claims())))
	if got.Status != http.StatusInternalServerError {
		t.Fatalf("status = %d, want 500", got.Status)
	}
	if _, found := verify.FromContext(context.Background()); found {
		t.Fatal("FromContext found a principal in an empty context")
	}
}

func TestMiddlewareAuditRecord(t *testing.T) {
	f := newFixture(t)
	var buf bytes.Buffer
	v := f.verifier(t, func(c *verify.Config) {
		c.Logger = slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{ReplaceAttr: dropTime}))
	})
	tok := f.token(claims())
	h := v.Middleware(verify.RequireScope("deploy:create").Then(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		verify.SetAction(r.Context(), "deploy:create", "service/api")
	})))
	serve(t, h, request(tok))
	serve(t, h, request("garbage."+tok))
	serve(t, v.Middleware(verify.RequireScope("deploy:delete").Then(ok)), request(tok))
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("got %d records, want 3:\n%s", len(lines), buf.String())
	}
	if strings.Contains(buf.String(), tok) || strings.Contains(buf.String(), strings.Split(tok, ".")[2]) {
		t.Fatal("the audit log holds the token")
	}
	want := []map[string]any{
		{"level": "INFO", "msg": "verify", "performed_by": "agent:argocd", "on_behalf_of": "user:sam",
			"chain": []any{"agent:argocd", "agent:infrabot"}, "scopes": []any{"deploy:create", "monitoring:read"},
			"context": map[string]any{"environment": "prod", "trigger": "ci_pipeline"},
			"action":  "deploy:create", "resource": "service/api", "result": "granted", "reason": "", "jti": "jti-1"},
		{"level": "WARN", "msg": "verify", "action": "POST", "resource": "/deploys", "result": "refused", "reason": "token_malformed"},
		{"level": "WARN", "msg": "verify", "performed_by": "agent:argocd", "on_behalf_of": "user:sam",
			"chain": []any{"agent:argocd", "agent:infrabot"}, "scopes": []any{"deploy:create", "monitoring:read"},
			"context": map[string]any{"environment": "prod", "trigger": "ci_pipeline"},
			"action":  "POST", "resource": "/deploys", "result": "refused", "reason": "insufficient_scope", "jti": "jti-1"},
	}
	for i, line := range lines {
		var got map[string]any
		if err := json.Unmarshal([]byte(line), &got); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want[i], got); diff != "" {
			t.Errorf("record %d (-want +got):\n%s", i, diff)
		}
	}
}

func dropTime(_ []string, a slog.Attr) slog.Attr {
	if a.Key == slog.TimeKey {
		return slog.Attr{}
	}
	return a
}

func TestProtectedResourceMetadata(t *testing.T) {
	f := newFixture(t)
	v := f.verifier(t, func(c *verify.Config) {
		c.Resource.ScopesSupported = []string{"deploy:create", "deploy:read"}
	})
	w := httptest.NewRecorder()
	v.ProtectedResourceMetadata().ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/.well-known/oauth-protected-resource", nil))
	var got map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"resource":                 audience,
		"authorization_servers":    []any{issuer},
		"scopes_supported":         []any{"deploy:create", "deploy:read"},
		"bearer_methods_supported": []any{"header"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("metadata (-want +got):\n%s", diff)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
}

// TestDiscovery runs New against an issuer that publishes RFC 8414
// metadata and a JWKS, and checks the refetch-on-unknown-kid cooldown.
func TestDiscovery(t *testing.T) {
	f := newFixture(t)
	var jwksHits int
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	defer srv.Close()
	mux.HandleFunc("GET /.well-known/oauth-authorization-server", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, `{"issuer":%q,"jwks_uri":%q}`, srv.URL, srv.URL+"/jwks")
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, _ *http.Request) {
		jwksHits++
		fmt.Fprintf(w, `{"keys":[%s]}`, jwk(f.keys["ed1"]))
	})
	now := epoch
	v, err := verify.New(t.Context(), verify.Config{
		Issuer: srv.URL, Audience: audience, Algorithms: []string{"EdDSA"},
		HTTPClient: srv.Client(), Now: func() time.Time { return now },
	})
	if err != nil {
		t.Fatal(err)
	}
	c := with(claims(), "iss", srv.URL)
	if _, err := v.Verify(t.Context(), f.token(c)); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	unknown := compact(`{"alg":"EdDSA","kid":"rotated","typ":"at+jwt"}`, mustJSON(c), edSigner(f.ed))
	for range 10 {
		if _, err := v.Verify(t.Context(), unknown); !errors.Is(err, verify.ErrUnknownKey) {
			t.Fatalf("unknown kid: %v", err)
		}
	}
	if jwksHits != 1 {
		t.Errorf("JWKS fetched %d times within the cooldown, want 1", jwksHits)
	}
	now = now.Add(31 * time.Second)
	for range 10 {
		_, _ = v.Verify(t.Context(), unknown)
	}
	if jwksHits != 2 {
		t.Errorf("JWKS fetched %d times, want 2 (one refetch for the unknown kid after the cooldown)", jwksHits)
	}
	if _, err := verify.New(t.Context(), verify.Config{
		Issuer: srv.URL + "/other", Audience: audience, Algorithms: []string{"EdDSA"}, HTTPClient: srv.Client(),
	}); err == nil {
		t.Error("New accepted an issuer whose metadata is missing")
	}
}

func TestRefusedMarksTheAuditRecord(t *testing.T) {
	var logs bytes.Buffer
	f := newFixture(t)
	v := f.verifier(t, func(c *verify.Config) { c.Logger = slog.New(slog.NewJSONHandler(&logs, nil)) })
	h := v.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		verify.Refused(r.Context(), "limit_exceeded")
		w.WriteHeader(http.StatusForbidden)
	}))
	req := httptest.NewRequest(http.MethodPost, "/expenses/1/approve", nil)
	req.Header.Set("Authorization", "Bearer "+f.token(claims()))
	h.ServeHTTP(httptest.NewRecorder(), req)
	if !strings.Contains(logs.String(), `"result":"refused"`) || !strings.Contains(logs.String(), `"reason":"limit_exceeded"`) {
		t.Fatalf("audit record = %s", logs.String())
	}
}
