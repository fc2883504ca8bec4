package server_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mandate-dev/mandate/internal/audit"
	"github.com/mandate-dev/mandate/internal/config"
	"github.com/mandate-dev/mandate/internal/server"
	"github.com/mandate-dev/mandate/internal/signin"
	"github.com/mandate-dev/mandate/internal/store"
	"github.com/mandate-dev/mandate/internal/upstream/upstreamtest"
)

// recheckEvery is the provider's recheck_every in these tests.
const recheckEvery = time.Minute

// newRecheckHarness is the people's harness with one login provider,
// "Company 1" (sso:{preferred_username}), rechecked every minute, and a
// clock that stands still until advance moves it.
func newRecheckHarness(t *testing.T, open func(t *testing.T) store.Store) (*harness, company, func(time.Duration)) {
	t.Helper()
	var d company
	h, move := newClockedHarnessEdited(t, open, func(c *config.Config) {
		withPeople(c)
		d = company{IDP: upstreamtest.New(t, c.Issuer+server.CallbackPath), name: "Company 1"}
		idp := d.Login(d.name)
		idp.Login.UserID = "sso:{preferred_username}"
		idp.Login.Scopes = []string{"openid", "profile", "email"} // offline_access is added for the recheck
		idp.Login.RecheckEvery = config.Duration(recheckEvery)
		c.IdentityProviders = append(c.IdentityProviders, idp)
	})
	advance := func(by time.Duration) { move(by); h.untilFresh() }
	return h, d, advance
}

// samDelegates signs sam in at d, approves InfraBot for scopes and
// redeems the code: the token response.
func (h *harness) samDelegates(d company, sam *person, scopes string) response {
	h.t.Helper()
	code, _ := sam.approve(sam.upstreamConsent(d, "sam", scopes), nil)
	tok := h.codeToken("agent:infrabot", code, verifierA)
	if tok.status != http.StatusOK || !h.inForce(tok) || tok.str("refresh_token") == "" {
		h.t.Fatalf("code exchange: %d %s", tok.status, tok.raw)
	}
	return tok
}

// grants returns the grants kept at d.
func (h *harness) grants(d company) []store.UpstreamGrant {
	h.t.Helper()
	gs, err := h.store.DueUpstreamGrants(context.Background(), d.Issuer, time.Now().Add(24*time.Hour), 10)
	if err != nil {
		h.t.Fatal(err)
	}
	return gs
}

// TestRecheckRemovedAtProvider: sam signs in through the company's
// provider and approves InfraBot, which holds a token and a refresh
// token; the provider keeps sam's refresh token sealed. The provider
// removes sam: at the first recheck after it, sam's delegations are
// revoked, the token is inactive, InfraBot's refresh is invalid_grant,
// sam's session is gone and the grant dropped, each change recorded as
// the provider's doing.
func TestRecheckRemovedAtProvider(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			h, d, advance := newRecheckHarness(t, b.open)
			sam := h.person()
			tok := h.samDelegates(d, sam, "deploy:create monitoring:read")

			gs := h.grants(d)
			if len(gs) != 1 || gs[0].Subject != "sso:sam" {
				t.Fatalf("grants kept = %+v, want sso:sam's", gs)
			}
			for _, secret := range d.Tokens() {
				if bytes.Contains(gs[0].Sealed, []byte(secret)) {
					t.Fatal("the provider's token is kept in clear")
				}
			}
			// Not due yet: nobody is asked.
			if got := h.app.Recheck(ctx); got != (signin.RecheckRound{}) {
				t.Errorf("a round before the grant is due = %+v, want nothing done", got)
			}

			if err := d.EndSessions(ctx, "u1"); err != nil {
				t.Fatal(err)
			}
			advance(recheckEvery + time.Second)
			seq := h.lastEventSeq()
			if got := h.app.Recheck(ctx); got != (signin.RecheckRound{Checked: 1, Removed: 1}) {
				t.Fatalf("the round after the removal = %+v, want sam removed", got)
			}
			for _, dl := range h.listDelegations("sso:sam") {
				if !dl.Revoked {
					t.Errorf("delegation %s (%s) is not revoked", dl.ID, dl.Source)
				}
			}
			if h.inForce(tok) {
				t.Error("InfraBot's token is still active")
			}
			if r := h.refresh("agent:infrabot", tok.str("refresh_token"), nil); r.status != http.StatusBadRequest || r.str("error") != "invalid_grant" {
				t.Errorf("InfraBot's refresh: %d %s", r.status, r.raw)
			}
			if mine := sam.get("/my/agents"); mine.status == http.StatusOK {
				t.Error("sam's session still opens My agents")
			}
			if gs := h.grants(d); len(gs) != 0 {
				t.Errorf("grants after the removal = %+v, want none", gs)
			}
			performer := "idp:" + d.Issuer
			var revoked, signedOut bool
			for _, ev := range h.eventsSince(seq) {
				switch {
				case ev.Performer != performer:
				case ev.Action == audit.ActionDelegationGone && ev.Reason == signin.ReasonRemovedAtProvider:
					revoked = true
				case ev.Action == audit.ActionSignOut && ev.Reason == signin.ReasonRemovedAtProvider && ev.OnBehalf == "sso:sam":
					signedOut = true
				}
			}
			if !revoked || !signedOut {
				t.Errorf("records of the removal: delegation.revoked %v, person.sign_out %v; want both by %s", revoked, signedOut, performer)
			}
			// Nothing is left to ask.
			advance(recheckEvery + time.Second)
			if got := h.app.Recheck(ctx); got != (signin.RecheckRound{}) {
				t.Errorf("the next round = %+v, want nothing done", got)
			}
		})
	}
}

// TestRecheckFollowsGroups: the provider moves sam from sre to dev; the
// next recheck sets sam's permissions to what the provider says now and
// stops the tokens carrying the permission lost, recorded as the
// provider's doing; the delegation stays, and the rotated refresh token
// kept serves the round after.
func TestRecheckFollowsGroups(t *testing.T) {
	ctx := context.Background()
	h, d, advance := newRecheckHarness(t, openSQLite)
	sam := h.person()
	tok := h.samDelegates(d, sam, "deploy:create monitoring:read")
	before := h.grants(d)

	d.SetGroups("u1", []string{"dev"})
	advance(recheckEvery + time.Second)
	seq := h.lastEventSeq()
	if got := h.app.Recheck(ctx); got != (signin.RecheckRound{Checked: 1}) {
		t.Fatalf("round = %+v, want one checked", got)
	}
	u, err := h.store.GetUser(ctx, "sso:sam")
	if err != nil {
		t.Fatal(err)
	}
	if !cmp.Equal(u.Permissions, []string{"monitoring:read", "secrets:manage"}) || len(u.Roles) != 0 {
		t.Errorf("after the recheck: permissions %v, roles %v", u.Permissions, u.Roles)
	}
	if h.inForce(tok) {
		t.Error("a token carrying deploy:create, which the provider took away, is still active")
	}
	evs := h.eventsSince(seq)
	if i := slices.IndexFunc(evs, func(ev store.Event) bool {
		return ev.Action == audit.ActionUserPermissions && ev.Performer == "idp:"+d.Issuer
	}); i < 0 {
		t.Errorf("no user.permissions record by the provider among %d records", len(evs))
	}
	for _, dl := range h.listDelegations("sso:sam") {
		if dl.Source == "consent" && dl.Revoked {
			t.Error("the consent delegation was revoked for a group change")
		}
	}
	after := h.grants(d)
	if len(after) != 1 || bytes.Equal(after[0].Sealed, before[0].Sealed) || !after[0].CheckedAt.After(before[0].CheckedAt) {
		t.Errorf("the grant after the recheck = %+v, want the rotated token and a later check", after)
	}

	// The rotated token serves the next round.
	advance(recheckEvery + time.Second)
	if got := h.app.Recheck(ctx); got != (signin.RecheckRound{Checked: 1}) {
		t.Errorf("the next round = %+v, want one checked", got)
	}
}

// TestRecheckProviderDown: a provider that cannot be reached says nothing
// about its people: nothing is revoked, the grant is kept and asked about
// again at the next round, and once the provider is back the recheck
// goes through.
func TestRecheckProviderDown(t *testing.T) {
	ctx := context.Background()
	h, d, advance := newRecheckHarness(t, openSQLite)
	sam := h.person()
	tok := h.samDelegates(d, sam, "deploy:create monitoring:read")

	d.SetDown(true)
	advance(recheckEvery + time.Second)
	for range 2 {
		if got := h.app.Recheck(ctx); got != (signin.RecheckRound{Failed: 1}) {
			t.Fatalf("a round with the provider down = %+v, want one failed", got)
		}
	}
	if !h.inForce(tok) {
		t.Error("the token stopped while the provider was down")
	}
	for _, dl := range h.listDelegations("sso:sam") {
		if dl.Revoked {
			t.Errorf("delegation %s was revoked while the provider was down", dl.ID)
		}
	}
	if mine := sam.get("/my/agents"); mine.status != http.StatusOK {
		t.Errorf("sam's session ended while the provider was down: %d", mine.status)
	}
	if gs := h.grants(d); len(gs) != 1 {
		t.Fatalf("grants while the provider is down = %+v, want sam's", gs)
	}

	d.SetDown(false)
	if got := h.app.Recheck(ctx); got != (signin.RecheckRound{Checked: 1}) {
		t.Errorf("the round once the provider is back = %+v, want one checked", got)
	}
	if !h.inForce(tok) {
		t.Error("the token stopped after a recheck that changed nothing")
	}
}

// TestRecheckOffKeepsNoToken: without recheck_every the provider's
// refresh token is not kept, and a grant kept before is dropped at the
// next sign-in.
func TestRecheckOffKeepsNoToken(t *testing.T) {
	h, idps := newUpstreamHarness(t, "sso:{preferred_username}")
	d := idps[0]
	if !strings.Contains(strings.Join(d.Login("x").Login.Scopes, " "), "offline_access") {
		t.Fatal("the provider's test configuration does not ask for a refresh token")
	}
	if err := h.store.PutUpstreamGrant(context.Background(), store.UpstreamGrant{Subject: "sso:sam", Provider: d.Issuer,
		Sealed: []byte("old"), CheckedAt: time.Now(), CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	h.samDelegates(d, h.person(), "deploy:create")
	if gs := h.grants(d); len(gs) != 0 {
		t.Errorf("grants kept without recheck_every = %+v, want none", gs)
	}
}

// inForce introspects tok's access token as its client and reports
// whether it is active; an introspection that does not answer 200 fails.
func (h *harness) inForce(tok response) bool {
	h.t.Helper()
	active, _ := h.introspectActive(tok.str("access_token"))
	return active
}

// TestRecheckStoreFailsDuringRemoval: a store that fails part way through
// a removal (the sessions cannot be ended) leaves the grant to the next
// round, which finishes the removal: a person the provider refused is
// never left signed in for longer than a round.
func TestRecheckStoreFailsDuringRemoval(t *testing.T) {
	ctx := context.Background()
	h, d, advance := newRecheckHarness(t, openSQLite)
	sam := h.person()
	h.samDelegates(d, sam, "deploy:create")
	if err := d.EndSessions(ctx, "u1"); err != nil {
		t.Fatal(err)
	}
	advance(recheckEvery + time.Second)
	h.faulty.Fail("DeleteSessionsOf", errors.New("disk full"))
	if got := h.app.Recheck(ctx); got != (signin.RecheckRound{Failed: 1}) {
		t.Fatalf("a round whose store fails = %+v, want one failed", got)
	}
	if gs := h.grants(d); len(gs) != 1 {
		t.Fatalf("grants after the failed round = %+v, want sam's, kept for the next round", gs)
	}
	h.faulty.Heal()
	if got := h.app.Recheck(ctx); got != (signin.RecheckRound{Checked: 1, Removed: 1}) {
		t.Fatalf("the next round = %+v, want sam removed", got)
	}
	if mine := sam.get("/my/agents"); mine.status == http.StatusOK {
		t.Error("sam's session still opens My agents")
	}
	if gs := h.grants(d); len(gs) != 0 {
		t.Errorf("grants after the removal = %+v, want none", gs)
	}
}
