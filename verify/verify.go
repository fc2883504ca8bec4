package verify

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/mandate-dev/mandate/actor"
	"github.com/mandate-dev/mandate/jwks"
	"github.com/mandate-dev/mandate/jwt"
	"github.com/mandate-dev/mandate/oauth"
)

// Verifier checks Mandate access tokens for one resource server. Build it
// with New; it is safe for concurrent use.
type Verifier struct {
	cfg  Config
	keys KeySource
}

// New returns a Verifier for cfg. It refuses an empty Issuer, Audience or
// Algorithms, an algorithm that is not an asymmetric signature algorithm,
// and negative limits. Without Keys or JWKSURI it fetches the issuer's
// RFC 8414 metadata once, with ctx, to learn jwks_uri, and fails if that
// fetch fails; the keys themselves are fetched on first use.
func New(ctx context.Context, cfg Config) (*Verifier, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	keys, err := cfg.keySource(ctx)
	if err != nil {
		return nil, err
	}
	return &Verifier{cfg: cfg, keys: keys}, nil
}

// Verify checks raw, a compact JWS access token, and returns what it says.
// In order, and the first failure is the one reported (see the errors):
// structure and header (8 KiB, three canonical base64url segments, no
// jku/jwk/x5u/x5c/crit/zip/b64/cty, strict JSON); the unverified iss must
// be the issuer, which scopes the kid lookup (THREATS.md T14); the key by
// kid (a key the issuer revoked is ErrRevoked here, see KeyRevocation); the
// algorithm the key pins; the signature; then, on the verified
// payload only, typ at+jwt, iss, aud, the required claims, the chain depth,
// the lifetime, revocation, and last exp, nbf and iat with the leeway.
func (v *Verifier) Verify(ctx context.Context, raw string) (*Principal, error) {
	j, err := jwt.ParseJWS(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	iss, _, err := j.UnverifiedString("iss")
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if iss != v.cfg.Issuer {
		return nil, ErrIssuer
	}
	key, err := v.keys.Key(ctx, j.Header.KeyID)
	switch {
	case errors.Is(err, jwks.ErrRevokedKey):
		return nil, fmt.Errorf("%w: %w", ErrRevoked, err)
	case errors.Is(err, jwks.ErrUnknownKey):
		return nil, fmt.Errorf("%w: %w", ErrUnknownKey, err)
	case err != nil:
		return nil, fmt.Errorf("%w: %w", ErrKeyUnavailable, err)
	}
	if !jwt.Allows(key, j.Header.Algorithm, v.cfg.Algorithms) {
		return nil, ErrAlgorithm
	}
	pinned := [1]jose.SignatureAlgorithm{jose.SignatureAlgorithm(j.Header.Algorithm)}
	claims, err := j.Verify(key, pinned[:])
	switch {
	case errors.Is(err, jwt.ErrSignature):
		return nil, fmt.Errorf("%w: %w", ErrSignature, err)
	case errors.Is(err, jwt.ErrAlgorithm):
		return nil, fmt.Errorf("%w: %w", ErrAlgorithm, err)
	case err != nil:
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if !accessTokenType(j.Header.Type) {
		// RFC 9068 §4, RFC 8725 §3.11: an ID token, a client assertion or
		// any other JWT from the same issuer is not an access token (T11).
		return nil, ErrType
	}
	p := &Principal{Issuer: iss, KeyID: j.Header.KeyID}
	if err := v.readClaims(claims, p); err != nil {
		return nil, err
	}
	if err := readTimes(claims, p, v.cfg.MaxTTL); err != nil {
		return nil, err
	}
	timeErr := v.checkWindow(p)
	if v.cfg.Revocation != nil {
		revoked, err := v.cfg.Revocation.Revoked(ctx, p)
		switch {
		case err == nil && revoked:
			return nil, ErrRevoked
		case err != nil && timeErr == nil:
			return nil, fmt.Errorf("%w: %w", ErrRevocationUnavailable, err)
		}
	}
	if timeErr != nil {
		return nil, timeErr
	}
	return p, nil
}

// readClaims checks iss, aud and the identity claims into p; times are
// checked apart so that revocation can outrank expiry.
func (v *Verifier) readClaims(c jwt.ClaimSet, p *Principal) error {
	if _, same := c.StringEquals("iss", v.cfg.Issuer); !same {
		return ErrIssuer
	}
	aud, ok, err := c.Audience()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrAudience, err)
	}
	if !ok || !slices.Contains(aud, v.cfg.Audience) {
		return ErrAudience
	}
	p.Audience = aud
	// One allocation for the four identity strings (StringsInto).
	var ids [4]string
	if err := c.StringsInto([]string{"sub", "jti", "client_id", "delegation_id"}, ids[:]); err != nil {
		return fmt.Errorf("%w: %w", ErrClaims, err)
	}
	p.Subject, p.JTI, p.ClientID, p.DelegationID = ids[0], ids[1], ids[2], ids[3]
	for i, name := range []string{"sub", "jti", "client_id"} {
		if ids[i] == "" {
			return fmt.Errorf("%w: %s required", ErrClaims, name)
		}
	}
	if actor.ValidSubject(p.Subject) != nil {
		return fmt.Errorf("%w: sub", ErrClaims)
	}
	if p.Scopes, _, err = c.Scopes(false); err != nil {
		return fmt.Errorf("%w: %w", ErrClaims, err)
	}
	if p.Chain, err = c.Chain("act", v.cfg.MaxDepth); err != nil {
		if errors.Is(err, actor.ErrTooDeep) {
			return fmt.Errorf("%w: %w", ErrTooDeep, err)
		}
		return fmt.Errorf("%w: %w", ErrClaims, err)
	}
	if len(p.Chain) > 0 {
		p.Actor = p.Chain[0]
	}
	// A token exchanged at every hop of the deepest chain allowed names
	// at most MaxDepth+1 ancestors.
	if p.ExchangedFrom, err = readExchangedFrom(c, v.cfg.MaxDepth+1); err != nil {
		return fmt.Errorf("%w: %w", ErrClaims, err)
	}
	if p.Generation, err = readGeneration(c); err != nil {
		return fmt.Errorf("%w: %w", ErrClaims, err)
	}
	ctxClaim, err := c.Object("context")
	if err != nil {
		return fmt.Errorf("%w: %w", ErrClaims, err)
	}
	p.Context = ctxClaim
	if p.AuthorizationDetails, err = parseAuthorizationDetails(c); err != nil {
		return fmt.Errorf("%w: %w", ErrClaims, err)
	}
	return nil
}

// accessTokenType reports whether typ is "at+jwt" or its full media type
// "application/at+jwt" (RFC 9068 §4; media types compare without case).
func accessTokenType(typ string) bool {
	return typ == oauth.AccessTokenJWTType ||
		strings.EqualFold(typ, oauth.AccessTokenJWTType) ||
		strings.EqualFold(typ, "application/"+oauth.AccessTokenJWTType)
}

// readTimes reads exp, iat and nbf into p and checks the lifetime: a
// missing exp or iat, a value that is not an integer date, or exp−iat above
// maxTTL (or not positive) is ErrClaims.
func readTimes(c jwt.ClaimSet, p *Principal, maxTTL time.Duration) error {
	exp, hasExp, err1 := c.NumericDate("exp")
	iat, hasIAT, err2 := c.NumericDate("iat")
	nbf, _, err3 := c.NumericDate("nbf")
	if err := errors.Join(err1, err2, err3); err != nil {
		return fmt.Errorf("%w: %w", ErrClaims, err)
	}
	if !hasExp || !hasIAT {
		return fmt.Errorf("%w: exp and iat required", ErrClaims)
	}
	p.Expiry, p.IssuedAt, p.NotBefore = exp, iat, nbf
	if exp.Sub(iat) > maxTTL || !exp.After(iat) {
		return fmt.Errorf("%w: lifetime above the maximum", ErrClaims)
	}
	return nil
}

// checkWindow checks p's times against the clock: exp in the past beyond
// the leeway is ErrExpired; nbf or iat in the future beyond it is
// ErrNotYetValid (with 60 s leeway, 8 s ahead passes and 61 s does not).
func (v *Verifier) checkWindow(p *Principal) error {
	now := v.cfg.Now()
	if !p.Expiry.After(now.Add(-v.cfg.Leeway)) {
		return ErrExpired
	}
	limit := now.Add(v.cfg.Leeway)
	if p.NotBefore.After(limit) || p.IssuedAt.After(limit) {
		return ErrNotYetValid
	}
	return nil
}

// Config returns the configuration in force, defaults filled in. Slices
// are shared: do not modify them.
func (v *Verifier) Config() Config { return v.cfg }
