package exchange

import (
	"context"
	"errors"
	"slices"

	"github.com/mandate-dev/mandate/actor"
	"github.com/mandate-dev/mandate/internal/audit"
	"github.com/mandate-dev/mandate/internal/store"
	"github.com/mandate-dev/mandate/internal/token"
	"github.com/mandate-dev/mandate/oauth"
)

// Grant types of what a person approved on the consent page (RFC 6749
// §4.1.3, §6).
const (
	GrantAuthorizationCode = oauth.GrantAuthorizationCode
	GrantRefreshToken      = oauth.GrantRefreshToken
)

// Consented is a grant a person approved on the consent page, as an
// authorization code or a refresh token carries it.
type Consented struct {
	// GrantType is GrantAuthorizationCode or GrantRefreshToken.
	GrantType string
	// Subject is the person, Actor the agent the tokens name in act.
	Subject string
	Actor   string
	// DelegationID is the delegation the person approved; it bounds the
	// tokens, and they end with it.
	DelegationID string
	// Scopes are the scopes approved.
	Scopes []string
	// Resource is the audience the tokens are for; empty for the
	// delegation's single audience.
	Resource string
	// SubjectVersion, with VersionBound, is the person's revocation
	// version when the grant began: a later bump ends the grant.
	SubjectVersion int64
	VersionBound   bool
}

// Consent issues the access token of an authorization code or a refresh
// token: sub is the person, act the agent, and the token is bounded like
// every other grant (bound): the person's permissions and limits now, the
// client's and the agent's allowed scopes and depth, and the delegation
// the person approved, which must still be in force. req.Scopes, when
// given, may only narrow what was approved.
func (g *Grant) Consent(ctx context.Context, req Request, c Consented) (*Result, error) {
	st := g.newState(req, c.GrantType)
	res, err := g.consent(ctx, st, c)
	if err != nil {
		return nil, g.refuse(ctx, audit.ActionTokenIssue, st, err)
	}
	return res, nil
}

func (g *Grant) consent(ctx context.Context, st *state, c Consented) (*Result, error) {
	if err := g.checkConsented(ctx, st, c); err != nil {
		return nil, err
	}
	if err := g.runSteps(ctx, st, g.delegatedSteps()); err != nil {
		return nil, err
	}
	return g.tracedMint(ctx, st, audit.ActionTokenIssue, c.GrantType)
}

// checkConsented establishes the person, the agent and the approved
// delegation, all still in force, and narrows the request to what was
// approved. Each failure is invalid_grant: the grant itself is no longer
// good.
func (g *Grant) checkConsented(ctx context.Context, st *state, c Consented) error {
	st.subject = &token.Verified{Subject: c.Subject}
	st.chain = actor.Chain{c.Actor}
	u, err := g.Directory.GetUser(ctx, c.Subject)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return oauth.New(oauth.ErrInvalidGrant, "subject_unknown", "the person is no longer known to this server", nil)
	case err != nil:
		return oauth.Unavailable("store_unavailable", err)
	case c.VersionBound && u.Version > c.SubjectVersion:
		return oauth.New(oauth.ErrInvalidGrant, "subject_revoked", "everything the person delegated before was revoked", nil)
	}
	st.user = u
	d, err := g.Directory.GetDelegation(ctx, c.DelegationID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return oauth.New(oauth.ErrInvalidGrant, "delegation_revoked", "the approved delegation no longer exists", nil)
	case err != nil:
		return oauth.Unavailable("store_unavailable", err)
	case d.Subject != c.Subject || d.Actor != c.Actor:
		return oauth.New(oauth.ErrInvalidGrant, "delegation_mismatch", "the approved delegation is another person's or agent's", nil)
	case !d.Active(g.Now()):
		return oauth.New(oauth.ErrInvalidGrant, "delegation_revoked", "the approved delegation was revoked or has expired", nil)
	}
	st.deleg = &d
	if err := g.checkRequestedActor(ctx, st, c.Actor); err != nil {
		return err
	}
	// offline_access asks for the refresh token the grant comes with
	// anyway: it narrows nothing and is never granted.
	st.req.Scopes = slices.DeleteFunc(slices.Clone(st.req.Scopes), func(s string) bool { return s == oauth.ScopeOfflineAccess })
	if st.req.ScopeGiven && len(st.req.Scopes) > 0 {
		for _, s := range st.req.Scopes {
			if !slices.Contains(c.Scopes, s) {
				return oauth.InvalidScope("scope_widening", "a requested scope exceeds what the person approved", nil)
			}
		}
	} else {
		st.req.Scopes, st.req.ScopeGiven = c.Scopes, true
	}
	return g.bindResource(st, c)
}

// bindResource holds the token to the resource the person approved: a
// request may name it again (RFC 8707 §2), in any spelling the registry
// takes for it, but never another (invalid_target).
func (g *Grant) bindResource(st *state, c Consented) error {
	if c.Resource == "" {
		return nil
	}
	for _, r := range st.req.Resources {
		if r == c.Resource {
			continue
		}
		if res, ok := g.Resources.Lookup(r); ok && res.URI == c.Resource {
			continue
		}
		return oauth.InvalidTarget("resource_mismatch", "the resource differs from the one the person approved", nil)
	}
	st.req.Resources = []string{c.Resource}
	return nil
}

// checkRequestedActor requires, when the agent is not the client (the
// client sent requested_actor), an actor_token that is the agent's own
// token, addressed to this server and in force: the agent vouches that it
// takes part.
func (g *Grant) checkRequestedActor(ctx context.Context, st *state, actorID string) error {
	if actorID == st.req.Client.ID {
		return nil
	}
	if st.req.ActorToken == "" {
		return oauth.New(oauth.ErrInvalidGrant, "actor_token_missing", "the grant names another agent: an actor_token of that agent is required", nil)
	}
	v, err := g.verifyPresented(ctx, st.req.ActorToken, "actor_token")
	if err != nil {
		return err
	}
	if !v.Own || v.Act != nil || v.Subject != actorID || !slices.Contains(v.Audiences, g.Issuer) {
		return oauth.New(oauth.ErrInvalidGrant, "actor_token_mismatch", "the actor_token is not the requested agent's own token", nil)
	}
	if _, err := g.checkInForce(ctx, v, "actor_token"); err != nil {
		return err
	}
	st.actorToken = v
	return nil
}

// boundConsent bounds a token of a consented grant: the person now, the
// client and the agent now, and the approved delegation.
func (g *Grant) boundConsent(ctx context.Context, st *state, b *bounds) error {
	b.depth = g.MaxDepth
	b.scopes = intersect(st.user.Permissions, st.req.Client.Scopes)
	b.tightenDepth(st.req.Client.MaxDepth)
	if id := st.chain.Current(); id != st.req.Client.ID {
		a, err := g.Directory.GetAgent(ctx, id)
		switch {
		case errors.Is(err, store.ErrNotFound):
			return oauth.New(oauth.ErrInvalidGrant, "agent_unknown", "the agent is no longer known to this server", nil)
		case err != nil:
			return oauth.Unavailable("store_unavailable", err)
		case a.Disabled:
			return oauth.New(oauth.ErrInvalidGrant, "agent_disabled", "the agent is disabled", nil)
		}
		b.scopes = intersect(b.scopes, a.Scopes)
		b.tightenDepth(a.MaxDepth)
	}
	d := st.deleg
	b.scopes = intersect(b.scopes, d.Scopes)
	b.audiences = d.Audiences
	b.defaultAudience = g.Issuer
	if len(d.Audiences) == 1 {
		b.defaultAudience = d.Audiences[0]
	}
	b.tightenDepth(d.MaxDepth)
	b.earlier(d.Expires)
	if st.actorToken != nil {
		b.earlier(st.actorToken.Expiry)
	}
	limits, err := detailsFromJSON(st.user.Limits)
	if err != nil {
		return oauth.ServerError("user_limits_corrupt", err)
	}
	b.limits = []limitSet{{entries: limits, holder: "the person holds"}}
	return nil
}
