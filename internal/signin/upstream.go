package signin

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/mandate-dev/mandate/internal/audit"
	"github.com/mandate-dev/mandate/internal/directory"
	"github.com/mandate-dev/mandate/internal/store"
	"github.com/mandate-dev/mandate/internal/upstream"
)

// UpstreamTTL is how long a sign-in at an identity provider may take, from
// StartUpstream to its callback.
const UpstreamTTL = 10 * time.Minute

// kindUpstream is the Pending kind of a sign-in at an identity provider,
// keyed by SHA-256 of its state.
const kindUpstream = "upstream"

// PerformerProvider prefixes the issuer of an identity provider to make
// the performer of the changes a sign-in through it makes to the person.
const PerformerProvider = "idp:"

// Errors of a sign-in at an identity provider, besides upstream's
// (ErrIssuer, ErrDenied and the rest, which FinishUpstream wraps).
var (
	// ErrUpstreamState is a callback that belongs to no sign-in in
	// progress in this browser: an unknown, used or expired state, or
	// a sign-in started in another browser.
	ErrUpstreamState = errors.New("signin: the provider's answer belongs to no sign-in in progress here")
	// ErrNotManaged is a provider's person whose id a person managed in
	// Mandate, or by another provider, has: they are not taken over.
	ErrNotManaged = errors.New("signin: the person of this id is not managed by this identity provider")
	// ErrProviderUnavailable is a provider that cannot be reached now.
	ErrProviderUnavailable = errors.New("signin: the identity provider cannot be reached")
)

// upstreamPending is what a sign-in at a provider keeps server-side.
type upstreamPending struct {
	SignIn upstream.Pending `json:"sign_in"`
	// Request is the pending authorization request to go on with, if
	// any.
	Request string `json:"request,omitempty"`
	// Browser is SHA-256 of the value of the browser's cookie: the
	// callback must come back to the browser that started.
	Browser []byte `json:"browser"`
}

// StartUpstream begins a sign-in at p, to go on with the pending
// authorization request request ("" for none): it keeps the sign-in's
// state server-side for UpstreamTTL and returns the provider's URL to send
// the browser to, and a value the browser must carry back (a cookie) so
// that a callback from another browser is refused (login CSRF).
func (s *Service) StartUpstream(ctx context.Context, p *upstream.Provider, request string) (authURL, browser string, err error) {
	authURL, st, err := p.Start(ctx)
	if err != nil {
		return "", "", fmt.Errorf("signin: %w", err)
	}
	browser, browserHash := newSecret()
	data, err := json.Marshal(upstreamPending{SignIn: st, Request: request, Browser: browserHash})
	if err != nil {
		return "", "", fmt.Errorf("signin: %w", err)
	}
	now := s.now()
	pend := store.Pending{Kind: kindUpstream, Hash: hashOf(st.State), Data: data, CreatedAt: now, ExpiresAt: now.Add(UpstreamTTL)}
	if err := s.Store.PutPending(ctx, pend); err != nil {
		return "", "", fmt.Errorf("signin: keep the sign-in: %w", err)
	}
	return authURL, browser, nil
}

// UpstreamSignIn is a finished sign-in at an identity provider.
type UpstreamSignIn struct {
	// User is the person as stored after the sign-in.
	User store.User
	// Issuer is the provider's.
	Issuer string
	// Request is the pending authorization request to go on with, or "".
	Request string
}

// FinishUpstream ends a sign-in at an identity provider: query is its
// callback's, browser the value StartUpstream gave the browser. The
// sign-in of the callback's state is taken (once: a replayed callback
// finds it gone), checked to be this browser's and unexpired, and
// finished at the provider it was started at (upstream's Finish: RFC 9207
// iss, state, code, ID token); then the person is created or updated as
// the provider says (directory.SyncPerson, performed by "idp:" + issuer),
// unless Mandate or another provider manages the person of that id.
//
// Every refusal is recorded as a refused person.sign_in with its reason,
// and wraps ErrUpstreamState, ErrNotManaged or one of upstream's errors;
// ErrProviderUnavailable and any other error are not the person's doing.
//
// When the provider has a recheck_every and returned a refresh token, the
// token is kept, sealed, as the person's grant at the provider (replacing
// any before) for RecheckDue; else any grant kept before is dropped.
func (s *Service) FinishUpstream(ctx context.Context, providers *upstream.Set, query url.Values, browser, requestID string) (UpstreamSignIn, error) {
	issuer, userID := "", ""
	refuse := func(reason string, err error) (UpstreamSignIn, error) {
		ev := s.event(audit.ActionSignIn, audit.ResultRefused, "", requestID)
		ev.Reason, ev.Resource, ev.OnBehalf = reason, issuer, userID
		if rerr := s.record(ctx, ev); rerr != nil {
			return UpstreamSignIn{}, errors.Join(err, rerr)
		}
		return UpstreamSignIn{}, err
	}
	state := query["state"]
	if len(state) != 1 || state[0] == "" || len(state[0]) > 128 {
		return refuse("unknown_state", ErrUpstreamState)
	}
	p, err := s.Store.TakePending(ctx, kindUpstream, hashOf(state[0]))
	switch {
	case errors.Is(err, store.ErrNotFound):
		return refuse("unknown_state", ErrUpstreamState)
	case err != nil:
		return UpstreamSignIn{}, fmt.Errorf("signin: %w", err)
	}
	var pend upstreamPending
	if err := json.Unmarshal(p.Data, &pend); err != nil {
		return UpstreamSignIn{}, fmt.Errorf("signin: a pending sign-in does not decode: %w", err)
	}
	issuer = pend.SignIn.Issuer
	switch {
	case !s.now().Before(p.ExpiresAt):
		return refuse("expired", ErrUpstreamState)
	case subtle.ConstantTimeCompare(hashOf(browser), pend.Browser) != 1:
		return refuse("another_browser", ErrUpstreamState)
	}
	provider, err := providers.Provider(ctx, issuer)
	switch {
	case errors.Is(err, upstream.ErrUnknownProvider):
		return refuse("unknown_provider", fmt.Errorf("%w: %w", ErrUpstreamState, err))
	case err != nil:
		return refuse("provider_unavailable", fmt.Errorf("%w: %w", ErrProviderUnavailable, err))
	}
	id, err := provider.Finish(ctx, query, pend.SignIn)
	if err != nil {
		return refuse(finishReason(err), fmt.Errorf("signin: %w", err))
	}
	userID = id.UserID
	u, err := s.Directory.SyncPerson(ctx, directory.Performer{ID: PerformerProvider + issuer, RequestID: requestID},
		store.User{ID: id.UserID, Permissions: id.Permissions, Roles: id.Roles, Provider: issuer})
	switch {
	case errors.Is(err, directory.ErrConflict):
		return refuse("not_managed_by_provider", fmt.Errorf("%w: %w", ErrNotManaged, err))
	case errors.Is(err, directory.ErrInvalid):
		return refuse("provider_claims_invalid", fmt.Errorf("signin: %w: %w", upstream.ErrClaims, err))
	case err != nil:
		return UpstreamSignIn{}, fmt.Errorf("signin: %w", err)
	}
	if err := s.keepGrant(ctx, providers.RecheckEvery(issuer) > 0, id); err != nil {
		return UpstreamSignIn{}, err
	}
	return UpstreamSignIn{User: u, Issuer: issuer, Request: pend.Request}, nil
}

// keepGrant stores id's refresh token as the person's grant at the
// provider when recheck is on and there is one, and drops any grant kept
// before otherwise: a token Mandate will not redeem is not kept. A grant
// that cannot be stored fails the sign-in: signed in without it, the
// person would not be rechecked.
func (s *Service) keepGrant(ctx context.Context, recheck bool, id upstream.Identity) error {
	if s.Grants == nil {
		return nil
	}
	if !recheck || id.RefreshToken == "" {
		if err := s.Grants.DeleteUpstreamGrant(ctx, id.UserID, id.Issuer); err != nil {
			return fmt.Errorf("signin: drop the provider grant: %w", err)
		}
		return nil
	}
	sealed, err := s.sealGrant(ctx, id.UserID, id.Issuer, grantSecret{Sub: id.Subject, RefreshToken: id.RefreshToken})
	if err != nil {
		return err
	}
	now := s.now()
	g := store.UpstreamGrant{Subject: id.UserID, Provider: id.Issuer, Sealed: sealed, CheckedAt: now, CreatedAt: now}
	if err := s.Grants.PutUpstreamGrant(ctx, g); err != nil {
		return fmt.Errorf("signin: keep the provider grant: %w", err)
	}
	return nil
}

// finishReason is the audit reason of an error of upstream's Finish.
func finishReason(err error) string {
	for _, r := range []struct {
		err    error
		reason string
	}{
		{upstream.ErrIssuer, "issuer_mismatch"},
		{upstream.ErrState, "state_mismatch"},
		{upstream.ErrDenied, "provider_denied"},
		{upstream.ErrClaims, "provider_claims_invalid"},
		{upstream.ErrExchange, "provider_tokens_refused"},
	} {
		if errors.Is(err, r.err) {
			return r.reason
		}
	}
	return "provider_failed"
}
