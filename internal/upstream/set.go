package upstream

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/mandate-dev/mandate/internal/config"
)

// ErrUnknownProvider is an issuer that no configured login provider has.
var ErrUnknownProvider = errors.New("upstream: no login provider has this issuer")

// DefaultRetry is how long a Set waits, after a provider could not be
// built (its discovery document unreachable), before it tries again.
const DefaultRetry = 30 * time.Second

// Set is every configured provider people sign in through, in the order of
// the configuration. It is safe for concurrent use.
//
// With several providers, a callback's Pending names the provider its code
// must go to, and Finish refuses an iss of another one (RFC 9207). A
// provider that does not send iss cannot be told apart that way: give each
// provider its own redirect URI (New takes one per provider) when any of
// them lacks it.
type Set struct {
	entries     []*entry
	byIssuer    map[string]*entry
	redirectURI string
	hc          *http.Client
	// Retry is the wait after a failed build; 0 means DefaultRetry. Set
	// it before the first use.
	Retry time.Duration
	// Now is the clock of the wait; nil means time.Now. Set it before
	// the first use.
	Now func() time.Time
}

// entry is one configured provider, built on first use when the Set is
// lazy.
type entry struct {
	idp config.IdentityProvider
	idx int // in the configuration's identity_providers
	mu  sync.Mutex
	p   *Provider
	err error
	at  time.Time // of the last failed build
}

// newSet lists the login providers of cfg, building none.
func newSet(cfg *config.Config, redirectURI string, hc *http.Client) (*Set, error) {
	s := &Set{byIssuer: map[string]*entry{}, redirectURI: redirectURI, hc: hc}
	for i, idp := range cfg.IdentityProviders {
		if idp.Login == nil {
			continue
		}
		if _, dup := s.byIssuer[idp.Issuer]; dup {
			return nil, fmt.Errorf("identity_providers[%d]: issuer %s is listed twice", i, idp.Issuer)
		}
		e := &entry{idp: idp, idx: i}
		s.entries = append(s.entries, e)
		s.byIssuer[idp.Issuer] = e
	}
	return s, nil
}

// NewSet builds a Provider, with New, for each identity provider of cfg
// that has a login section, all with redirectURI as their callback. It
// fails on the first that cannot be built (its discovery document cannot
// be fetched, its client secret file read).
func NewSet(ctx context.Context, cfg *config.Config, redirectURI string, hc *http.Client) (*Set, error) {
	s, err := newSet(cfg, redirectURI, hc)
	if err != nil {
		return nil, err
	}
	for _, e := range s.entries {
		if e.p, err = New(ctx, e.idp, redirectURI, hc); err != nil {
			return nil, fmt.Errorf("identity_providers[%d]: %w", e.idx, err)
		}
	}
	return s, nil
}

// NewLazySet is NewSet that builds each provider on its first use
// (Provider) instead, so that a provider that cannot be reached when
// Mandate starts does not stop it: a failed build is tried again on a
// use at least Retry later. It fails only on an issuer listed twice.
func NewLazySet(cfg *config.Config, redirectURI string, hc *http.Client) (*Set, error) {
	return newSet(cfg, redirectURI, hc)
}

// Provider returns the provider of issuer, building it if it is not yet:
// ErrUnknownProvider when no login provider has issuer, New's error when it
// cannot be built (the same error, without asking again, until Retry has
// passed).
func (s *Set) Provider(ctx context.Context, issuer string) (*Provider, error) {
	e, ok := s.byIssuer[issuer]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrUnknownProvider, shown(issuer))
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.p != nil {
		return e.p, nil
	}
	now := s.now()
	retry := s.Retry
	if retry <= 0 {
		retry = DefaultRetry
	}
	if e.err != nil && now.Sub(e.at) < retry {
		return nil, e.err
	}
	p, err := New(ctx, e.idp, s.redirectURI, s.hc)
	if err != nil {
		e.err, e.at = err, now
		return nil, err
	}
	e.p, e.err = p, nil
	return p, nil
}

func (s *Set) now() time.Time {
	if s.Now == nil {
		return time.Now()
	}
	return s.Now()
}

// Lookup returns the provider of issuer when it is built.
func (s *Set) Lookup(issuer string) (*Provider, bool) {
	e, ok := s.byIssuer[issuer]
	if !ok {
		return nil, false
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.p, e.p != nil
}

// Providers returns the providers built so far, in the configuration's
// order.
func (s *Set) Providers() []*Provider {
	var out []*Provider
	for _, e := range s.entries {
		if p, ok := s.Lookup(e.idp.Issuer); ok {
			out = append(out, p)
		}
	}
	return out
}

// Choice is a login provider as the sign-in page lists it, built or not.
type Choice struct {
	Issuer string
	Name   string
}

// Choices returns every configured login provider, in the
// configuration's order.
func (s *Set) Choices() []Choice {
	out := make([]Choice, 0, len(s.entries))
	for _, e := range s.entries {
		out = append(out, Choice{Issuer: e.idp.Issuer, Name: e.idp.Login.Name})
	}
	return out
}

// Len returns how many login providers the set holds, built or not.
func (s *Set) Len() int { return len(s.entries) }

// Recheck is a login provider whose people are asked about again: every
// Every (its recheck_every), their refresh token is redeemed (Recheck).
type Recheck struct {
	Issuer string
	Every  time.Duration
}

// Rechecks returns the login providers with a recheck_every, built or
// not, in the configuration's order.
func (s *Set) Rechecks() []Recheck {
	var out []Recheck
	for _, e := range s.entries {
		if every := e.idp.Login.RecheckEvery.Std(); every > 0 {
			out = append(out, Recheck{Issuer: e.idp.Issuer, Every: every})
		}
	}
	return out
}

// RecheckEvery returns the recheck_every of the login provider of issuer:
// 0 when it has none, or no login provider has issuer.
func (s *Set) RecheckEvery(issuer string) time.Duration {
	if e, ok := s.byIssuer[issuer]; ok {
		return e.idp.Login.RecheckEvery.Std()
	}
	return 0
}
