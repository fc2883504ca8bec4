package verify_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/mandate-dev/mandate/verify"
)

// TestRequestScopesInChallenge: with Resource.RequestScopes, every 401
// names them in scope (RFC 6750 §3), the one a request without a token
// gets included, so that a client signing in asks for what the resource
// needs; a 403 names the scopes of the rule that refused, not these.
func TestRequestScopesInChallenge(t *testing.T) {
	f := newFixture(t)
	v := f.verifier(t, func(c *verify.Config) {
		c.Resource.RequestScopes = []string{"monitoring:read", "deploy:create"}
	})
	h := v.Middleware(verify.RequireScope("deploy:delete").Then(ok))
	for _, tc := range []struct {
		name  string
		token string
		want  string
	}{
		{name: "ok/no-token", want: `Bearer scope="monitoring:read deploy:create", resource_metadata="` + metadataURL + `"`},
		{name: "ok/invalid-token", token: "x.y.z", want: `Bearer error="invalid_token", error_description="the access token is malformed", scope="monitoring:read deploy:create", resource_metadata="` + metadataURL + `"`},
		{name: "ok/insufficient-scope", token: f.token(claims()), want: `Bearer error="insufficient_scope", error_description="the access token lacks a required scope", scope="deploy:delete", resource_metadata="` + metadataURL + `"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := serve(t, h, request(tc.token)).WWWAuthenticate; got != tc.want {
				t.Errorf("WWW-Authenticate\n got %s\nwant %s", got, tc.want)
			}
		})
	}
}

// TestRequestScopesRefused: New refuses a request scope that is not an RFC
// 6749 §3.3 scope token, which could break out of the quoted parameter.
func TestRequestScopesRefused(t *testing.T) {
	f := newFixture(t)
	for _, bad := range []string{"", "a b", `a"b`, `a\b`, "é"} {
		cfg := f.config()
		cfg.Resource.RequestScopes = []string{bad}
		if _, err := verify.New(t.Context(), cfg); err == nil || !strings.Contains(err.Error(), "RequestScopes") {
			t.Errorf("%q: New = %v, want a RequestScopes error", bad, err)
		}
	}
}

// TestMetadataPath: the metadata of a resource with a path is served at
// the well-known path with the resource's path inserted after it (RFC
// 9728 §3.1), and the 401 points there.
func TestMetadataPath(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		name, resource, metadataURL, wantPath, wantChallenge string
	}{
		{name: "ok/no-path", resource: "https://tools.example", wantPath: "/.well-known/oauth-protected-resource",
			wantChallenge: `Bearer resource_metadata="https://tools.example/.well-known/oauth-protected-resource"`},
		{name: "ok/path", resource: "https://tools.example/mcp", wantPath: "/.well-known/oauth-protected-resource/mcp",
			wantChallenge: `Bearer resource_metadata="https://tools.example/.well-known/oauth-protected-resource/mcp"`},
		{name: "ok/trailing-slash", resource: "https://tools.example/team/mcp/", wantPath: "/.well-known/oauth-protected-resource/team/mcp",
			wantChallenge: `Bearer resource_metadata="https://tools.example/.well-known/oauth-protected-resource/team/mcp"`},
		{name: "ok/configured", resource: "https://tools.example/mcp", metadataURL: "https://meta.example/prm", wantPath: "/prm",
			wantChallenge: `Bearer resource_metadata="https://meta.example/prm"`},
		{name: "ok/not-a-url", resource: "agent:tools", wantPath: "", wantChallenge: `Bearer`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := f.verifier(t, func(c *verify.Config) {
				c.Audience = tc.resource
				c.Resource.MetadataURL = tc.metadataURL
			})
			if got := v.MetadataPath(); got != tc.wantPath {
				t.Errorf("MetadataPath() = %q, want %q", got, tc.wantPath)
			}
			if got := serve(t, v.Middleware(ok), request("")); got.Status != http.StatusUnauthorized || got.WWWAuthenticate != tc.wantChallenge {
				t.Errorf("401: %d %q, want %q", got.Status, got.WWWAuthenticate, tc.wantChallenge)
			}
			if tc.wantPath == "" {
				return
			}
			mux := http.NewServeMux()
			mux.Handle(v.MetadataPath(), v.ProtectedResourceMetadata())
			r := request("")
			r.Method, r.URL.Path = http.MethodGet, tc.wantPath
			if got := serve(t, mux, r); got.Status != http.StatusOK {
				t.Errorf("GET %s: %d", tc.wantPath, got.Status)
			}
		})
	}
}
