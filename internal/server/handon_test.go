package server_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/mandate-dev/mandate/internal/config"
	"github.com/mandate-dev/mandate/oauth"
)

// The tools server: a registered resource whose server is an agent of its
// own (its client id is not its URI), which may hand the tokens addressed
// to it on to the deploy API.
const (
	toolsURI   = "https://tools.example/mcp"
	toolsAgent = "agent:mcp_tools"
	deployAPI  = "https://deploy.example"
)

// withToolsServer is withResources with the tools server registered.
// InfraBot's own delegate_to does not name the tools agent: only the
// person's approval lets it hand on.
func withToolsServer(c *config.Config) {
	withResources(c)
	c.Resources = append(c.Resources, config.Resource{
		URI: toolsURI, Name: "Deploy tools", Agent: toolsAgent, HandOn: []string{deployAPI},
	})
	c.Agents = append(c.Agents, config.Agent{ID: toolsAgent, Secret: "mcp_tools-secret", Scopes: []string{"monitoring:read", "deploy:create"}})
}

// TestResourceServerHandsOn: a person approving an agent for a resource
// whose server exchanges its tokens is shown that server and where it may
// hand the tokens on; the approval records both. The server may then
// exchange the agent's token for those audiences alone, with no more
// than was approved, and the chain reads person, agent, server; no other
// agent may take the token on, and an approval for another resource lets
// the server take nothing on.
func TestResourceServerHandsOn(t *testing.T) {
	h := newHarnessEdited(t, openSQLite, nil, withToolsServer)
	h.givePassword("user:sam", samPassword)
	p := h.person()
	cp := p.consent(h.authorizeURL("agent:infrabot", "monitoring:read deploy:create", "st-1",
		url.Values{"resource": {toolsURI}}), "user:sam", samPassword)
	if cp.status != http.StatusOK {
		t.Fatalf("consent page: %d %s", cp.status, cp.text())
	}
	for _, want := range []string{"It is the agent " + toolsAgent, "for " + deployAPI} {
		if !strings.Contains(cp.text(), want) {
			t.Errorf("the consent page does not say %q:\n%s", want, cp.text())
		}
	}
	code, _ := p.approve(cp, []string{"deploy:create"})
	tok := h.codeToken("agent:infrabot", code, verifierA)
	if tok.status != http.StatusOK {
		t.Fatalf("code exchange: %d %s", tok.status, tok.raw)
	}
	client := tok.str("access_token")

	hop := h.exchange(toolsAgent, client, oauth.TokenTypeAccessToken,
		url.Values{"audience": {deployAPI}, "scope": {"deploy:create"}})
	if hop.status != http.StatusOK {
		t.Fatalf("the tools server's exchange for the deploy API: %d %s", hop.status, hop.raw)
	}
	c := claims(t, hop.str("access_token"))
	act, _ := c["act"].(map[string]any)
	inner, _ := act["act"].(map[string]any)
	if c["sub"] != "user:sam" || c["aud"] != deployAPI || c["scope"] != "deploy:create" ||
		act["sub"] != toolsAgent || inner["sub"] != "agent:infrabot" {
		t.Errorf("handed-on token %v, want Sam through InfraBot and the tools server, deploy:create for %s", c, deployAPI)
	}

	refusals := []struct {
		name, client, subject, wantError string
		extra                            url.Values
	}{
		{name: "audience-not-approved", client: toolsAgent, subject: client, wantError: string(oauth.ErrInvalidTarget),
			extra: url.Values{"audience": {"https://evil.example"}}},
		{name: "scope-not-approved", client: toolsAgent, subject: client, wantError: string(oauth.ErrInvalidScope),
			extra: url.Values{"audience": {deployAPI}, "scope": {"monitoring:read"}}},
		{name: "not-the-server", client: "agent:argocd", subject: client, wantError: string(oauth.ErrInvalidRequest),
			extra: url.Values{"audience": {deployAPI}}},
		{name: "not-the-actor-s-token", client: "agent:argocd", subject: hop.str("access_token"), wantError: string(oauth.ErrInvalidRequest),
			extra: url.Values{"audience": {deployAPI}}},
	}
	for _, tt := range refusals {
		t.Run("fail/"+tt.name, func(t *testing.T) {
			r := h.exchange(tt.client, tt.subject, oauth.TokenTypeAccessToken, tt.extra)
			if r.status != http.StatusBadRequest || r.str("error") != tt.wantError {
				t.Errorf("%d %s, want 400 %s", r.status, r.raw, tt.wantError)
			}
		})
	}

	// The code's client gets tokens for the approved resource alone.
	if r := h.refresh("agent:infrabot", tok.str("refresh_token"), url.Values{"resource": {deployAPI}}); r.str("error") != string(oauth.ErrInvalidTarget) {
		t.Errorf("refresh for the hand-on audience: %d %s, want invalid_target", r.status, r.raw)
	}

	// The approval says so, to the administrator and to Sam.
	list := h.admin(http.MethodGet, "/admin/delegations?subject=user:sam&actor=agent:infrabot", nil)
	if !strings.Contains(list.raw, `"delegate_to":["`+toolsAgent+`"]`) || !strings.Contains(list.raw, `"hand_on":["`+deployAPI+`"]`) {
		t.Errorf("the delegation does not record the hand-on: %s", list.raw)
	}
	if mine := p.get("/my/agents"); !strings.Contains(mine.text(), "Passed on by "+toolsAgent+" , to "+deployAPI) {
		t.Errorf("My agents does not say who passes the tokens on:\n%s", mine.text())
	}
}

// TestResourceWithoutServerHandsNothingOn: an approval for a resource
// whose server is not registered records no hand-on, and the tools agent
// cannot take its tokens on.
func TestResourceWithoutServerHandsNothingOn(t *testing.T) {
	h := newHarnessEdited(t, openSQLite, nil, withToolsServer)
	h.givePassword("user:sam", samPassword)
	p := h.person()
	cp := p.consent(h.authorizeURL("agent:infrabot", "monitoring:read", "st-1",
		url.Values{"resource": {mcpURI}}), "user:sam", samPassword)
	if strings.Contains(cp.text(), toolsAgent) {
		t.Errorf("the consent page names the tools agent for another resource:\n%s", cp.text())
	}
	code, _ := p.approve(cp, nil)
	tok := h.codeToken("agent:infrabot", code, verifierA)
	if tok.status != http.StatusOK {
		t.Fatalf("code exchange: %d %s", tok.status, tok.raw)
	}
	r := h.exchange(toolsAgent, tok.str("access_token"), oauth.TokenTypeAccessToken, url.Values{"audience": {deployAPI}})
	if r.status != http.StatusBadRequest || r.str("error") != string(oauth.ErrInvalidRequest) {
		t.Errorf("the tools agent's exchange of another resource's token: %d %s, want 400 invalid_request", r.status, r.raw)
	}
}
