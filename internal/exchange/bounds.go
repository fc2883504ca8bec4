package exchange

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"time"

	"github.com/mandate-dev/mandate/internal/store"
	"github.com/mandate-dev/mandate/oauth"
)

// bounds is everything a token minted at a hop may not exceed: every grant
// that admitted the hop and every grant on its path (docs/security.md, "The
// rule every grant keeps"). Grant.bound computes it, in one place, for every
// grant the token endpoint runs; the checks after it only narrow the request
// to it, so that no grant can mint a token the rule does not allow.
type bounds struct {
	// scopes is the widest scope set: the person's permissions now, the
	// client's allowed scopes, the delegation's, the subject token's and
	// the allowed scopes of every earlier actor in the chain now.
	scopes []string
	// audiences are the audiences the delegation allows, nil for any.
	audiences []string
	// defaultAudience is the audience of a request that names none; ""
	// refuses such a request.
	defaultAudience string
	// depth is the most actors the chain may hold: the global limit, the
	// delegation's and every actor's in the chain; zero for a token
	// without a chain.
	depth int
	// expiry is the latest exp: the default lifetime within the maximum,
	// the subject token's exp, the delegation's expiry and the actor
	// token's exp.
	expiry time.Time
	// limits are the sets of authorization_details a granted entry must
	// fit, in turn: the person's limits now and, on a chain hop, the
	// subject token's entries (none there: no entry can be granted).
	limits []limitSet
	// carried are the subject token's entries, granted again (within
	// limits) when the request names none.
	carried []Detail
	// facts are the context facts earlier hops asserted: a hop may add
	// keys, never change or drop one.
	facts map[string]any
}

// bound computes st.bounds for st's grant from the grants on its path. It
// runs after the client was admitted (st.chain and st.deleg are set) and
// before any check that narrows the request.
func (g *Grant) bound(ctx context.Context, st *state) error {
	now := g.Now()
	b := bounds{expiry: now.Add(min(g.TTL, g.MaxTTL))}
	switch st.grant {
	case oauth.GrantClientCredentials:
		// The client's own token: only its own allowed scopes bound it.
		b.scopes = st.req.Client.Scopes
		b.defaultAudience = g.Issuer
	case GrantSignIn:
		b.scopes = st.user.Permissions
		b.defaultAudience = g.Issuer
	case GrantAuthorizationCode, GrantRefreshToken:
		if err := g.boundConsent(ctx, st, &b); err != nil {
			return err
		}
	default:
		if err := g.boundExchange(ctx, st, &b); err != nil {
			return err
		}
	}
	st.bounds = b
	return nil
}

// boundExchange bounds a token exchange hop: the person now, every actor in
// the new chain now, the delegation the path carries, the subject token
// and the actor token.
func (g *Grant) boundExchange(ctx context.Context, st *state, b *bounds) error {
	v := st.subject
	u, err := g.Directory.GetUser(ctx, v.Subject)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return oauth.InvalidRequest("subject_unknown", "the subject is not known to this server", nil)
	case err != nil:
		return oauth.Unavailable("store_unavailable", err)
	}
	st.user = u
	b.depth = g.MaxDepth
	b.scopes = intersect(u.Permissions, st.req.Client.Scopes)
	b.tightenDepth(st.req.Client.MaxDepth)
	for _, id := range st.chain[1:] {
		a, err := g.Directory.GetAgent(ctx, id)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return oauth.Unavailable("store_unavailable", err)
		}
		// An agent that is gone bounds the hop to nothing; its tokens
		// are no longer in force anyway.
		b.scopes = intersect(b.scopes, a.Scopes)
		b.tightenDepth(a.MaxDepth)
	}
	if v.HasScope {
		b.scopes = intersect(b.scopes, v.Scopes)
	}
	b.earlier(v.Expiry)
	if d := st.deleg; d != nil {
		b.scopes = intersect(b.scopes, d.Scopes)
		b.audiences = d.Audiences
		if len(d.Audiences) == 1 {
			b.defaultAudience = d.Audiences[0]
		}
		if len(st.chain) > 1 && len(d.Audiences) > 0 {
			// A hop after the actor's may also reach what the person
			// let the tokens be handed on to.
			b.audiences = append(slices.Clone(d.Audiences), d.HandOn...)
		}
		b.tightenDepth(d.MaxDepth)
		b.earlier(d.Expires)
	}
	if st.actorToken != nil {
		// RFC 8693 §2.1: the actor token vouches for the client only
		// while it is valid itself.
		b.earlier(st.actorToken.Expiry)
	}
	limits, err := detailsFromJSON(u.Limits)
	if err != nil {
		return oauth.ServerError("user_limits_corrupt", err)
	}
	b.limits = []limitSet{{entries: limits, holder: "the person holds"}}
	carried, err := detailsFromJSON(v.AuthorizationDetails)
	if err != nil {
		return oauth.InvalidRequest("subject_token_invalid", "the subject_token's authorization_details are malformed", err)
	}
	b.carried = carried
	if len(st.chain) > 1 {
		// A chain hop is bounded by the token it was exchanged from, also
		// when that token carries no entries.
		b.limits = append(b.limits, limitSet{entries: carried, holder: "the subject_token carries"})
	}
	if v.Own {
		// Only Mandate's own tokens assert facts; an identity provider's
		// context claim is not one of ours.
		b.facts = v.Context
	}
	return nil
}

// limitSet is one set of authorization_details a granted entry must fit,
// and who holds it, for the refusal's description.
type limitSet struct {
	entries []Detail
	holder  string
}

// tightenDepth lowers the depth limit to n when n is set (positive).
func (b *bounds) tightenDepth(n int) {
	if n > 0 && n < b.depth {
		b.depth = n
	}
}

// earlier lowers the expiry to t when t is set and earlier.
func (b *bounds) earlier(t time.Time) {
	if !t.IsZero() && t.Before(b.expiry) {
		b.expiry = t
	}
}

// mergeContext returns the facts with the request's context added: a key
// the request leaves out keeps its fact, a new key is added, and a key
// whose value differs from the fact is a conflict (context_conflict). It
// returns nil when there is neither.
func mergeContext(facts, req map[string]any) (map[string]any, error) {
	if facts == nil && req == nil {
		return nil, nil
	}
	out := make(map[string]any, len(facts)+len(req))
	for k, v := range facts {
		out[k] = v
	}
	// In key order, so that the refusal names the same fact every time.
	for _, k := range slices.Sorted(maps.Keys(req)) {
		v := req[k]
		if f, ok := facts[k]; ok && !reflect.DeepEqual(f, v) {
			return nil, oauth.InvalidRequest("context_conflict",
				fmt.Sprintf("the context changes %q, which an earlier hop asserted", k), nil)
		}
		out[k] = v
	}
	return out, nil
}

// policyContext is the context policies read: the token's, with
// environment and trigger always present ("" when nobody asserted them).
func policyContext(c map[string]any) map[string]any {
	out := make(map[string]any, len(c)+2)
	for k, v := range c {
		out[k] = v
	}
	for _, k := range []string{"environment", "trigger"} {
		if _, ok := out[k].(string); !ok {
			out[k] = ""
		}
	}
	return out
}
