package upstream

import (
	"context"
	"fmt"
	"net/http"

	"github.com/mandate-dev/mandate/internal/config"
)

// Set is every configured provider people sign in through, in the order of
// the configuration. It is read-only once built and safe for concurrent use.
//
// With several providers, a callback's Pending names the provider its code
// must go to, and Finish refuses an iss of another one (RFC 9207). A
// provider that does not send iss cannot be told apart that way: give each
// provider its own redirect URI (New takes one per provider) when any of
// them lacks it.
type Set struct {
	list     []*Provider
	byIssuer map[string]*Provider
}

// NewSet builds a Provider, with New, for each identity provider of cfg
// that has a login section, all with redirectURI as their callback. It
// fails on the first that cannot be built (its discovery document cannot
// be fetched, its client secret file read).
func NewSet(ctx context.Context, cfg *config.Config, redirectURI string, hc *http.Client) (*Set, error) {
	s := &Set{byIssuer: map[string]*Provider{}}
	for i, idp := range cfg.IdentityProviders {
		if idp.Login == nil {
			continue
		}
		p, err := New(ctx, idp, redirectURI, hc)
		if err != nil {
			return nil, fmt.Errorf("identity_providers[%d]: %w", i, err)
		}
		if _, dup := s.byIssuer[p.issuer]; dup {
			return nil, fmt.Errorf("identity_providers[%d]: issuer %s is listed twice", i, p.issuer)
		}
		s.list = append(s.list, p)
		s.byIssuer[p.issuer] = p
	}
	return s, nil
}

// Lookup returns the provider of issuer.
func (s *Set) Lookup(issuer string) (*Provider, bool) {
	p, ok := s.byIssuer[issuer]
	return p, ok
}

// Providers returns the providers in the configuration's order, for the
// sign-in page.
func (s *Set) Providers() []*Provider { return append([]*Provider(nil), s.list...) }

// Len returns how many providers the set holds.
func (s *Set) Len() int { return len(s.list) }
