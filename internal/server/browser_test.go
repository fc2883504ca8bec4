package server_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mandate-dev/mandate/internal/browsertest"
	"github.com/mandate-dev/mandate/internal/upstream/upstreamtest"
)

// clientApp is the application a person is sent back to: a loopback page that
// keeps the code and state it receives.
type clientApp struct {
	srv  *httptest.Server
	mu   sync.Mutex
	back url.Values
}

func newApp(t *testing.T) *clientApp {
	t.Helper()
	a := &clientApp{}
	a.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		a.back = r.URL.Query()
		a.mu.Unlock()
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(`<!doctype html><html lang="en"><head><meta charset="utf-8"><title>InfraBot</title></head><body><main><h1>InfraBot is connected</h1></main></body></html>`))
	}))
	t.Cleanup(a.srv.Close)
	return a
}

func (a *clientApp) received() url.Values {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.back
}

// TestBrowserSignInConsentAndRevoke is the person's story in a real
// browser, once with a local password and once through the company's
// OpenID provider: the person signs in, reads the consent page naming
// agent:infrabot, unticks a scope and approves; InfraBot redeems the code
// for a token with the approved scope only and act.sub agent:infrabot and
// refreshes it once; the person opens My agents, sees the delegation and
// its last action, and revokes it; the API then refuses the token and the
// refresh token is dead. Every page passes the accessibility check;
// screenshots of the consent page and My agents are saved
// (browsertest.Screenshot).
func TestBrowserSignInConsentAndRevoke(t *testing.T) {
	for _, way := range []string{"password", "provider"} {
		t.Run(way, func(t *testing.T) { browserStory(t, way) })
	}
}

func browserStory(t *testing.T, way string) {
	b := browsertest.New(t)
	var (
		h      *harness
		idp    company
		person = "user:sam"
	)
	if way == "provider" {
		var idps []company
		h, idps = newUpstreamHarness(t, "sso:{preferred_username}")
		idp, person = idps[0], "sso:sam"
	} else {
		h = newPeopleHarness(t)
	}
	api := h.resourceServer("https://deploy.example", nil)
	a := newApp(t)
	redirect := a.srv.URL + "/cb"
	authURL := h.authorizeURL("agent:infrabot", "deploy:create monitoring:read", "st-browser", url.Values{
		"redirect_uri": {redirect}, "resource": {"https://deploy.example"},
	})

	b.Navigate(t, authURL)
	if !strings.Contains(b.URL(t), "/login") {
		t.Fatalf("not sent to sign in: %s", b.URL(t))
	}
	b.CheckAccessibility(t, "sign-in")
	if way == "password" {
		b.Type(t, "#username", "user:sam")
		b.Type(t, "#password", samPassword)
		b.ClickText(t, "Sign in")
	} else {
		b.ClickText(t, "Sign in with "+idp.name)
		if !strings.HasPrefix(b.URL(t), idp.Issuer) {
			t.Fatalf("not at the provider: %s", b.URL(t))
		}
		b.Type(t, `input[name="username"]`, "sam")
		b.Type(t, `input[name="password"]`, upstreamtest.Password)
		b.ClickText(t, "Login")
	}

	if !strings.Contains(b.URL(t), "/consent") {
		t.Fatalf("not on the consent page: %s: %s", b.URL(t), b.Text(t, "main"))
	}
	consent := b.Text(t, "main")
	for _, want := range []string{"agent:infrabot asks to act for you", "deploy:create", "Create deployments", "monitoring:read", "https://deploy.example"} {
		if !strings.Contains(consent, want) {
			t.Errorf("the consent page does not say %q:\n%s", want, consent)
		}
	}
	hdr := b.Response(t).Header
	if hdr.Get("X-Frame-Options") != "DENY" || !strings.Contains(hdr.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
		t.Errorf("consent page headers: %v", hdr)
	}
	b.CheckAccessibility(t, "consent")
	b.Uncheck(t, `input[value="monitoring:read"]`)
	b.Screenshot(t, "consent")
	b.ClickText(t, "Approve")

	back := a.received()
	if back.Get("state") != "st-browser" || back.Get("iss") != h.url || back.Get("code") == "" {
		t.Fatalf("the application received %v", back)
	}
	tok := h.post("/token", "agent:infrabot", url.Values{"grant_type": {"authorization_code"}, "code": {back.Get("code")},
		"redirect_uri": {redirect}, "code_verifier": {verifierA}})
	if tok.status != http.StatusOK {
		t.Fatalf("code exchange: %d %s", tok.status, tok.raw)
	}
	c := claims(t, tok.str("access_token"))
	act, _ := c["act"].(map[string]any)
	if c["sub"] != person || act["sub"] != "agent:infrabot" || c["scope"] != "deploy:create" || c["aud"] != "https://deploy.example" {
		t.Fatalf("token claims %v", c)
	}
	ref := h.refresh("agent:infrabot", tok.str("refresh_token"), nil)
	if ref.status != http.StatusOK {
		t.Fatalf("refresh: %d %s", ref.status, ref.raw)
	}
	access := ref.str("access_token")
	if !api.accepts(access) {
		t.Fatal("the API refuses the refreshed token")
	}

	b.Navigate(t, h.url+"/my/agents")
	mine := b.Text(t, "main")
	for _, want := range []string{"agent:infrabot", "deploy:create", "https://deploy.example", "token.issue", "granted"} {
		if !strings.Contains(mine, want) {
			t.Errorf("My agents does not say %q:\n%s", want, mine)
		}
	}
	b.CheckAccessibility(t, "my-agents")
	b.Screenshot(t, "my-agents")
	b.Click(t, `form[action="/my/agents/revoke"] button`)
	if !strings.Contains(b.Text(t, "main"), "Revoked") {
		t.Fatalf("no confirmation after revoking: %s", b.Text(t, "main"))
	}
	if !api.refusesWithin(access, 2*time.Second) {
		t.Fatal("the API still accepts the token two seconds after Sam revoked it")
	}
	if r := h.refresh("agent:infrabot", ref.str("refresh_token"), nil); r.str("error") != "invalid_grant" {
		t.Fatalf("the refresh token outlived the revocation: %d %s", r.status, r.raw)
	}
}
