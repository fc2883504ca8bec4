package server_test

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mandate-dev/mandate/internal/config"
	"github.com/mandate-dev/mandate/internal/store"
)

// The sign-in and consent threat cases of THREATS.md (T38, T40, T41, T42,
// T97) and the sign-in safeguards, against the real server: a person's
// browser (person), the application's redirects read from Location, and
// the store and audit log read directly.

// appHTTPS is the https redirect URI the redirect corpus is checked
// against.
const appHTTPS = "https://app.example/cb"

// authorizeWith is an authorization request of InfraBot like authorizeURL,
// with set replacing parameters and drop removing them.
func (h *harness) authorizeWith(set url.Values, drop ...string) string {
	q := url.Values{
		"client_id": {"agent:infrabot"}, "redirect_uri": {appRedirect}, "response_type": {"code"}, "scope": {"deploy:create"},
		"state": {"st-1"}, "code_challenge": {challenge(verifierA)}, "code_challenge_method": {"S256"},
	}
	for k, v := range set {
		q[k] = v
	}
	for _, k := range drop {
		delete(q, k)
	}
	return h.url + "/authorize?" + q.Encode()
}

// consentDelegations are subject's delegations created by a consent.
func (h *harness) consentDelegations(subject string) []store.Delegation {
	h.t.Helper()
	var out []store.Delegation
	for _, d := range h.listDelegations(subject) {
		if d.Source == "consent" {
			out = append(out, d)
		}
	}
	return out
}

// refused reports whether the audit log holds a refused record of action
// with reason.
func (h *harness) refused(action, reason string) bool {
	h.t.Helper()
	for _, ev := range h.events(store.EventFilter{Action: action}) {
		if ev.Result == "refused" && ev.Reason == reason {
			return true
		}
	}
	return false
}

// pageHygiene checks the headers every page answer carries.
func pageHygiene(t *testing.T, what string, pg page) {
	t.Helper()
	if got := pg.header.Get("Referrer-Policy"); got != "no-referrer" {
		t.Errorf("%s: Referrer-Policy %q", what, got)
	}
	if got := pg.header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("%s: Cache-Control %q", what, got)
	}
}

// noTokenInURL fails when a Location carries a token or a fragment.
func noTokenInURL(t *testing.T, what, location string) {
	t.Helper()
	u, err := url.Parse(location)
	if err != nil {
		t.Fatalf("%s: Location %q: %v", what, location, err)
	}
	if u.Fragment != "" || strings.Contains(location, "#") {
		t.Errorf("%s: Location with a fragment: %s", what, location)
	}
	for _, k := range []string{"access_token", "id_token", "refresh_token", "token"} {
		if u.Query().Has(k) {
			t.Errorf("%s: Location carries %s: %s", what, k, location)
		}
	}
}

// TestT38PKCEAtTheServer: an authorization request without an S256
// code_challenge is an invalid_request sent back to the client with iss
// and state; at /token a verifier that does not match, is 42 or 129
// characters, uses characters outside RFC 7636's set or is missing is
// invalid_grant. Every code has a challenge, so a verifier can never be
// sent for a code issued without one (the downgrade).
func TestT38PKCEAtTheServer(t *testing.T) {
	h := newPeopleHarness(t)
	p := h.person()

	for _, c := range []struct {
		name   string
		set    url.Values
		drop   []string
		reason string
	}{
		{name: "fail/no-challenge", drop: []string{"code_challenge", "code_challenge_method"}, reason: "pkce_missing"},
		{name: "fail/plain", set: url.Values{"code_challenge": {verifierA}, "code_challenge_method": {"plain"}}, reason: "pkce_method_unsupported"},
		{name: "fail/plain-with-s256-length", set: url.Values{"code_challenge_method": {"plain"}}, reason: "pkce_method_unsupported"},
		{name: "fail/no-method", drop: []string{"code_challenge_method"}, reason: "pkce_method_unsupported"},
	} {
		t.Run(c.name, func(t *testing.T) {
			res := p.get(h.authorizeWith(c.set, c.drop...))
			if res.status != http.StatusFound {
				t.Fatalf("%d %s", res.status, res.text())
			}
			back := res.location(t, h.url)
			q := back.Query()
			if back.Host != "127.0.0.1:8400" || q.Get("error") != "invalid_request" || q.Get("iss") != h.url || q.Get("state") != "st-1" || q.Has("code") {
				t.Fatalf("redirected to %s", back)
			}
			evs := h.events(store.EventFilter{Action: "authorize.refused"})
			if len(evs) == 0 || evs[0].Reason != c.reason || evs[0].ClientID != "agent:infrabot" || evs[0].Resource != "/authorize" {
				t.Fatalf("recorded %+v, want reason %s", evs, c.reason)
			}
		})
	}

	long := strings.Repeat("a", 128)
	for _, c := range []struct {
		name      string
		verifier  string // sent at /token
		challenge string // of the authorization request; verifierA's when empty
		reason    string // empty: the code is redeemed
	}{
		{name: "fail/mismatch", verifier: strings.Repeat("x", 43), reason: "pkce_verifier_mismatch"},
		{name: "fail/42-chars", verifier: verifierA[:42], reason: "pkce_verifier_malformed"},
		{name: "fail/129-chars", verifier: long + "a", challenge: challenge(long + "a"), reason: "pkce_verifier_malformed"},
		{name: "fail/bad-charset", verifier: verifierA[:42] + "+", challenge: challenge(verifierA[:42] + "+"), reason: "pkce_verifier_malformed"},
		{name: "fail/percent-encoded", verifier: verifierA[:40] + "%2F", challenge: challenge(verifierA[:40] + "%2F"), reason: "pkce_verifier_malformed"},
		{name: "fail/no-verifier", verifier: "", reason: "pkce_verifier_malformed"},
		{name: "ok/128-chars", verifier: long, challenge: challenge(long)},
		{name: "ok/43-chars", verifier: verifierA},
	} {
		t.Run(c.name, func(t *testing.T) {
			set := url.Values{}
			if c.challenge != "" {
				set.Set("code_challenge", c.challenge)
			}
			cp := p.consent(h.authorizeWith(set), "user:sam", samPassword)
			code, _ := p.approve(cp, nil)
			r := h.codeToken("agent:infrabot", code, c.verifier)
			if c.reason == "" {
				if r.status != http.StatusOK || r.str("access_token") == "" {
					t.Fatalf("%d %s", r.status, r.raw)
				}
				return
			}
			if r.status != http.StatusBadRequest || r.str("error") != "invalid_grant" || r.str("access_token") != "" {
				t.Fatalf("%d %s", r.status, r.raw)
			}
			if evs := h.events(store.EventFilter{Action: "token.refused", Limit: 1}); len(evs) == 0 || evs[0].Reason != c.reason {
				t.Fatalf("recorded %+v, want reason %s", evs, c.reason)
			}
		})
	}
}

// TestT40RedirectURICorpus: a redirect URI that is not exactly a
// registered one gets a 400 error page and never a redirect; a loopback
// URI may differ in its port only.
func TestT40RedirectURICorpus(t *testing.T) {
	h := newHarnessEdited(t, openSQLite, nil, func(c *config.Config) {
		withPeople(c)
		for i := range c.Agents {
			if c.Agents[i].ID == "agent:infrabot" {
				c.Agents[i].RedirectURIs = []string{appHTTPS, appRedirect}
			}
		}
	})
	p := h.person()
	for _, c := range []struct{ name, uri string }{
		{"fail/upper-case", "HTTPS://APP.EXAMPLE/cb"},
		{"fail/path-case", "https://app.example/Cb"},
		{"fail/trailing-slash", "https://app.example/cb/"},
		{"fail/added-query", "https://app.example/cb?next=https://evil.example"},
		{"fail/empty-query", "https://app.example/cb?"},
		{"fail/fragment", "https://app.example/cb#frag"},
		{"fail/userinfo", "https://app.example@evil.example/cb"},
		{"fail/dot-segments", "https://app.example/cb/%2e%2e/evil"},
		{"fail/double-encoded-slash", "https://app.example/cb%252f..%252fevil"},
		{"fail/semicolon-dots", "https://app.example/cb..;/evil"},
		{"fail/backslash", "https://app.example/cb\\/evil.example"},
		{"fail/backslash-host", "https://app.example\\/evil.example/cb"},
		{"fail/tab-relative", "/\thttps://evil.example"},
		{"fail/triple-slash", "///evil.example"},
		{"fail/relative", "/cb"},
		{"fail/explicit-port", "https://app.example:443/cb"},
		{"fail/port-change", "https://app.example:8443/cb"},
		{"fail/http", "http://app.example/cb"},
		{"fail/idn-homograph", "https://\u0430pp.example/cb"},
		{"fail/idn-punycode", "https://xn--pp-8kc.example/cb"},
		{"fail/regex-dot", "https://appaexample/cb"},
		{"fail/suffix-host", "https://app.example.evil.example/cb"},
		{"fail/nul", "https://app.example/cb\x00"},
		{"fail/missing", ""},
		{"fail/loopback-other-host", "http://localhost:8400/cb"},
		{"fail/loopback-other-ip", "http://127.0.0.2:8400/cb"},
		{"fail/loopback-ipv6", "http://[::1]:8400/cb"},
		{"fail/loopback-other-path", "http://127.0.0.1:8400/cb2"},
		{"fail/loopback-other-query", "http://127.0.0.1:8400/cb?x=1"},
		{"fail/loopback-https", "https://127.0.0.1:8400/cb"},
		{"fail/loopback-userinfo", "http://evil@127.0.0.1:8400/cb"},
		{"fail/loopback-named-port", "http://127.0.0.1:http/cb"},
		{"ok/exact", appHTTPS},
		{"ok/loopback-same", appRedirect},
		{"ok/loopback-other-port", "http://127.0.0.1:51234/cb"},
		{"ok/loopback-no-port", "http://127.0.0.1/cb"},
	} {
		t.Run(c.name, func(t *testing.T) {
			res := p.get(h.authorizeWith(url.Values{"redirect_uri": {c.uri}}))
			loc := res.header.Get("Location")
			if strings.HasPrefix(c.name, "ok/") {
				if res.status != http.StatusFound || !strings.HasPrefix(loc, "/login?request=") {
					t.Fatalf("%d Location %q: %s", res.status, loc, res.text())
				}
				return
			}
			if res.status != http.StatusBadRequest || loc != "" || res.header.Get("Refresh") != "" || strings.Contains(res.body, "http-equiv") {
				t.Fatalf("%d Location %q: %s", res.status, loc, res.text())
			}
			if !strings.Contains(res.text(), "did not register") {
				t.Fatalf("the error page says: %s", res.text())
			}
			if strings.Contains(res.body, "evil") {
				t.Fatalf("the error page shows the redirect URI: %s", res.body)
			}
			pageHygiene(t, c.name, res)
		})
	}
	if !h.refused("authorize.refused", "redirect_uri_mismatch") {
		t.Fatal("no authorize.refused record with reason redirect_uri_mismatch")
	}
}

// TestT41ResponseHygiene: every answer to the application carries iss
// (RFC 9207) and echoes state; answers to a POST are 303; every page says
// Referrer-Policy: no-referrer and no-store; no token travels in a URL.
func TestT41ResponseHygiene(t *testing.T) {
	h := newPeopleHarness(t)
	p := h.person()
	checkBack := func(what string, pg page, status int, want url.Values) {
		t.Helper()
		pageHygiene(t, what, pg)
		if pg.status != status {
			t.Fatalf("%s: %d, want %d: %s", what, pg.status, status, pg.text())
		}
		loc := pg.header.Get("Location")
		noTokenInURL(t, what, loc)
		q := pg.location(t, h.url).Query()
		if q.Get("iss") != h.url {
			t.Errorf("%s: iss %q in %s", what, q.Get("iss"), loc)
		}
		for k := range want {
			if q.Get(k) != want.Get(k) {
				t.Errorf("%s: %s=%q, want %q (%s)", what, k, q.Get(k), want.Get(k), loc)
			}
		}
	}

	// The first request: sign-in, consent, approve.
	first := p.get(h.authorizeWith(url.Values{"state": {"st-a"}}))
	pageHygiene(t, "authorize", first)
	noTokenInURL(t, "authorize", first.header.Get("Location"))
	login := p.get(first.location(t, h.url).RequestURI())
	pageHygiene(t, "login page", login)
	f := login.form(t, "/login")
	f.Set("username", "user:alex")
	f.Set("password", "wrong")
	pageHygiene(t, "failed sign-in", p.post("/login", f))
	f.Set("username", "user:sam")
	f.Set("password", samPassword)
	signedIn := p.post("/login", f)
	if signedIn.status != http.StatusSeeOther {
		t.Fatalf("sign-in: %d %s", signedIn.status, signedIn.text())
	}
	pageHygiene(t, "sign-in", signedIn)
	cp := p.get(signedIn.location(t, h.url).RequestURI())
	pageHygiene(t, "consent page", cp)
	form := cp.form(t, "/consent")
	form.Set("decision", "approve")
	approved := p.post("/consent", form)
	checkBack("approve", approved, http.StatusSeeOther, url.Values{"state": {"st-a"}})
	if approved.location(t, h.url).Query().Get("code") == "" {
		t.Fatal("no code")
	}

	// A declined request: access_denied, 303, iss and state.
	cp = p.consent(h.authorizeWith(url.Values{"state": {"st-b"}}), "user:sam", samPassword)
	form = cp.form(t, "/consent")
	form.Set("decision", "deny")
	checkBack("decline", p.post("/consent", form), http.StatusSeeOther, url.Values{"state": {"st-b"}, "error": {"access_denied"}})

	// Errors sent back from /authorize: iss and state, and no token for
	// the implicit flow.
	for _, c := range []struct {
		name string
		set  url.Values
		code string
	}{
		{"implicit", url.Values{"response_type": {"token"}, "state": {"st-c"}}, "unsupported_response_type"},
		{"hybrid", url.Values{"response_type": {"code token"}, "state": {"st-c"}}, "unsupported_response_type"},
		{"repeated-scope", url.Values{"scope": {"deploy:create", "monitoring:read"}, "state": {"st-c"}}, "invalid_request"},
		{"bad-resource", url.Values{"resource": {"not a uri"}, "state": {"st-c"}}, "invalid_target"},
	} {
		checkBack(c.name, p.get(h.authorizeWith(c.set)), http.StatusFound, url.Values{"state": {"st-c"}, "error": {c.code}})
	}
	// No state sent, none echoed.
	res := p.get(h.authorizeWith(url.Values{"response_type": {"token"}}, "state"))
	checkBack("no state", res, http.StatusFound, nil)
	if res.location(t, h.url).Query().Has("state") {
		t.Error("a state was made up")
	}

	// The other pages.
	mine := p.get("/my/agents")
	pageHygiene(t, "my agents", mine)
	pageHygiene(t, "error page", p.get("/consent?request=nothing-pending"))
	pageHygiene(t, "error page of /authorize", p.get(h.authorizeWith(url.Values{"client_id": {"agent:nobody"}})))
	out := mine.form(t, "/logout")
	pageHygiene(t, "sign-out", p.post("/logout", out))
	pageHygiene(t, "consent page signed out", p.get("/consent?request=x"))
}

// TestT42ConsentPage: the consent page cannot be framed; a POST without or
// with a wrong anti-forgery token is 403 and grants nothing; an approval
// sent again is refused; a subset approves the subset only; an agent, a
// client or a scope whose name or description holds HTML is escaped.
func TestT42ConsentPage(t *testing.T) {
	const xss = "<script>alert(1)</script>"
	h := newHarnessEdited(t, openSQLite, nil, func(c *config.Config) {
		withPeople(c)
		c.Agents = append(c.Agents, config.Agent{ID: "agent:" + xss, Secret: "xss-secret",
			Scopes: []string{"deploy:create", "x:" + xss}, RedirectURIs: []string{appRedirect}})
		c.Users[0].Permissions = append(c.Users[0].Permissions, "x:"+xss)
		c.Scopes = append(c.Scopes, config.Scope{Name: "monitoring:read", Description: `Read dashboards <img src=x onerror="alert(2)">`})
	})
	h.givePassword("user:sam", samPassword)
	p := h.person()
	cp := p.consent(h.authorizeURL("agent:infrabot", "deploy:create monitoring:read", "st-1", nil), "user:sam", samPassword)
	if cp.status != http.StatusOK {
		t.Fatalf("consent page: %d %s", cp.status, cp.text())
	}
	if got := cp.header.Get("X-Frame-Options"); got != "DENY" {
		t.Errorf("X-Frame-Options %q", got)
	}
	if csp := cp.header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("Content-Security-Policy %q", csp)
	}
	if !strings.Contains(cp.text(), "agent:infrabot asks to act for you") || !strings.Contains(cp.text(), "deploy:create") {
		t.Errorf("the page does not name the agent and the scopes: %s", cp.text())
	}

	t.Run("fail/csrf", func(t *testing.T) {
		for _, c := range []struct{ name, token string }{{"missing", ""}, {"wrong", strings.Repeat("A", 43)}, {"session-cookie", p.cookieValue("mandate_session")}} {
			f := cp.form(t, "/consent")
			f.Del("csrf")
			if c.token != "" {
				f.Set("csrf", c.token)
			}
			f.Set("decision", "approve")
			res := p.post("/consent", f)
			if res.status != http.StatusForbidden || res.header.Get("Location") != "" {
				t.Fatalf("%s: %d %s", c.name, res.status, res.text())
			}
		}
		if ds := h.consentDelegations("user:sam"); len(ds) != 0 {
			t.Fatalf("delegations after forged posts: %+v", ds)
		}
		if !h.refused("authorize.refused", "csrf_invalid") {
			t.Fatal("no authorize.refused record with reason csrf_invalid")
		}
	})

	t.Run("ok/subset-then-fail/replay", func(t *testing.T) {
		f := cp.form(t, "/consent")
		f["scope"] = []string{"deploy:create"}
		f.Set("decision", "approve")
		res := p.post("/consent", f)
		if res.status != http.StatusSeeOther {
			t.Fatalf("approve: %d %s", res.status, res.text())
		}
		code := res.location(t, h.url).Query().Get("code")
		tok := h.codeToken("agent:infrabot", code, verifierA)
		if tok.status != http.StatusOK || tok.str("scope") != "deploy:create" || claims(t, tok.str("access_token"))["scope"] != "deploy:create" {
			t.Fatalf("token: %d %s", tok.status, tok.raw)
		}
		again := p.post("/consent", f)
		if again.status != http.StatusForbidden || again.header.Get("Location") != "" {
			t.Fatalf("replay: %d %s", again.status, again.text())
		}
		ds := h.consentDelegations("user:sam")
		if len(ds) != 1 || !slices.Equal(ds[0].Scopes, []string{"deploy:create"}) {
			t.Fatalf("delegations %+v, want one of deploy:create", ds)
		}
		if !h.refused("authorize.refused", "request_gone") {
			t.Fatal("no authorize.refused record with reason request_gone")
		}
	})

	t.Run("ok/no-scope-offers-the-agents-that-the-person-holds", func(t *testing.T) {
		pg := p.consent(h.authorizeURL("agent:infrabot", "", "st-1", nil), "user:sam", samPassword)
		code, _ := p.approve(pg, nil)
		tok := h.codeToken("agent:infrabot", code, verifierA)
		// InfraBot's scopes are monitoring:read, deploy:comment,
		// deploy:create and deploy:tag; Sam lacks deploy:comment.
		if tok.status != http.StatusOK || tok.str("scope") != "monitoring:read deploy:create deploy:tag" {
			t.Fatalf("token: %d %s", tok.status, tok.raw)
		}
	})

	t.Run("ok/names-escaped", func(t *testing.T) {
		for _, c := range []struct{ name, url string }{
			{"agent-is-client", h.authorizeURL("agent:"+xss, "deploy:create x:"+xss, xss, nil)},
			{"requested-actor", h.authorizeURL("agent:infrabot", "deploy:create monitoring:read "+xss, xss, url.Values{"requested_actor": {"agent:" + xss}})},
		} {
			pg := p.consent(c.url, "user:sam", samPassword)
			if pg.status != http.StatusOK {
				t.Fatalf("%s: %d %s", c.name, pg.status, pg.text())
			}
			for _, raw := range []string{"<script", "<img", "onerror=\"", "alert(1)</"} {
				if strings.Contains(pg.body, raw) {
					t.Errorf("%s: the page holds %q unescaped", c.name, raw)
				}
			}
			if !strings.Contains(pg.text(), "agent:"+xss+" asks to act for you") || !strings.Contains(pg.body, "agent:&lt;script&gt;alert(1)&lt;/script&gt;") {
				t.Errorf("%s: the agent is not named, escaped: %s", c.name, pg.text())
			}
		}
	})
}

// cookieValue is the value of the person's cookie name on the server.
func (p *person) cookieValue(name string) string {
	u, _ := url.Parse(p.h.url)
	for _, c := range p.client.Jar.Cookies(u) {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

// TestT97ConsentReplayAndUpgrade: an approval sent for another pending
// request (another agent or resource), one that adds scopes the page did
// not offer, and one sent after the person's permissions grew or after
// sign-out grant nothing beyond what the page showed.
func TestT97ConsentReplayAndUpgrade(t *testing.T) {
	h := newPeopleHarness(t)
	h.givePassword("user:alex", samPassword)
	// pendingOf starts an authorization request in another browser and
	// returns its id.
	pendingOf := func(authURL string) string {
		t.Helper()
		res := h.person().get(authURL)
		id := res.location(t, h.url).Query().Get("request")
		if res.status != http.StatusFound || id == "" {
			t.Fatalf("authorize: %d %s", res.status, res.text())
		}
		return id
	}
	p := h.person()
	cp := p.consent(h.authorizeWith(url.Values{"resource": {"https://deploy.example"}}), "user:sam", samPassword)

	for _, c := range []struct{ name, other string }{
		{"fail/another-agent", pendingOf(h.authorizeWith(url.Values{"client_id": {"agent:argocd"}, "resource": {"https://deploy.example"}}))},
		{"fail/another-resource", pendingOf(h.authorizeWith(url.Values{"resource": {"https://evil.example"}}))},
		{"fail/wider-request", pendingOf(h.authorizeWith(url.Values{"scope": {"deploy:create deploy:tag monitoring:read"}, "resource": {"https://deploy.example"}}))},
		{"fail/unknown-request", "no-such-request"},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := cp.form(t, "/consent")
			f.Set("request", c.other)
			f["scope"] = []string{"deploy:create", "deploy:tag", "monitoring:read"}
			f.Set("decision", "approve")
			res := p.post("/consent", f)
			if res.status != http.StatusForbidden || res.header.Get("Location") != "" {
				t.Fatalf("%d %s", res.status, res.text())
			}
			if ds := h.consentDelegations("user:sam"); len(ds) != 0 {
				t.Fatalf("granted %+v", ds)
			}
		})
	}
	if !h.refused("authorize.refused", "consent_not_shown") {
		t.Fatal("no authorize.refused record with reason consent_not_shown")
	}

	t.Run("ok/scopes-added-to-the-form-are-dropped", func(t *testing.T) {
		pg := p.consent(h.authorizeWith(url.Values{"scope": {"deploy:create secrets:manage"}}), "user:sam", samPassword)
		if !strings.Contains(pg.text(), "secrets:manage") {
			t.Fatalf("the page: %s", pg.text())
		}
		// secrets:manage was shown but not approvable (InfraBot may not
		// have it); deploy:tag and monitoring:read were not asked for.
		code, _ := p.approve(pg, []string{"deploy:create", "secrets:manage", "deploy:tag", "monitoring:read"})
		tok := h.codeToken("agent:infrabot", code, verifierA)
		if tok.status != http.StatusOK || tok.str("scope") != "deploy:create" {
			t.Fatalf("token: %d %s", tok.status, tok.raw)
		}
		ds := h.consentDelegations("user:sam")
		if len(ds) != 1 || !slices.Equal(ds[0].Scopes, []string{"deploy:create"}) {
			t.Fatalf("delegations %+v, want one of deploy:create", ds)
		}
	})

	t.Run("fail/permissions-grew-since-shown", func(t *testing.T) {
		a := h.person()
		pg := a.consent(h.authorizeWith(url.Values{"scope": {"monitoring:read deploy:create"}}), "user:alex", samPassword)
		if pg.status != http.StatusOK {
			t.Fatalf("consent page: %d %s", pg.status, pg.text())
		}
		if r := h.admin(http.MethodPut, "/admin/users/user:alex/permissions", map[string]any{"permissions": []string{"monitoring:read", "deploy:create"}}); r.status != http.StatusOK {
			t.Fatalf("permissions: %d %s", r.status, r.raw)
		}
		f := pg.form(t, "/consent")
		f["scope"] = []string{"monitoring:read", "deploy:create"}
		f.Set("decision", "approve")
		if res := a.post("/consent", f); res.status != http.StatusForbidden {
			t.Fatalf("%d %s", res.status, res.text())
		}
		if ds := h.consentDelegations("user:alex"); len(ds) != 0 {
			t.Fatalf("granted %+v", ds)
		}
		// A fresh look shows the new permission, and that can be
		// approved.
		fresh := a.get("/consent?request=" + url.QueryEscape(f.Get("request")))
		code, _ := a.approve(fresh, []string{"monitoring:read", "deploy:create"})
		tok := h.codeToken("agent:infrabot", code, verifierA)
		if tok.status != http.StatusOK || tok.str("scope") != "monitoring:read deploy:create" && tok.str("scope") != "deploy:create monitoring:read" {
			t.Fatalf("token: %d %s", tok.status, tok.raw)
		}
	})

	t.Run("fail/after-sign-out", func(t *testing.T) {
		pg := p.consent(h.authorizeWith(nil), "user:sam", samPassword)
		before := len(h.consentDelegations("user:sam"))
		if res := p.post("/logout", p.get("/my/agents").form(t, "/logout")); res.status != http.StatusSeeOther {
			t.Fatalf("sign-out: %d %s", res.status, res.text())
		}
		f := pg.form(t, "/consent")
		f.Set("decision", "approve")
		res := p.post("/consent", f)
		if res.status != http.StatusForbidden || res.header.Get("Location") != "" {
			t.Fatalf("%d %s", res.status, res.text())
		}
		if after := len(h.consentDelegations("user:sam")); after != before {
			t.Fatalf("%d delegations after, %d before", after, before)
		}
		if !h.refused("authorize.refused", "signed_out") {
			t.Fatal("no authorize.refused record with reason signed_out")
		}
	})
}

// loginAttempt posts a password from a fresh login page of p.
func (p *person) loginAttempt(user, pw string) page {
	p.t.Helper()
	f := p.get("/login").form(p.t, "/login")
	f.Set("username", user)
	f.Set("password", pw)
	return p.post("/login", f)
}

// TestLoginRateLimits: over the per-account or the per-address limit a
// sign-in is 429 with Retry-After, recorded as a refused person.sign_in
// with reason rate_limited.
func TestLoginRateLimits(t *testing.T) {
	for _, c := range []struct {
		name string
		user func(i int) string
	}{
		{"per-account", func(int) string { return "user:sam" }},
		{"per-address", func(i int) string { return "user:nobody-" + string(rune('a'+i)) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newHarnessEdited(t, openSQLite, nil, func(cfg *config.Config) {
				withPeople(cfg)
				cfg.SignIn.AttemptsPerAccount, cfg.SignIn.AttemptsPerAddress = 2, 3
				if c.name == "per-address" {
					cfg.SignIn.AttemptsPerAccount = 100
				}
			})
			h.givePassword("user:sam", samPassword)
			p := h.person()
			limit := 2
			if c.name == "per-address" {
				limit = 3
			}
			for i := range limit {
				if res := p.loginAttempt(c.user(i), "wrong-password"); res.status != http.StatusUnauthorized {
					t.Fatalf("attempt %d: %d %s", i+1, res.status, res.text())
				}
			}
			over := p.loginAttempt(c.user(limit), samPassword)
			if over.status != http.StatusTooManyRequests || over.header.Get("Retry-After") == "" || sessionCookieOf(over) != nil {
				t.Fatalf("over the limit: %d Retry-After %q %s", over.status, over.header.Get("Retry-After"), over.text())
			}
			pageHygiene(t, "429", over)
			if !h.refused("person.sign_in", "rate_limited") {
				t.Fatal("no refused person.sign_in with reason rate_limited")
			}
			if mine := p.get("/my/agents"); mine.status != http.StatusSeeOther {
				t.Fatalf("signed in over the limit: %d", mine.status)
			}
		})
	}
}

// TestLoginSameAnswer: an unknown account and a wrong password get the
// same status and the same page.
func TestLoginSameAnswer(t *testing.T) {
	h := newPeopleHarness(t)
	unknown := h.person().loginAttempt("user:nobody", "some-password")
	wrong := h.person().loginAttempt("user:sam", "some-password")
	noHash := h.person().loginAttempt("user:alex", "some-password") // no password set
	for _, pg := range []page{wrong, noHash} {
		if pg.status != unknown.status || pg.text() != unknown.text() {
			t.Fatalf("unknown account: %d %q\nother: %d %q", unknown.status, unknown.text(), pg.status, pg.text())
		}
	}
	if unknown.status != http.StatusUnauthorized {
		t.Fatalf("status %d", unknown.status)
	}
	if !h.refused("person.sign_in", "bad_credentials") {
		t.Fatal("no refused person.sign_in with reason bad_credentials")
	}
}

// sessionCookieOf is the session cookie an answer sets, or nil.
func sessionCookieOf(pg page) *http.Cookie {
	for _, c := range (&http.Response{Header: pg.header}).Cookies() {
		if c.Name == "mandate_session" {
			return c
		}
	}
	return nil
}

// withCookie is a fresh browser holding only the session cookie value.
func (h *harness) withCookie(value string) *person {
	p := h.person()
	u, _ := url.Parse(h.url)
	p.client.Jar.SetCookies(u, []*http.Cookie{{Name: "mandate_session", Value: value, Path: "/"}})
	return p
}

// TestSessionCookieFlags: the session cookie is HttpOnly, SameSite=Lax,
// Path=/; a new one is made at sign-in (a planted one never becomes a
// session); it no longer opens My agents after sign-out or after the idle
// time. The https issuer's cookie is tested in TestSecureSessionCookie.
func TestSessionCookieFlags(t *testing.T) {
	clock := &stepClock{now: time.Now()}
	h := newHarnessEdited(t, openSQLite, clock.Now, withPeople)
	h.givePassword("user:sam", samPassword)
	const planted = "planted-session-value-0123456789abcdefghijklmno"
	p := h.withCookie(planted)
	if mine := p.get("/my/agents"); mine.status != http.StatusSeeOther {
		t.Fatalf("a planted cookie opened My agents: %d", mine.status)
	}
	res := p.loginAttempt("user:sam", samPassword)
	if res.status != http.StatusSeeOther {
		t.Fatalf("sign-in: %d %s", res.status, res.text())
	}
	c := sessionCookieOf(res)
	switch {
	case c == nil:
		t.Fatalf("no session cookie set: %v", res.header["Set-Cookie"])
	case !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.Domain != "" || c.Secure:
		t.Fatalf("cookie %+v", c)
	case c.Value == planted || p.cookieValue("mandate_session") != c.Value:
		t.Fatal("the planted cookie was kept")
	}
	if mine := p.get("/my/agents"); mine.status != http.StatusOK {
		t.Fatalf("My agents: %d", mine.status)
	}
	if mine := h.withCookie(planted).get("/my/agents"); mine.status != http.StatusSeeOther {
		t.Fatalf("the planted cookie opens My agents after sign-in: %d", mine.status)
	}

	// Sign-out: the cookie is deleted, and the old value opens nothing.
	old := c.Value
	out := p.post("/logout", p.get("/my/agents").form(t, "/logout"))
	if gone := sessionCookieOf(out); out.status != http.StatusSeeOther || gone == nil || gone.MaxAge >= 0 {
		t.Fatalf("sign-out: %d %v", out.status, out.header["Set-Cookie"])
	}
	if mine := h.withCookie(old).get("/my/agents"); mine.status != http.StatusSeeOther || mine.header.Get("Location") != "/login" {
		t.Fatalf("the signed-out cookie opens My agents: %d", mine.status)
	}
	if len(h.events(store.EventFilter{Action: "person.sign_out"})) != 1 {
		t.Fatal("no person.sign_out record")
	}

	// Idle: used within the idle time it lasts; unused longer, it ends.
	p = h.person()
	if res := p.loginAttempt("user:sam", samPassword); res.status != http.StatusSeeOther {
		t.Fatalf("sign-in: %d", res.status)
	}
	clock.add(29 * time.Minute)
	if mine := p.get("/my/agents"); mine.status != http.StatusOK {
		t.Fatalf("after 29 idle minutes: %d", mine.status)
	}
	clock.add(31 * time.Minute)
	if mine := p.get("/my/agents"); mine.status != http.StatusSeeOther {
		t.Fatalf("after 31 idle minutes: %d", mine.status)
	}
}
