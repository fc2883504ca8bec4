package signin

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/mandate-dev/mandate/internal/authorize"
	"github.com/mandate-dev/mandate/internal/store"
)

// Offer is what the consent page shows a person of a pending authorization
// request, and what an approval of it may grant.
type Offer struct {
	Request authorize.Request
	Person  store.User
	Agent   store.Agent
	// Scopes are the scopes asked for, in order (the agent's own when the
	// request names none).
	Scopes []OfferedScope
	// Server and HandOn, for a request for a registered resource whose
	// server exchanges its tokens: the agent the resource's server is
	// and the audiences it may exchange the tokens for. An approval
	// records both in the delegation; the page shows them.
	Server string
	HandOn []string
	// Shown binds an approval to this offer in this session: the consent
	// form carries it back, and Approve refuses an approval whose offer
	// was never shown in the session or has changed since (another
	// request, agent, resource, set of approvable scopes or hand-on).
	Shown string
}

// OfferedScope is one scope of an offer.
type OfferedScope struct {
	Name string
	// Approvable says whether the person holds the permission and the
	// agent may have it: only those can be approved.
	Approvable bool
}

// Errors of a consent.
var (
	// ErrAgentUnknown is a pending request whose agent is no longer known.
	ErrAgentUnknown = errors.New("signin: the request's agent is not known")
	// ErrNotShown is an approval whose offer was not the one shown to the
	// person in this session: nothing is granted and the request stays
	// pending.
	ErrNotShown = errors.New("signin: the approval does not match the request shown")
)

// Offer returns what the person of sess is offered for the pending
// request id: ErrRequestGone when it is not pending, ErrAgentUnknown when
// its agent is gone.
func (s *Service) Offer(ctx context.Context, sess store.Session, id string) (Offer, error) {
	r, err := s.Request(ctx, id)
	if err != nil {
		return Offer{}, err
	}
	return s.offer(ctx, sess, id, r)
}

func (s *Service) offer(ctx context.Context, sess store.Session, id string, r authorize.Request) (Offer, error) {
	u, err := s.Reader.GetUser(ctx, sess.Subject)
	if err != nil {
		return Offer{}, fmt.Errorf("signin: %w", err)
	}
	a, err := s.Reader.GetAgent(ctx, r.Actor())
	switch {
	case errors.Is(err, store.ErrNotFound):
		return Offer{}, ErrAgentUnknown
	case err != nil:
		return Offer{}, fmt.Errorf("signin: %w", err)
	}
	o := Offer{Request: r, Person: u, Agent: a}
	names := r.Scopes
	if len(names) == 0 {
		names = a.Scopes
	}
	var approvable []string
	for _, sc := range names {
		ok := slices.Contains(u.Permissions, sc) && slices.Contains(a.Scopes, sc)
		o.Scopes = append(o.Scopes, OfferedScope{Name: sc, Approvable: ok})
		if ok {
			approvable = append(approvable, sc)
		}
	}
	if res, ok := s.Grant.Resources.Lookup(r.Resource); ok && res.Agent != "" && res.Agent != r.Actor() {
		o.Server, o.HandOn = res.Agent, slices.Clone(res.HandOn)
	}
	b, err := json.Marshal([]any{"mandate-consent-v2", sess.CSRF, id, r.ClientID, r.Actor(), r.Resource, r.RedirectURI, approvable, o.Server, o.HandOn})
	if err != nil {
		return Offer{}, fmt.Errorf("signin: %w", err)
	}
	sum := sha256.Sum256(b)
	o.Shown = base64.RawURLEncoding.EncodeToString(sum[:])
	return o, nil
}

// approvable is the offer's scopes that can be approved and were ticked.
func (o Offer) approvable(ticked []string) []string {
	var out []string
	for _, sc := range o.Scopes {
		if sc.Approvable && slices.Contains(ticked, sc.Name) {
			out = append(out, sc.Name)
		}
	}
	return out
}

// matches reports whether shown is the offer's Shown.
func (o Offer) matches(shown string) bool {
	return subtle.ConstantTimeCompare([]byte(o.Shown), []byte(shown)) == 1
}
