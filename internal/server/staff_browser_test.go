package server_test

import (
	"net/url"
	"strings"
	"testing"

	"github.com/mandate-dev/mandate/internal/browsertest"
	"github.com/mandate-dev/mandate/oauth"
)

// TestStaffPagesInABrowser: an administrator signs in, disables an agent
// on Agents and opens a record from Audit in a real browser; every page
// passes axe-core's serious and critical checks. It skips when no
// Chromium is found (fails in CI).
func TestStaffPagesInABrowser(t *testing.T) {
	h := newPeopleHarness(t)
	h.argoToken("deploy:create")
	if r := h.exchange("agent:mallory", h.samToken(), oauth.TokenTypeIDToken, url.Values{"scope": {"secrets:manage"}}); r.status == 200 {
		t.Fatal("mallory got a token")
	}
	h.staffMember("user:alice", "admin") // gives the role and the password
	b := browsertest.New(t)
	b.Navigate(t, h.url+"/login")
	b.Type(t, "#username", "user:alice")
	b.Type(t, "#password", staffPassword)
	b.ClickText(t, "Sign in")

	b.ClickText(t, "Agents")
	b.CheckAccessibility(t, "agents")
	b.ClickText(t, "Disable agent:mallory")
	if txt := b.Text(t, "main"); !strings.Contains(txt, "Disabled agent:mallory") {
		t.Fatalf("after Disable: %s", txt)
	}
	if !h.agent("agent:mallory").Disabled {
		t.Fatal("agent:mallory is not disabled")
	}
	b.CheckAccessibility(t, "agents after disable")
	b.Screenshot(t, "agents")

	b.ClickText(t, "Audit")
	b.CheckAccessibility(t, "audit")
	b.Screenshot(t, "audit")
	b.SetValue(t, `select[name="result"]`, "refused")
	b.ClickText(t, "Show")
	if u := b.URL(t); !strings.Contains(u, "result=refused") {
		t.Fatalf("the filter went to %s", u)
	}
	b.CheckAccessibility(t, "audit filtered")

	b.Navigate(t, h.url+"/manage/audit?action=token.exchange&actor=agent%3Aargocd")
	b.Click(t, `tbody a[href^="/manage/audit/record"]`)
	if txt := b.Text(t, "main"); !strings.Contains(txt, "Who stood behind this action") || !strings.Contains(txt, "agent:infrabot → agent:argocd") {
		t.Fatalf("the record page: %s", txt)
	}
	b.CheckAccessibility(t, "record")
	b.Screenshot(t, "record")
}
