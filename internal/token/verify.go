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
	"github.com/mandate-dev/mandate/oauth"
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
	// verified with Keyring and must be RFC 9068 access tokens.
	Issuer  string
	Keyring *Keyring
	// Providers are the trusted identity providers.
	Providers []*Provider
	// Leeway is the allowed clock skew; zero means DefaultLeeway.
	Leeway time.Duration
	// MaxTTL, when positive, bounds exp−iat (and exp−now) of Mandate's own
	// tokens.
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
	HasScope             bool
	Act, MayAct          *actor.Actor
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
// the unverified iss only chooses the key source, by exact match; the key
// by kid; the algorithm pinned by the key; the signature; then, on the
// verified payload only, strict JSON, typ, iss, aud, exp, nbf/iat, lifetime
// and the remaining claims. Errors wrap one of the sentinels in errors.go.
func (v *Verifier) Verify(ctx context.Context, raw string) (*Verified, error) {
	j, err := jwt.ParseJWS(raw)
	if err != nil {
		return nil, err
	}
	iss, ok, err := j.UnverifiedString("iss")
	if err != nil || !ok {
		return nil, fmt.Errorf("%w: no iss", ErrUnknownIssuer)
	}
	key, algs, prov, err := v.key(ctx, iss, j.Header.KeyID)
	if err != nil {
		return nil, err
	}
	claims, err := j.Verify(key, algs)
	if err != nil {
		return nil, err
	}
	out := &Verified{Own: prov == nil, Issuer: iss, Type: j.Header.Type}
	if err := v.checkClaims(claims, prov, out); err != nil {
		return nil, err
	}
	return out, nil
}

// key chooses the key by (iss, kid): a kid is only ever looked up among the
// keys of the issuer the token names (THREATS.md T14). prov is nil for
// Mandate's own keys.
func (v *Verifier) key(ctx context.Context, iss, kid string) (jose.JSONWebKey, []jose.SignatureAlgorithm, *Provider, error) {
	if iss == v.Issuer && v.Issuer != "" && v.Keyring != nil {
		key, ok := v.Keyring.PublicKey(kid)
		if !ok {
			return jose.JSONWebKey{}, nil, nil, fmt.Errorf("%w: own kid", ErrUnknownKey)
		}
		return key, jwt.AlgorithmsFor(key, []string{key.Algorithm}), nil, nil
	}
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

// checkClaims validates the verified claims into out. prov is nil for
// Mandate's own tokens.
func (v *Verifier) checkClaims(c jwt.ClaimSet, prov *Provider, out *Verified) error {
	if prov == nil && out.Type != oauth.AccessTokenJWTType {
		// RFC 9068 §4: a Mandate token is only ever an access token; this
		// keeps any other JWT we might sign from passing as one (T11).
		return fmt.Errorf("%w: typ must be %s", ErrType, oauth.AccessTokenJWTType)
	}
	if iss, _, err := c.String("iss"); err != nil || iss != out.Issuer {
		return fmt.Errorf("%w: iss", ErrUnknownIssuer)
	}
	if err := v.checkAudience(c, prov, out); err != nil {
		return err
	}
	if err := v.checkTimes(c, prov, out); err != nil {
		return err
	}
	return checkIdentity(c, prov, out)
}

func (v *Verifier) checkAudience(c jwt.ClaimSet, prov *Provider, out *Verified) error {
	aud, ok, err := c.Audience()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrAudience, err)
	}
	if !ok {
		return fmt.Errorf("%w: no aud", ErrAudience)
	}
	if prov != nil && (prov.Audience == "" || !slices.Contains(aud, prov.Audience)) {
		return fmt.Errorf("%w: provider audience not in aud", ErrAudience)
	}
	out.Audiences = aud
	return nil
}

func (v *Verifier) checkTimes(c jwt.ClaimSet, prov *Provider, out *Verified) error {
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
	if out.IssuedAt, ok, err = c.NumericDate("iat"); err != nil {
		return err
	}
	if prov == nil && !ok {
		return fmt.Errorf("%w: iat required", ErrClaims)
	}
	limit := now.Add(leeway)
	if out.NotBefore.After(limit) || out.IssuedAt.After(limit) {
		return ErrNotYetValid
	}
	out.Expiry = exp
	if prov == nil && v.MaxTTL > 0 {
		if exp.Sub(out.IssuedAt) > v.MaxTTL || exp.Sub(now) > v.MaxTTL+leeway {
			return fmt.Errorf("%w: lifetime above the maximum", ErrClaims)
		}
	}
	return nil
}

// checkIdentity reads sub, jti, client_id, scope, act, may_act and the other
// claims Mandate uses.
func checkIdentity(c jwt.ClaimSet, prov *Provider, out *Verified) error {
	own := prov == nil
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
	if (own && !ok) || (ok && out.JTI == "") {
		return fmt.Errorf("%w: jti required", ErrClaims)
	}
	if out.ClientID, ok, err = c.String("client_id"); err != nil {
		return err
	}
	if own && (!ok || out.ClientID == "") {
		return fmt.Errorf("%w: client_id required", ErrClaims)
	}
	if out.DelegationID, _, err = c.String("delegation_id"); err != nil {
		return err
	}
	if out.Scopes, out.HasScope, err = c.Scopes(!own); err != nil {
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
	if own {
		if err := readLineage(c, out); err != nil {
			return err
		}
	}
	if ad, ok := c.Raw("authorization_details"); ok && string(ad) != "null" {
		if len(ad) == 0 || ad[0] != '[' {
			return fmt.Errorf("%w: authorization_details must be an array", ErrClaims)
		}
		out.AuthorizationDetails = slices.Clone(ad)
	}
	return nil
}

// maxExchangedFrom bounds the exchanged_from claim; a chain is far shorter.
const maxExchangedFrom = 16

// readLineage reads exchanged_from and gen from one of Mandate's tokens.
func readLineage(c jwt.ClaimSet, out *Verified) error {
	if raw, ok := c.Raw("exchanged_from"); ok {
		if err := json.Unmarshal(raw, &out.ExchangedFrom); err != nil || len(out.ExchangedFrom) > maxExchangedFrom {
			return fmt.Errorf("%w: exchanged_from must be a short array of strings", ErrClaims)
		}
	}
	if raw, ok := c.Raw("gen"); ok {
		if err := json.Unmarshal(raw, &out.Gen); err != nil || out.Gen < 0 {
			return fmt.Errorf("%w: gen must be a non-negative integer", ErrClaims)
		}
	}
	return nil
}
