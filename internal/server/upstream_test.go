package server_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"golang.org/x/net/html"

	"github.com/mandate-dev/mandate/internal/audit"
	"github.com/mandate-dev/mandate/internal/config"
	"github.com/mandate-dev/mandate/internal/server"
	"github.com/mandate-dev/mandate/internal/store"
	"github.com/mandate-dev/mandate/internal/upstream/upstreamtest"
)

// company is a provider people sign in through, as the server's tests
// configure it.
type company struct {
	*upstreamtest.IDP
	name string
}

// newUpstreamHarness is the people's harness with one login provider per
// user id template (upstreamtest's rules: sre grants deploy:create and
// monitoring:read, dev monitoring:read, sam's verified address
// secrets:manage, mandate-admins the role admin), named "Company 1", …
// They all call back to the server's one callback.
func newUpstreamHarness(t *testing.T, templates ...string) (*harness, []company) {
	t.Helper()
	var idps []company
	h := newHarnessEdited(t, openSQLite, nil, func(c *config.Config) {
		withPeople(c)
		for i, tmpl := range templates {
			d := company{IDP: upstreamtest.New(t, c.Issuer+server.CallbackPath), name: fmt.Sprintf("Company %d", i+1)}
			idp := d.Login(d.name)
			idp.Login.UserID = tmpl
			c.IdentityProviders = append(c.IdentityProviders, idp)
			idps = append(idps, d)
		}
	})
	h.givePassword("user:sam", samPassword)
	return h, idps
}

// link returns the href of the page's link whose text is text.
func (pg page) link(t *testing.T, text string) string {
	t.Helper()
	var href string
	var walk func(n *html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode && n.Data == "a" && n.FirstChild != nil && strings.TrimSpace(n.FirstChild.Data) == text {
			href = attr(n, "href")
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(pg.doc)
	if href == "" {
		t.Fatalf("no link %q on the page:\n%s", text, pg.body)
	}
	return href
}

// startAt runs an authorization request of InfraBot to the sign-in page
// and follows its link to d; it returns the provider's authorization URL.
func (p *person) startAt(d company, scopes string) string {
	p.t.Helper()
	first := p.get(p.h.authorizeURL("agent:infrabot", scopes, "st-1", nil))
	next := first.location(p.t, p.h.url)
	if next.Path != "/login" {
		p.t.Fatalf("authorize sent the browser to %s, want /login", next)
	}
	login := p.get(next.RequestURI())
	start := p.get(login.link(p.t, "Sign in with "+d.name))
	if start.status != http.StatusFound {
		p.t.Fatalf("start: %d %s", start.status, start.text())
	}
	authURL := start.location(p.t, p.h.url)
	if !strings.HasPrefix(authURL.String(), d.Issuer+"/") {
		p.t.Fatalf("start sent the browser to %s, want %s", authURL, d.Issuer)
	}
	return authURL.String()
}

// upstreamConsent signs in at d as username and returns the consent page.
func (p *person) upstreamConsent(d company, username, scopes string) page {
	p.t.Helper()
	cb := d.SignIn(p.t, p.startAt(d, scopes), username)
	after := p.get(cb.String())
	if after.status != http.StatusSeeOther {
		p.t.Fatalf("callback: %d %s", after.status, after.text())
	}
	cp := p.get(after.location(p.t, p.h.url).RequestURI())
	if cp.status != http.StatusOK {
		p.t.Fatalf("consent page: %d %s", cp.status, cp.text())
	}
	return cp
}

// signInRefusals returns the reasons of refused sign-ins after seq.
func (h *harness) signInRefusals(seq int64) []string {
	h.t.Helper()
	var out []string
	for _, ev := range h.eventsSince(seq) {
		if ev.Action == audit.ActionSignIn && ev.Result == audit.ResultRefused {
			out = append(out, ev.Reason)
		}
	}
	return out
}

func (h *harness) lastEventSeq() int64 {
	h.t.Helper()
	evs := h.eventsSince(0)
	if len(evs) == 0 {
		return 0
	}
	return evs[len(evs)-1].Seq
}

// TestUpstreamSignInConsent is the person's story through the company's
// provider: the sign-in page lists it, the person signs in there, comes
// back, consents, and InfraBot gets a token acting for them with the
// permissions the provider's groups give.
func TestUpstreamSignInConsent(t *testing.T) {
	h, idps := newUpstreamHarness(t, "sso:{preferred_username}")
	d := idps[0]
	p := h.person()
	cp := p.upstreamConsent(d, "sam", "deploy:create monitoring:read")
	code, back := p.approve(cp, nil)
	if back.Get("state") != "st-1" || code == "" {
		t.Fatalf("the application got %v", back)
	}
	tok := h.codeToken("agent:infrabot", code, verifierA)
	if tok.status != http.StatusOK {
		t.Fatalf("code exchange: %d %s", tok.status, tok.raw)
	}
	c := claims(t, tok.str("access_token"))
	act, _ := c["act"].(map[string]any)
	if c["sub"] != "sso:sam" || act["sub"] != "agent:infrabot" || c["scope"] != "deploy:create monitoring:read" {
		t.Fatalf("token claims %v", c)
	}
	u, err := h.store.GetUser(context.Background(), "sso:sam")
	if err != nil {
		t.Fatal(err)
	}
	want := store.User{ID: "sso:sam", Permissions: []string{"deploy:create", "monitoring:read", "secrets:manage"}, Roles: []string{"admin"}, Provider: d.Issuer}
	if diff := cmp.Diff(want, u, cmpopts.IgnoreFields(store.User{}, "CreatedAt", "UpdatedAt")); diff != "" {
		t.Errorf("the person as stored (-want +got):\n%s", diff)
	}
	created := h.events(store.EventFilter{Action: audit.ActionUserCreated, Resource: "sso:sam"})
	if len(created) != 1 || created[0].Performer != "idp:"+d.Issuer {
		t.Errorf("user.created records: %+v", created)
	}
	for _, ev := range h.eventsSince(0) {
		for _, tk := range d.Tokens() {
			if strings.Contains(fmt.Sprint(ev), tk) {
				t.Errorf("an audit record holds a token of the provider: %+v", ev)
			}
		}
	}
}

// TestT94MixUpAtUpstreamLogin: with two providers, a callback that names
// the other provider in iss, or lacks the iss its provider promises, is
// refused with an error page and recorded; nobody is signed in and nobody
// created. So is a callback of an unknown state or from another browser.
func TestT94MixUpAtUpstreamLogin(t *testing.T) {
	h, idps := newUpstreamHarness(t, "sso:{preferred_username}", "sso:{preferred_username}")
	a, b := idps[0], idps[1]
	b.AdvertiseISS(true) // before the server reads B's discovery document
	tests := []struct {
		name   string
		at     company
		edit   func(q url.Values)
		other  bool // the callback is brought by another browser
		reason string
	}{
		{name: "fail/iss-of-the-other-provider", at: a, edit: func(q url.Values) { q.Set("iss", b.Issuer) }, reason: "issuer_mismatch"},
		{name: "fail/iss-missing-when-advertised", at: b, reason: "issuer_mismatch"},
		{name: "fail/iss-of-the-other-provider-when-advertised", at: b, edit: func(q url.Values) { q.Set("iss", a.Issuer) }, reason: "issuer_mismatch"},
		{name: "fail/unknown-state", at: a, edit: func(q url.Values) { q.Set("state", "forged") }, reason: "unknown_state"},
		{name: "fail/another-browser", at: a, other: true, reason: "another_browser"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := h.person()
			cb := tt.at.SignIn(t, p.startAt(tt.at, "deploy:create"), "sam")
			q := cb.Query()
			if tt.edit != nil {
				tt.edit(q)
			}
			cb.RawQuery = q.Encode()
			seq := h.lastEventSeq()
			browser := p
			if tt.other {
				browser = h.person()
			}
			res := browser.get(cb.String())
			if res.status != http.StatusForbidden || !strings.Contains(res.text(), "Not signed in") {
				t.Fatalf("callback: %d %s", res.status, res.text())
			}
			for _, c := range res.header.Values("Set-Cookie") {
				if strings.HasPrefix(c, "mandate_session=") {
					t.Errorf("a refused callback set a session cookie: %s", c)
				}
			}
			if got := h.signInRefusals(seq); !cmp.Equal(got, []string{tt.reason}) {
				t.Errorf("refused sign-ins recorded = %q, want [%s]", got, tt.reason)
			}
			if mine := browser.get("/my/agents"); mine.status == http.StatusOK {
				t.Error("My agents is open after a refused callback")
			}
			if _, err := h.store.GetUser(context.Background(), "sso:sam"); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("a refused callback created the person: %v", err)
			}
			// The sign-in it answered is used up: the same callback again
			// finds no sign-in.
			if again := p.get(cb.String()); again.status != http.StatusForbidden {
				t.Errorf("the callback replayed: %d", again.status)
			}
		})
	}
	// B's own callback with its iss signs in.
	p := h.person()
	cb := b.SignIn(t, p.startAt(b, "deploy:create"), "sam")
	q := cb.Query()
	q.Set("iss", b.Issuer)
	cb.RawQuery = q.Encode()
	if res := p.get(cb.String()); res.status != http.StatusSeeOther {
		t.Fatalf("B's callback with its iss: %d %s", res.status, res.text())
	}
}

// TestUpstreamPeopleFollowTheProvider: a person the provider takes out of
// a group loses the permissions it gave at their next sign-in, and the
// tokens carrying them stop at once; a person managed in Mandate is not
// taken over by a provider's person of the same id.
func TestUpstreamPeopleFollowTheProvider(t *testing.T) {
	h, idps := newUpstreamHarness(t, "sso:{preferred_username}", "user:{preferred_username}")
	d := idps[0]
	sam := h.person()
	code, _ := sam.approve(sam.upstreamConsent(d, "sam", "deploy:create monitoring:read"), nil)
	tok := h.codeToken("agent:infrabot", code, verifierA)
	if tok.status != http.StatusOK || !h.active(tok.str("access_token")) {
		t.Fatalf("code exchange: %d %s", tok.status, tok.raw)
	}

	// The provider moves sam from sre to dev: deploy:create is gone.
	d.SetGroups("u1", []string{"dev"})
	h.person().upstreamConsent(d, "sam", "monitoring:read")
	u, err := h.store.GetUser(context.Background(), "sso:sam")
	if err != nil {
		t.Fatal(err)
	}
	if !cmp.Equal(u.Permissions, []string{"monitoring:read", "secrets:manage"}) || len(u.Roles) != 0 {
		t.Errorf("after the next sign-in: permissions %v, roles %v", u.Permissions, u.Roles)
	}
	if h.active(tok.str("access_token")) {
		t.Error("a token carrying a permission the provider took away is still active")
	}
	evs := h.events(store.EventFilter{Action: audit.ActionUserPermissions, Resource: "sso:sam"})
	if len(evs) != 1 || evs[0].Performer != "idp:"+d.Issuer || !slices.Equal(evs[0].Scopes, []string{"monitoring:read", "secrets:manage"}) {
		t.Errorf("user.permissions records: %+v", evs)
	}

	// Company 2 makes user:sam, a person managed in Mandate.
	before, _ := h.store.GetUser(context.Background(), "user:sam")
	p := h.person()
	seq := h.lastEventSeq()
	cb := idps[1].SignIn(t, p.startAt(idps[1], "deploy:create"), "sam")
	res := p.get(cb.String())
	if res.status != http.StatusConflict || !strings.Contains(res.text(), "not managed by this sign-in provider") {
		t.Fatalf("sign-in as a person managed in Mandate: %d %s", res.status, res.text())
	}
	if got := h.signInRefusals(seq); !cmp.Equal(got, []string{"not_managed_by_provider"}) {
		t.Errorf("refused sign-ins recorded = %q", got)
	}
	after, _ := h.store.GetUser(context.Background(), "user:sam")
	if diff := cmp.Diff(before, after); diff != "" {
		t.Errorf("the person managed in Mandate changed (-before +after):\n%s", diff)
	}
}

// TestUpstreamProviderDown: a provider that cannot be reached does not
// stop Mandate from starting; the sign-in page still lists it, and
// starting there says it is unavailable and changes nothing.
func TestUpstreamProviderDown(t *testing.T) {
	h := newHarnessEdited(t, openSQLite, nil, func(c *config.Config) {
		withPeople(c)
		c.IdentityProviders = append(c.IdentityProviders, config.IdentityProvider{Issuer: "http://127.0.0.1:1",
			Login: &config.Login{Name: "Down SSO", ClientID: "mandate", UserID: "sso:{sub}", Scopes: []string{"openid"}}})
	})
	p := h.person()
	login := p.get("/login")
	start := p.get(login.link(t, "Sign in with Down SSO"))
	if start.status != http.StatusBadGateway || !strings.Contains(start.text(), "cannot be reached") {
		t.Fatalf("start at a provider that is down: %d %s", start.status, start.text())
	}
	if unknown := p.get("/login/provider?issuer=" + url.QueryEscape("https://nobody.example")); unknown.status != http.StatusNotFound {
		t.Errorf("start at an unknown provider: %d %s", unknown.status, unknown.text())
	}
}
