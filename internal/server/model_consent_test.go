package server_test

// What people approve, in the delegation model: the consent page makes a
// delegation (source consent) and a single-use code; the agent redeems
// the code and then refreshes. Both grants are bounded like every other
// (exchange.Grant.Consent): the model below computes them from the rule,
// and the generator and the runner's parts for these operations follow.

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/argon2"

	"github.com/mandate-dev/mandate/internal/store"
)

// Constants of the sign-in service the model assumes (its defaults).
const (
	modelCodeTTL    = 60 * time.Second
	modelRefreshMax = 30 * 24 * time.Hour
	// modelPassword is every person's password in the model's worlds.
	modelPassword = "model-password"
	// modelBadVerifier is a well-formed PKCE verifier that is not the one
	// the requests were made with (verifierA).
	modelBadVerifier = "0000000000000000000000000000000000000000000"
)

// Refusals of the consent page the model predicts (not OAuth error codes
// of the token endpoint): the authorization request refused back to the
// application, and an approval with nothing approvable ticked.
const (
	errUnauthorizedClient = "unauthorized_client"
	errNothingApproved    = "nothing_approved"
	errInvalidGrant       = "invalid_grant"
)

// modelDurations are the consent page's choices; 0 stands for a value
// the page does not offer, which means the default (8 h).
var modelDurations = map[time.Duration]string{8 * time.Hour: "8h", time.Hour: "1h", 15 * time.Minute: "15m", 0: "2d"}

// modelCode is an authorization code the consent page issued.
type modelCode struct {
	Label, Client, Agent, Subject string
	// Delegation is the label of the delegation the approval made.
	Delegation string
	Scopes     []string
	Resource   string
	Expires    time.Time
	Used       bool
}

// modelRefresh is a refresh token: the family's grant and whether this
// one was used (rotated or replayed).
type modelRefresh struct {
	Label, Client, Agent, Subject, Delegation string
	Scopes                                    []string
	Resource                                  string
	// Version is the person's revocation version when the family began.
	Version int
	Expires time.Time
	Used    bool
}

// approve: op.Person, signed in, approves op.Client's authorization
// request (for op.Agent when set: requested_actor) of op.Scope with
// op.Ticked ticked. The page offers every requested scope and disables
// those the person or the agent does not hold; only the requested
// scopes the page let them approve count. The delegation lasts the
// chosen duration and is bounded to the request's resource; the code
// lasts a minute.
func (m *modelState) approve(op modelOp) modelOutcome {
	if m.agents[op.Client].Disabled {
		return modelRefuse(errUnauthorizedClient, "authorize: the client is disabled")
	}
	agent := cmpOr(op.Agent, op.Client)
	scopes := modelIntersect(m.approvable(op), op.Ticked)
	if len(scopes) == 0 {
		return modelRefuse(errNothingApproved, "approve: nothing approvable was ticked")
	}
	d := cmpOr(op.Duration, 8*time.Hour)
	dl := &modelDlg{Label: op.Label, Subject: op.Person, Actor: agent, Scopes: scopes, Audiences: slices.Clone(op.Resource), Expires: m.now.Add(d), Consent: true}
	// It replaces the person's earlier approval of the agent for the
	// same resource: revoked, with every token under it.
	if old := m.activeDelegation(op.Person, agent); old != nil && m.replaces(op, old) {
		old.Revoked = true
		m.kill("delegation_revoked", func(t *modelToken) bool { return t.Delegation == old.Label })
	}
	if len(op.Resource) > 0 {
		// The page showed that the resource's server may hand the
		// tokens on: the approval records it.
		if r := m.resources[op.Resource[0]]; r.Agent != "" && r.Agent != agent {
			dl.DelegateTo, dl.HandOn = []string{r.Agent}, slices.Clone(r.HandOn)
		}
	}
	m.dlgs[op.Label] = dl
	m.dlgLabels = append(m.dlgLabels, op.Label)
	c := &modelCode{Label: op.Label, Client: op.Client, Agent: agent, Subject: op.Person, Delegation: op.Label,
		Scopes: scopes, Expires: m.now.Add(modelCodeTTL)}
	if len(op.Resource) > 0 {
		c.Resource = op.Resource[0]
	}
	m.codes[op.Label] = c
	m.codeLabels = append(m.codeLabels, op.Label)
	return modelOutcome{}
}

// replaces reports whether approving op would replace d: the person's
// earlier approval of the same agent for the same resource.
func (m *modelState) replaces(op modelOp, d *modelDlg) bool {
	return d.Consent && slices.Equal(d.Audiences, op.Resource)
}

// approvable are the scopes of op's request that the consent page lets
// the person approve (and ticks): those the person and the agent hold.
func (m *modelState) approvable(op modelOp) []string {
	p, a := m.people[op.Person], m.agents[cmpOr(op.Agent, op.Client)]
	return modelIntersect(modelIntersect(op.Scope, p.Permissions), a.Scopes)
}

// replayed: a code or refresh token presented again revokes the
// delegation it was issued under, and with it every token it bounds.
func (m *modelState) replayed(dlg, what string) modelOutcome {
	m.dlgs[dlg].Revoked = true
	m.kill("delegation_revoked", func(t *modelToken) bool { return t.Delegation == dlg })
	return modelRefuse(errInvalidGrant, "%s presented again: the delegation is revoked", what)
}

// redeem: op.Client redeems op.Code. The code is used up by any attempt
// of an authenticated client; one used before revokes its delegation.
func (m *modelState) redeem(op modelOp) modelOutcome {
	if m.agents[op.Client].Disabled {
		return modelRefuse(errInvalidClient, "client authentication: the client is disabled")
	}
	c := m.codes[op.Code]
	if c.Used {
		return m.replayed(c.Delegation, "the code")
	}
	c.Used = true
	switch {
	case c.Client != op.Client:
		return modelRefuse(errInvalidGrant, "code: issued to another client")
	case !m.now.Before(c.Expires):
		return modelRefuse(errInvalidGrant, "code: expired")
	case op.BadVerifier:
		return modelRefuse(errInvalidGrant, "code: the PKCE verifier does not match")
	}
	out := m.consentGrant(op, c.Subject, c.Agent, c.Delegation, c.Scopes, c.Resource, -1)
	if out.Refused == "" {
		rt := &modelRefresh{Label: op.Label, Client: c.Client, Agent: c.Agent, Subject: c.Subject, Delegation: c.Delegation,
			Scopes: c.Scopes, Resource: c.Resource, Version: m.people[c.Subject].Version, Expires: m.now.Add(modelRefreshMax)}
		if e := m.dlgs[c.Delegation].Expires; !e.IsZero() && e.Before(rt.Expires) {
			rt.Expires = e
		}
		m.addRefresh(rt)
	}
	return out
}

func (m *modelState) addRefresh(rt *modelRefresh) {
	m.refreshes[rt.Label] = rt
	m.rtLabels = append(m.rtLabels, rt.Label)
}

// refresh: op.Client presents op.Refresh. Only a granted refresh uses it
// up (and returns the family's next); one used before revokes the
// delegation.
func (m *modelState) refresh(op modelOp) modelOutcome {
	if m.agents[op.Client].Disabled {
		return modelRefuse(errInvalidClient, "client authentication: the client is disabled")
	}
	rt := m.refreshes[op.Refresh]
	switch {
	case rt.Used:
		return m.replayed(rt.Delegation, "the refresh token")
	case rt.Client != op.Client:
		return modelRefuse(errInvalidGrant, "refresh: issued to another client")
	case !m.now.Before(rt.Expires):
		return modelRefuse(errInvalidGrant, "refresh: expired")
	}
	out := m.consentGrant(op, rt.Subject, rt.Agent, rt.Delegation, rt.Scopes, rt.Resource, rt.Version)
	if out.Refused == "" {
		rt.Used = true
		next := *rt
		next.Label, next.Used = op.Label, false
		m.addRefresh(&next)
	}
	return out
}

// consentGrant is the access token of a code or refresh token: sub the
// person, act the agent, within the approved delegation, the person's
// permissions and limits now, the client's and the agent's scopes now;
// the request's scope may only narrow what was approved. version is the
// person's revocation version when the family began, -1 for a code.
func (m *modelState) consentGrant(op modelOp, subject, agent, dlg string, approved []string, resource string, version int) modelOutcome {
	person, c, D := m.people[subject], m.agents[op.Client], m.dlgs[dlg]
	now := m.now
	if version >= 0 && person.Version > version {
		return modelRefuse(errInvalidGrant, "consent: the person was revoked since the family began")
	}
	if !m.dlgActive(D) {
		return modelRefuse(errInvalidGrant, "consent: the delegation is revoked or expired")
	}
	var A *modelToken
	if agent != op.Client {
		if op.ActorToken == "" {
			return modelRefuse(errInvalidGrant, "consent: requested_actor without actor_token")
		}
		A = m.tokens[op.ActorToken]
		switch {
		case !now.Before(A.Exp.Add(modelLeeway)):
			// Signatures and expiry are checked first, with the leeway.
			return modelRefuse(errInvalidRequest, "consent: the actor token has expired")
		case A.Kind != modelCC || A.Sub != agent || A.Aud != modelIssuer:
			return modelRefuse(errInvalidGrant, "consent: the actor token is not the agent's own")
		case !m.inForce(A):
			return modelRefuse(errInvalidRequest, "consent: the actor token is not in force (%s)", m.whyDead(A))
		}
	}
	requested := approved
	if op.ScopeGiven {
		for _, s := range op.Scope {
			if !slices.Contains(approved, s) {
				return modelRefuse(errInvalidScope, "consent: %s was not approved", s)
			}
		}
		requested = op.Scope
	}
	// RFC 8707: the request may name the approved resource again, never
	// another.
	if resource != "" {
		for _, r := range op.Resource {
			if r != resource {
				return modelRefuse(errInvalidTarget, "consent: %s is not the approved resource %s", r, resource)
			}
		}
	}
	allowed := modelIntersect(person.Permissions, c.Scopes)
	limit := m.maxDepth
	tighten := func(n int) {
		if n > 0 {
			limit = min(limit, n)
		}
	}
	tighten(c.MaxDepth)
	if agent != op.Client {
		a := m.agents[agent]
		if a.Disabled {
			return modelRefuse(errInvalidGrant, "consent: the agent is disabled")
		}
		allowed = modelIntersect(allowed, a.Scopes)
		tighten(a.MaxDepth)
	}
	allowed = modelIntersect(allowed, D.Scopes)
	tighten(D.MaxDepth)
	if limit < 1 {
		return modelRefuse(errInvalidRequest, "4: a chain of 1 is deeper than %d", limit)
	}

	// The audience: the approved resource stands for the request's.
	targets := slices.Clone(op.Audience)
	res := op.Resource
	if resource != "" {
		res = []string{resource}
	}
	for _, t := range res {
		if !slices.Contains(targets, t) {
			targets = append(targets, t)
		}
	}
	targets = slices.Compact(targets)
	var aud string
	switch {
	case len(targets) > 1:
		return modelRefuse(errInvalidTarget, "5: more than one target")
	case len(targets) == 0 && len(D.Audiences) == 1:
		aud = D.Audiences[0]
	case len(targets) == 0:
		aud = modelIssuer
	case len(D.Audiences) > 0 && !slices.Contains(D.Audiences, targets[0]):
		return modelRefuse(errInvalidTarget, "5: %s is not among the delegation's audiences", targets[0])
	default:
		aud = targets[0]
	}

	granted := modelIntersect(requested, allowed)
	if len(granted) == 0 {
		return modelRefuse(errInvalidScope, "6: no scope can be granted")
	}
	var details []modelDetail
	if req := modelNormDetails(op.Details); req != nil {
		var ok bool
		if details, ok = modelGrantDetails(req, person.Limits); !ok {
			return modelRefuse(errInvalidDetails, "7: an entry is not covered by the person's limits")
		}
	}
	ctx := modelNormMap(op.Context)
	if len(ctx) == 0 {
		ctx = nil
	}
	in := modelPolicyInput{Subject: subject, Chain: []string{agent}, Scopes: granted, Audience: aud, Context: map[string]any{"environment": "", "trigger": ""}}
	for k, v := range ctx {
		in.Context[k] = v
	}
	for _, p := range m.policies {
		if p.denies(in) {
			return modelRefuse(errInvalidRequest, "9: policy %s denies", p.Name)
		}
	}
	// The lifetime: never beyond the TTL, the delegation or the actor
	// token.
	exp := now.Add(m.ttl)
	bounds := []time.Time{D.Expires}
	if A != nil {
		bounds = append(bounds, A.Exp)
	}
	for _, b := range bounds {
		if !b.IsZero() && b.Before(exp) {
			exp = b
		}
	}
	if exp.Sub(now) < time.Second {
		return modelRefuse(errInvalidRequest, "10: less than a second left (%v)", exp.Sub(now))
	}
	t := &modelToken{Label: op.Label, Kind: modelDelegated, Sub: subject, ClientID: op.Client, Chain: []string{agent}, Aud: aud,
		Scopes: granted, HasScope: true, Details: details, Context: ctx, Delegation: dlg, IssuedAt: now, Exp: exp.Truncate(time.Second),
		ActorToken: op.ActorToken}
	m.addToken(t)
	return modelOutcome{Token: t}
}

// Generation.

// consentOp draws one of the consent operations: mostly the redemption of
// a code just issued, a refresh of a family's current token, or a new
// approval.
func (g *modelGen) consentOp(i int) modelOp {
	label := fmt.Sprintf("c%d", i)
	m := g.m
	var fresh, viable []string
	for _, l := range m.codeLabels {
		if c := m.codes[l]; !c.Used && m.now.Before(c.Expires) {
			fresh = append(fresh, l)
		}
	}
	for _, l := range m.rtLabels {
		f := m.refreshes[l]
		if !f.Used && m.dlgActive(m.dlgs[f.Delegation]) && m.people[f.Subject].Version == f.Version && !m.agents[f.Client].Disabled {
			viable = append(viable, l)
		}
	}
	switch x := g.r.Float64(); {
	case x < 0.4:
		if len(fresh) > 0 {
			return g.redeem(label, modelPick(g, fresh))
		}
	case x < 0.43: // used or expired, mostly
		if len(m.codeLabels) > 0 {
			return g.redeem(label, modelPick(g, m.codeLabels))
		}
	case x < 0.75:
		if len(viable) > 0 {
			return g.refresh(label, modelPick(g, viable))
		}
	case x < 0.79: // used, or of a family that ended, mostly
		if len(m.rtLabels) > 0 {
			return g.refresh(label, modelPick(g, m.rtLabels))
		}
	}
	return g.approve(label)
}

// approve draws an approval by a person of an agent that holds none of
// their delegations yet.
func (g *modelGen) approve(label string) modelOp {
	m := g.m
	var pairs [][2]string
	for _, p := range g.w.People {
		for _, a := range m.agentIDs {
			if d := m.activeDelegation(p.ID, a); d == nil || d.Consent && g.p(0.5) {
				pairs = append(pairs, [2]string{p.ID, a})
			}
		}
	}
	if len(pairs) == 0 {
		return g.clock()
	}
	pair := modelPick(g, pairs)
	for range 3 {
		if !m.agents[pair[1]].Disabled {
			break
		}
		pair = modelPick(g, pairs) // enabled agents, mostly
	}
	op := modelOp{Kind: opApprove, Label: label, Person: pair[0], Client: pair[1],
		Duration: modelPick(g, []time.Duration{8 * time.Hour, time.Hour, 15 * time.Minute, 15 * time.Minute, 0})}
	if g.p(0.15) {
		op.Agent, op.Client = pair[1], g.client() // the client asks for another agent
		if op.Agent == op.Client {
			op.Agent = ""
		}
	}
	agent := m.agents[pair[1]]
	pool := agent.Scopes
	if len(pool) == 0 || g.p(0.3) {
		pool = modelScopes
	}
	op.Scope = g.some(pool, 3)
	// Ticked: mostly what the page offers; sometimes a disabled one or
	// one that was not on the page (a tampered form).
	for _, s := range op.Scope {
		held := slices.Contains(m.people[op.Person].Permissions, s) && slices.Contains(agent.Scopes, s)
		if held && g.p(0.8) || !held && g.p(0.15) {
			op.Ticked = append(op.Ticked, s)
		}
	}
	if g.p(0.1) {
		if s := modelPick(g, modelScopes); !slices.Contains(op.Ticked, s) {
			op.Ticked = append(op.Ticked, s)
		}
	}
	// A resource often when the world registers them (its server may
	// then take the tokens on), sometimes otherwise.
	if g.p(0.35) || len(g.m.resources) > 0 && g.p(0.6) {
		op.Resource = []string{modelPick(g, modelURLs)}
	}
	// Approving again replaces the earlier approval for the same
	// resource (a client stepping up).
	if d := m.activeDelegation(op.Person, pair[1]); d != nil {
		op.Resource = slices.Clone(d.Audiences)
	}
	return op
}

// redeem draws the redemption of code: by its client mostly.
func (g *modelGen) redeem(label, code string) modelOp {
	c := g.m.codes[code]
	op := modelOp{Kind: opRedeem, Label: label, Code: code, Client: c.Client}
	if g.p(0.06) {
		op.Client = g.client()
	}
	op.BadVerifier = g.p(0.05)
	g.consentParams(&op, c.Subject, c.Agent, c.Scopes, c.Resource, c.Delegation, 0.15)
	return op
}

// refresh draws the use of refresh token rt: by its client mostly, with
// a narrower or wider scope, an audience, context and details sometimes.
func (g *modelGen) refresh(label, rt string) modelOp {
	f := g.m.refreshes[rt]
	op := modelOp{Kind: opRefresh, Label: label, Refresh: rt, Client: f.Client}
	if g.p(0.05) {
		op.Client = g.client()
	}
	g.consentParams(&op, f.Subject, f.Agent, f.Scopes, f.Resource, f.Delegation, 0.5)
	return op
}

// consentParams fills in the token request's parameters of a code or
// refresh token grant; x is how often they are drawn at all.
func (g *modelGen) consentParams(op *modelOp, subject, agent string, approved []string, resource, dlg string, x float64) {
	m := g.m
	if agent != op.Client {
		own := g.tokens(func(t *modelToken) bool { return t.Kind == modelCC && t.Sub == agent && m.inForce(t) })
		if len(own) == 0 || g.p(0.1) {
			own = g.tokens(func(t *modelToken) bool { return t.Kind == modelCC })
		}
		if len(own) > 0 && g.p(0.9) {
			op.ActorToken = modelPick(g, own)
		}
	}
	if g.p(0.6) {
		op.Context = g.context(nil)
	}
	// An audience to hand on to, often, when the delegation allows any.
	switch y := g.r.Float64(); {
	case y < 0.4 && resource == "" && len(m.agents[agent].DelegateTo) > 0:
		op.Audience = []string{modelPick(g, m.agents[agent].DelegateTo)}
	case y < 0.45:
		op.Audience = []string{g.anyAudience()}
	case y < 0.5:
		op.Resource = []string{modelPick(g, modelURLs)}
	}
	if !g.p(x) {
		return
	}
	switch y := g.r.Float64(); {
	case y < 0.5:
		op.Scope, op.ScopeGiven = g.some(approved, len(approved)), true
	case y < 0.7:
		op.Scope, op.ScopeGiven = g.some(modelScopes, 3), true
	}
	if p := m.people[subject]; p != nil && len(p.Limits) > 0 && g.p(0.3) || g.p(0.03) {
		op.Details = g.details(subject)
	}
}

// Running.

// modelPasswordHash is modelPassword's argon2id hash with the least work
// the server accepts: the model's worlds sign people in often.
func modelPasswordHash() string {
	salt := make([]byte, 16)
	_, _ = rand.Read(salt)
	key := argon2.IDKey([]byte(modelPassword), salt, 1, 8, 1, 32)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=8,t=1,p=1$%s$%s", argon2.Version, b64.EncodeToString(salt), b64.EncodeToString(key))
}

// givePasswords sets every person's password, when the case approves.
func (r *modelRun) givePasswords(w modelWorld) {
	if !slices.ContainsFunc(r.ops, func(op modelOp) bool { return op.Kind == opApprove }) {
		return
	}
	hash := modelPasswordHash()
	for _, p := range w.People {
		if _, err := r.h.store.UpdateUser(r.ctx, p.ID, func(u store.User) (store.User, error) {
			u.PasswordHash = hash
			return u, nil
		}); err != nil {
			r.t.Fatal(err)
		}
	}
}

// approve runs an approval in the person's browser: the authorization
// request, the sign-in when their session is gone, the consent page and
// its form with op.Ticked ticked.
func (r *modelRun) approve(i int, op modelOp, want modelOutcome) *modelDisagreement {
	p := r.people[op.Person]
	if p == nil {
		p = r.h.person()
		r.people[op.Person] = p
	}
	extra := url.Values{}
	if op.Agent != "" {
		extra.Set("requested_actor", op.Agent)
	}
	if len(op.Resource) > 0 {
		extra.Set("resource", op.Resource[0])
	}
	got := func(server string) *modelDisagreement {
		if server == want.Refused {
			return nil
		}
		return r.fail(i, fmt.Sprintf("approve: server %q, model %q", server, want.Refused), "model: %s %s", cmpOr(want.Refused, "ok"), want.Rule)
	}
	first := p.get(r.h.authorizeURL(op.Client, strings.Join(op.Scope, " "), "st", extra))
	if first.status != http.StatusFound {
		return r.fail(i, "approve: authorize answers no redirect", "server: %d %s", first.status, first.text())
	}
	next := first.location(r.t, r.h.url)
	if e := next.Query().Get("error"); e != "" {
		return got(e)
	}
	if next.Path == "/login" {
		after := p.signIn(next.RequestURI(), op.Person, modelPassword)
		if after.status != http.StatusSeeOther {
			return r.fail(i, "approve: sign-in failed", "server: %d %s", after.status, after.text())
		}
		next = after.location(r.t, r.h.url)
	}
	cp := p.get(next.RequestURI())
	if cp.status != http.StatusOK {
		return r.fail(i, "approve: no consent page", "server: %d %s", cp.status, cp.text())
	}
	f := cp.form(r.t, "/consent")
	if offered := r.m.approvable(op); !modelSameSet(f["scope"], offered) {
		return r.fail(i, "approve: the page offers other scopes", "page: %v\nmodel: %v", f["scope"], offered)
	}
	f["scope"] = op.Ticked
	f.Set("duration", modelDurations[op.Duration])
	f.Set("decision", "approve")
	res := p.post("/consent", f)
	switch {
	case res.status == http.StatusBadRequest && strings.Contains(res.text(), "Nothing approved"):
		return got(errNothingApproved)
	case res.status != http.StatusSeeOther:
		return r.fail(i, "approve: the consent form failed", "server: %d %s", res.status, res.text())
	}
	if d := got(""); d != nil {
		return d
	}
	code := res.location(r.t, r.h.url).Query().Get("code")
	if code == "" {
		return r.fail(i, "approve: no code", "server: %s", res.header.Get("Location"))
	}
	r.codes[op.Label] = code
	r.stats.Approvals++
	for _, dl := range r.h.listDelegations(op.Person) {
		if dl.Source == "consent" && r.dlgLabel[dl.ID] == "" {
			r.dlgID[op.Label], r.dlgLabel[dl.ID] = dl.ID, op.Label
		}
	}
	return nil
}

// consentForm is the token request of a code or refresh token grant.
func (r *modelRun) consentForm(op modelOp) url.Values {
	form := url.Values{}
	if op.Kind == opRedeem {
		verifier := verifierA
		if op.BadVerifier {
			verifier = modelBadVerifier
		}
		form = url.Values{"grant_type": {"authorization_code"}, "code": {r.codes[op.Code]}, "redirect_uri": {appRedirect}, "code_verifier": {verifier}}
	} else {
		form = url.Values{"grant_type": {"refresh_token"}, "refresh_token": {r.rts[op.Refresh]}}
	}
	r.requestParams(form, op)
	return form
}

// modelConsentBounds checks a token of a code or refresh token grant
// against every bound on its path directly: the person, the client, the
// agent, the delegation now, what was approved, the TTL and the actor
// token.
func modelConsentBounds(m *modelState, op modelOp, got *modelToken) []string {
	var out []string
	bad := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	var subject, agent, dlg string
	var approved []string
	if op.Kind == opRedeem {
		c := m.codes[op.Code]
		subject, agent, dlg, approved = c.Subject, c.Agent, c.Delegation, c.Scopes
	} else {
		f := m.refreshes[op.Refresh]
		subject, agent, dlg, approved = f.Subject, f.Agent, f.Delegation, f.Scopes
	}
	if got.Sub != subject {
		bad("3: sub %s is not the person %s", got.Sub, subject)
	}
	if !slices.Equal(got.Chain, []string{agent}) {
		bad("3: act %v is not the agent %s", got.Chain, agent)
	}
	D := m.dlgs[dlg]
	subset := func(what string, bound []string) {
		for _, s := range got.Scopes {
			if !slices.Contains(bound, s) {
				bad("6: scope %s is not in %s %v", s, what, bound)
			}
		}
	}
	subset("the person's permissions", m.people[subject].Permissions)
	subset("the client's scopes", m.agents[op.Client].Scopes)
	subset("the agent's scopes", m.agents[agent].Scopes)
	subset("the delegation's scopes", D.Scopes)
	subset("what was approved", approved)
	if len(D.Audiences) > 0 && !slices.Contains(D.Audiences, got.Aud) {
		bad("5: aud %s is not among the delegation's %v", got.Aud, D.Audiences)
	}
	if got.Exp.After(D.Expires) {
		bad("10: exp after the delegation's")
	}
	if got.Exp.After(m.now.Add(m.ttl)) {
		bad("10: exp beyond the TTL")
	}
	if op.ActorToken != "" && agent != op.Client && got.Exp.After(m.tokens[op.ActorToken].Exp) {
		bad("10: exp after the actor token's")
	}
	for _, e := range got.Details {
		if !slices.ContainsFunc(m.people[subject].Limits, func(l modelDetail) bool { return modelWithin(e, l) }) {
			bad("7: entry %s is less constrained than every limit of the person", modelJSON(e))
		}
	}
	in := modelPolicyInput{Subject: got.Sub, Chain: got.Chain, Scopes: got.Scopes, Audience: got.Aud, Context: map[string]any{"environment": "", "trigger": ""}}
	for k, v := range got.Context {
		in.Context[k] = v
	}
	for _, p := range m.policies {
		if p.denies(in) {
			bad("9: policy %s denies the token minted", p.Name)
		}
	}
	return out
}
