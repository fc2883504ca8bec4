package token

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/mandate-dev/mandate/actor"
	"github.com/mandate-dev/mandate/jwks"
	"github.com/mandate-dev/mandate/jwt"
	"github.com/mandate-dev/mandate/verify"
)

// DefaultLeeway is the clock skew allowed on exp, nbf and iat (THREATS.md
// "Decisions" 8).
const DefaultLeeway = 60 * time.Second

// defaultProviderAlgorithms are the algorithms a Provider with no Algorithms
// accepts (RS256, PS256, ES256, ES384, ES512, EdDSA); each key still pins its
// own (jwt.AlgorithmsFor). Read-only.
var defaultProviderAlgorithms = []string{"RS256", "PS256", "ES256", "ES384", "ES512", "EdDSA"}

// KeySource finds a public key by kid. Key returns an error matching
// jwks.ErrUnknownKey when the source holds no such key; any other error means
// the keys could not be obtained. *jwks.Cache and jwks.Static satisfy it.
type KeySource interface {
	Key(ctx context.Context, kid string) (jose.JSONWebKey, error)
}

// Provider is a trusted identity provider whose tokens may be presented as
// subject or actor tokens.
type Provider struct {
	// Issuer is matched exactly against iss (no trailing-slash or case
	// folding).
	Issuer string
	// Audience must be among the token's aud values; a Provider with an
	// empty Audience accepts no token.
	Audience string
	// Algorithms narrows what the provider's keys may sign with; empty
	// means RS256, PS256, ES256, ES384, ES512 and EdDSA. HMAC and "none"
	// are never accepted whatever this holds.
	Algorithms []string
	// Keys finds the provider's keys, usually a *jwks.Cache.
	Keys KeySource
}

// Verifier checks JWTs presented to the server: Mandate's own access tokens
// (keys from Keyring) and tokens of configured identity providers. Its
// fields are read-only once Verify is first called; it is then safe for
// concurrent use.
type Verifier struct {
	// Issuer is Mandate's issuer identifier; tokens with this iss are
	// verified with Keyring by verify.CheckJWS, the checks of every
	// resource server (ownRules).
	Issuer  string
	Keyring *Keyring
	// Providers are the trusted identity providers.
	Providers []*Provider
	// Leeway is the allowed clock skew; zero means DefaultLeeway.
	Leeway time.Duration
	// MaxTTL bounds exp−iat of Mandate's own tokens; zero means
	// verify.DefaultMaxTTL (15 minutes), as for a resource server.
	MaxTTL time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Verified is what a verified token says.
type Verified struct {
	// Own is true for a token Mandate issued.
	Own                                          bool
	Issuer, Subject, JTI, ClientID, DelegationID string
	Audiences                                    []string
	Scopes                                       []string
	// HasScope reports that the token carried a scope claim.
	HasScope bool
	Act      *actor.Actor
	// MayAct is read from a provider's token only (RFC 8693 §4.4): Mandate
	// never mints it, and a resource server does not read it.
	MayAct               *actor.Actor
	Context              map[string]any
	AuthorizationDetails json.RawMessage
	// IssuedAt and NotBefore are zero when the claim is absent.
	IssuedAt, NotBefore, Expiry time.Time
	// Type is the typ header, "" when absent.
	Type string
	// ExchangedFrom and Gen are read from Mandate's own tokens only (see
	// Claims).
	ExchangedFrom []string
	Gen           int64
}

// Verify checks raw and returns its claims. Checks run in this order, and
// the first failure is the one reported: structure and header (ParseJWS);
// the unverified iss only chooses the rules, by exact match. Mandate's own
// tokens are then checked by verify.CheckJWS, the code every resource
// server runs, with the keys of Keyring (ownRules); a provider's by the
// key by kid, the algorithm pinned by the key, the signature, then, on the
// verified payload only, strict JSON, iss, aud, exp, nbf/iat and the
// remaining claims. Errors wrap one of the sentinels in errors.go (and,
// for Mandate's own tokens, verify's too).
func (v *Verifier) Verify(ctx context.Context, raw string) (*Verified, error) {
	j, err := jwt.ParseJWS(raw)
	if err != nil {
		return nil, err
	}
	iss, ok, err := j.UnverifiedString("iss")
	if err != nil || !ok {
		return nil, fmt.Errorf("%w: no iss", ErrUnknownIssuer)
	}
	if iss == v.Issuer && v.Issuer != "" && v.Keyring != nil {
		return v.verifyOwn(ctx, j)
	}
	key, algs, prov, err := v.providerKey(ctx, iss, j.Header.KeyID)
	if err != nil {
		return nil, err
	}
	claims, err := j.Verify(key, algs)
	if err != nil {
		return nil, err
	}
	out := &Verified{Issuer: iss, Type: j.Header.Type}
	if err := v.checkClaims(claims, prov, out); err != nil {
		return nil, err
	}
	return out, nil
}

// ownAlgorithms are the algorithms Mandate's keys sign with (KeyringConfig.Alg);
// each key pins its own. Read-only.
var ownAlgorithms = []string{AlgEdDSA, AlgES256, AlgRS256}

// ownRules are the verify.Rules of Mandate's own tokens presented back to
// it: those of a resource server, for any audience (the grant checks who a
// token is addressed to), with the deepest chain the act claim may hold
// (the grant bounds depth by configuration), and MaxTTL defaulting as
// verify's does.
func (v *Verifier) ownRules() verify.Rules {
	now := v.Now
	if now == nil {
		now = time.Now
	}
	leeway := v.Leeway
	if leeway <= 0 {
		leeway = DefaultLeeway
	}
	maxTTL := v.MaxTTL
	if maxTTL <= 0 {
		maxTTL = verify.DefaultMaxTTL
	}
	return verify.Rules{
		Issuer: v.Issuer, AnyAudience: true, Algorithms: ownAlgorithms,
		Leeway: leeway, MaxTTL: maxTTL, MaxDepth: actor.MaxDepth, Now: now,
	}
}

// verifyOwn checks one of Mandate's own tokens with verify.CheckJWS and
// reads what the server needs beyond a Principal from its verified claims.
func (v *Verifier) verifyOwn(ctx context.Context, j *jwt.JWS) (*Verified, error) {
	p, claims, err := verify.CheckJWS(ctx, j, keyringKeys{v.Keyring}, v.ownRules())
	if err != nil {
		return nil, ownError(err)
	}
	out := &Verified{
		Own: true, Issuer: p.Issuer, Subject: p.Subject, JTI: p.JTI, ClientID: p.ClientID, DelegationID: p.DelegationID,
		Audiences: p.Audience, Scopes: p.Scopes, HasScope: claims.Has("scope"), Act: actor.New(p.Chain),
		IssuedAt: p.IssuedAt, NotBefore: p.NotBefore, Expiry: p.Expiry, Type: j.Header.Type,
		Context: p.Context, ExchangedFrom: p.ExchangedFrom, Gen: p.Generation,
	}
	if len(p.AuthorizationDetails) > 0 {
		// CheckJWS has checked the array; the grant bounds the next hop by
		// it as sent.
		ad, _ := claims.Raw("authorization_details")
		out.AuthorizationDetails = slices.Clone(ad)
	}
	return out, nil
}

// keyringKeys is a Keyring as verify.KeySource.
type keyringKeys struct{ k *Keyring }

// Key returns the published key kid, or an error matching
// jwks.ErrUnknownKey.
func (s keyringKeys) Key(_ context.Context, kid string) (jose.JSONWebKey, error) {
	key, ok := s.k.PublicKey(kid)
	if !ok {
		return jose.JSONWebKey{}, fmt.Errorf("%w: own kid", jwks.ErrUnknownKey)
	}
	return key, nil
}

// ownErrors maps verify's sentinels to this package's. Read-only.
var ownErrors = [...]struct{ from, to error }{
	{verify.ErrMalformed, ErrMalformed},
	{verify.ErrIssuer, ErrUnknownIssuer},
	{verify.ErrUnknownKey, ErrUnknownKey},
	{verify.ErrRevoked, ErrUnknownKey},
	{verify.ErrKeyUnavailable, ErrKeyUnavailable},
	{verify.ErrAlgorithm, ErrAlgorithm},
	{verify.ErrSignature, ErrSignature},
	{verify.ErrType, ErrType},
	{verify.ErrAudience, ErrAudience},
	{verify.ErrTooDeep, ErrClaims},
	{verify.ErrClaims, ErrClaims},
	{verify.ErrExpired, ErrExpired},
	{verify.ErrNotYetValid, ErrNotYetValid},
}

// ownError wraps err, from verify.CheckJWS, in the sentinel of this
// package that says the same, so that callers test one set.
func ownError(err error) error {
	for _, e := range ownErrors {
		if errors.Is(err, e.from) {
			return fmt.Errorf("%w: %w", e.to, err)
		}
	}
	return fmt.Errorf("token: own token: %w", err)
}

// providerKey chooses a provider's key by (iss, kid): a kid is only ever
// looked up among the keys of the issuer the token names (THREATS.md T14).
func (v *Verifier) providerKey(ctx context.Context, iss, kid string) (jose.JSONWebKey, []jose.SignatureAlgorithm, *Provider, error) {
	for _, p := range v.Providers {
		if p == nil || p.Issuer == "" || p.Issuer != iss {
			continue
		}
		if p.Keys == nil {
			return jose.JSONWebKey{}, nil, nil, fmt.Errorf("%w: provider has no key source", ErrKeyUnavailable)
		}
		key, err := p.Keys.Key(ctx, kid)
		if errors.Is(err, jwks.ErrUnknownKey) {
			return jose.JSONWebKey{}, nil, nil, fmt.Errorf("%w: %w", ErrUnknownKey, err)
		}
		if err != nil {
			return jose.JSONWebKey{}, nil, nil, fmt.Errorf("%w: %w", ErrKeyUnavailable, err)
		}
		allowed := p.Algorithms
		if len(allowed) == 0 {
			allowed = defaultProviderAlgorithms
		}
		return key, jwt.AlgorithmsFor(key, allowed), p, nil
	}
	return jose.JSONWebKey{}, nil, nil, ErrUnknownIssuer
}

// checkClaims validates a provider's verified claims into out.
func (v *Verifier) checkClaims(c jwt.ClaimSet, prov *Provider, out *Verified) error {
	if iss, _, err := c.String("iss"); err != nil || iss != out.Issuer {
		return fmt.Errorf("%w: iss", ErrUnknownIssuer)
	}
	if err := checkAudience(c, prov, out); err != nil {
		return err
	}
	if err := v.checkTimes(c, out); err != nil {
		return err
	}
	return checkIdentity(c, out)
}

func checkAudience(c jwt.ClaimSet, prov *Provider, out *Verified) error {
	aud, ok, err := c.Audience()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrAudience, err)
	}
	if !ok {
		return fmt.Errorf("%w: no aud", ErrAudience)
	}
	if prov.Audience == "" || !slices.Contains(aud, prov.Audience) {
		return fmt.Errorf("%w: provider audience not in aud", ErrAudience)
	}
	out.Audiences = aud
	return nil
}

// checkTimes checks a provider token's exp (required), nbf and iat
// (optional) against the clock with the leeway.
func (v *Verifier) checkTimes(c jwt.ClaimSet, out *Verified) error {
	now := time.Now()
	if v.Now != nil {
		now = v.Now()
	}
	leeway := v.Leeway
	if leeway <= 0 {
		leeway = DefaultLeeway
	}
	exp, ok, err := c.NumericDate("exp")
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%w: exp required", ErrClaims)
	}
	if !exp.After(now.Add(-leeway)) {
		return ErrExpired
	}
	if out.NotBefore, _, err = c.NumericDate("nbf"); err != nil {
		return err
	}
	if out.IssuedAt, _, err = c.NumericDate("iat"); err != nil {
		return err
	}
	limit := now.Add(leeway)
	if out.NotBefore.After(limit) || out.IssuedAt.After(limit) {
		return ErrNotYetValid
	}
	out.Expiry = exp
	return nil
}

// checkIdentity reads a provider token's sub, jti, client_id, scope, act,
// may_act and the other claims Mandate uses.
func checkIdentity(c jwt.ClaimSet, out *Verified) error {
	var err error
	var ok bool
	if out.Subject, _, err = c.String("sub"); err != nil {
		return err
	}
	if actor.ValidSubject(out.Subject) != nil {
		return fmt.Errorf("%w: sub missing or invalid", ErrClaims)
	}
	if out.JTI, ok, err = c.String("jti"); err != nil {
		return err
	}
	if ok && out.JTI == "" {
		return fmt.Errorf("%w: jti must not be empty", ErrClaims)
	}
	if out.ClientID, _, err = c.String("client_id"); err != nil {
		return err
	}
	if out.DelegationID, _, err = c.String("delegation_id"); err != nil {
		return err
	}
	if out.Scopes, out.HasScope, err = c.Scopes(true); err != nil {
		return err
	}
	if out.Act, err = c.Actor("act"); err != nil {
		return err
	}
	if out.MayAct, err = c.Actor("may_act"); err != nil {
		return err
	}
	if out.Context, err = c.Object("context"); err != nil {
		return err
	}
	if ad, ok := c.Raw("authorization_details"); ok && string(ad) != "null" {
		if len(ad) == 0 || ad[0] != '[' {
			return fmt.Errorf("%w: authorization_details must be an array", ErrClaims)
		}
		out.AuthorizationDetails = slices.Clone(ad)
	}
	return nil
}
