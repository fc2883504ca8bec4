package server_test

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/mandate-dev/mandate/internal/config"
	"github.com/mandate-dev/mandate/internal/store"
	"github.com/mandate-dev/mandate/oauth"
)

// mcpURI is the registered MCP server: a resource people's tokens are
// addressed to and, as the tests make it, also a client that hands work on
// by token exchange (its client id is its URI, so that the tokens
// addressed to it are its own to exchange).
const mcpURI = "https://mcp.example/mcp"

// withResources is withPeople with the MCP server registered: InfraBot and
// the MCP server itself may receive tokens for it, and a client that asks
// for no scope is asked monitoring:read.
func withResources(c *config.Config) {
	withPeople(c)
	c.Resources = []config.Resource{{
		URI: mcpURI, Name: "Deploy assistant",
		Scopes: []config.Scope{
			{Name: "monitoring:read", Description: "Read the dashboards"},
			{Name: "deploy:create", Description: "Start deployments from the assistant"},
			{Name: "mcp:tools", Description: "List the tools"},
		},
		DefaultScopes: []string{"monitoring:read"},
		Agents:        []string{"agent:infrabot", mcpURI},
	}}
	for i := range c.Agents {
		if c.Agents[i].ID == "agent:infrabot" {
			c.Agents[i].DelegateTo = append(c.Agents[i].DelegateTo, mcpURI)
		}
	}
	c.Agents = append(c.Agents, config.Agent{ID: mcpURI, Secret: mcpURI + "-secret", Scopes: []string{"monitoring:read", "deploy:create"}})
}

func newResourcesHarness(t *testing.T) *harness {
	t.Helper()
	h := newHarnessEdited(t, openSQLite, nil, withResources)
	h.givePassword("user:sam", samPassword)
	return h
}

// TestResourceAtAuthorize: a request naming an unregistered resource, or a
// registered one its client may not receive tokens for, goes back to the
// client as invalid_target with state and iss (RFC 8707 §2, RFC 9207);
// a registered one in another spelling, or none, goes on to sign-in.
func TestResourceAtAuthorize(t *testing.T) {
	h := newResourcesHarness(t)
	tests := []struct {
		name, client, resource string
		wantError              string
	}{
		{name: "fail/resource-unknown", client: "agent:infrabot", resource: "https://other.example/mcp", wantError: "invalid_target"},
		{name: "fail/agent-not-allowed", client: "agent:argocd", resource: mcpURI, wantError: "invalid_target"},
		{name: "fail/resource-malformed", client: "agent:infrabot", resource: mcpURI + "#frag", wantError: "invalid_target"},
		{name: "ok/registered", client: "agent:infrabot", resource: mcpURI},
		{name: "ok/other-spelling", client: "agent:infrabot", resource: "HTTPS://MCP.example:443/mcp"},
		{name: "ok/no-resource", client: "agent:argocd"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			extra := url.Values{}
			if tt.resource != "" {
				extra.Set("resource", tt.resource)
			}
			pg := h.person().get(h.authorizeURL(tt.client, "monitoring:read", "st-9", extra))
			if pg.status != http.StatusFound {
				t.Fatalf("authorize: %d %s", pg.status, pg.text())
			}
			loc := pg.location(t, h.url)
			q := loc.Query()
			if tt.wantError == "" {
				if loc.Path != "/login" || q.Get("error") != "" {
					t.Fatalf("sent to %s, want the sign-in page", loc)
				}
				return
			}
			if !strings.HasPrefix(loc.String(), appRedirect) || q.Get("error") != tt.wantError || q.Get("state") != "st-9" || q.Get("iss") != h.url {
				t.Fatalf("sent to %s, want %s with error=%s, state and iss", loc, appRedirect, tt.wantError)
			}
		})
	}
}

// TestResourceDefaultScopesAndConsentPage: a client that asks for no
// scope, or for offline_access alone, is asked the resource's default
// scopes; the consent page names the resource and says its scopes in its
// own words; the token is for the resource alone.
func TestResourceDefaultScopesAndConsentPage(t *testing.T) {
	h := newResourcesHarness(t)
	for _, scope := range []string{"", "offline_access"} {
		t.Run("scope="+scope, func(t *testing.T) {
			p := h.person()
			cp := p.consent(h.authorizeURL("agent:infrabot", scope, "st-1", url.Values{"resource": {mcpURI}}), "user:sam", samPassword)
			if cp.status != http.StatusOK {
				t.Fatalf("consent page: %d %s", cp.status, cp.text())
			}
			text := cp.text()
			for _, want := range []string{"Deploy assistant ( " + mcpURI + " )", "monitoring:read : Read the dashboards"} {
				if !strings.Contains(text, want) {
					t.Errorf("the consent page does not say %q:\n%s", want, text)
				}
			}
			for _, not := range []string{"offline_access", "deploy:create"} {
				if strings.Contains(text, not) {
					t.Errorf("the consent page offers %s:\n%s", not, text)
				}
			}
			code, _ := p.approve(cp, nil)
			tok := h.codeToken("agent:infrabot", code, verifierA)
			if tok.status != http.StatusOK {
				t.Fatalf("code exchange: %d %s", tok.status, tok.raw)
			}
			if c := claims(t, tok.str("access_token")); c["scope"] != "monitoring:read" || c["aud"] != mcpURI {
				t.Errorf("token claims %v, want scope monitoring:read for %s", c, mcpURI)
			}
		})
	}
}

// TestResourceBinding: the code, the refresh family and every access token
// are for the approved resource, whatever spelling the client used; a
// refresh may name it again but not another (invalid_target, and the
// refresh token is not used up); offline_access at refresh narrows
// nothing. The MCP server cannot hand the token on beyond the approved
// resource, and a client the resource does not allow gets no token for it
// by token exchange either.
func TestResourceBinding(t *testing.T) {
	h := newResourcesHarness(t)
	p := h.person()
	cp := p.consent(h.authorizeURL("agent:infrabot", "monitoring:read deploy:create offline_access", "st-1",
		url.Values{"resource": {"https://MCP.Example/mcp"}}), "user:sam", samPassword)
	code, _ := p.approve(cp, nil)
	// MCP clients name the resource at the token endpoint too.
	tok := h.post("/token", "agent:infrabot", url.Values{
		"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {appRedirect}, "code_verifier": {verifierA},
		"resource": {mcpURI},
	})
	if tok.status != http.StatusOK {
		t.Fatalf("code exchange: %d %s", tok.status, tok.raw)
	}
	aud := func(r response) string {
		t.Helper()
		if r.status != http.StatusOK {
			t.Fatalf("token: %d %s", r.status, r.raw)
		}
		a, _ := claims(t, r.str("access_token"))["aud"].(string)
		return a
	}
	if got := aud(tok); got != mcpURI {
		t.Fatalf("code token aud %q, want %s", got, mcpURI)
	}
	if c := claims(t, tok.str("access_token")); c["scope"] != "monitoring:read deploy:create" {
		t.Errorf("code token scope %v: offline_access is no scope of a token", c["scope"])
	}
	rt := tok.str("refresh_token")

	refused := h.refresh("agent:infrabot", rt, url.Values{"resource": {"https://other.example/mcp"}})
	if refused.status != http.StatusBadRequest || refused.str("error") != string(oauth.ErrInvalidTarget) {
		t.Fatalf("refresh for another resource: %d %s, want 400 invalid_target", refused.status, refused.raw)
	}
	steps := []url.Values{
		nil,
		{"resource": {mcpURI}},
		{"resource": {"https://mcp.example:443/mcp"}},
		{"scope": {"offline_access"}},
		{"scope": {"monitoring:read offline_access"}},
	}
	var last response
	for _, extra := range steps {
		last = h.refresh("agent:infrabot", rt, extra)
		if got := aud(last); got != mcpURI {
			t.Fatalf("refresh %v: aud %q, want %s", extra, got, mcpURI)
		}
		if s, _ := claims(t, last.str("access_token"))["scope"].(string); strings.Contains(s, "offline_access") {
			t.Errorf("refresh %v: scope %q", extra, s)
		}
		rt = last.str("refresh_token")
	}

	// The person approved the MCP server and nothing beyond it: the
	// delegation is for that resource, so the MCP server cannot hand the
	// token on to another API (RFC 8707 §2: invalid_target).
	hop := h.exchange(mcpURI, last.str("access_token"), oauth.TokenTypeAccessToken,
		url.Values{"resource": {"https://deploy.example"}, "scope": {"monitoring:read"}})
	if hop.status != http.StatusBadRequest || hop.str("error") != string(oauth.ErrInvalidTarget) {
		t.Errorf("the MCP server's exchange beyond the approved resource: %d %s, want 400 invalid_target", hop.status, hop.raw)
	}

	// Within the approval it may: for itself, spelt as it likes.
	self := h.exchange(mcpURI, last.str("access_token"), oauth.TokenTypeAccessToken,
		url.Values{"resource": {"https://MCP.example/mcp"}, "scope": {"monitoring:read"}})
	if got := aud(self); got != mcpURI {
		t.Errorf("the MCP server's token for itself: aud %q", got)
	}

	// Token exchange for the resource follows its allow-list.
	allowed := h.exchange("agent:infrabot", h.samToken(), oauth.TokenTypeIDToken,
		url.Values{"resource": {"https://mcp.EXAMPLE/mcp"}, "scope": {"monitoring:read"}})
	if got := aud(allowed); got != mcpURI {
		t.Errorf("InfraBot's exchanged token aud %q, want %s", got, mcpURI)
	}
	// Alice's standing delegation to the expense agent names no audience,
	// but the resource does not allow that agent.
	notAllowed := h.exchange("agent:expense", h.idp.token(t, "user:alice", nil), oauth.TokenTypeIDToken,
		url.Values{"resource": {mcpURI}})
	if notAllowed.status != http.StatusBadRequest || notAllowed.str("error") != string(oauth.ErrInvalidTarget) {
		t.Errorf("the expense agent's exchange for the resource: %d %s, want 400 invalid_target", notAllowed.status, notAllowed.raw)
	}
	recorded := false
	for _, ev := range h.events(store.EventFilter{Actor: "agent:expense", Result: "refused"}) {
		recorded = recorded || ev.Reason == "resource_not_allowed"
	}
	if !recorded {
		t.Error("the refused exchange left no audit record with reason resource_not_allowed")
	}
}

// TestResourceDiscovery: scopes_supported lists the resources' catalogues
// and offline_access beside the agents' scopes.
func TestResourceDiscovery(t *testing.T) {
	h := newResourcesHarness(t)
	for _, path := range []string{"/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"} {
		doc := getJSON(t, h.url+path)
		var scopes []string
		for _, s := range doc["scopes_supported"].([]any) {
			scopes = append(scopes, s.(string))
		}
		for _, want := range []string{"mcp:tools", "offline_access", "deploy:create", "audit:report"} {
			if !slices.Contains(scopes, want) {
				t.Errorf("%s: scopes_supported %v lacks %s", path, scopes, want)
			}
		}
		if !slices.IsSorted(scopes) || len(slices.Compact(slices.Clone(scopes))) != len(scopes) {
			t.Errorf("%s: scopes_supported %v is not sorted and distinct", path, scopes)
		}
	}
}

// TestIssuerWithPath: an issuer with a path is served under it: the
// metadata at the three locations MCP clients derive from it (RFC 8414
// §3.1's and OpenID's path-inserted ones, OpenID's path-appended one), each
// naming endpoints under the path that answer there.
func TestIssuerWithPath(t *testing.T) {
	h := newHarnessEdited(t, openSQLite, nil, func(c *config.Config) { c.Issuer += "/mandate" })
	iss := h.url + "/mandate"
	for _, path := range []string{"/.well-known/oauth-authorization-server/mandate", "/.well-known/openid-configuration/mandate", "/mandate/.well-known/openid-configuration"} {
		doc := getJSON(t, h.url+path)
		if doc["issuer"] != iss || doc["token_endpoint"] != iss+"/token" || doc["jwks_uri"] != iss+"/jwks" {
			t.Errorf("%s: %v", path, doc)
		}
	}
	if status := statusOf(t, http.MethodGet, iss+"/jwks"); status != http.StatusOK {
		t.Errorf("GET %s/jwks: %d", iss, status)
	}
	tok := h.exchangeAt("/mandate/token", "agent:infrabot", h.samToken(), url.Values{"audience": {"agent:argocd"}, "scope": {"monitoring:read"}})
	if tok.status != http.StatusOK {
		t.Fatalf("token at the issuer's path: %d %s", tok.status, tok.raw)
	}
	if c := claims(t, tok.str("access_token")); c["iss"] != iss {
		t.Errorf("iss %v, want %s", c["iss"], iss)
	}
	if status := statusOf(t, http.MethodGet, h.url+"/.well-known/oauth-authorization-server/elsewhere"); status != http.StatusNotFound {
		t.Errorf("metadata of another path answers %d, want 404", status)
	}
}

// exchangeAt is a token exchange of Sam's IdP token by client at path.
func (h *harness) exchangeAt(path, client, idToken string, extra url.Values) response {
	h.t.Helper()
	form := url.Values{"grant_type": {oauth.GrantTokenExchange}, "subject_token": {idToken}, "subject_token_type": {oauth.TokenTypeIDToken}}
	for k, v := range extra {
		form[k] = v
	}
	return h.post(path, client, form)
}
