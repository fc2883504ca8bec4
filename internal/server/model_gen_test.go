package server_test

// Random worlds and operation sequences for the delegation model
// (model_rule_test.go). Generation runs the model alone: each operation is
// drawn with the model's state in view (so that most exchanges name
// plausible tokens, clients and audiences), then applied to the model.
// The sequence is plain data that model_run_test.go replays on a server.

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"time"
)

// Kinds of operation.
const (
	opSignIn                = "signin"            // POST /admin/users/{Person}/token
	opIdP                   = "idp"               // the identity provider signs a token for Person
	opCC                    = "cc"                // client_credentials by Client
	opExchange              = "exchange"          // token exchange by Client of Token (ActorToken)
	opRevoke                = "revoke"            // POST /revoke of Token by Client
	opAdminRevokeJTI        = "admin-revoke-jti"  // POST /admin/revoke {jti}
	opDeleteDelegation      = "delete-delegation" // DELETE /admin/delegations/{id}
	opAdminRevokeDelegation = "admin-revoke-delegation"
	opRevokeSubject         = "revoke-subject"     // POST /admin/revoke {subject}
	opSetPermissions        = "set-permissions"    // PUT /admin/users/{Person}/permissions
	opSetLimits             = "set-limits"         // PUT /admin/users/{Person}/limits
	opDisable               = "disable"            // POST /admin/agents/{Agent}/disable
	opAdminRevokeAgent      = "admin-revoke-agent" // POST /admin/revoke {agent}
	opEnable                = "enable"             // POST /admin/agents/{Agent}/enable
	opCreateDelegation      = "create-delegation"  // POST /admin/delegations
	opReconfigure           = "reconfigure"        // config apply of Agent's scopes, delegate_to, max_depth
	opClock                 = "clock"              // the clock moves Duration on
	opApprove               = "approve"            // Person approves Client's authorization request on the consent page
	opRedeem                = "redeem"             // Client redeems Code (grant_type=authorization_code)
	opRefresh               = "refresh"            // Client presents Refresh (grant_type=refresh_token)
)

// modelOp is one operation. Only the fields its Kind uses are set.
type modelOp struct {
	Kind string
	// Label names what the operation creates: a token ("t12") or a
	// delegation ("d12"); later operations refer to it.
	Label  string
	Person string
	// Client is the authenticated client; Agent an agent acted upon (or
	// a new delegation's actor).
	Client, Agent string
	// Token is the subject token (exchange) or the token revoked;
	// ActorToken the actor token; Delegation a delegation's label.
	Token, ActorToken, Delegation string
	Audience, Resource            []string
	// Scope is the scope parameter when ScopeGiven (also: an identity
	// provider token's scope claim, a new delegation's or a reconfigured
	// agent's scopes).
	Scope      []string
	ScopeGiven bool
	Context    map[string]any
	Details    []modelDetail
	MayAct     string
	// Duration: a clock step; an identity provider token's lifetime; a
	// new delegation's lifetime (0: none).
	Duration    time.Duration
	Permissions []string
	Limits      []modelDetail
	DelegateTo  []string
	MaxDepth    int
	// Code is the label of an authorization code (the approval that made
	// it), Refresh that of a refresh token (the grant that returned it).
	Code, Refresh string
	// Ticked are the scopes an approval sends as ticked.
	Ticked []string
	// BadVerifier: the code is redeemed with a wrong PKCE verifier.
	BadVerifier bool
}

// modelCase is a world and the operations run in it.
type modelCase struct {
	World modelWorld
	Ops   []modelOp
}

// The generator's vocabulary.
var (
	modelScopes    = []string{"deploy:create", "deploy:tag", "monitoring:read", "secrets:manage", "expense:approve", "audit:read"}
	modelURLs      = []string{"https://deploy.example", "https://metrics.example", "https://pay.example"}
	modelLimitKeys = map[string][]string{
		"expense_approval": {"max_amount", "currency", "categories"},
		"deploy_window":    {"region", "max_instances", "actions"},
	}
	modelLimitTypes = []string{"expense_approval", "deploy_window"}
)

// modelGenStart is the generator's clock; the runner starts its own at
// another time with the same fraction of a second (.5), which gives the
// same outcomes.
var modelGenStart = time.Unix(1_750_000_000, 500_000_000)

// modelGen draws worlds and operations from r.
type modelGen struct {
	r *rand.Rand
	w modelWorld
	m *modelState
}

func (g *modelGen) p(x float64) bool { return g.r.Float64() < x }

func modelPick[T any](g *modelGen, xs []T) T { return xs[g.r.IntN(len(xs))] }

// subset returns each member of xs with probability x, in order.
func (g *modelGen) subset(xs []string, x float64) []string {
	out := []string{}
	for _, s := range xs {
		if g.p(x) {
			out = append(out, s)
		}
	}
	return out
}

// some returns 1 to n members of xs, in random order.
func (g *modelGen) some(xs []string, n int) []string {
	k := 1 + g.r.IntN(min(n, len(xs)))
	perm := g.r.Perm(len(xs))
	out := make([]string, 0, k)
	for _, i := range perm[:k] {
		out = append(out, xs[i])
	}
	return out
}

// genModelCase draws a world and n operations from r.
func genModelCase(r *rand.Rand, n int) modelCase {
	g := &modelGen{r: r}
	g.w = g.world()
	g.m = newModelState(g.w, modelGenStart)
	c := modelCase{World: g.w}
	for i := range n {
		op := g.op(i)
		g.m.apply(op)
		c.Ops = append(c.Ops, op)
	}
	return c
}

func (g *modelGen) world() modelWorld {
	w := modelWorld{MaxDepth: 2 + g.r.IntN(3)}
	switch {
	case g.p(0.05):
		w.MaxDepth = 1
	case g.p(0.15):
		w.TTL = 2 * time.Minute
	case g.p(0.15):
		w.TTL = 15 * time.Minute
	}
	for i := range 2 + g.r.IntN(3) {
		p := modelPerson{ID: fmt.Sprintf("user:p%d", i), Permissions: g.subset(modelScopes, 0.85)}
		if g.p(0.6) {
			p.Limits = g.limits()
		}
		w.People = append(w.People, p)
	}
	nAgents := 3 + g.r.IntN(3)
	var ids []string
	for i := range nAgents {
		ids = append(ids, fmt.Sprintf("agent:a%d", i))
	}
	for _, id := range ids {
		a := modelAgent{ID: id, Scopes: g.subset(modelScopes, 0.8)}
		for _, other := range ids {
			if other != id && g.p(0.5) {
				a.DelegateTo = append(a.DelegateTo, other)
			}
		}
		if g.p(0.25) {
			a.MaxDepth = 1 + g.r.IntN(4)
		}
		a.Disabled = g.p(0.04)
		w.Agents = append(w.Agents, a)
	}
	for _, p := range w.People {
		for i, a := range ids {
			if !g.p(0.4) {
				continue
			}
			d := modelDelegation{ID: fmt.Sprintf("dlg_c%d", len(w.Delegations)), Subject: p.ID, Actor: a,
				Scopes: g.delegationScopes(w.Agents[i].Scopes), Audiences: g.audiences(ids), MaxDepth: g.depthLimit()}
			switch {
			case g.p(0.2):
				d.Expires = time.Duration(2+g.r.IntN(30)) * time.Minute
			case g.p(0.1):
				d.Expires = -time.Hour
			}
			w.Delegations = append(w.Delegations, d)
		}
	}
	for i := range g.r.IntN(4) {
		w.Policies = append(w.Policies, g.policy(i, w, ids))
	}
	if g.p(0.5) {
		w.Resources = g.resources(ids)
	}
	return w
}

// resources registers every URL of the vocabulary, most with an agent as
// its server and some audiences it may hand the tokens on to.
func (g *modelGen) resources(ids []string) []modelResource {
	var out []modelResource
	for _, u := range modelURLs {
		r := modelResource{URI: u}
		if g.p(0.75) {
			r.Agent = modelPick(g, ids)
			others := slices.DeleteFunc(append(slices.Clone(modelURLs), ids...), func(a string) bool { return a == u })
			r.HandOn = g.subset(others, 0.3)
		}
		out = append(out, r)
	}
	return out
}

// holder is the agent a token for aud is addressed to: aud itself, or the
// server of the resource aud names; "" when neither is an agent.
func (g *modelGen) holder(aud string) string {
	if g.m.agents[aud] != nil {
		return aud
	}
	return g.m.resources[aud].Agent
}

// delegationScopes are some of the actor's scopes and sometimes another.
func (g *modelGen) delegationScopes(actor []string) []string {
	out := g.subset(actor, 0.8)
	if len(out) == 0 || g.p(0.3) {
		if s := modelPick(g, modelScopes); !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

func (g *modelGen) depthLimit() int {
	if g.p(0.25) {
		return 1 + g.r.IntN(3)
	}
	return 0
}

// audiences for a delegation: mostly none (any).
func (g *modelGen) audiences(agents []string) []string {
	all := append(slices.Clone(modelURLs), agents...)
	switch {
	case g.p(0.55):
		return nil
	case g.p(0.6):
		return []string{modelPick(g, all)}
	}
	return g.some(all, 3)
}

func (g *modelGen) policy(i int, w modelWorld, agents []string) modelPolicy {
	p := modelPolicy{Name: fmt.Sprintf("policy-%d", i)}
	switch g.r.IntN(6) {
	case 0:
		p.Kind, p.Env, p.Trigger, p.Scope = policyEnvTrigger, modelPick(g, []string{"prod", "staging"}), "ci_pipeline", modelPick(g, modelScopes)
	case 1:
		p.Kind, p.Audience, p.N = policyAudDepth, modelPick(g, append(slices.Clone(modelURLs), agents...)), 1+g.r.IntN(2)
	case 2:
		p.Kind, p.Subject, p.Agent = policyNoAgent, modelPick(g, w.People).ID, modelPick(g, agents)
	case 3:
		p.Kind, p.Scope = policyTicket, modelPick(g, modelScopes)
	case 4:
		p.Kind, p.Scope = policyEnvRequired, modelPick(g, modelScopes)
	default:
		p.Kind = policyNotManual
	}
	return p
}

// limits are 1 or 2 limits, each with some of its type's fields.
func (g *modelGen) limits() []modelDetail {
	var out []modelDetail
	for range 1 + g.r.IntN(2) {
		typ := modelPick(g, modelLimitTypes)
		l := modelDetail{"type": typ}
		for _, k := range modelLimitKeys[typ] {
			if g.p(0.7) {
				l[k] = g.value(k)
			}
		}
		out = append(out, l)
	}
	return out
}

// value draws a value for a details field.
func (g *modelGen) value(k string) any {
	list := func(xs ...string) []any {
		var out []any
		for _, x := range g.some(xs, len(xs)) {
			out = append(out, x)
		}
		return out
	}
	switch k {
	case "max_amount":
		return modelPick(g, []int{100, 500, 1000, 5000})
	case "max_instances":
		return modelPick(g, []int{1, 3, 10})
	case "currency":
		return modelPick(g, []string{"USD", "EUR"})
	case "region":
		return modelPick(g, []string{"eu", "us"})
	case "categories":
		return list("travel", "meals", "hardware", "software")
	case "actions":
		return list("create", "tag", "rollback")
	}
	panic("no values for " + k)
}

// details are requested entries, mostly near one of the person's limits.
func (g *modelGen) details(person string) []modelDetail {
	var limits []modelDetail
	if p := g.m.people[person]; p != nil {
		limits = p.Limits
	}
	var out []modelDetail
	for range 1 + g.r.IntN(2) {
		near := modelDetail{"type": modelPick(g, modelLimitTypes)}
		if len(limits) > 0 && g.p(0.85) {
			near = modelPick(g, limits)
		}
		typ := near["type"].(string)
		e := modelDetail{"type": typ}
		for _, k := range modelLimitKeys[typ] {
			switch v, ok := near[k]; {
			case !g.p(0.5):
			case ok && g.p(0.6):
				e[k] = v
			default:
				e[k] = g.value(k)
			}
		}
		out = append(out, e)
	}
	return out
}

// context draws a context parameter, keeping or contradicting the facts
// of the subject token sometimes.
func (g *modelGen) context(facts map[string]any) map[string]any {
	if g.p(0.05) {
		return map[string]any{}
	}
	c := map[string]any{}
	for k, v := range facts {
		switch {
		case g.p(0.3):
			c[k] = v
		case g.p(0.08):
			c[k] = g.contextValue(k)
		}
	}
	for _, k := range []string{"environment", "trigger", "ticket", "run"} {
		if _, ok := c[k]; !ok && g.p(0.3) {
			c[k] = g.contextValue(k)
		}
	}
	return c
}

func (g *modelGen) contextValue(k string) any {
	switch k {
	case "environment":
		return modelPick(g, []string{"prod", "staging"})
	case "trigger":
		return modelPick(g, []string{"ci_pipeline", "manual"})
	case "ticket":
		return modelPick(g, []string{"approved", "pending"})
	}
	return 1 + g.r.IntN(3)
}

// tokens returns the labels of the model's tokens that keep says.
func (g *modelGen) tokens(keep func(*modelToken) bool) []string {
	var out []string
	for _, l := range g.m.labels {
		if keep(g.m.tokens[l]) {
			out = append(out, l)
		}
	}
	return out
}

func (g *modelGen) mandateToken() string {
	ls := g.tokens(func(t *modelToken) bool { return t.Kind != modelIdP })
	if len(ls) == 0 {
		return ""
	}
	return modelPick(g, ls)
}

// op draws operation i.
func (g *modelGen) op(i int) modelOp {
	label := fmt.Sprintf("t%d", i)
	if c := g.m.codes[fmt.Sprintf("c%d", i-1)]; c != nil && g.p(0.75) {
		return g.redeem(fmt.Sprintf("c%d", i), c.Label) // the application redeems the code it just got
	}
	x := g.r.Float64() * 100
	switch {
	case x < 8 || len(g.m.labels) == 0:
		return modelOp{Kind: opSignIn, Label: label, Person: modelPick(g, g.w.People).ID}
	case x < 13:
		return g.idp(label)
	case x < 24:
		return g.consentOp(i)
	case x < 28:
		op := modelOp{Kind: opCC, Label: label, Client: g.client()}
		if g.p(0.5) {
			op.Scope, op.ScopeGiven = g.some(modelScopes, 3), true
		}
		if g.p(0.2) {
			op.Audience = []string{g.anyAudience()}
		}
		return op
	case x < 66:
		return g.exchange(label)
	case x < 69:
		t := g.mandateToken()
		if t == "" {
			return modelOp{Kind: opClock, Duration: time.Second}
		}
		client := g.m.tokens[t].ClientID
		if g.m.agents[client] == nil || g.p(0.3) {
			client = modelPick(g, g.m.agentIDs)
		}
		return modelOp{Kind: opRevoke, Token: t, Client: client}
	case x < 71:
		if t := g.mandateToken(); t != "" {
			return modelOp{Kind: opAdminRevokeJTI, Token: t}
		}
	case x < 73:
		if len(g.m.dlgLabels) > 0 {
			kind := opDeleteDelegation
			if g.p(0.5) {
				kind = opAdminRevokeDelegation
			}
			return modelOp{Kind: kind, Delegation: modelPick(g, g.m.dlgLabels)}
		}
	case x < 74.5:
		return modelOp{Kind: opRevokeSubject, Person: modelPick(g, g.w.People).ID}
	case x < 78.5:
		return g.setPermissions()
	case x < 80.5:
		op := modelOp{Kind: opSetLimits, Person: modelPick(g, g.w.People).ID, Limits: []modelDetail{}}
		if g.p(0.8) {
			op.Limits = g.limits()
		}
		return op
	case x < 82:
		kind := opDisable
		if g.p(0.2) {
			kind = opAdminRevokeAgent
		}
		return modelOp{Kind: kind, Agent: modelPick(g, g.m.agentIDs)}
	case x < 85.5:
		var off []string
		for _, id := range g.m.agentIDs {
			if g.m.agents[id].Disabled {
				off = append(off, id)
			}
		}
		if len(off) > 0 {
			return modelOp{Kind: opEnable, Agent: modelPick(g, off)}
		}
	case x < 88.5:
		return g.createDelegation(fmt.Sprintf("d%d", i))
	case x < 90.5:
		return g.reconfigure()
	}
	return g.clock()
}

// client is an agent, an enabled one mostly.
func (g *modelGen) client() string {
	var on []string
	for _, id := range g.m.agentIDs {
		if !g.m.agents[id].Disabled {
			on = append(on, id)
		}
	}
	if len(on) == 0 || g.p(0.1) {
		return modelPick(g, g.m.agentIDs)
	}
	return modelPick(g, on)
}

func (g *modelGen) idp(label string) modelOp {
	op := modelOp{Kind: opIdP, Label: label, Person: modelPick(g, g.w.People).ID,
		Duration: modelPick(g, []time.Duration{2 * time.Second, 20 * time.Second, 65 * time.Second, 3 * time.Minute, 10 * time.Minute, 30 * time.Minute})}
	if g.p(0.1) {
		op.Person = "user:ghost"
	}
	if g.p(0.45) {
		op.MayAct = modelPick(g, g.m.agentIDs)
	}
	if g.p(0.2) {
		op.Scope, op.ScopeGiven = g.some(modelScopes, 4), true
	}
	return op
}

func (g *modelGen) anyAudience() string {
	return modelPick(g, append(slices.Clone(modelURLs), g.m.agentIDs...))
}

// exchange draws a token exchange that is plausible more often than not:
// a token in force, handed to the agent it is addressed to or that holds
// the person's delegation, for an audience it may hand on to.
func (g *modelGen) exchange(label string) modelOp {
	m := g.m
	enabled := func(id string) bool { a := m.agents[id]; return a != nil && !a.Disabled }
	holders := func(sub string) []string {
		var out []string
		for _, l := range m.dlgLabels {
			if d := m.dlgs[l]; d.Subject == sub && m.dlgActive(d) && enabled(d.Actor) {
				out = append(out, d.Actor)
			}
		}
		return out
	}
	live := func(keep func(*modelToken) bool) []string {
		return g.tokens(func(t *modelToken) bool { return m.inForce(t) && keep(t) })
	}
	kinds := []func(*modelToken) bool{
		func(t *modelToken) bool { // a hand-off
			h := g.holder(t.Aud)
			return t.Kind == modelDelegated && enabled(h) && !slices.Contains(t.Chain, h)
		},
		func(t *modelToken) bool { return t.Kind == modelDelegated },
		func(t *modelToken) bool { // a start
			return (t.Kind == modelSignIn || t.Kind == modelIdP) && (len(holders(t.Sub)) > 0 || enabled(t.MayAct))
		},
		func(t *modelToken) bool { return t.Kind == modelSignIn || t.Kind == modelIdP },
		func(t *modelToken) bool { return t.Kind == modelCC },
		func(*modelToken) bool { return true },
	}
	first := 0
	switch x := g.r.Float64(); {
	case x < 0.45:
	case x < 0.5:
		first = 1
	case x < 0.8:
		first = 2
	case x < 0.87:
		first = 3
	case x < 0.92:
		first = 4
	default:
		first = len(kinds)
	}
	T := ""
	for _, keep := range kinds[first:] {
		if ls := live(keep); len(ls) > 0 {
			T = modelPick(g, ls)
			break
		}
	}
	if T == "" {
		T = modelPick(g, m.labels)
	}
	t := m.tokens[T]
	op := modelOp{Kind: opExchange, Label: label, Token: T, Client: g.client()}

	// The client: the one the chain is handed to, mostly.
	x := g.r.Float64()
	switch hs := holders(t.Sub); {
	case len(t.Chain) > 0 && x < 0.6 && g.holder(t.Aud) != "":
		op.Client = g.holder(t.Aud)
	case len(t.Chain) > 0 && x < 0.75 && len(m.agents[t.Chain[0]].DelegateTo) > 0:
		op.Client = modelPick(g, m.agents[t.Chain[0]].DelegateTo)
	case len(t.Chain) > 0 && x < 0.85 && len(hs) > 0:
		op.Client = modelPick(g, hs) // a splice attempt
	case len(t.Chain) == 0 && x < 0.8 && len(hs) > 0:
		op.Client = modelPick(g, hs)
	case len(t.Chain) == 0 && x < 0.9 && t.MayAct != "":
		op.Client = t.MayAct
	}

	switch x := g.r.Float64(); {
	case x < 0.15:
		if own := live(func(a *modelToken) bool { return a.Kind == modelCC && a.Sub == op.Client }); len(own) > 0 {
			op.ActorToken = modelPick(g, own)
		}
	case x < 0.18:
		if own := g.tokens(func(a *modelToken) bool { return a.Kind == modelCC && a.Sub == op.Client }); len(own) > 0 {
			op.ActorToken = modelPick(g, own)
		}
	case x < 0.21:
		op.ActorToken = modelPick(g, m.labels)
	}

	// The audience: one the delegation allows, or someone the client may
	// hand on to, mostly.
	var D *modelDlg
	if len(t.Chain) == 0 {
		D = m.activeDelegation(t.Sub, op.Client)
	} else if t.Delegation != "" {
		D = m.dlgs[t.Delegation]
	}
	// Mostly an agent that can take the chain on.
	next := slices.DeleteFunc(slices.Clone(m.agents[op.Client].DelegateTo), func(a string) bool {
		return a == op.Client || slices.Contains(t.Chain, a) || g.p(0.8) && !enabled(a)
	})
	if len(next) == 0 {
		next = m.agents[op.Client].DelegateTo
	}
	switch x := g.r.Float64(); {
	case D != nil && len(D.HandOn) > 0 && len(t.Chain) > 0 && x < 0.4:
		op.Audience = []string{modelPick(g, D.HandOn)}
	case D != nil && len(D.Audiences) == 1 && x < 0.3:
	case D != nil && len(D.Audiences) > 0 && x < 0.6:
		op.Audience = []string{modelPick(g, D.Audiences)}
	case x < 0.6:
		if len(next) > 0 {
			op.Audience = []string{modelPick(g, next)}
		} else {
			op.Audience = []string{g.anyAudience()}
		}
	case x < 0.67:
	case x < 0.77:
		op.Resource = []string{modelPick(g, modelURLs)}
	case x < 0.81:
		op.Audience = []string{g.anyAudience(), g.anyAudience()}
	default:
		op.Audience = []string{g.anyAudience()}
	}

	switch x := g.r.Float64(); {
	case x < 0.35 && len(t.Scopes) > 0:
		op.Scope, op.ScopeGiven = g.some(t.Scopes, 3), true
	case x < 0.5:
		op.Scope, op.ScopeGiven = g.some(modelScopes, 3), true
	}
	if g.p(0.5) {
		op.Context = g.context(t.Context)
	}
	hasLimits := m.people[t.Sub] != nil && len(m.people[t.Sub].Limits) > 0
	switch {
	case hasLimits && len(t.Chain) == 0 && g.p(0.4), hasLimits && len(t.Chain) > 0 && g.p(0.25), g.p(0.04):
		op.Details = g.details(t.Sub)
	}
	return op
}

func (g *modelGen) setPermissions() modelOp {
	p := modelPick(g, g.w.People)
	held := g.m.people[p.ID].Permissions
	op := modelOp{Kind: opSetPermissions, Person: p.ID}
	switch x := g.r.Float64(); {
	case x < 0.35 && len(held) > 0:
		drop := modelPick(g, held)
		op.Permissions = slices.DeleteFunc(slices.Clone(held), func(s string) bool { return s == drop })
	case x < 0.8:
		op.Permissions = slices.Clone(p.Permissions) // given back
	default:
		op.Permissions = g.subset(modelScopes, 0.7)
	}
	if op.Permissions == nil {
		op.Permissions = []string{}
	}
	return op
}

func (g *modelGen) createDelegation(label string) modelOp {
	var pairs [][2]string
	for _, p := range g.w.People {
		for _, a := range g.m.agentIDs {
			if g.m.activeDelegation(p.ID, a) == nil {
				pairs = append(pairs, [2]string{p.ID, a})
			}
		}
	}
	if len(pairs) == 0 {
		return g.clock()
	}
	pair := modelPick(g, pairs)
	op := modelOp{Kind: opCreateDelegation, Label: label, Person: pair[0], Agent: pair[1],
		Scope: g.delegationScopes(g.m.agents[pair[1]].Scopes), Audience: g.audiences(g.m.agentIDs), MaxDepth: g.depthLimit()}
	if g.p(0.4) {
		op.Duration = time.Duration(1+g.r.IntN(20)) * time.Minute
	}
	return op
}

func (g *modelGen) reconfigure() modelOp {
	id := modelPick(g, g.m.agentIDs)
	a := g.m.agents[id]
	op := modelOp{Kind: opReconfigure, Agent: id, Scope: slices.Clone(a.Scopes), DelegateTo: slices.Clone(a.DelegateTo), MaxDepth: a.MaxDepth}
	switch x := g.r.Float64(); {
	case x < 0.5 && len(a.Scopes) > 0:
		drop := modelPick(g, a.Scopes)
		op.Scope = slices.DeleteFunc(op.Scope, func(s string) bool { return s == drop })
	case x < 0.75:
		if add := modelPick(g, modelScopes); !slices.Contains(op.Scope, add) {
			op.Scope = append(op.Scope, add)
		}
	default:
		op.Scope = g.subset(modelScopes, 0.6)
	}
	if g.p(0.4) {
		op.DelegateTo = nil
		for _, other := range g.m.agentIDs {
			if other != id && g.p(0.45) {
				op.DelegateTo = append(op.DelegateTo, other)
			}
		}
	}
	if g.p(0.3) {
		op.MaxDepth = g.r.IntN(5)
	}
	return op
}

func (g *modelGen) clock() modelOp {
	var d time.Duration
	switch x := g.r.Float64(); {
	case x < 0.75:
		d = time.Duration(1+g.r.IntN(20)) * time.Second
	case x < 0.95:
		d = time.Duration(1+g.r.IntN(4)) * time.Minute
	default:
		d = time.Duration(8+g.r.IntN(9)) * time.Minute
	}
	return modelOp{Kind: opClock, Duration: d}
}
