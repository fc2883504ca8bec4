package server_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/mandate-dev/mandate/internal/store"
	"github.com/mandate-dev/mandate/oauth"
)

// TestConsentReplacesEarlierApproval: a person approving the same agent
// for the same resource again (a client stepping up to more scopes)
// replaces the earlier approval: it is revoked, recorded as
// consent_replaced, and its refresh tokens are refused, while the new one
// and an approval for another resource stay in force. My agents then
// shows one approval in force per agent and resource.
func TestConsentReplacesEarlierApproval(t *testing.T) {
	h := newHarnessEdited(t, openSQLite, nil, withToolsServer)
	h.givePassword("user:sam", samPassword)
	p := h.person()
	approve := func(resource, scopes string) response {
		t.Helper()
		cp := p.consent(h.authorizeURL("agent:infrabot", scopes, "st", url.Values{"resource": {resource}}), "user:sam", samPassword)
		code, _ := p.approve(cp, nil)
		tok := h.codeToken("agent:infrabot", code, verifierA)
		if tok.status != http.StatusOK {
			t.Fatalf("code exchange: %d %s", tok.status, tok.raw)
		}
		return tok
	}
	other := approve(mcpURI, "monitoring:read")
	first := approve(toolsURI, "monitoring:read")
	second := approve(toolsURI, "monitoring:read deploy:create")

	if r := h.refresh("agent:infrabot", first.str("refresh_token"), nil); r.status != http.StatusBadRequest || r.str("error") != string(oauth.ErrInvalidGrant) {
		t.Errorf("the replaced approval's refresh token: %d %s, want 400 invalid_grant", r.status, r.raw)
	}
	for name, tok := range map[string]response{"the new approval": second, "the other resource's approval": other} {
		if r := h.refresh("agent:infrabot", tok.str("refresh_token"), nil); r.status != http.StatusOK {
			t.Errorf("%s's refresh token: %d %s, want 200", name, r.status, r.raw)
		}
	}
	replaced := h.events(store.EventFilter{Action: "delegation.revoked"})
	if len(replaced) != 1 || replaced[0].Reason != "consent_replaced" || replaced[0].Performer != "user:sam" {
		t.Errorf("revocations recorded %+v, want one consent_replaced by user:sam", replaced)
	}
	text := p.get("/my/agents").text()
	// In force: the file's standing delegation and one approval per
	// resource; the replaced one is shown as ended.
	if n, ended := strings.Count(text, "Revoke agent:infrabot"), strings.Count(text, "(revoked or expired)"); n != 3 || ended != 1 {
		t.Errorf("My agents offers %d revocations of InfraBot and shows %d ended, want 3 and 1:\n%s", n, ended, text)
	}
}
