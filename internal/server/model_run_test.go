package server_test

// The delegation model against the real server: every operation of a
// modelCase runs on a fresh Mandate (real SQLite, real HTTP, the config
// and provision path) and on the model (model_rule_test.go), and every
// answer is compared. After revocations and changes, the tokens concerned
// are checked at /introspect (or /revocations/{jti}) and with a verify
// Verifier that follows the server's revocation feed.

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mandate-dev/mandate/internal/config"
	"github.com/mandate-dev/mandate/internal/provision"
	"github.com/mandate-dev/mandate/jwks"
	"github.com/mandate-dev/mandate/oauth"
	"github.com/mandate-dev/mandate/verify"
	"github.com/mandate-dev/mandate/verify/feed"
)

// modelFeedClient is the client the runner's revocation feed subscribes
// as; it takes part in nothing else.
const modelFeedClient = "agent:feed"

// modelClock is the clock of the server and of the verifiers: it moves
// only when an operation says so.
type modelClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *modelClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *modelClock) advance(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

// modelStats counts what a run did.
type modelStats struct {
	Ops, Exchanges, Granted, Refused, Introspections, Verifications int
	// ByRule counts the exchanges refused by each check (as the model
	// predicted); Depth the exchanges granted by the chain's length.
	ByRule [11]int
	Depth  [11]int
	// Approvals counts approvals that made a code; Redeemed and
	// Refreshed the codes and refresh tokens granted, ConsentRefused
	// those refused as the model predicts.
	Approvals, Redeemed, Refreshed, ConsentRefused int
	// ConsentHops counts the exchanges granted of a consent grant's token;
	// ServerHops those a delegation's delegate_to admitted (the actor's
	// own does not list the client), HandedOn those whose audience only
	// the delegation's hand_on allows.
	ConsentHops, ServerHops, HandedOn int
	// Replaced counts the approvals that replaced an earlier one whose
	// tokens were still in force.
	Replaced int
}

func (s *modelStats) add(o modelStats) {
	s.Ops += o.Ops
	s.Exchanges += o.Exchanges
	s.Granted += o.Granted
	s.Refused += o.Refused
	s.Introspections += o.Introspections
	s.Verifications += o.Verifications
	s.Approvals += o.Approvals
	s.Redeemed += o.Redeemed
	s.Refreshed += o.Refreshed
	s.ConsentRefused += o.ConsentRefused
	s.ConsentHops += o.ConsentHops
	s.ServerHops += o.ServerHops
	s.HandedOn += o.HandedOn
	s.Replaced += o.Replaced
	for i := range s.ByRule {
		s.ByRule[i] += o.ByRule[i]
		s.Depth[i] += o.Depth[i]
	}
}

// String is the summary TestDelegationModel logs.
func (s modelStats) String() string {
	var rules, depths []string
	for i := range s.ByRule {
		if s.ByRule[i] > 0 {
			rules = append(rules, fmt.Sprintf("%d:%d", i, s.ByRule[i]))
		}
		if s.Depth[i] > 0 {
			depths = append(depths, fmt.Sprintf("%d:%d", i, s.Depth[i]))
		}
	}
	return fmt.Sprintf("%d operations; %d exchanges, %d granted (by chain length %s), %d refused as the model predicts (by check %s); %d approvals, %d codes and %d refresh tokens granted, %d refused as the model predicts, %d approvals that replaced one in use, %d exchanges of their tokens granted (%d handed on by the delegation's delegate_to, %d to an audience of its hand_on); %d checks of tokens in force at the server, %d at a verifier",
		s.Ops, s.Exchanges, s.Granted, strings.Join(depths, " "), s.Refused, strings.Join(rules, " "),
		s.Approvals, s.Redeemed, s.Refreshed, s.ConsentRefused, s.Replaced, s.ConsentHops, s.ServerHops, s.HandedOn, s.Introspections, s.Verifications)
}

// modelDisagreement is the first place where the server and the model
// part.
type modelDisagreement struct {
	// Op is the index of the operation in the case.
	Op int
	// Sig names what disagreed (operation kind, rule, error); a shrunk
	// sequence must reproduce the same Sig.
	Sig string
	// Text says what each side answered.
	Text string
}

// modelRun is one case in progress.
type modelRun struct {
	t         *testing.T
	h         *harness
	m         *modelState
	clock     *modelClock
	ctx       context.Context
	feed      *feed.Feed
	keys      verify.KeySource
	verifiers map[string]*verify.Verifier
	raw, jti  map[string]string // by token label
	dlgID     map[string]string // server id by delegation label
	dlgLabel  map[string]string // delegation label by server id
	// people are the model's people's browsers; codes and rts the raw
	// codes and refresh tokens by label.
	people map[string]*person
	codes  map[string]string
	rts    map[string]string
	ops    []modelOp
	stats  modelStats
}

// modelConfig writes world w into cfg; start is the clock's start.
func modelConfig(cfg *config.Config, w modelWorld, start time.Time) {
	cfg.Delegation.MaxDepth = w.MaxDepth
	if w.TTL != 0 {
		cfg.Tokens.TTL = config.Duration(w.TTL)
	}
	cfg.Users, cfg.Agents, cfg.Delegations, cfg.Policies = nil, nil, nil, nil
	for _, p := range w.People {
		cfg.Users = append(cfg.Users, config.User{ID: p.ID, Permissions: p.Permissions, Limits: p.Limits})
	}
	cfg.Agents = append(cfg.Agents, config.Agent{ID: modelFeedClient, Secret: "feed-secret"})
	for _, a := range w.Agents {
		cfg.Agents = append(cfg.Agents, config.Agent{ID: a.ID, Secret: modelSecret(a.ID), Scopes: a.Scopes,
			DelegateTo: a.DelegateTo, MaxDepth: a.MaxDepth, Disabled: a.Disabled, RedirectURIs: []string{appRedirect}})
	}
	for _, d := range w.Delegations {
		cd := config.Delegation{ID: d.ID, Subject: d.Subject, Actor: d.Actor, Scopes: d.Scopes, Audiences: d.Audiences, MaxDepth: d.MaxDepth}
		if d.Expires != 0 {
			cd.Expires = start.Truncate(time.Second).Add(d.Expires).UTC()
		}
		cfg.Delegations = append(cfg.Delegations, cd)
	}
	for _, p := range w.Policies {
		ifExpr, require := p.cel()
		cfg.Policies = append(cfg.Policies, config.Policy{Name: p.Name, If: ifExpr, Require: require})
	}
	cfg.Resources = nil
	for _, r := range w.Resources {
		cfg.Resources = append(cfg.Resources, config.Resource{URI: r.URI, Agent: r.Agent, HandOn: r.HandOn})
	}
}

// modelSecret is an agent's client secret, as harness.post derives it.
func modelSecret(id string) string { return strings.TrimPrefix(id, "agent:") + "-secret" }

// runModelCase runs c on a fresh server and returns the first
// disagreement, nil when there is none.
func runModelCase(t *testing.T, c modelCase) (*modelDisagreement, modelStats) {
	t.Helper()
	start := time.Now().Truncate(time.Second).Add(500 * time.Millisecond)
	clock := &modelClock{now: start}
	h := newHarnessEdited(t, openSQLite, clock.Now, func(cfg *config.Config) { modelConfig(cfg, c.World, start) })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	r := &modelRun{t: t, h: h, m: newModelState(c.World, start), clock: clock, ctx: ctx, ops: c.Ops,
		verifiers: map[string]*verify.Verifier{}, raw: map[string]string{}, jti: map[string]string{},
		dlgID: map[string]string{}, dlgLabel: map[string]string{},
		people: map[string]*person{}, codes: map[string]string{}, rts: map[string]string{}}
	for _, d := range c.World.Delegations {
		r.dlgID[d.ID], r.dlgLabel[d.ID] = d.ID, d.ID
	}
	r.startFeed()
	r.givePasswords(c.World)
	for i, op := range c.Ops {
		if d := r.step(i, op); d != nil {
			return d, r.stats
		}
	}
	if d := r.sweep(len(c.Ops) - 1); d != nil {
		return d, r.stats
	}
	return nil, r.stats
}

// startFeed subscribes to the revocation feed and waits for its snapshot.
// The Feed keeps the real clock: its staleness is about the connection,
// not about the tokens.
func (r *modelRun) startFeed() {
	sub, err := feed.New(r.ctx, feed.Config{URL: r.h.url + "/revocations/stream", ClientID: modelFeedClient, ClientSecret: "feed-secret"})
	if err != nil {
		r.t.Fatal(err)
	}
	rctx, cancel := context.WithTimeout(r.ctx, 10*time.Second)
	defer cancel()
	if err := sub.Ready(rctx); err != nil {
		r.t.Fatal(err)
	}
	keys, err := jwks.New(jwks.Config{URI: r.h.url + "/jwks"})
	if err != nil {
		r.t.Fatal(err)
	}
	r.feed, r.keys = sub, keys
}

// verifier is a resource server for aud, on the model's clock, following
// the feed. Its leeway is a nanosecond: the server's clock is its clock.
func (r *modelRun) verifier(aud string) *verify.Verifier {
	if aud == modelIssuer {
		aud = r.h.url
	}
	if v := r.verifiers[aud]; v != nil {
		return v
	}
	v, err := verify.New(r.ctx, verify.Config{Issuer: r.h.url, Audience: aud, Algorithms: []string{"EdDSA", "ES256", "RS256"},
		Keys: r.keys, Revocation: r.feed, Now: r.clock.Now, Leeway: time.Nanosecond, MaxDepth: 10})
	if err != nil {
		r.t.Fatal(err)
	}
	r.verifiers[aud] = v
	return v
}

// settle follows a clock step. The server's revocation hub refuses to
// answer when it has not read the store for 5 s of its clock, which a
// step of the clock makes it look; it reads the store again within
// 100 ms. settle pokes it to read at once (as a write through the store
// does) and waits until it answers.
func (r *modelRun) settle() error {
	r.h.app.Store.OnWrite()
	deadline := time.Now().Add(2 * time.Second)
	for {
		req, _ := http.NewRequest(http.MethodGet, r.h.url+"/revocations", nil)
		req.SetBasicAuth(url.QueryEscape(modelFeedClient), "feed-secret")
		resp := r.h.do(req)
		if resp.status == http.StatusOK {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("GET /revocations: %d %s", resp.status, resp.raw)
		}
		time.Sleep(time.Millisecond)
	}
}

// waitFeed waits until the feed holds every revocation the store has
// made, a second at most, and answers (a clock step can end the stream,
// which the feed then reopens).
func (r *modelRun) waitFeed() error {
	want, err := r.h.store.RevocationSeq(r.ctx)
	if err != nil {
		r.t.Fatal(err)
	}
	return r.feedAt(want)
}

// feedCurrent waits until the feed answers, a second at most: enough for
// a token minted now, which no revocation made before can hit.
func (r *modelRun) feedCurrent() error { return r.feedAt(0) }

func (r *modelRun) feedAt(seq int64) error {
	deadline := time.Now().Add(time.Second)
	for {
		_, err := r.feed.Revoked(r.ctx, &verify.Principal{})
		if err == nil && r.feed.Seq() >= seq {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the revocation feed stands at %d, the store at %d, after a second (%v)", r.feed.Seq(), seq, err)
		}
		time.Sleep(time.Millisecond)
	}
}

// fail builds the disagreement at operation i.
func (r *modelRun) fail(i int, sig, format string, args ...any) *modelDisagreement {
	text := fmt.Sprintf("operation %d: %s\n", i, modelGoString(r.ops[i], "")) + fmt.Sprintf(format, args...)
	return &modelDisagreement{Op: i, Sig: sig, Text: text}
}

// step runs operation i on both sides and checks the server's answer and
// the tokens it concerns.
func (r *modelRun) step(i int, op modelOp) *modelDisagreement {
	before := r.m.now
	var wasInForce map[string]bool
	if !slices.Contains([]string{opSignIn, opIdP, opCC, opExchange, opClock}, op.Kind) {
		wasInForce = map[string]bool{}
		for _, l := range r.m.labels {
			wasInForce[l] = r.m.inForce(r.m.tokens[l])
		}
	}
	want := r.m.apply(op)
	if want.Skipped {
		return nil
	}
	r.stats.Ops++
	switch op.Kind {
	case opSignIn:
		return r.grant(i, op, want, r.h.admin(http.MethodPost, "/admin/users/"+op.Person+"/token", nil))
	case opIdP:
		r.raw[op.Label] = r.idpToken(want.Token)
		return nil
	case opCC:
		form := url.Values{"grant_type": {oauth.GrantClientCredentials}}
		r.targets(form, op)
		return r.grant(i, op, want, r.h.post("/token", op.Client, form))
	case opExchange:
		return r.grant(i, op, want, r.h.post("/token", op.Client, r.exchangeForm(op)))
	case opApprove:
		if d := r.approve(i, op, want); d != nil {
			return d
		}
		// An approval that replaced an earlier one ended its tokens.
		if !slices.ContainsFunc(r.m.labels, func(l string) bool { return wasInForce[l] && !r.m.inForce(r.m.tokens[l]) }) {
			return nil
		}
		r.stats.Replaced++
	case opRedeem, opRefresh:
		if d := r.grant(i, op, want, r.h.post("/token", op.Client, r.consentForm(op))); d != nil {
			return d
		}
		if !slices.ContainsFunc(r.m.labels, func(l string) bool { return wasInForce[l] && !r.m.inForce(r.m.tokens[l]) }) {
			return nil
		}
	case opRevoke:
		resp := r.h.post("/revoke", op.Client, url.Values{"token": {r.raw[op.Token]}})
		if d := r.answer(i, op, want, resp); d != nil {
			return d
		}
	case opClock:
		r.clock.advance(op.Duration)
		if err := r.settle(); err != nil {
			return r.fail(i, "clock: the server's revocation state stays stale", "%v", err)
		}
		return r.checkExpired(i, before)
	case opReconfigure:
		a := r.m.agents[op.Agent]
		cfg := &config.Config{Agents: []config.Agent{{ID: op.Agent, Secret: modelSecret(op.Agent), Scopes: op.Scope,
			DelegateTo: op.DelegateTo, MaxDepth: op.MaxDepth, Disabled: a.Disabled, RedirectURIs: []string{appRedirect}}}}
		if _, err := provision.Sync(r.ctx, r.h.app.Store, cfg, true, r.clock.Now()); err != nil {
			r.t.Fatalf("config apply: %v", err)
		}
	default:
		if d := r.admin(i, op); d != nil {
			return d
		}
	}
	return r.checkAfter(i, op, wasInForce)
}

// admin runs an administrator's operation; each must succeed.
func (r *modelRun) admin(i int, op modelOp) *modelDisagreement {
	var resp response
	want := http.StatusOK
	switch op.Kind {
	case opAdminRevokeJTI:
		resp = r.h.admin(http.MethodPost, "/admin/revoke", map[string]string{"jti": r.jti[op.Token]})
	case opDeleteDelegation:
		resp = r.h.admin(http.MethodDelete, "/admin/delegations/"+r.dlgID[op.Delegation], nil)
	case opAdminRevokeDelegation:
		resp = r.h.admin(http.MethodPost, "/admin/revoke", map[string]string{"delegation_id": r.dlgID[op.Delegation]})
	case opRevokeSubject:
		resp = r.h.admin(http.MethodPost, "/admin/revoke", map[string]string{"subject": op.Person})
	case opSetPermissions:
		resp = r.h.admin(http.MethodPut, "/admin/users/"+op.Person+"/permissions", map[string]any{"permissions": op.Permissions})
	case opSetLimits:
		resp = r.h.admin(http.MethodPut, "/admin/users/"+op.Person+"/limits", map[string]any{"limits": op.Limits})
	case opDisable:
		resp = r.h.admin(http.MethodPost, "/admin/agents/"+op.Agent+"/disable", nil)
	case opEnable:
		resp = r.h.admin(http.MethodPost, "/admin/agents/"+op.Agent+"/enable", nil)
	case opAdminRevokeAgent:
		resp = r.h.admin(http.MethodPost, "/admin/revoke", map[string]string{"agent": op.Agent})
	case opCreateDelegation:
		body := map[string]any{"subject": op.Person, "actor": op.Agent, "scopes": op.Scope, "audiences": op.Audience, "max_depth": op.MaxDepth}
		if d := r.m.dlgs[op.Label]; !d.Expires.IsZero() {
			body["expires"] = d.Expires.UTC().Format(time.RFC3339)
		}
		resp, want = r.h.admin(http.MethodPost, "/admin/delegations", body), http.StatusCreated
		if id := resp.str("id"); id != "" {
			r.dlgID[op.Label], r.dlgLabel[id] = id, op.Label
		}
	default:
		r.t.Fatalf("unknown operation %q", op.Kind)
	}
	if resp.status != want {
		return r.fail(i, op.Kind+": admin request failed", "server: %d %s", resp.status, resp.raw)
	}
	return nil
}

// targets sets the scope, audience and resource parameters of op.
func (r *modelRun) targets(form url.Values, op modelOp) {
	if op.ScopeGiven {
		form.Set("scope", strings.Join(op.Scope, " "))
	}
	for _, a := range op.Audience {
		form.Add("audience", a)
	}
	for _, res := range op.Resource {
		form.Add("resource", res)
	}
}

// requestParams adds what a token request of op carries besides its
// grant: the actor token, the targets, the context and the
// authorization_details.
func (r *modelRun) requestParams(form url.Values, op modelOp) {
	if op.ActorToken != "" {
		form.Set("actor_token", r.raw[op.ActorToken])
		form.Set("actor_token_type", oauth.TokenTypeAccessToken)
	}
	r.targets(form, op)
	if op.Context != nil {
		b, _ := json.Marshal(op.Context)
		form.Set("context", string(b))
	}
	if op.Details != nil {
		b, _ := json.Marshal(op.Details)
		form.Set("authorization_details", string(b))
	}
}

func (r *modelRun) exchangeForm(op modelOp) url.Values {
	typ := oauth.TokenTypeAccessToken
	if r.m.tokens[op.Token].Kind == modelIdP {
		typ = oauth.TokenTypeIDToken
	}
	form := url.Values{"grant_type": {oauth.GrantTokenExchange}, "subject_token": {r.raw[op.Token]}, "subject_token_type": {typ}}
	r.requestParams(form, op)
	return form
}

// idpToken signs t's claims with the identity provider's key.
func (r *modelRun) idpToken(t *modelToken) string {
	claims := map[string]any{"iat": t.IssuedAt.Unix(), "exp": t.Exp.Unix()}
	if t.MayAct != "" {
		claims["may_act"] = map[string]any{"sub": t.MayAct}
	}
	if t.HasScope {
		claims["scope"] = strings.Join(t.Scopes, " ")
	}
	return r.h.idp.token(r.t, t.Sub, claims)
}

// answer compares a refusal or success without a token.
func (r *modelRun) answer(i int, op modelOp, want modelOutcome, resp response) *modelDisagreement {
	got := ""
	if resp.status != http.StatusOK {
		got = cmp.Or(resp.str("error"), fmt.Sprintf("status %d", resp.status))
	}
	if got == want.Refused {
		return nil
	}
	return r.fail(i, fmt.Sprintf("%s: server %q, model %q", op.Kind, got, want.Refused),
		"server: %d %s\nmodel:  %s %s", resp.status, resp.raw, cmp.Or(want.Refused, "ok"), want.Rule)
}

// rule is the number of the check that decided a refusal ("3" of "3: ...").
func modelRuleOf(s string) string { n, _, _ := strings.Cut(s, ":"); return n }

// grant compares the server's answer to a request that mints a token.
func (r *modelRun) grant(i int, op modelOp, want modelOutcome, resp response) *modelDisagreement {
	if op.Kind == opExchange {
		r.stats.Exchanges++
	}
	granted := resp.status == http.StatusOK && resp.str("access_token") != ""
	switch {
	case want.Refused != "" && granted:
		return r.fail(i, fmt.Sprintf("%s: server grants, model refuses (rule %s)", op.Kind, modelRuleOf(want.Rule)),
			"server: granted %s\nmodel:  refused %s (%s)", r.describe(resp.str("access_token")), want.Refused, want.Rule)
	case want.Refused != "" && resp.str("error") != want.Refused:
		return r.fail(i, fmt.Sprintf("%s: server refuses %s, model refuses %s (rule %s)", op.Kind, resp.str("error"), want.Refused, modelRuleOf(want.Rule)),
			"server: %d %s\nmodel:  refused %s (%s)", resp.status, resp.raw, want.Refused, want.Rule)
	case want.Refused != "" && op.Kind == opExchange:
		r.stats.Refused++
		if n, err := strconv.Atoi(modelRuleOf(want.Rule)); err == nil {
			r.stats.ByRule[n]++
		}
		return nil
	case want.Refused != "":
		if op.Kind == opRedeem || op.Kind == opRefresh {
			r.stats.ConsentRefused++
		}
		return nil
	case !granted:
		return r.fail(i, fmt.Sprintf("%s: server refuses %s (%s), model grants", op.Kind, resp.str("error"), resp.str("error_description")),
			"server: %d %s\nmodel:  grants %s", resp.status, resp.raw, r.describeModel(want.Token))
	}
	switch op.Kind {
	case opExchange:
		r.stats.Granted++
		r.stats.Depth[min(len(want.Token.Chain), 10)]++
		if T := r.m.tokens[op.Token]; strings.HasPrefix(T.Label, "c") {
			r.stats.ConsentHops++
		}
		if T, D := r.m.tokens[op.Token], r.m.dlgs[want.Token.Delegation]; D != nil && len(T.Chain) > 0 {
			if !slices.Contains(r.m.agents[T.Chain[0]].DelegateTo, op.Client) {
				r.stats.ServerHops++
			}
			if !slices.Contains(D.Audiences, want.Token.Aud) && len(D.Audiences) > 0 {
				r.stats.HandedOn++
			}
		}
	case opRedeem:
		r.stats.Redeemed++
	case opRefresh:
		r.stats.Refreshed++
	}
	raw := resp.str("access_token")
	got := r.parse(raw)
	r.raw[op.Label], r.jti[op.Label] = raw, got.jti
	var diffs, rules []string
	for _, f := range modelDiffToken(want.Token, got.tok) {
		diffs = append(diffs, f.text)
		rules = append(rules, f.field)
	}
	bounds := modelBounds
	if op.Kind == opRedeem || op.Kind == opRefresh {
		bounds = modelConsentBounds
		r.rts[op.Label] = resp.str("refresh_token")
	}
	if op.Kind != opSignIn && op.Kind != opCC {
		for _, b := range bounds(r.m, op, got.tok) {
			diffs = append(diffs, "bound: "+b)
			rules = append(rules, "bound "+modelRuleOf(b))
		}
	}
	if len(diffs) > 0 {
		slices.Sort(rules)
		return r.fail(i, fmt.Sprintf("%s: claims differ: %s", op.Kind, strings.Join(slices.Compact(rules), ", ")),
			"%s\nserver: %s\nmodel:  %s", strings.Join(diffs, "\n"), r.describe(raw), r.describeModel(want.Token))
	}
	if err := r.feedCurrent(); err != nil {
		return r.fail(i, "revocation feed: late", "%v", err)
	}
	r.stats.Verifications++
	if _, err := r.verifier(want.Token.Aud).Verify(r.ctx, raw); err != nil {
		return r.fail(i, op.Kind+": a verifier refuses the new token", "verifier: %v\ntoken: %s", err, r.describe(raw))
	}
	return nil
}

// modelServerToken is a minted token as the server wrote it.
type modelServerToken struct {
	tok *modelToken
	jti string
}

// parse reads a minted token's claims into the model's terms.
func (r *modelRun) parse(raw string) modelServerToken {
	c := claims(r.t, raw)
	str := func(k string) string { s, _ := c[k].(string); return s }
	t := &modelToken{Sub: str("sub"), ClientID: str("client_id"), Aud: str("aud"), HasScope: true}
	if t.Aud == r.h.url {
		t.Aud = modelIssuer
	}
	if s := str("scope"); s != "" {
		t.Scopes = strings.Split(s, " ")
	}
	for act, _ := c["act"].(map[string]any); act != nil; act, _ = act["act"].(map[string]any) {
		sub, _ := act["sub"].(string)
		t.Chain = append(t.Chain, sub)
	}
	if ad, ok := c["authorization_details"].([]any); ok {
		t.Details = []modelDetail{}
		for _, e := range ad {
			m, _ := e.(map[string]any)
			t.Details = append(t.Details, m)
		}
	}
	t.Context, _ = c["context"].(map[string]any)
	if id := str("delegation_id"); id != "" {
		t.Delegation = cmp.Or(r.dlgLabel[id], "unknown:"+id)
	}
	exp, _ := c["exp"].(float64)
	iat, _ := c["iat"].(float64)
	t.Exp, t.IssuedAt = time.Unix(int64(exp), 0), time.Unix(int64(iat), 0)
	return modelServerToken{tok: t, jti: str("jti")}
}

// describe prints a minted token's claims that the model speaks of.
func (r *modelRun) describe(raw string) string {
	c := claims(r.t, raw)
	for _, k := range []string{"iss", "jti", "iat", "nbf", "revocation_url", "log_url", "gen", "exchanged_from", "token_use"} {
		delete(c, k)
	}
	if exp, ok := c["exp"].(float64); ok {
		c["exp"] = fmt.Sprintf("now%+ds", int64(exp)-r.m.now.Unix())
	}
	b, _ := json.Marshal(c)
	return strings.ReplaceAll(string(b), r.h.url, modelIssuer)
}

func (r *modelRun) describeModel(t *modelToken) string {
	c := map[string]any{"sub": t.Sub, "client_id": t.ClientID, "aud": t.Aud, "scope": strings.Join(t.Scopes, " "),
		"exp": fmt.Sprintf("now%+ds", t.Exp.Unix()-r.m.now.Unix())}
	if len(t.Chain) > 0 {
		c["act"] = t.Chain
	}
	if t.Details != nil {
		c["authorization_details"] = t.Details
	}
	if t.Context != nil {
		c["context"] = t.Context
	}
	if t.Delegation != "" {
		c["delegation_id"] = t.Delegation
	}
	b, _ := json.Marshal(c)
	return string(b)
}

// modelFieldDiff is one claim where the server and the model differ.
type modelFieldDiff struct{ field, text string }

// modelDiffToken compares the claims the model predicts with the server's.
func modelDiffToken(want, got *modelToken) []modelFieldDiff {
	var out []modelFieldDiff
	diff := func(field string, same bool, w, g any) {
		if !same {
			out = append(out, modelFieldDiff{field, fmt.Sprintf("%s: server %v, model %v", field, g, w)})
		}
	}
	diff("sub (3)", want.Sub == got.Sub, want.Sub, got.Sub)
	diff("client_id", want.ClientID == got.ClientID, want.ClientID, got.ClientID)
	diff("act (3)", slices.Equal(want.Chain, got.Chain), want.Chain, got.Chain)
	diff("delegation_id (3)", want.Delegation == got.Delegation, want.Delegation, got.Delegation)
	diff("aud (5)", want.Aud == got.Aud, want.Aud, got.Aud)
	diff("scope (6)", modelSameSet(want.Scopes, got.Scopes), want.Scopes, got.Scopes)
	wd, gd := modelSortedDetails(want.Details), modelSortedDetails(got.Details)
	diff("authorization_details (7)", reflect.DeepEqual(wd, gd), modelJSON(wd), modelJSON(gd))
	diff("context (8)", reflect.DeepEqual(want.Context, got.Context), modelJSON(want.Context), modelJSON(got.Context))
	diff("exp (10)", want.Exp.Unix() == got.Exp.Unix(), want.Exp.Unix(), got.Exp.Unix())
	diff("iat", want.IssuedAt.Unix() == got.IssuedAt.Unix(), want.IssuedAt.Unix(), got.IssuedAt.Unix())
	return out
}

func modelJSON(v any) string { b, _ := json.Marshal(v); return string(b) }

func modelSameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(slices.Compact(a), slices.Compact(b))
}

// modelSortedDetails sorts the lists inside entries (their order means
// nothing); the entries keep their order. nil stays nil.
func modelSortedDetails(ds []modelDetail) []modelDetail {
	if ds == nil {
		return nil
	}
	out := modelNormDetails(ds)
	for _, e := range out {
		for k, v := range e {
			if l, ok := v.([]any); ok {
				sort.Slice(l, func(i, j int) bool { return fmt.Sprint(l[i]) < fmt.Sprint(l[j]) })
				e[k] = l
			}
		}
	}
	return out
}

// modelBounds checks a token minted by an exchange against every bound on
// its path directly, without the model's arithmetic: it is never wider
// than the tokens it came from, the person, the delegation and the
// agents, never deeper, never longer-lived, never less constrained, and
// keeps the facts it inherited.
func modelBounds(m *modelState, op modelOp, got *modelToken) []string {
	var out []string
	bad := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	T := m.tokens[op.Token]
	var D *modelDlg
	if got.Delegation != "" {
		D = m.dlgs[got.Delegation]
	}
	subset := func(what string, bound []string) {
		for _, s := range got.Scopes {
			if !slices.Contains(bound, s) {
				bad("6: scope %s is not in %s %v", s, what, bound)
			}
		}
	}
	if p := m.people[T.Sub]; p != nil {
		subset("the person's permissions", p.Permissions)
	}
	subset("the client's scopes", m.agents[op.Client].Scopes)
	for _, a := range got.Chain {
		if ag := m.agents[a]; ag != nil {
			subset(a+"'s scopes", ag.Scopes)
		}
	}
	if D != nil {
		subset("the delegation's scopes", D.Scopes)
		if reach := D.reach(len(got.Chain) > 1); len(reach) > 0 && !slices.Contains(reach, got.Aud) {
			bad("5: aud %s is not among the delegation's %v", got.Aud, reach)
		}
		if D.MaxDepth > 0 && len(got.Chain) > D.MaxDepth {
			bad("4: %d actors under a delegation of depth %d", len(got.Chain), D.MaxDepth)
		}
		if !D.Expires.IsZero() && got.Exp.After(D.Expires) {
			bad("10: exp after the delegation's")
		}
	}
	if len(got.Chain) > m.maxDepth {
		bad("4: %d actors, the global limit is %d", len(got.Chain), m.maxDepth)
	}
	for _, a := range got.Chain {
		if ag := m.agents[a]; ag != nil && ag.MaxDepth > 0 && len(got.Chain) > ag.MaxDepth {
			bad("4: %d actors, %s allows %d", len(got.Chain), a, ag.MaxDepth)
		}
	}
	if got.Exp.After(m.now.Add(m.ttl)) {
		bad("10: exp beyond the TTL")
	}
	if op.ActorToken != "" && got.Exp.After(m.tokens[op.ActorToken].Exp) {
		bad("10: exp after the actor token's")
	}
	for anc := T; anc != nil; anc = m.tokens[anc.Parent] {
		if anc.HasScope {
			subset("the scope of "+anc.Label, anc.Scopes)
		}
		if got.Exp.After(anc.Exp) {
			bad("10: exp after that of %s", anc.Label)
		}
		for k, v := range anc.Context {
			if !reflect.DeepEqual(got.Context[k], v) {
				bad("8: the fact %s=%v of %s is not kept", k, v, anc.Label)
			}
		}
		if anc.Parent == "" {
			break
		}
	}
	if p := m.people[T.Sub]; p != nil {
		for _, g := range got.Details {
			if !slices.ContainsFunc(p.Limits, func(l modelDetail) bool { return modelWithin(g, l) }) {
				bad("7: entry %s is less constrained than every limit of the person", modelJSON(g))
			}
			if len(T.Chain) > 0 && !slices.ContainsFunc(T.Details, func(l modelDetail) bool { return modelWithin(g, l) }) {
				bad("7: entry %s is less constrained than the subject token's", modelJSON(g))
			}
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

// modelWithin: g carries every field of l, each at least as tight.
func modelWithin(g, l modelDetail) bool {
	for k, lv := range l {
		gv, ok := g[k]
		if !ok {
			return false
		}
		gl, gList := gv.([]any)
		ll, lList := lv.([]any)
		gn, gNum := gv.(float64)
		ln, lNum := lv.(float64)
		switch {
		case strings.HasPrefix(k, "max_") && gNum && lNum:
			if gn > ln {
				return false
			}
		case gList && lList:
			for _, x := range gl {
				if !slices.ContainsFunc(ll, func(y any) bool { return reflect.DeepEqual(x, y) }) {
					return false
				}
			}
		case !reflect.DeepEqual(gv, lv):
			return false
		}
	}
	return true
}

// checkAfter checks, after a revocation or a change, unexpired tokens:
// with a verifier following the feed, every one after a revocation (or a
// permission change), those concerned and two others after any other
// change; at the server, every token it took out of force, the newest two
// concerned still in force and, every other operation, one other.
func (r *modelRun) checkAfter(i int, op modelOp, wasInForce map[string]bool) *modelDisagreement {
	related := func(t *modelToken) bool { return false }
	switch op.Kind {
	case opRevoke, opAdminRevokeJTI:
		related = func(t *modelToken) bool {
			for l := t.Label; l != ""; l = r.m.tokens[l].Parent {
				if l == op.Token {
					return true
				}
			}
			return false
		}
	case opDeleteDelegation, opAdminRevokeDelegation:
		related = func(t *modelToken) bool { return t.Delegation == op.Delegation }
	case opRedeem, opRefresh:
		dlg := ""
		if c := r.m.codes[op.Code]; c != nil {
			dlg = c.Delegation
		} else if f := r.m.refreshes[op.Refresh]; f != nil {
			dlg = f.Delegation
		}
		related = func(t *modelToken) bool { return t.Delegation == dlg }
	case opRevokeSubject, opSetPermissions, opSetLimits, opCreateDelegation:
		related = func(t *modelToken) bool { return t.Sub == op.Person }
	case opDisable, opEnable, opAdminRevokeAgent, opReconfigure:
		related = func(t *modelToken) bool { return slices.Contains(t.Chain, op.Agent) || t.ClientID == op.Agent }
	}
	if err := r.waitFeed(); err != nil {
		return r.fail(i, "revocation feed: late", "%v", err)
	}
	n := len(r.m.labels)
	if n == 0 {
		return nil
	}
	revocation := slices.Contains([]string{opRevoke, opAdminRevokeJTI, opDeleteDelegation, opAdminRevokeDelegation,
		opRevokeSubject, opSetPermissions, opDisable, opAdminRevokeAgent, opRedeem, opRefresh}, op.Kind)
	asked, others := 0, []int{(i * 7919) % n, (i * 104729) % n}
	for j := n - 1; j >= 0; j-- {
		t := r.m.tokens[r.m.labels[j]]
		if t.Kind == modelIdP || !r.m.now.Before(t.Exp) {
			continue
		}
		rel, other := related(t), slices.Contains(others, j)
		if rel || other || revocation {
			if d := r.checkVerifier(i, t); d != nil {
				return d
			}
		}
		killed := wasInForce[t.Label] && !r.m.inForce(t)
		if killed || rel && asked < 2 || j == others[0] && i%2 == 0 {
			if !killed {
				asked++
			}
			if d := r.checkServer(i, t); d != nil {
				return d
			}
		}
	}
	return nil
}

// checkExpired checks the newest token that expired in a clock step.
func (r *modelRun) checkExpired(i int, before time.Time) *modelDisagreement {
	if err := r.waitFeed(); err != nil {
		return r.fail(i, "revocation feed: late", "%v", err)
	}
	n := 0
	for j := len(r.m.labels) - 1; j >= 0 && n < 1; j-- {
		t := r.m.tokens[r.m.labels[j]]
		if t.Kind != modelIdP && before.Before(t.Exp) && !r.m.now.Before(t.Exp) {
			n++
			if d := r.checkVerifier(i, t); d != nil {
				return d
			}
			if d := r.checkServer(i, t); d != nil {
				return d
			}
		}
	}
	return nil
}

// sweep checks, at the end of a case, every token with a verifier, and
// at the server the newest 12 unexpired, those out of force first.
func (r *modelRun) sweep(i int) *modelDisagreement {
	if err := r.waitFeed(); err != nil {
		return r.fail(i, "revocation feed: late", "%v", err)
	}
	var dead, alive []*modelToken
	for j := len(r.m.labels) - 1; j >= 0; j-- {
		t := r.m.tokens[r.m.labels[j]]
		if t.Kind == modelIdP {
			continue
		}
		if d := r.checkVerifier(i, t); d != nil {
			return d
		}
		switch {
		case !r.m.now.Before(t.Exp):
		case r.m.inForce(t):
			alive = append(alive, t)
		default:
			dead = append(dead, t)
		}
	}
	for _, t := range append(dead, alive...)[:min(12, len(dead)+len(alive))] {
		if d := r.checkServer(i, t); d != nil {
			return d
		}
	}
	return nil
}

// checkVerifier: a verifier following the feed accepts t exactly when the
// model says it is in force.
func (r *modelRun) checkVerifier(i int, t *modelToken) *modelDisagreement {
	r.stats.Verifications++
	want := r.m.inForce(t)
	_, err := r.verifier(t.Aud).Verify(r.ctx, r.raw[t.Label])
	if want != (err == nil) {
		return r.fail(i, fmt.Sprintf("in force: verifier accepts=%v, model in force=%v", err == nil, want),
			"token %s %s\nverifier: %v\nmodel: %s", t.Label, r.describe(r.raw[t.Label]), err, r.state(t))
	}
	return nil
}

// checkServer: the server says t is active exactly when the model says it
// is in force. It asks /introspect as a client that may see the token,
// or /revocations/{jti} when no enabled client may.
func (r *modelRun) checkServer(i int, t *modelToken) *modelDisagreement {
	r.stats.Introspections++
	want := r.m.inForce(t)
	caller := ""
	for _, c := range []string{t.ClientID, t.Aud} {
		if a := r.m.agents[c]; a != nil && !a.Disabled && caller == "" {
			caller = c
		}
	}
	if caller != "" {
		resp := r.h.post("/introspect", caller, url.Values{"token": {r.raw[t.Label]}})
		active, _ := resp.body["active"].(bool)
		if resp.status != http.StatusOK || active != want {
			return r.fail(i, fmt.Sprintf("in force: introspection active=%v, model in force=%v", active, want),
				"token %s %s\nintrospection by %s: %d %s\nmodel: %s", t.Label, r.describe(r.raw[t.Label]), caller, resp.status, resp.raw, r.state(t))
		}
		return nil
	}
	req, _ := http.NewRequest(http.MethodGet, r.h.url+"/revocations/"+r.jti[t.Label], nil)
	resp := r.h.do(req)
	revoked, _ := resp.body["revoked"].(bool)
	expired := !r.m.now.Before(t.Exp)
	if resp.status != http.StatusOK || (want && revoked) || (!want && !expired && !revoked) {
		return r.fail(i, fmt.Sprintf("in force: revocation status revoked=%v, model in force=%v", revoked, want),
			"token %s %s\n/revocations/{jti}: %d %s\nmodel: %s", t.Label, r.describe(r.raw[t.Label]), resp.status, resp.raw, r.state(t))
	}
	return nil
}

func (r *modelRun) state(t *modelToken) string {
	if r.m.inForce(t) {
		return "in force"
	}
	return "not in force: " + r.m.whyDead(t)
}
