package exchange

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/mandate-dev/mandate/actor"
	"github.com/mandate-dev/mandate/internal/audit"
	"github.com/mandate-dev/mandate/internal/policy"
	"github.com/mandate-dev/mandate/internal/resource"
	"github.com/mandate-dev/mandate/internal/store"
	"github.com/mandate-dev/mandate/internal/token"
	"github.com/mandate-dev/mandate/internal/tokenstate"
	"github.com/mandate-dev/mandate/oauth"
)

// Request is a token request whose client is already authenticated.
type Request struct {
	// Client is the authenticated agent.
	Client             store.Agent
	SubjectToken       string
	SubjectTokenType   string
	ActorToken         string
	ActorTokenType     string
	RequestedTokenType string
	// Scopes are the requested scopes; ScopeGiven says whether the request
	// had a scope parameter at all.
	Scopes     []string
	ScopeGiven bool
	Audiences  []string
	Resources  []string
	// Context is the agent's assertion about the request (environment,
	// trigger, ...).
	Context map[string]any
	// AuthorizationDetails are the RFC 9396 details requested (ParseDetails).
	AuthorizationDetails []Detail
	// AgentVersion is the version the client declared (agent_version),
	// already validated; it is recorded in every audit event of the
	// request and decides nothing.
	AgentVersion string
	RequestID    string
	// Generation is Grant.CurrentGeneration read before the client was
	// authenticated, so that the client record too is at least as new as
	// the gen minted; zero means "read it now".
	Generation int64
}

// Result is a successful token response (RFC 6749 §5.1, RFC 8693 §2.2.1).
type Result struct {
	AccessToken     string `json:"access_token"`
	IssuedTokenType string `json:"issued_token_type,omitempty"`
	TokenType       string `json:"token_type"`
	ExpiresIn       int64  `json:"expires_in"`
	Scope           string `json:"scope"`
	// AuthorizationDetails are the details granted (RFC 9396 §7).
	AuthorizationDetails json.RawMessage `json:"authorization_details,omitempty"`
	// JTI identifies the issued token; it is not part of the response.
	JTI string `json:"-"`
	// Chain is the issued token's actors, current first (its act claim);
	// empty for a token without act. It is not part of the response.
	Chain actor.Chain `json:"-"`
}

// Directory reads who may do what; a cached store satisfies it.
type Directory interface {
	GetUser(ctx context.Context, id string) (store.User, error)
	GetAgent(ctx context.Context, id string) (store.Agent, error)
	GetDelegation(ctx context.Context, id string) (store.Delegation, error)
	ListDelegations(ctx context.Context, f store.DelegationFilter) ([]store.Delegation, error)
}

// Verifier checks presented tokens (*token.Verifier).
type Verifier interface {
	Verify(ctx context.Context, raw string) (*token.Verified, error)
}

// Signer signs minted claims (*token.Keyring).
type Signer interface {
	Sign(ctx context.Context, c *token.Claims) (string, error)
}

// Decider evaluates policies (*policy.Engine).
type Decider interface {
	Decide(ctx context.Context, in policy.Input) (policy.Decision, error)
}

// Recorder durably records events with the tokens they issue
// (*audit.Recorder).
type Recorder interface {
	Record(ctx context.Context, ev store.Event, tokens ...store.IssuedToken) error
}

// Grant runs the token endpoint's grants. All fields are required except
// Policy (nil allows every request). It is safe for concurrent use.
type Grant struct {
	Issuer    string
	Directory Directory
	Tokens    *tokenstate.Checker
	Verifier  Verifier
	Signer    Signer
	Policy    Decider
	Audit     Recorder
	Now       func() time.Time
	// TTL is the default lifetime, MaxTTL the ceiling.
	TTL    time.Duration
	MaxTTL time.Duration
	// MaxDepth is the global limit on actors in a chain.
	MaxDepth int
	// Tracer starts a span for each step of a grant and for mint, under
	// the request's span in ctx; nil means the no-op tracer.
	Tracer trace.Tracer
	// Resources are the registered resources (MCP servers): a token
	// addressed to one goes only to a client it allows, with its
	// canonical URI as aud. nil registers none.
	Resources *resource.Registry
	// Generation returns a store generation that the Directory's answers
	// are at least as new as (the cache's); minted tokens carry it as gen,
	// so that revocation entries made at a higher generation apply to them
	// (a grant decided on stale data is revoked, never kept). Nil means 0:
	// every such entry applies.
	Generation func() int64
}

// state is what a request has established so far; refusals record it.
type state struct {
	req Request
	// grant is the grant type being run (oauth.GrantTokenExchange,
	// oauth.GrantClientCredentials or GrantSignIn).
	grant   string
	subject *token.Verified
	// actorToken is the verified actor_token, nil when none was sent.
	actorToken *token.Verified
	user       store.User
	deleg      *store.Delegation
	chain      actor.Chain // the new chain, current actor first
	// bounds is what the hop may not exceed (Grant.bound).
	bounds   bounds
	audience string
	scopes   []string
	details  []Detail
	context  map[string]any
	// contextJSON is context marshalled, once, by mint: the token and
	// its record carry the same bytes.
	contextJSON []byte
	expiry      time.Time
	// gen is the generation read before anything else, so that what the
	// request decides on is at least as new as the gen it mints.
	gen int64
}

// CurrentGeneration reads g.Generation, 0 when unset.
func (g *Grant) CurrentGeneration() int64 {
	if g.Generation == nil {
		return 0
	}
	return g.Generation()
}

// Exchange runs the RFC 8693 token exchange. The checks run in this order
// and the first failure refuses: request shape; subject token valid,
// unexpired and in force; actor token (if any) names the client; a
// delegation or may_act (first hop) or the current actor's delegate_to
// (chain hop) lets the client act, with no loop; the bounds of the hop
// from every grant on its path (bound); depth, audience, scopes,
// authorization_details, context facts and lifetime within them; policy.
// Errors are *oauth.Error and are audited before they are returned.
func (g *Grant) Exchange(ctx context.Context, req Request) (*Result, error) {
	st := g.newState(req, oauth.GrantTokenExchange)
	res, err := g.exchange(ctx, st)
	if err != nil {
		return nil, g.refuse(ctx, audit.ActionTokenExchange, st, err)
	}
	return res, nil
}

// newState is the state of a request of grant, with the generation the
// request read before its client was authenticated, or read now.
func (g *Grant) newState(req Request, grant string) *state {
	st := &state{req: req, grant: grant, gen: req.Generation}
	if st.gen == 0 {
		st.gen = g.CurrentGeneration()
	}
	return st
}

// delegatedSteps are the checks of a token that acts for a person, once
// the person, the agent and the delegation are established: the bounds of
// every grant on the path, then depth, audience, scopes,
// authorization_details, context facts, policy and lifetime within them.
// The token exchange and the consent grants run them alike.
func (g *Grant) delegatedSteps() []step {
	return []step{
		{spanBound, g.bound},
		{spanCheckDepth, g.checkDepth},
		{spanCheckAudience, g.checkAudience},
		{spanCheckScopes, g.checkScopes},
		{spanCheckDetails, g.checkDetails},
		{spanCheckContext, g.checkContext},
		{spanCheckPolicy, g.checkPolicy},
		{spanCheckLifetime, g.checkLifetime},
	}
}

func (g *Grant) exchange(ctx context.Context, st *state) (*Result, error) {
	steps := []step{
		{spanCheckShape, g.checkShape},
		{spanCheckSubject, g.checkSubject},
		{spanCheckActorToken, g.checkActorToken},
		{spanCheckActor, g.checkActor},
	}
	steps = append(steps, g.delegatedSteps()...)
	if err := g.runSteps(ctx, st, steps); err != nil {
		return nil, err
	}
	return g.tracedMint(ctx, st, audit.ActionTokenExchange, oauth.GrantTokenExchange)
}

func (g *Grant) checkShape(_ context.Context, st *state) error {
	r := st.req
	switch {
	case r.SubjectToken == "":
		return oauth.InvalidRequest("subject_token_missing", "subject_token is required", nil)
	case !slices.Contains([]string{oauth.TokenTypeAccessToken, oauth.TokenTypeIDToken, oauth.TokenTypeJWT}, r.SubjectTokenType):
		return oauth.InvalidRequest("subject_token_type_unsupported", "subject_token_type is missing or not supported", nil)
	case (r.ActorToken == "") != (r.ActorTokenType == ""):
		return oauth.InvalidRequest("actor_token_type_missing", "actor_token and actor_token_type go together", nil)
	case r.ActorTokenType != "" && r.ActorTokenType != oauth.TokenTypeAccessToken:
		return oauth.InvalidRequest("actor_token_type_unsupported", "actor_token_type must be an access token", nil)
	case r.RequestedTokenType != "" && r.RequestedTokenType != oauth.TokenTypeAccessToken:
		// RFC 8693 §2.2.1; no refresh token is ever issued from an exchange.
		return oauth.InvalidRequest("requested_token_type_unsupported", "only access tokens are issued by token exchange", nil)
	}
	return nil
}

// verifyPresented maps token verification failures to RFC 8693 §2.2.2
// errors: an unusable token is invalid_request; an unreachable key source
// is temporarily_unavailable.
func (g *Grant) verifyPresented(ctx context.Context, raw, what string) (*token.Verified, error) {
	v, err := g.Verifier.Verify(ctx, raw)
	switch {
	case err == nil:
		return v, nil
	case errors.Is(err, token.ErrKeyUnavailable):
		return nil, oauth.Unavailable(what+"_key_unavailable", err)
	case errors.Is(err, token.ErrExpired):
		return nil, oauth.InvalidRequest(what+"_expired", "the "+what+" has expired", err)
	default:
		return nil, oauth.InvalidRequest(what+"_invalid", "the "+what+" is not valid", err)
	}
}

// checkInForce asks the token registry whether a Mandate token still holds.
func (g *Grant) checkInForce(ctx context.Context, v *token.Verified, what string) (store.IssuedToken, error) {
	rec, err := g.Tokens.CheckJTI(ctx, v.JTI)
	var inactive *tokenstate.InactiveError
	switch {
	case errors.As(err, &inactive):
		return rec, oauth.InvalidRequest(inactive.Reason, "the "+what+" is no longer valid", err)
	case err != nil:
		return rec, oauth.Unavailable("store_unavailable", err)
	case rec.Subject != v.Subject || !slices.Equal(rec.Chain, []string(v.Act.Chain())):
		return rec, oauth.InvalidRequest(what+"_invalid", "the "+what+" is not valid", errors.New("token does not match its record"))
	}
	return rec, nil
}

func (g *Grant) checkSubject(ctx context.Context, st *state) error {
	v, err := g.verifyPresented(ctx, st.req.SubjectToken, "subject_token")
	if err != nil {
		return err
	}
	// RFC 8693 §3: the declared type must be what the token is. Mandate's
	// own tokens are access tokens; an identity provider's are ID tokens
	// or plain JWTs.
	if v.Own != (st.req.SubjectTokenType == oauth.TokenTypeAccessToken) {
		return oauth.InvalidRequest("subject_token_type_mismatch", "subject_token_type does not match the token", nil)
	}
	st.subject = v
	if !v.Own {
		if v.Act != nil {
			return oauth.InvalidRequest("subject_token_invalid", "the subject_token must not carry an act claim", nil)
		}
		return nil
	}
	if v.Act == nil && !slices.Contains(v.Audiences, g.Issuer) {
		// A chain starts from a person's own token addressed to Mandate.
		return oauth.InvalidRequest("subject_token_audience", "the subject_token is not addressed to this server", nil)
	}
	_, err = g.checkInForce(ctx, v, "subject_token")
	return err
}

func (g *Grant) checkActorToken(ctx context.Context, st *state) error {
	if st.req.ActorToken == "" {
		return nil
	}
	v, err := g.verifyPresented(ctx, st.req.ActorToken, "actor_token")
	if err != nil {
		return err
	}
	// The actor token must be the authenticated client's own token,
	// addressed to this server, and must not itself act for anyone.
	if !v.Own || v.Act != nil || v.Subject != st.req.Client.ID || !slices.Contains(v.Audiences, g.Issuer) {
		return oauth.InvalidRequest("actor_token_mismatch", "the actor_token does not identify the authenticated client", nil)
	}
	if _, err = g.checkInForce(ctx, v, "actor_token"); err != nil {
		return err
	}
	st.actorToken = v
	return nil
}

// checkActor decides whether the client may act for the subject: on the
// first hop through its delegation from the person or the subject token's
// may_act; on a chain hop only because the token is addressed to it (or
// to the registered resource whose server it is) and the current actor
// may hand on to it: its delegate_to names the client, or the delegation
// the token carries does and the current actor is that delegation's own
// (a person approved handing on to the resource's server). A delegation
// the client holds itself never admits a chain hop: the hop would then be
// bounded by a delegation the token does not carry, and the current actor
// never agreed to hand on (docs/security.md).
func (g *Grant) checkActor(ctx context.Context, st *state) error {
	v, client := st.subject, st.req.Client
	prior := v.Act.Chain()
	if prior.Contains(client.ID) {
		return oauth.InvalidRequest("actor_loop", "the client already acts in this chain", nil)
	}
	st.chain = append(actor.Chain{client.ID}, prior...)
	if len(prior) == 0 {
		direct, err := g.activeDelegation(ctx, v.Subject, client.ID, st.req)
		switch {
		case err != nil:
			return err
		case direct != nil:
			st.deleg = direct
		case v.MayAct != nil && v.MayAct.Subject == client.ID:
			// RFC 8693 §4.4: the subject token names who may act.
		default:
			return oauth.InvalidRequest("actor_not_delegated", "no delegation lets this client act for the subject", nil)
		}
		return nil
	}
	if !g.addressedTo(v.Audiences, client.ID) {
		return oauth.InvalidRequest("audience_not_holder", "the subject_token is not addressed to this client", nil)
	}
	current, err := g.Directory.GetAgent(ctx, prior.Current())
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return oauth.Unavailable("store_unavailable", err)
	}
	if v.DelegationID != "" {
		d, err := g.Directory.GetDelegation(ctx, v.DelegationID)
		if err != nil {
			return oauth.Unavailable("store_unavailable", err)
		}
		st.deleg = &d
	}
	handed := slices.Contains(current.DelegateTo, client.ID) ||
		st.deleg != nil && st.deleg.Actor == prior.Current() && slices.Contains(st.deleg.DelegateTo, client.ID)
	if !handed {
		return oauth.InvalidRequest("actor_not_delegated", "the current actor may not hand on to this client", nil)
	}
	return nil
}

// addressedTo reports whether a token for audiences is addressed to the
// client id: one of them is the id, or a registered resource whose server
// (resource.Resource.Agent) the client is.
func (g *Grant) addressedTo(audiences []string, id string) bool {
	return slices.ContainsFunc(audiences, func(aud string) bool {
		if aud == id {
			return true
		}
		res, ok := g.Resources.Lookup(aud)
		return ok && res.Agent == id
	})
}

func (g *Grant) activeDelegation(ctx context.Context, subject, actorID string, req Request) (*store.Delegation, error) {
	ds, err := g.Directory.ListDelegations(ctx, store.DelegationFilter{Subject: subject, Actor: actorID})
	if err != nil {
		return nil, oauth.Unavailable("store_unavailable", err)
	}
	return chooseDelegation(ds, g.Now(), req), nil
}

// chooseDelegation is the delegation that admits a first hop when the
// person gave the agent several in force (one in the file, others on the
// consent page, each perhaps for another resource): of those that allow
// the request's single target (or have no audience list), the one that
// holds the most of the requested scopes (all of its own when none is
// requested), then the newest, then the lowest id; without any that allows
// the target, the newest in force, whose bounds then refuse the request.
// The choice depends on the request, never on the store's order, and the
// token is bounded by the chosen delegation alone.
func chooseDelegation(ds []store.Delegation, now time.Time, req Request) *store.Delegation {
	var targets []string
	for _, t := range append(slices.Clip(req.Audiences), req.Resources...) {
		if !slices.Contains(targets, t) {
			targets = append(targets, t)
		}
	}
	admits := func(d store.Delegation) bool {
		return len(targets) != 1 || len(d.Audiences) == 0 || slices.Contains(d.Audiences, targets[0])
	}
	held := func(d store.Delegation) int {
		if !req.ScopeGiven {
			return len(d.Scopes)
		}
		return len(intersect(req.Scopes, d.Scopes))
	}
	better := func(a, b store.Delegation) bool { // a rather than b
		if ah, bh := held(a), held(b); ah != bh {
			return ah > bh
		}
		if !a.CreatedAt.Equal(b.CreatedAt) {
			return a.CreatedAt.After(b.CreatedAt)
		}
		return a.ID < b.ID
	}
	var best, fallback *store.Delegation
	for i := range ds {
		d := ds[i]
		if !d.Active(now) {
			continue
		}
		if fallback == nil || d.CreatedAt.After(fallback.CreatedAt) || d.CreatedAt.Equal(fallback.CreatedAt) && d.ID < fallback.ID {
			fallback = &ds[i]
		}
		if admits(d) && (best == nil || better(d, *best)) {
			best = &ds[i]
		}
	}
	if best != nil {
		return best
	}
	return fallback
}

func (g *Grant) checkDepth(_ context.Context, st *state) error {
	if len(st.chain) > st.bounds.depth {
		return oauth.InvalidRequest("delegation_depth_exceeded", "the delegation chain would be too deep", nil)
	}
	return nil
}

func (g *Grant) checkAudience(_ context.Context, st *state) error {
	// A registered resource is compared in its canonical form, as the
	// delegations that name it hold it.
	req := st.req
	req.Audiences, req.Resources = g.canonical(req.Audiences), g.canonical(req.Resources)
	aud, err := pickAudience(req, &st.bounds)
	if err != nil {
		return err
	}
	if res, ok := g.Resources.Lookup(aud); ok {
		// A registered resource's tokens go to the clients it allows,
		// whichever grant asks (RFC 8707 §2: invalid_target).
		if !res.Allows(st.req.Client.ID) {
			return oauth.InvalidTarget("resource_not_allowed", "the client may not receive tokens for this resource", nil)
		}
		aud = res.URI
	}
	st.audience = aud
	return nil
}

// canonical returns targets with each registered resource in its
// canonical form; the others as they are.
func (g *Grant) canonical(targets []string) []string {
	if g.Resources.Empty() || len(targets) == 0 {
		return targets
	}
	out := make([]string, len(targets))
	for i, t := range targets {
		out[i] = t
		if res, ok := g.Resources.Lookup(t); ok {
			out[i] = res.URI
		}
	}
	return out
}

// pickAudience chooses the single audience of the token (RFC 8693 §2.1:
// audience and resource both name targets) within b. Without one, b's
// default audience is used.
func pickAudience(r Request, b *bounds) (string, error) {
	var targets []string
	for _, res := range r.Resources {
		if !isAbsoluteURI(res) {
			return "", oauth.InvalidTarget("resource_invalid", "resource must be an absolute URI", nil)
		}
	}
	for _, t := range append(slices.Clip(r.Audiences), r.Resources...) {
		if actor.ValidSubject(t) != nil {
			return "", oauth.InvalidTarget("audience_invalid", "the audience is not valid", nil)
		}
		if !slices.Contains(targets, t) {
			targets = append(targets, t)
		}
	}
	switch {
	case len(targets) > 1:
		return "", oauth.InvalidTarget("audience_multiple", "one audience per token", nil)
	case len(targets) == 0 && b.defaultAudience != "":
		return b.defaultAudience, nil
	case len(targets) == 0:
		return "", oauth.InvalidTarget("audience_missing", "an audience or resource is required", nil)
	case len(b.audiences) > 0 && !slices.Contains(b.audiences, targets[0]):
		return "", oauth.InvalidTarget("audience_not_allowed", "the audience is not allowed by the delegation", nil)
	}
	return targets[0], nil
}

func isAbsoluteURI(s string) bool {
	i := strings.Index(s, "://")
	return i > 0 && !strings.ContainsAny(s, "# \t") && len(s) > i+3
}

// checkScopes grants the requested scopes within the bounds (all of them
// when none is requested). On a chain hop a requested scope the subject
// token lacks is widening and refused; otherwise what is not allowed is
// dropped (RFC 6749 §3.3). Nothing granted refuses.
func (g *Grant) checkScopes(_ context.Context, st *state) error {
	allowed := st.bounds.scopes
	granted := allowed
	if st.req.ScopeGiven {
		if v := st.subject; v != nil && v.HasScope && v.Act != nil {
			for _, s := range st.req.Scopes {
				if !slices.Contains(v.Scopes, s) {
					return oauth.InvalidScope("scope_widening", "a requested scope exceeds the subject_token", nil)
				}
			}
		}
		granted = intersect(st.req.Scopes, allowed)
	}
	if len(granted) == 0 {
		return oauth.InvalidScope("no_scope_granted", "none of the requested scopes can be granted", nil)
	}
	st.scopes = granted
	return nil
}

// intersect returns the members of a that are in b, in a's order, once each.
func intersect(a, b []string) []string {
	out := make([]string, 0, len(a))
	for _, s := range a {
		if slices.Contains(b, s) && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// checkDetails grants the requested authorization_details within every
// set of limits in the bounds (the person's now and, on a chain hop, the
// subject token's); a hop that requests none carries the subject token's
// forward, within the same limits.
func (g *Grant) checkDetails(_ context.Context, st *state) error {
	requested := st.req.AuthorizationDetails
	if requested == nil {
		requested = st.bounds.carried
	}
	if requested == nil {
		return nil
	}
	granted := requested
	for _, set := range st.bounds.limits {
		var err error
		if granted, err = grantDetails(granted, set.entries, set.holder); err != nil {
			return err
		}
	}
	st.details = granted
	return nil
}

// checkContext adds the request's context to the facts earlier hops
// asserted; changing one refuses (context_conflict).
func (g *Grant) checkContext(_ context.Context, st *state) error {
	c, err := mergeContext(st.bounds.facts, st.req.Context)
	if err != nil {
		return err
	}
	st.context = c
	return nil
}

func (g *Grant) checkPolicy(ctx context.Context, st *state) error {
	if g.Policy == nil {
		return nil
	}
	d, err := g.Policy.Decide(ctx, policy.Input{
		Subject:  st.subject.Subject,
		Actor:    st.chain.Current(),
		Chain:    st.chain,
		Scopes:   st.scopes,
		Audience: st.audience,
		ClientID: st.req.Client.ID,
		Context:  policyContext(st.context),
	})
	switch {
	case err != nil:
		// The policies are the server's: one that cannot be evaluated is
		// the server's failure, refused as unavailable and never allowed
		// (THREATS T32).
		return oauth.Unavailable("policy_error", err)
	case !d.Allow:
		return oauth.InvalidRequest(d.Reason, "refused by policy "+d.Policy, nil)
	}
	return nil
}

// checkLifetime sets the expiry to the bounds' (the TTL, the maximum, the
// subject token, the delegation and the actor token), refusing a token
// that would live less than a second.
func (g *Grant) checkLifetime(_ context.Context, st *state) error {
	exp := st.bounds.expiry
	if exp.Sub(g.Now()) < time.Second {
		return oauth.InvalidRequest("token_lifetime_too_short",
			"the token would expire within a second: the subject token, the actor token or the delegation is about to expire", nil)
	}
	st.expiry = exp.Truncate(time.Second)
	return nil
}

// mint signs the token and makes it and its audit event durable. Its
// errors are for the caller to record as the refusal.
func (g *Grant) mint(ctx context.Context, st *state, action, grantType string) (*Result, error) {
	now := g.Now()
	jti := token.NewJTI(now)
	claims := &token.Claims{
		Issuer:        g.Issuer,
		Subject:       st.subjectID(),
		Act:           actor.New(st.chain),
		Audience:      st.audience,
		Scope:         strings.Join(st.scopes, " "),
		ClientID:      st.req.Client.ID,
		JTI:           jti,
		IssuedAt:      now.Unix(),
		NotBefore:     now.Unix(),
		Expiry:        st.expiry.Unix(),
		RevocationURL: g.Issuer + "/revocations/" + jti,
		LogURL:        g.Issuer + "/audit?jti=" + jti,
	}
	rec := store.IssuedToken{
		JTI:            jti,
		GrantType:      grantType,
		Subject:        claims.Subject,
		ClientID:       claims.ClientID,
		Chain:          st.chain,
		Scopes:         st.scopes,
		Audience:       st.audience,
		SubjectVersion: st.user.Version,
		IssuedAt:       now,
		ExpiresAt:      st.expiry,
	}
	if st.deleg != nil {
		claims.DelegationID = st.deleg.ID
		rec.DelegationID = st.deleg.ID
	}
	if st.details != nil {
		b, err := json.Marshal(st.details)
		if err != nil {
			return nil, oauth.ServerError("authorization_details", err)
		}
		claims.AuthorizationDetails = b
	}
	claims.Gen, rec.Gen = st.gen, st.gen
	if st.subject != nil && st.subject.Own {
		rec.ParentJTI = st.subject.JTI
		claims.ExchangedFrom = append([]string{st.subject.JTI}, st.subject.ExchangedFrom...)
	}
	if len(st.context) > 0 { // as omitempty left out an empty map
		b, err := json.Marshal(st.context)
		if err != nil {
			return nil, oauth.Unavailable("signing_unavailable", err)
		}
		claims.Context, st.contextJSON = b, b
	}
	if err := g.checkNotRevoked(rec); err != nil {
		return nil, err
	}
	raw, err := g.Signer.Sign(ctx, claims)
	if err != nil {
		return nil, oauth.Unavailable("signing_unavailable", err)
	}
	ev := st.event(action, audit.ResultGranted)
	ev.JTI = jti
	// What was granted, not what was asked: the record matches the token.
	ev.AuthorizationDetails = claims.AuthorizationDetails
	ev.Attributes = traceAttributes(ctx)
	if err := g.Audit.Record(ctx, ev, rec); err != nil {
		// Nothing was committed: the token is never returned.
		return nil, oauth.Unavailable("audit_unavailable", err)
	}
	return &Result{
		AccessToken:     raw,
		IssuedTokenType: oauth.TokenTypeAccessToken,
		TokenType:       "Bearer",
		ExpiresIn:       int64(st.expiry.Sub(now).Round(time.Second) / time.Second),
		Scope:           claims.Scope,
		JTI:             jti,
		Chain:           st.chain,

		AuthorizationDetails: claims.AuthorizationDetails,
	}, nil
}

// checkNotRevoked refuses to issue rec when a revocation this server
// already knows covers it. The directory's answers may be older than the
// revocation feed (another instance disabled the agent a moment ago): such
// a token would be out of force from its first use, since it carries the
// older generation, and the client is told so now instead
// (invalid_grant, reason revoked_grant).
func (g *Grant) checkNotRevoked(rec store.IssuedToken) error {
	if g.Tokens == nil {
		return nil
	}
	err := g.Tokens.CheckFeed(rec)
	var inactive *tokenstate.InactiveError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &inactive):
		return oauth.New(oauth.ErrInvalidGrant, "revoked_grant",
			"a revocation already covers what this grant would issue ("+inactive.Reason+")", err)
	default:
		return oauth.Unavailable("revocation_unavailable", err)
	}
}

// subjectID is the token's sub: the person, or the client for its own token.
func (st *state) subjectID() string {
	if st.subject != nil {
		return st.subject.Subject
	}
	return st.req.Client.ID
}

// event builds the audit record of what st established.
func (st *state) event(action, result string) store.Event {
	ev := store.Event{
		Action:    action,
		Result:    result,
		RequestID: st.req.RequestID,
		Performer: st.req.Client.ID,
		ClientID:  st.req.Client.ID,
		OnBehalf:  st.subjectID(),
		Chain:     st.chain,
		Scopes:    st.scopes,
		Requested: st.req.Scopes,
		Audience:  st.audience,

		AgentVersion: st.req.AgentVersion,
	}
	if ev.Audience == "" && len(st.req.Audiences)+len(st.req.Resources) > 0 {
		ev.Audience = strings.Join(append(slices.Clip(st.req.Audiences), st.req.Resources...), " ")
	}
	if st.deleg != nil {
		ev.DelegationID = st.deleg.ID
	}
	if st.subject != nil && st.subject.Own {
		ev.ParentJTI = st.subject.JTI
	}
	ctx := st.context
	if ctx == nil {
		ctx = st.req.Context
	}
	switch {
	case st.contextJSON != nil: // st.context, as mint marshalled it
		ev.Context = st.contextJSON
	case ctx != nil:
		if b, err := json.Marshal(ctx); err == nil {
			ev.Context = b
		}
	}
	return ev
}

// refuse records a refusal and returns the error to answer with. When the
// refusal cannot be recorded the answer is 503: no decision goes unaudited.
func (g *Grant) refuse(ctx context.Context, action string, st *state, err error) error {
	e := oauth.As(err)
	ev := st.event(audit.ActionTokenRefused, audit.ResultRefused)
	ev.Resource = action
	if action == audit.ActionTokenExchange && st.subject == nil {
		// The subject token was not established: nobody is known to be
		// acted for (the client is not its own subject here).
		ev.OnBehalf = ""
	}
	ev.Reason = e.Reason
	ev.Detail = e.Description
	ev.AuthorizationDetails = DetailsJSON(st.req.AuthorizationDetails)
	ev.Attributes = traceAttributes(ctx)
	if rerr := g.Audit.Record(ctx, ev); rerr != nil {
		return oauth.Unavailable("audit_unavailable", errors.Join(err, rerr))
	}
	return e
}

// ClientCredentials issues the client a token for itself (RFC 6749 §4.4):
// sub and client_id are the client, there is no act, and the scopes are
// the requested ones the client is allowed (all of them when none is
// requested). Without an audience the token is addressed to this server,
// which makes it usable as an actor_token.
func (g *Grant) ClientCredentials(ctx context.Context, req Request) (*Result, error) {
	st := g.newState(req, oauth.GrantClientCredentials)
	res, err := g.clientCredentials(ctx, st)
	if err != nil {
		return nil, g.refuse(ctx, audit.ActionTokenIssue, st, err)
	}
	return res, nil
}

func (g *Grant) clientCredentials(ctx context.Context, st *state) (*Result, error) {
	steps := []step{
		{spanBound, g.bound},
		{spanCheckScopes, g.checkScopes},
		{spanCheckAudience, g.checkAudience},
		{spanCheckContext, g.checkContext},
		{spanCheckLifetime, g.checkLifetime},
	}
	if err := g.runSteps(ctx, st, steps); err != nil {
		return nil, err
	}
	return g.tracedMint(ctx, st, audit.ActionTokenIssue, oauth.GrantClientCredentials)
}

// SignInClientID is the client_id of a person's own token, which no agent
// requested.
const SignInClientID = "mandate"

// GrantSignIn is the grant recorded for a person's own token.
const GrantSignIn = "sign_in"

// SignIn issues a person's own token: sub is the user, there is no act, the
// audience is this server and the scopes are the user's permissions. Such a
// token starts a chain when an agent exchanges it. Until the login page
// exists, administrators (and `serve --dev`) obtain it through the admin API.
func (g *Grant) SignIn(ctx context.Context, userID, requestID string) (*Result, error) {
	st := &state{
		req:      Request{Client: store.Agent{ID: SignInClientID}, RequestID: requestID},
		grant:    GrantSignIn,
		gen:      g.CurrentGeneration(),
		audience: g.Issuer,
		subject:  &token.Verified{Subject: userID},
	}
	u, err := g.Directory.GetUser(ctx, userID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		// Refusals are recorded like an agent's (token.refused).
		return nil, g.refuse(ctx, audit.ActionTokenIssue, st,
			&oauth.Error{Code: oauth.ErrNotFound, Reason: "subject_unknown", Description: "no such user", Err: err})
	case err != nil:
		return nil, oauth.Unavailable("store_unavailable", err)
	case len(u.Permissions) == 0:
		return nil, g.refuse(ctx, audit.ActionTokenIssue, st, oauth.InvalidScope("no_scope_granted", "the user holds no permissions", nil))
	}
	st.user = u
	steps := []step{
		{spanBound, g.bound},
		{spanCheckScopes, g.checkScopes},
		{spanCheckAudience, g.checkAudience},
		{spanCheckLifetime, g.checkLifetime},
	}
	if err := g.runSteps(ctx, st, steps); err != nil {
		return nil, g.refuse(ctx, audit.ActionTokenIssue, st, err)
	}
	res, err := g.tracedMint(ctx, st, audit.ActionTokenIssue, GrantSignIn)
	if err != nil {
		return nil, g.refuse(ctx, audit.ActionTokenIssue, st, err)
	}
	return res, nil
}
