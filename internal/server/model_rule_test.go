package server_test

// The reference model of Mandate's delegation rules. It is written from the
// rule as stated (the token exchange decided by ten checks in order, the
// code and refresh token grants of what people approve, in
// model_consent_test.go, and what keeps a token in force), in plain Go, with no import of
// internal/exchange and no code shared with it: model_run_test.go runs the
// same operations against a real server and compares every answer with
// the model's.
//
// Where the rule is silent the model assumes, and the generator keeps to:
//   - at most one active delegation per person and agent at a time (which
//     of two the server would use is not part of the rule);
//   - an identity provider's token is unexpired until exp plus the leeway
//     (tokens.leeway, 60 s); Mandate's own are in force until exp;
//   - every exp and expiry is a whole second and the clock stands at half
//     a second, so "less than a second left" reads the same before and
//     after truncation;
//   - on a chain hop a requested entry is covered by the person's limits
//     first, then the result by the subject token's entries, each by the
//     first entry that covers it;
//   - client_credentials checks the scope before the audience;
//   - /revoke by a client of a token issued to another changes nothing;
//   - a person approves an agent only while no delegation from them to it
//     is active (as for the delegations the administrator makes), or
//     while the one active is their earlier approval for the same
//     resource, which the new one replaces;
//   - a world registers either no resource or every URL of the
//     vocabulary, so that no authorization request is refused for naming
//     an unregistered one; a registered resource admits every client.

import (
	"cmp"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"
)

// Constants of the server the model assumes (the config defaults).
const (
	modelDefaultTTL = 10 * time.Minute
	modelMaxTTL     = 15 * time.Minute
	// modelLeeway is the clock skew allowed on an identity provider's
	// token (tokens.leeway): a foreign token is "unexpired" until
	// exp + leeway. Mandate's own tokens are in force until exp exactly.
	modelLeeway = 60 * time.Second
	// modelIssuer stands for the server's issuer URL in the model; the
	// runner puts the real URL in its place.
	modelIssuer = "<issuer>"
	// modelSignInClient is the client_id of a person's own token.
	modelSignInClient = "mandate"
)

// Kinds of token the model knows.
const (
	modelSignIn    = "sign_in"            // a person's own token
	modelIdP       = "idp"                // a trusted identity provider's token
	modelCC        = "client_credentials" // a client's own token
	modelDelegated = "delegated"          // minted by a token exchange (has act)
)

// OAuth error codes the model predicts.
const (
	errInvalidRequest = "invalid_request"
	errInvalidClient  = "invalid_client"
	errInvalidTarget  = "invalid_target"
	errInvalidScope   = "invalid_scope"
	errInvalidDetails = "invalid_authorization_details"
)

// modelDetail is one RFC 9396 authorization_details entry (or a limit),
// its values as JSON decodes them (float64, string, []any).
type modelDetail = map[string]any

// modelWorld is the configuration a world starts from.
type modelWorld struct {
	// MaxDepth is delegation.max_depth.
	MaxDepth int
	// TTL is tokens.ttl; 0 means the default (10 min).
	TTL         time.Duration
	People      []modelPerson
	Agents      []modelAgent
	Delegations []modelDelegation
	Policies    []modelPolicy
	// Resources are the registered resources (config resources).
	Resources []modelResource
}

// modelResource is a registered resource: the agent its server is, which
// may exchange the tokens addressed to it, and the audiences it may hand
// them on to when a person approves.
type modelResource struct {
	URI    string
	Agent  string
	HandOn []string
}

// modelPerson is a user: permissions and limits.
type modelPerson struct {
	ID          string
	Permissions []string
	Limits      []modelDetail
}

// modelAgent is an agent (a client).
type modelAgent struct {
	ID         string
	Scopes     []string
	DelegateTo []string
	MaxDepth   int
	Disabled   bool
}

// modelDelegation is a delegation of the configuration file.
type modelDelegation struct {
	ID        string
	Subject   string
	Actor     string
	Scopes    []string
	Audiences []string
	MaxDepth  int
	// Expires is counted from the world's start (whole seconds), 0 for
	// never; negative is in the past.
	Expires time.Duration
}

// modelDlg is a delegation as the model holds it.
type modelDlg struct {
	Label, Subject, Actor string
	Scopes, Audiences     []string
	// DelegateTo and HandOn: whom the actor may hand its tokens on to,
	// and what a later hop may reach besides Audiences (an approval for
	// a resource whose server exchanges its tokens).
	DelegateTo, HandOn []string
	// Consent: a person made it on the consent page.
	Consent  bool
	MaxDepth int
	Expires  time.Time // zero: never
	Revoked  bool
}

// modelPersonState and modelAgentState are what may change after the start.
type modelPersonState struct {
	Permissions []string
	Limits      []modelDetail
	// Version is the revocation version: each revocation of the person
	// raises it.
	Version int
}

type modelAgentState struct {
	Scopes, DelegateTo []string
	MaxDepth           int
	Disabled           bool
}

// modelToken is a token the model knows: its claims and what it came from.
type modelToken struct {
	Label    string
	Kind     string
	Sub      string
	ClientID string
	// Chain is the act chain, current actor first.
	Chain    []string
	Aud      string
	Scopes   []string
	HasScope bool // an identity provider's token may carry no scope
	MayAct   string
	Details  []modelDetail
	Context  map[string]any
	// Delegation is the label of the delegation it names, "" for none.
	Delegation string
	IssuedAt   time.Time
	Exp        time.Time
	// Parent is the label of the Mandate token it was exchanged from;
	// ActorToken that of the actor token presented with it.
	Parent, ActorToken string
	// Revoked: its own jti was revoked.
	Revoked bool
	// Dead says why it stopped being in force for good, "" while nothing
	// did (expiry and a parent's revocation are computed, see inForce).
	Dead string
}

// modelState is the world as the model sees it now.
type modelState struct {
	start, now time.Time
	ttl        time.Duration
	maxDepth   int
	people     map[string]*modelPersonState
	agents     map[string]*modelAgentState
	resources  map[string]modelResource
	agentIDs   []string
	dlgs       map[string]*modelDlg
	dlgLabels  []string
	tokens     map[string]*modelToken
	labels     []string // token labels, oldest first
	policies   []modelPolicy
	// codes and refreshes are the consent page's codes and refresh
	// tokens by label (model_consent_test.go).
	codes      map[string]*modelCode
	codeLabels []string
	refreshes  map[string]*modelRefresh
	rtLabels   []string
}

// newModelState starts w at start.
func newModelState(w modelWorld, start time.Time) *modelState {
	m := &modelState{
		start: start, now: start, ttl: min(cmp.Or(w.TTL, modelDefaultTTL), modelMaxTTL), maxDepth: w.MaxDepth,
		people: map[string]*modelPersonState{}, agents: map[string]*modelAgentState{},
		dlgs: map[string]*modelDlg{}, tokens: map[string]*modelToken{}, policies: w.Policies,
		codes: map[string]*modelCode{}, refreshes: map[string]*modelRefresh{}, resources: map[string]modelResource{},
	}
	for _, r := range w.Resources {
		m.resources[r.URI] = r
	}
	for _, p := range w.People {
		m.people[p.ID] = &modelPersonState{Permissions: slices.Clone(p.Permissions), Limits: modelNormDetails(p.Limits)}
	}
	for _, a := range w.Agents {
		m.agents[a.ID] = &modelAgentState{Scopes: slices.Clone(a.Scopes), DelegateTo: slices.Clone(a.DelegateTo), MaxDepth: a.MaxDepth, Disabled: a.Disabled}
		m.agentIDs = append(m.agentIDs, a.ID)
	}
	for _, d := range w.Delegations {
		dl := &modelDlg{Label: d.ID, Subject: d.Subject, Actor: d.Actor, Scopes: d.Scopes, Audiences: d.Audiences, MaxDepth: d.MaxDepth}
		if d.Expires != 0 {
			dl.Expires = start.Truncate(time.Second).Add(d.Expires)
		}
		m.dlgs[d.ID] = dl
		m.dlgLabels = append(m.dlgLabels, d.ID)
	}
	return m
}

func cmpOr[T comparable](a, b T) T {
	var zero T
	if a != zero {
		return a
	}
	return b
}

// modelOutcome is what the model expects of an operation.
type modelOutcome struct {
	// Refused is the OAuth error code of a refusal, "" when it succeeds.
	Refused string
	// Rule says which check decided a refusal, for the report.
	Rule string
	// Token is the token granted, when the operation mints one.
	Token *modelToken
	// Skipped: the operation names a token or delegation that does not
	// exist (a shrunk sequence dropped its maker); nothing is sent.
	Skipped bool
}

func modelRefuse(code, rule string, args ...any) modelOutcome {
	return modelOutcome{Refused: code, Rule: fmt.Sprintf(rule, args...)}
}

// reach is the audiences d lets a token be addressed to: its own on the
// actor's hop, and on a later hop also those it lets be handed on to.
func (d *modelDlg) reach(hop bool) []string {
	if hop && len(d.Audiences) > 0 {
		return append(slices.Clone(d.Audiences), d.HandOn...)
	}
	return d.Audiences
}

// dlgActive: unexpired and unrevoked.
func (m *modelState) dlgActive(d *modelDlg) bool {
	return d != nil && !d.Revoked && (d.Expires.IsZero() || m.now.Before(d.Expires))
}

// inForce says whether t is valid now: an identity provider's token until
// exp + leeway; a Mandate token until exp, unless it or a token it was
// exchanged from (at any depth) was revoked, its delegation ended, or an
// event killed it for good (Dead).
func (m *modelState) inForce(t *modelToken) bool {
	if t.Kind == modelIdP {
		return m.now.Before(t.Exp.Add(modelLeeway))
	}
	if t.Dead != "" || t.Revoked || !m.now.Before(t.Exp) {
		return false
	}
	for p := t.Parent; p != ""; p = m.tokens[p].Parent {
		if m.tokens[p].Revoked {
			return false
		}
	}
	if t.Delegation != "" && !m.dlgActive(m.dlgs[t.Delegation]) {
		return false
	}
	return true
}

// whyDead explains a token that is not in force, for reports.
func (m *modelState) whyDead(t *modelToken) string {
	switch {
	case t.Revoked:
		return "revoked"
	case t.Dead != "":
		return t.Dead
	case !m.now.Before(t.Exp):
		return "expired"
	case t.Delegation != "" && !m.dlgActive(m.dlgs[t.Delegation]):
		return "delegation_expired"
	}
	return "parent_revoked"
}

// activeDelegation is the delegation from subject to actor in force now
// (the generator never makes two at once for one pair).
func (m *modelState) activeDelegation(subject, actor string) *modelDlg {
	for _, l := range m.dlgLabels {
		if d := m.dlgs[l]; d.Subject == subject && d.Actor == actor && m.dlgActive(d) {
			return d
		}
	}
	return nil
}

func (m *modelState) addToken(t *modelToken) {
	m.tokens[t.Label] = t
	m.labels = append(m.labels, t.Label)
}

// signIn: a person's own token, POST /admin/users/{id}/token.
func (m *modelState) signIn(op modelOp) modelOutcome {
	p := m.people[op.Person]
	if p == nil {
		return modelRefuse("not_found", "sign-in: unknown person")
	}
	if len(p.Permissions) == 0 {
		return modelRefuse(errInvalidScope, "sign-in: the person holds no permission")
	}
	t := &modelToken{Label: op.Label, Kind: modelSignIn, Sub: op.Person, ClientID: modelSignInClient, Aud: modelIssuer,
		Scopes: slices.Clone(p.Permissions), HasScope: true, IssuedAt: m.now, Exp: m.now.Add(m.ttl).Truncate(time.Second)}
	m.addToken(t)
	return modelOutcome{Token: t}
}

// idpToken: the identity provider signs a token for op.Person (no server
// call).
func (m *modelState) idpToken(op modelOp) modelOutcome {
	t := &modelToken{Label: op.Label, Kind: modelIdP, Sub: op.Person, Aud: "mandate", MayAct: op.MayAct,
		Scopes: slices.Clone(op.Scope), HasScope: op.ScopeGiven,
		IssuedAt: m.now.Truncate(time.Second), Exp: m.now.Truncate(time.Second).Add(op.Duration)}
	m.addToken(t)
	return modelOutcome{Token: t}
}

// clientCredentials: sub = client_id = C, no act, scope = requested ∩ C's
// scopes (all of C's when none is requested), aud = the issuer unless one
// is given.
func (m *modelState) clientCredentials(op modelOp) modelOutcome {
	c := m.agents[op.Client]
	if c.Disabled {
		return modelRefuse(errInvalidClient, "client authentication: the client is disabled")
	}
	scopes := slices.Clone(c.Scopes)
	if op.ScopeGiven {
		scopes = modelIntersect(op.Scope, c.Scopes)
	}
	if len(scopes) == 0 {
		return modelRefuse(errInvalidScope, "client_credentials: no scope the client holds")
	}
	aud := modelIssuer
	if targets := modelTargets(op); len(targets) > 1 {
		return modelRefuse(errInvalidTarget, "client_credentials: more than one target")
	} else if len(targets) == 1 {
		aud = targets[0]
	}
	t := &modelToken{Label: op.Label, Kind: modelCC, Sub: op.Client, ClientID: op.Client, Aud: aud,
		Scopes: scopes, HasScope: true, IssuedAt: m.now, Exp: m.now.Add(m.ttl).Truncate(time.Second)}
	m.addToken(t)
	return modelOutcome{Token: t}
}

// modelTargets are the distinct audience and resource values, in order.
func modelTargets(op modelOp) []string {
	var out []string
	for _, t := range append(slices.Clone(op.Audience), op.Resource...) {
		if !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out
}

// exchange is the token exchange by client C with subject token T:
// the ten checks in order, the first failure refuses.
func (m *modelState) exchange(op modelOp) modelOutcome {
	c := m.agents[op.Client]
	if c.Disabled {
		return modelRefuse(errInvalidClient, "client authentication: the client is disabled")
	}
	T := m.tokens[op.Token]
	now := m.now

	// 1. T is valid, unexpired and in force. A Mandate token that starts
	// a chain (no act) is addressed to the issuer.
	if !m.inForce(T) {
		return modelRefuse(errInvalidRequest, "1: the subject token is not in force (%s)", m.whyDead(T))
	}
	if T.Kind != modelIdP && len(T.Chain) == 0 && T.Aud != modelIssuer {
		return modelRefuse(errInvalidRequest, "1: the subject token starts no chain and is not addressed to the issuer")
	}

	// 2. The actor token: C's own client_credentials token, addressed to
	// the issuer, in force, with no act.
	var A *modelToken
	if op.ActorToken != "" {
		A = m.tokens[op.ActorToken]
		if A.Kind != modelCC || A.Sub != op.Client || A.Aud != modelIssuer || !m.inForce(A) {
			return modelRefuse(errInvalidRequest, "2: the actor token is not the client's own token in force")
		}
	}

	// 3. Admission.
	var D *modelDlg
	hop := len(T.Chain) > 0
	if !hop {
		D = m.activeDelegation(T.Sub, op.Client)
		if D == nil && !(T.Kind == modelIdP && T.MayAct == op.Client) {
			return modelRefuse(errInvalidRequest, "3: first hop: no active delegation from %s to %s and no may_act", T.Sub, op.Client)
		}
	} else {
		if T.Delegation != "" {
			D = m.dlgs[T.Delegation]
		}
		// The token is addressed to the client, or to the resource whose
		// server the client is; the current actor hands on to it by its
		// own delegate_to, or by the delegation's when it is that
		// delegation's actor.
		server := T.Aud == op.Client || m.resources[T.Aud].Agent == op.Client
		handed := slices.Contains(m.agents[T.Chain[0]].DelegateTo, op.Client) ||
			D != nil && D.Actor == T.Chain[0] && slices.Contains(D.DelegateTo, op.Client)
		switch {
		case slices.Contains(T.Chain, op.Client):
			return modelRefuse(errInvalidRequest, "3: chain hop: %s is already in the chain (actor_loop)", op.Client)
		case !server:
			return modelRefuse(errInvalidRequest, "3: chain hop: the subject token is addressed to %s, not %s", T.Aud, op.Client)
		case !handed:
			// Holding one's own delegation from the person never admits a
			// chain hop.
			return modelRefuse(errInvalidRequest, "3: chain hop: neither %s nor its delegation lists %s in delegate_to", T.Chain[0], op.Client)
		}
	}
	chain := append([]string{op.Client}, T.Chain...)

	// The person is looked up with the rest of the path's grants, before
	// any of them narrows the request: an unknown person is refused before
	// depth and audience are weighed.
	person := m.people[T.Sub]
	if person == nil {
		return modelRefuse(errInvalidRequest, "3: unknown person %s", T.Sub)
	}

	// 4. Depth: every limit on the way, the tightest wins.
	limit := m.maxDepth
	if D != nil && D.MaxDepth > 0 {
		limit = min(limit, D.MaxDepth)
	}
	for _, a := range chain {
		if d := m.agents[a].MaxDepth; d > 0 {
			limit = min(limit, d)
		}
	}
	if len(chain) > limit {
		return modelRefuse(errInvalidRequest, "4: a chain of %d is deeper than %d", len(chain), limit)
	}

	// 5. Audience: exactly one target.
	var aud string
	targets := modelTargets(op)
	switch {
	case len(targets) > 1:
		return modelRefuse(errInvalidTarget, "5: more than one target")
	case len(targets) == 0 && D != nil && len(D.Audiences) == 1:
		aud = D.Audiences[0]
	case len(targets) == 0:
		return modelRefuse(errInvalidTarget, "5: no target")
	case D != nil && len(D.Audiences) > 0 && !slices.Contains(D.reach(hop), targets[0]):
		return modelRefuse(errInvalidTarget, "5: %s is not among the delegation's audiences", targets[0])
	default:
		aud = targets[0]
	}

	// 6. Scopes: never wider than anything on the path, as it is now.
	allowed := modelIntersect(person.Permissions, c.Scopes)
	if D != nil {
		allowed = modelIntersect(allowed, D.Scopes)
	}
	if T.HasScope {
		allowed = modelIntersect(allowed, T.Scopes)
	}
	for _, a := range T.Chain {
		allowed = modelIntersect(allowed, m.agents[a].Scopes)
	}
	granted := allowed
	if op.ScopeGiven {
		if hop {
			for _, s := range op.Scope {
				if !slices.Contains(T.Scopes, s) {
					return modelRefuse(errInvalidScope, "6: chain hop: %s is not in the subject token's scope", s)
				}
			}
		}
		granted = modelIntersect(op.Scope, allowed)
	}
	if len(granted) == 0 {
		return modelRefuse(errInvalidScope, "6: no scope can be granted")
	}

	// 7. authorization_details: within the person's limits now and, on a
	// chain hop, within the subject token's entries.
	requested := modelNormDetails(op.Details)
	if requested == nil && hop {
		requested = T.Details
	}
	var details []modelDetail
	if requested != nil {
		var ok bool
		details, ok = modelGrantDetails(requested, person.Limits)
		if !ok {
			return modelRefuse(errInvalidDetails, "7: an entry is not covered by the person's limits")
		}
		if hop {
			if details, ok = modelGrantDetails(details, T.Details); !ok {
				return modelRefuse(errInvalidDetails, "7: chain hop: an entry is not covered by the subject token's details")
			}
		}
	}

	// 8. Context: the subject token's facts are kept; the request may add
	// facts but not change one.
	ctx := map[string]any{}
	for k, v := range T.Context {
		ctx[k] = v
	}
	for k, v := range modelNormMap(op.Context) {
		if fact, ok := T.Context[k]; ok && !reflect.DeepEqual(fact, v) {
			return modelRefuse(errInvalidRequest, "8: context_conflict on %q", k)
		}
		ctx[k] = v
	}
	if len(ctx) == 0 {
		ctx = nil
	}

	// 9. Policy; environment and trigger read "" when absent.
	in := modelPolicyInput{Subject: T.Sub, Chain: chain, Scopes: granted, Audience: aud, Context: map[string]any{"environment": "", "trigger": ""}}
	for k, v := range ctx {
		in.Context[k] = v
	}
	for _, p := range m.policies {
		if p.denies(in) {
			return modelRefuse(errInvalidRequest, "9: policy %s denies", p.Name)
		}
	}

	// 10. Lifetime: never beyond the TTL, T, D or A.
	exp := now.Add(m.ttl)
	bounds := []time.Time{T.Exp}
	if D != nil {
		bounds = append(bounds, D.Expires)
	}
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

	t := &modelToken{Label: op.Label, Kind: modelDelegated, Sub: T.Sub, ClientID: op.Client, Chain: chain, Aud: aud,
		Scopes: granted, HasScope: true, Details: details, Context: ctx, IssuedAt: now, Exp: exp.Truncate(time.Second),
		ActorToken: op.ActorToken}
	if D != nil {
		t.Delegation = D.Label
	}
	if T.Kind != modelIdP {
		t.Parent = T.Label
	}
	m.addToken(t)
	return modelOutcome{Token: t}
}

// modelIntersect returns the members of a that are in b, once each.
func modelIntersect(a, b []string) []string {
	out := []string{}
	for _, s := range a {
		if slices.Contains(b, s) && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// modelGrantDetails covers each requested entry by the first bound of its
// type that covers it; false when one is not covered.
func modelGrantDetails(requested, bounds []modelDetail) ([]modelDetail, bool) {
	out := []modelDetail{}
	for _, e := range requested {
		covered := false
		for _, l := range bounds {
			if g, ok := modelCover(e, l); ok {
				out, covered = append(out, g), true
				break
			}
		}
		if !covered {
			return nil, false
		}
	}
	return out, true
}

// modelCover bounds entry e by limit l: every field of e must exist in l;
// a max_ number is lowered to l's, a list is intersected with l's (empty:
// not covered), any other field must equal l's; every field of l that e
// leaves out is copied from l.
func modelCover(e, l modelDetail) (modelDetail, bool) {
	if e["type"] != l["type"] {
		return nil, false
	}
	out := modelDetail{}
	for k, v := range e {
		lv, ok := l[k]
		if !ok {
			return nil, false
		}
		el, eList := v.([]any)
		ll, lList := lv.([]any)
		en, eNum := v.(float64)
		ln, lNum := lv.(float64)
		switch {
		case strings.HasPrefix(k, "max_") && eNum && lNum:
			out[k] = min(en, ln)
		case strings.HasPrefix(k, "max_"):
			return nil, false
		case eList && lList:
			var both []any
			for _, x := range el {
				if slices.ContainsFunc(ll, func(y any) bool { return reflect.DeepEqual(x, y) }) &&
					!slices.ContainsFunc(both, func(y any) bool { return reflect.DeepEqual(x, y) }) {
					both = append(both, x)
				}
			}
			if len(both) == 0 {
				return nil, false
			}
			out[k] = both
		case eList || lList:
			return nil, false
		case !reflect.DeepEqual(v, lv):
			return nil, false
		default:
			out[k] = v
		}
	}
	for k, lv := range l {
		if _, ok := out[k]; !ok {
			out[k] = lv
		}
	}
	return out, true
}

// modelNormDetails returns ds as JSON decodes them (nil stays nil).
func modelNormDetails(ds []modelDetail) []modelDetail {
	if ds == nil {
		return nil
	}
	var out []modelDetail
	b, _ := json.Marshal(ds)
	_ = json.Unmarshal(b, &out)
	return out
}

// modelNormMap returns m as JSON decodes it (nil stays nil).
func modelNormMap(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	var out map[string]any
	b, _ := json.Marshal(m)
	_ = json.Unmarshal(b, &out)
	return out
}

// Revocations and changes. Each marks, for good, the tokens it takes out
// of force; nothing brings one back.

// kill marks every Mandate token that hit selects as dead for why.
func (m *modelState) kill(why string, hit func(*modelToken) bool) {
	for _, l := range m.labels {
		if t := m.tokens[l]; t.Kind != modelIdP && t.Dead == "" && hit(t) {
			t.Dead = why
		}
	}
}

// revoke is RFC 7009 by op.Client: it revokes only a token issued to it.
func (m *modelState) revoke(op modelOp) modelOutcome {
	if m.agents[op.Client].Disabled {
		return modelRefuse(errInvalidClient, "client authentication: the client is disabled")
	}
	if t := m.tokens[op.Token]; t.Kind != modelIdP && t.ClientID == op.Client {
		t.Revoked = true
	}
	return modelOutcome{}
}

func (m *modelState) apply(op modelOp) modelOutcome {
	if !m.applicable(op) {
		return modelOutcome{Skipped: true}
	}
	switch op.Kind {
	case opSignIn:
		return m.signIn(op)
	case opIdP:
		return m.idpToken(op)
	case opCC:
		return m.clientCredentials(op)
	case opExchange:
		return m.exchange(op)
	case opRevoke:
		return m.revoke(op)
	case opAdminRevokeJTI:
		m.tokens[op.Token].Revoked = true
	case opDeleteDelegation, opAdminRevokeDelegation:
		m.dlgs[op.Delegation].Revoked = true
		m.kill("delegation_revoked", func(t *modelToken) bool { return t.Delegation == op.Delegation })
	case opRevokeSubject:
		m.people[op.Person].Version++
		m.kill("subject_revoked", func(t *modelToken) bool { return t.Sub == op.Person })
	case opSetPermissions:
		m.people[op.Person].Permissions = slices.Clone(op.Permissions)
		m.kill("permission_removed", func(t *modelToken) bool {
			return t.Sub == op.Person && slices.ContainsFunc(t.Scopes, func(s string) bool { return !slices.Contains(op.Permissions, s) })
		})
	case opSetLimits:
		m.people[op.Person].Limits = modelNormDetails(op.Limits)
	case opDisable, opAdminRevokeAgent:
		m.agents[op.Agent].Disabled = true
		// Every token that names the agent in its chain or as its client
		// (a consent grant's client may ask for another agent).
		m.kill("agent_disabled", func(t *modelToken) bool {
			return slices.Contains(t.Chain, op.Agent) || t.ClientID == op.Agent
		})
	case opEnable:
		m.agents[op.Agent].Disabled = false
	case opCreateDelegation:
		d := &modelDlg{Label: op.Label, Subject: op.Person, Actor: op.Agent, Scopes: slices.Clone(op.Scope),
			Audiences: slices.Clone(op.Audience), MaxDepth: op.MaxDepth}
		if op.Duration != 0 {
			d.Expires = m.now.Truncate(time.Second).Add(op.Duration)
		}
		m.dlgs[op.Label] = d
		m.dlgLabels = append(m.dlgLabels, op.Label)
	case opApprove:
		return m.approve(op)
	case opRedeem:
		return m.redeem(op)
	case opRefresh:
		return m.refresh(op)
	case opReconfigure:
		a := m.agents[op.Agent]
		a.Scopes, a.DelegateTo, a.MaxDepth = slices.Clone(op.Scope), slices.Clone(op.DelegateTo), op.MaxDepth
	case opClock:
		m.now = m.now.Add(op.Duration)
	}
	return modelOutcome{}
}

// applicable is false when op names a token or delegation that does not
// exist.
func (m *modelState) applicable(op modelOp) bool {
	for _, l := range []string{op.Token, op.ActorToken} {
		if l != "" && m.tokens[l] == nil {
			return false
		}
	}
	if op.Delegation != "" && m.dlgs[op.Delegation] == nil {
		return false
	}
	if op.Code != "" && m.codes[op.Code] == nil || op.Refresh != "" && m.refreshes[op.Refresh] == nil {
		return false
	}
	if op.Kind == opApprove {
		// As for opCreateDelegation, but an approval replaces the
		// person's earlier one for the same resource.
		if d := m.activeDelegation(op.Person, cmpOr(op.Agent, op.Client)); d != nil && !m.replaces(op, d) {
			return false
		}
	}
	if (op.Kind == opRevoke || op.Kind == opAdminRevokeJTI) && m.tokens[op.Token].Kind == modelIdP {
		return false
	}
	if op.Kind == opCreateDelegation && m.activeDelegation(op.Person, op.Agent) != nil {
		return false // the model does not say which of two would be used
	}
	return true
}

// modelPolicyInput is what a policy decides on.
type modelPolicyInput struct {
	Subject  string
	Chain    []string
	Scopes   []string
	Audience string
	Context  map[string]any
}

// modelPolicy is a policy from a small menu: Kind selects the rule, the
// other fields fill it in. cel gives its CEL text (for the config), denies
// its meaning (for the model).
type modelPolicy struct {
	Name, Kind                                    string
	Env, Trigger, Scope, Audience, Subject, Agent string
	N                                             int
}

// Kinds of policy.
const (
	policyEnvTrigger  = "env-trigger"  // in Env with Scope, the trigger must be Trigger
	policyAudDepth    = "aud-depth"    // for Audience, at most N actors
	policyNoAgent     = "no-agent"     // for Subject, Agent never in the chain
	policyTicket      = "ticket"       // Scope needs context.ticket == "approved"
	policyEnvRequired = "env-required" // Scope needs a non-empty environment
	policyNotManual   = "not-manual"   // never with trigger "manual"
)

func (p modelPolicy) cel() (ifExpr, require string) {
	switch p.Kind {
	case policyEnvTrigger:
		return fmt.Sprintf(`context.environment == %q && %q in scopes`, p.Env, p.Scope), fmt.Sprintf(`context.trigger == %q`, p.Trigger)
	case policyAudDepth:
		return fmt.Sprintf(`audience == %q`, p.Audience), fmt.Sprintf(`size(chain) <= %d`, p.N)
	case policyNoAgent:
		return fmt.Sprintf(`subject == %q`, p.Subject), fmt.Sprintf(`!(%q in chain)`, p.Agent)
	case policyTicket:
		return fmt.Sprintf(`%q in scopes`, p.Scope), `has(context.ticket) && context.ticket == "approved"`
	case policyEnvRequired:
		return fmt.Sprintf(`%q in scopes`, p.Scope), `context.environment != ""`
	case policyNotManual:
		return "", `context.trigger != "manual"`
	}
	panic("unknown policy kind " + p.Kind)
}

func (p modelPolicy) denies(in modelPolicyInput) bool {
	ctx := in.Context
	switch p.Kind {
	case policyEnvTrigger:
		return ctx["environment"] == p.Env && slices.Contains(in.Scopes, p.Scope) && ctx["trigger"] != p.Trigger
	case policyAudDepth:
		return in.Audience == p.Audience && len(in.Chain) > p.N
	case policyNoAgent:
		return in.Subject == p.Subject && slices.Contains(in.Chain, p.Agent)
	case policyTicket:
		return slices.Contains(in.Scopes, p.Scope) && ctx["ticket"] != "approved"
	case policyEnvRequired:
		return slices.Contains(in.Scopes, p.Scope) && ctx["environment"] == ""
	case policyNotManual:
		return ctx["trigger"] == "manual"
	}
	panic("unknown policy kind " + p.Kind)
}
