package server_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mandate-dev/mandate/internal/config"
	"github.com/mandate-dev/mandate/internal/password"
	"github.com/mandate-dev/mandate/internal/store"
)

// withPeople gives the agents a redirect URI and describes a scope: the
// cast of the sign-in and consent tests.
func withPeople(c *config.Config) {
	for i := range c.Agents {
		c.Agents[i].RedirectURIs = []string{appRedirect}
	}
	c.Scopes = []config.Scope{{Name: "deploy:create", Description: "Create deployments"}}
}

// givePassword sets Sam's password.
func (h *harness) givePassword(user, pw string) {
	h.t.Helper()
	hash, err := password.Hash(pw)
	if err != nil {
		h.t.Fatal(err)
	}
	if _, err := h.store.UpdateUser(context.Background(), user, func(u store.User) (store.User, error) {
		u.PasswordHash = hash
		return u, nil
	}); err != nil {
		h.t.Fatal(err)
	}
}

func newPeopleHarness(t *testing.T) *harness {
	t.Helper()
	h := newHarnessEdited(t, openSQLite, nil, withPeople)
	h.givePassword("user:sam", samPassword)
	return h
}

// codeToken redeems code as client with the verifier.
func (h *harness) codeToken(client, code, verifier string) response {
	h.t.Helper()
	return h.post("/token", client, url.Values{
		"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {appRedirect}, "code_verifier": {verifier},
	})
}

func (h *harness) refresh(client, rt string, extra url.Values) response {
	h.t.Helper()
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}
	for k, v := range extra {
		form[k] = v
	}
	return h.post("/token", client, form)
}

// active introspects tok as InfraBot, the client it was issued to.
func (h *harness) active(tok string) bool {
	h.t.Helper()
	r := h.post("/introspect", "agent:infrabot", url.Values{"token": {tok}})
	a, _ := r.body["active"].(bool)
	return a
}

// consented runs Sam's sign-in and approval for InfraBot of scopes and
// redeems the code: the token response.
func (h *harness) consented(p *person, scopes string, ticked []string) response {
	h.t.Helper()
	cp := p.consent(h.authorizeURL("agent:infrabot", scopes, "st-1", nil), "user:sam", samPassword)
	if cp.status != http.StatusOK {
		h.t.Fatalf("consent page: %d %s", cp.status, cp.text())
	}
	code, back := p.approve(cp, ticked)
	if back.Get("state") != "st-1" || back.Get("iss") != h.url || code == "" {
		h.t.Fatalf("the application got %v", back)
	}
	tok := h.codeToken("agent:infrabot", code, verifierA)
	if tok.status != http.StatusOK {
		h.t.Fatalf("code exchange: %d %s", tok.status, tok.raw)
	}
	return tok
}

// TestSignInConsentAndRevoke is the person's story: Sam signs in with a
// password, sees InfraBot named on the consent page, unticks a scope and
// approves; InfraBot redeems the code for a token acting for Sam with the
// approved scopes only, refreshes once; Sam sees the delegation and its
// last action on My agents and revokes it; the token is then inactive and
// the refresh token dead.
func TestSignInConsentAndRevoke(t *testing.T) {
	h := newPeopleHarness(t)
	p := h.person()
	cp := p.consent(h.authorizeURL("agent:infrabot", "deploy:create monitoring:read", "st-1", nil), "user:sam", samPassword)
	text := cp.text()
	for _, want := range []string{"agent:infrabot asks to act for you", "Create deployments", "monitoring:read", "May hand on to agent:argocd"} {
		if !strings.Contains(text, want) {
			t.Errorf("the consent page does not say %q:\n%s", want, text)
		}
	}
	code, _ := p.approve(cp, []string{"deploy:create"})
	tok := h.codeToken("agent:infrabot", code, verifierA)
	if tok.status != http.StatusOK {
		t.Fatalf("code exchange: %d %s", tok.status, tok.raw)
	}
	c := claims(t, tok.str("access_token"))
	act, _ := c["act"].(map[string]any)
	if c["sub"] != "user:sam" || act["sub"] != "agent:infrabot" || c["scope"] != "deploy:create" {
		t.Fatalf("token claims %v", c)
	}
	rt := tok.str("refresh_token")
	ref := h.refresh("agent:infrabot", rt, nil)
	if ref.status != http.StatusOK || ref.str("refresh_token") == "" || ref.str("refresh_token") == rt {
		t.Fatalf("refresh: %d %s", ref.status, ref.raw)
	}
	access := ref.str("access_token")
	if !h.active(access) {
		t.Fatal("the refreshed token is not active")
	}

	mine := p.get("/my/agents")
	if mine.status != http.StatusOK || !strings.Contains(mine.text(), "agent:infrabot") || !strings.Contains(mine.text(), "token.issue") {
		t.Fatalf("My agents: %d %s", mine.status, mine.text())
	}
	var consentID string
	for _, d := range h.listDelegations("user:sam") {
		if d.Source == "consent" {
			consentID = d.ID
		}
	}
	f := mine.form(t, "/my/agents/revoke")
	if f.Get("delegation") == "" {
		t.Fatal("no revoke form")
	}
	f.Set("delegation", consentID)
	if res := p.post("/my/agents/revoke", f); res.status != http.StatusSeeOther {
		t.Fatalf("revoke: %d %s", res.status, res.text())
	}
	if h.active(access) {
		t.Fatal("the token is still active after its delegation was revoked")
	}
	if r := h.refresh("agent:infrabot", ref.str("refresh_token"), nil); r.status != http.StatusBadRequest || r.str("error") != "invalid_grant" {
		t.Fatalf("refresh after revoke: %d %s", r.status, r.raw)
	}
}

func (h *harness) listDelegations(subject string) []store.Delegation {
	h.t.Helper()
	ds, err := h.store.ListDelegations(context.Background(), store.DelegationFilter{Subject: subject, IncludeRevoked: true})
	if err != nil {
		h.t.Fatal(err)
	}
	return ds
}

// TestT39CodeSingleUse: a code redeemed again is invalid_grant and revokes
// every token its first use issued; of 20 parallel redemptions exactly one
// succeeds.
func TestT39CodeSingleUse(t *testing.T) {
	h := newPeopleHarness(t)
	p := h.person()
	cp := p.consent(h.authorizeURL("agent:infrabot", "deploy:create", "s", nil), "user:sam", samPassword)
	code, _ := p.approve(cp, nil)
	first := h.codeToken("agent:infrabot", code, verifierA)
	if first.status != http.StatusOK {
		t.Fatalf("first redemption: %d %s", first.status, first.raw)
	}
	again := h.codeToken("agent:infrabot", code, verifierA)
	if again.status != http.StatusBadRequest || again.str("error") != "invalid_grant" {
		t.Fatalf("reuse: %d %s", again.status, again.raw)
	}
	if h.active(first.str("access_token")) {
		t.Fatal("the first redemption's token survived the code's reuse")
	}
	if r := h.refresh("agent:infrabot", first.str("refresh_token"), nil); r.str("error") != "invalid_grant" {
		t.Fatalf("the first redemption's refresh token survived: %s", r.raw)
	}
	if evs := h.events(store.EventFilter{Action: "grant.replayed"}); len(evs) != 1 || evs[0].Reason != "code_reused" {
		t.Fatalf("replay records %+v", evs)
	}

	cp = p.consent(h.authorizeURL("agent:infrabot", "deploy:create", "s", nil), "user:sam", samPassword)
	code, _ = p.approve(cp, nil)
	var wg sync.WaitGroup
	var mu sync.Mutex
	statuses := map[int]int{}
	var won string
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := h.codeToken("agent:infrabot", code, verifierA)
			mu.Lock()
			statuses[r.status]++
			if r.status == http.StatusOK {
				won = r.str("access_token")
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	if statuses[http.StatusOK] != 1 || statuses[http.StatusBadRequest] != 19 {
		t.Fatalf("20 parallel redemptions: %v, want one 200", statuses)
	}
	// The others were reuses: what the one redemption issued is revoked.
	if h.active(won) {
		t.Fatal("the token of the one parallel redemption survived the others' reuse")
	}
}

// TestT39CodeBinding: a code is bound to its client, its redirect URI and
// its PKCE verifier, and lives 60 seconds.
func TestT39CodeBinding(t *testing.T) {
	clock := &stepClock{now: time.Now()}
	h := newHarnessEdited(t, openSQLite, clock.Now, withPeople)
	h.givePassword("user:sam", samPassword)
	cases := []struct {
		name     string
		client   string
		redirect string
		verifier string
		wait     time.Duration
		reason   string
	}{
		{"another client", "agent:argocd", appRedirect, verifierA, 0, "code_client_mismatch"},
		{"another redirect", "agent:infrabot", "http://127.0.0.1:8400/other", verifierA, 0, "redirect_uri_mismatch"},
		{"wrong verifier", "agent:infrabot", appRedirect, strings.Repeat("x", 43), 0, "pkce_verifier_mismatch"},
		{"no verifier (downgrade)", "agent:infrabot", appRedirect, "", 0, "pkce_verifier_malformed"},
		{"expired", "agent:infrabot", appRedirect, verifierA, 61 * time.Second, "code_expired"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := h.person()
			cp := p.consent(h.authorizeURL("agent:infrabot", "deploy:create", "s", nil), "user:sam", samPassword)
			code, _ := p.approve(cp, nil)
			clock.add(c.wait)
			r := h.post("/token", c.client, url.Values{"grant_type": {"authorization_code"}, "code": {code},
				"redirect_uri": {c.redirect}, "code_verifier": {c.verifier}})
			if r.status != http.StatusBadRequest || r.str("error") != "invalid_grant" {
				t.Fatalf("%d %s", r.status, r.raw)
			}
			if evs := h.events(store.EventFilter{Action: "token.refused", Limit: 1}); len(evs) == 0 || evs[0].Reason != c.reason {
				t.Fatalf("recorded %+v, want reason %s", evs, c.reason)
			}
		})
	}
}

// stepClock is a clock tests move forward.
type stepClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *stepClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *stepClock) add(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

// TestT43RefreshRotation: RT1 gives RT2; RT1 again is invalid_grant and
// kills the family (RT2 and its access tokens); of 20 concurrent
// refreshes with one token exactly one succeeds.
func TestT43RefreshRotation(t *testing.T) {
	h := newPeopleHarness(t)
	tok := h.consented(h.person(), "deploy:create monitoring:read", nil)
	rt1 := tok.str("refresh_token")
	r2 := h.refresh("agent:infrabot", rt1, nil)
	if r2.status != http.StatusOK {
		t.Fatalf("RT1: %d %s", r2.status, r2.raw)
	}
	if r := h.refresh("agent:infrabot", rt1, nil); r.status != http.StatusBadRequest || r.str("error") != "invalid_grant" {
		t.Fatalf("RT1 again: %d %s", r.status, r.raw)
	}
	if h.active(r2.str("access_token")) || h.active(tok.str("access_token")) {
		t.Fatal("an access token of the family survived the reuse")
	}
	if r := h.refresh("agent:infrabot", r2.str("refresh_token"), nil); r.str("error") != "invalid_grant" {
		t.Fatalf("RT2 after the reuse: %s", r.raw)
	}

	tok = h.consented(h.person(), "deploy:create", nil)
	rt := tok.str("refresh_token")
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok := 0
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r := h.refresh("agent:infrabot", rt, nil); r.status == http.StatusOK {
				mu.Lock()
				ok++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if ok != 1 {
		t.Fatalf("%d of 20 concurrent refreshes succeeded, want 1", ok)
	}
}

// TestT44RefreshBinding: another client's refresh token, a wider scope,
// and a refresh after the person's revocation, the agent's disabling or
// the consent's withdrawal are refused.
func TestT44RefreshBinding(t *testing.T) {
	cases := []struct {
		name   string
		client string
		extra  url.Values
		before func(h *harness)
		code   string
	}{
		{name: "another client", client: "agent:argocd", code: "invalid_grant"},
		{name: "wider scope", client: "agent:infrabot", extra: url.Values{"scope": {"deploy:create secrets:manage"}}, code: "invalid_scope"},
		{name: "narrower scope", client: "agent:infrabot", extra: url.Values{"scope": {"deploy:create"}}},
		{name: "person revoked", client: "agent:infrabot", code: "invalid_grant", before: func(h *harness) {
			h.admin(http.MethodPost, "/admin/revoke", map[string]any{"subject": "user:sam"})
		}},
		{name: "agent disabled", client: "agent:infrabot", code: "invalid_client", before: func(h *harness) {
			h.admin(http.MethodPost, "/admin/agents/agent:infrabot/disable", nil)
		}},
		{name: "consent withdrawn", client: "agent:infrabot", code: "invalid_grant", before: func(h *harness) {
			for _, d := range h.listDelegations("user:sam") {
				if d.Source == "consent" {
					h.admin(http.MethodDelete, "/admin/delegations/"+d.ID, nil)
				}
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newPeopleHarness(t)
			tok := h.consented(h.person(), "deploy:create monitoring:read", nil)
			if c.before != nil {
				c.before(h)
			}
			r := h.refresh(c.client, tok.str("refresh_token"), c.extra)
			if c.code == "" {
				if r.status != http.StatusOK || r.str("scope") != "deploy:create" {
					t.Fatalf("%d %s", r.status, r.raw)
				}
				return
			}
			if r.str("error") != c.code {
				t.Fatalf("%d %s, want %s", r.status, r.raw, c.code)
			}
		})
	}
}

// TestRefusedRefreshUsesNothing: a refresh the grant refuses (a wider
// scope, an audience the delegation does not allow) leaves the refresh
// token current, so the agent may ask again.
func TestRefusedRefreshUsesNothing(t *testing.T) {
	h := newPeopleHarness(t)
	tok := h.consented(h.person(), "deploy:create monitoring:read", nil)
	rt := tok.str("refresh_token")
	if r := h.refresh("agent:infrabot", rt, url.Values{"scope": {"secrets:manage"}}); r.str("error") != "invalid_scope" {
		t.Fatalf("wider scope: %d %s", r.status, r.raw)
	}
	r := h.refresh("agent:infrabot", rt, url.Values{"scope": {"monitoring:read"}})
	if r.status != http.StatusOK || r.str("scope") != "monitoring:read" {
		t.Fatalf("after a refused refresh: %d %s", r.status, r.raw)
	}
}

// TestLimitWords: the consent page says a person's limits in words.
func TestLimitWords(t *testing.T) {
	h := newPeopleHarness(t)
	if _, err := h.store.UpdateUser(context.Background(), "user:sam", func(u store.User) (store.User, error) {
		u.Limits = []byte(`[{"type":"expense_approval","max_amount":1000,"currency":"USD"},{"type":"deploy_window","max_minutes":30,"region":"eu"}]`)
		return u, nil
	}); err != nil {
		t.Fatal(err)
	}
	cp := h.person().consent(h.authorizeURL("agent:infrabot", "deploy:create", "s", nil), "user:sam", samPassword)
	for _, want := range []string{"expense approval: amount up to 1000 USD", "deploy window: minutes up to 30, region eu"} {
		if !strings.Contains(cp.text(), want) {
			t.Errorf("the consent page does not say %q:\n%s", want, cp.text())
		}
	}
}

// TestRequestedActor: another client asks for tokens acting as an agent
// (requested_actor, as in the draft on AI agents acting on behalf of
// users): the consent page names both, the code is bound to the agent, and
// at the token endpoint the client must send an actor_token that is the
// agent's own; the token's act.sub is the agent and its client_id the
// client.
func TestRequestedActor(t *testing.T) {
	h := newPeopleHarness(t)
	p := h.person()
	cp := p.consent(h.authorizeURL("agent:argocd", "deploy:create", "ra", url.Values{"requested_actor": {"agent:infrabot"}}), "user:sam", samPassword)
	if text := cp.text(); !strings.Contains(text, "The application agent:argocd asks for permission for the agent agent:infrabot to act on your behalf") {
		t.Fatalf("the consent page does not name the client and the agent:\n%s", text)
	}
	redeem := func(code string, extra url.Values) response {
		form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {appRedirect}, "code_verifier": {verifierA}}
		for k, v := range extra {
			form[k] = v
		}
		return h.post("/token", "agent:argocd", form)
	}
	code, _ := p.approve(cp, nil)
	if r := redeem(code, nil); r.str("error") != "invalid_grant" {
		t.Fatalf("without an actor_token: %d %s", r.status, r.raw)
	}
	argo := h.clientToken("agent:argocd", "argocd-secret", "").str("access_token")
	cp = p.consent(h.authorizeURL("agent:argocd", "deploy:create", "ra", url.Values{"requested_actor": {"agent:infrabot"}}), "user:sam", samPassword)
	code, _ = p.approve(cp, nil)
	if r := redeem(code, url.Values{"actor_token": {argo}, "actor_token_type": {"urn:ietf:params:oauth:token-type:access_token"}}); r.str("error") != "invalid_grant" {
		t.Fatalf("with the client's own token as actor_token: %d %s", r.status, r.raw)
	}
	infra := h.clientToken("agent:infrabot", "infrabot-secret", "").str("access_token")
	cp = p.consent(h.authorizeURL("agent:argocd", "deploy:create", "ra", url.Values{"requested_actor": {"agent:infrabot"}}), "user:sam", samPassword)
	code, _ = p.approve(cp, nil)
	r := redeem(code, url.Values{"actor_token": {infra}, "actor_token_type": {"urn:ietf:params:oauth:token-type:access_token"}})
	if r.status != http.StatusOK {
		t.Fatalf("with the agent's actor_token: %d %s", r.status, r.raw)
	}
	c := claims(t, r.str("access_token"))
	act, _ := c["act"].(map[string]any)
	if c["sub"] != "user:sam" || act["sub"] != "agent:infrabot" || c["client_id"] != "agent:argocd" {
		t.Fatalf("claims %v", c)
	}
}

// TestRefreshEndsWithTheApproval: a refresh token lasts no longer than
// the approval it came from, which the person may shorten.
func TestRefreshEndsWithTheApproval(t *testing.T) {
	clock := &stepClock{now: time.Now()}
	h := newHarnessEdited(t, openSQLite, clock.Now, withPeople)
	h.givePassword("user:sam", samPassword)
	p := h.person()
	cp := p.consent(h.authorizeURL("agent:infrabot", "deploy:create", "s", nil), "user:sam", samPassword)
	f := cp.form(t, "/consent")
	f.Set("duration", "15m")
	f.Set("decision", "approve")
	res := p.post("/consent", f)
	code := res.location(t, h.url).Query().Get("code")
	tok := h.codeToken("agent:infrabot", code, verifierA)
	if tok.status != http.StatusOK {
		t.Fatalf("code: %d %s", tok.status, tok.raw)
	}
	if exp := int64(claims(t, tok.str("access_token"))["exp"].(float64)); exp > clock.Now().Add(15*time.Minute).Unix() {
		t.Fatalf("the access token outlives the 15-minute approval: exp %d", exp)
	}
	clock.add(16 * time.Minute)
	if r := h.refresh("agent:infrabot", tok.str("refresh_token"), nil); r.str("error") != "invalid_grant" {
		t.Fatalf("a refresh after the approval ended: %d %s", r.status, r.raw)
	}
}

// TestRevokeRefreshToken: a client revokes its refresh token at /revoke
// (RFC 7009): the family ends with its access tokens; another client's
// attempt changes nothing and is answered the same.
func TestRevokeRefreshToken(t *testing.T) {
	h := newPeopleHarness(t)
	tok := h.consented(h.person(), "deploy:create", nil)
	rt := tok.str("refresh_token")
	if r := h.post("/revoke", "agent:argocd", url.Values{"token": {rt}}); r.status != http.StatusOK {
		t.Fatalf("another client's revocation: %d %s", r.status, r.raw)
	}
	if !h.active(tok.str("access_token")) {
		t.Fatal("another client's revocation ended the family")
	}
	if r := h.post("/revoke", "agent:infrabot", url.Values{"token": {rt}, "token_type_hint": {"refresh_token"}}); r.status != http.StatusOK {
		t.Fatalf("revoke: %d %s", r.status, r.raw)
	}
	if h.active(tok.str("access_token")) {
		t.Fatal("the family's access token survived its refresh token's revocation")
	}
	if r := h.refresh("agent:infrabot", rt, nil); r.str("error") != "invalid_grant" {
		t.Fatalf("refresh after revocation: %d %s", r.status, r.raw)
	}
}

// TestConsentBesideAStandingDelegation: Sam's approval of InfraBot for one
// resource does not narrow what his standing delegation to InfraBot allows
// elsewhere: a first hop takes the delegation that admits it.
func TestConsentBesideAStandingDelegation(t *testing.T) {
	h := newPeopleHarness(t)
	p := h.person()
	cp := p.consent(h.authorizeURL("agent:infrabot", "monitoring:read", "s", url.Values{"resource": {"https://metrics.example"}}), "user:sam", samPassword)
	code, _ := p.approve(cp, nil)
	if tok := h.codeToken("agent:infrabot", code, verifierA); tok.status != http.StatusOK {
		t.Fatalf("code: %d %s", tok.status, tok.raw)
	}
	for range 5 {
		r := h.exchange("agent:infrabot", h.samToken(), "urn:ietf:params:oauth:token-type:jwt", url.Values{"audience": {"agent:argocd"}, "scope": {"deploy:create"}})
		if r.status != http.StatusOK {
			t.Fatalf("exchange beside the consent: %d %s", r.status, r.raw)
		}
		var standing string
		for _, d := range h.listDelegations("user:sam") {
			if d.Source == "config" && d.Actor == "agent:infrabot" {
				standing = d.ID
			}
		}
		if got := claims(t, r.str("access_token"))["delegation_id"]; got != standing {
			t.Fatalf("the token names delegation %v, want the standing %s", got, standing)
		}
	}
}
