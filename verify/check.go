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

// Rules are what a Mandate access token must meet wherever it is checked:
// a Verifier applies them with the values of its Config, and the issuer
// applies the same ones, through CheckJWS, to its own tokens presented
// back to it (subject and actor tokens, introspection), so that the two
// can never disagree on a token. Rules have no defaults: every field is
// required unless its comment says otherwise, and CheckJWS refuses Rules
// that leave one out rather than skip its check.
type Rules struct {
	// Issuer is compared exactly with iss (no trailing-slash or case
	// folding).
	Issuer string
	// Audience must be among the aud values. Required unless AnyAudience
	// is set, and then it must be empty.
	Audience string
	// AnyAudience accepts a token whatever it is addressed to; aud must
	// still be present and well formed. It is for the issuer, to whom its
	// own tokens come back addressed to anyone; a resource server always
	// names its Audience.
	AnyAudience bool
	// Algorithms are the signature algorithms accepted; each key narrows
	// them to the one its type and "alg" pin (jwt.Allows). Only asymmetric
	// signature algorithms may be named.
	Algorithms []string
	// Leeway is the clock skew allowed on exp, nbf and iat; it may be 0.
	Leeway time.Duration
	// MaxTTL bounds exp−iat; it must be positive.
	MaxTTL time.Duration
	// MaxDepth bounds the number of actors in the act chain, from 1 to 16
	// (actor.MaxDepth).
	MaxDepth int
	// Now is the clock.
	Now func() time.Time
}

// validate refuses Rules that leave out a check.
func (r *Rules) validate() error {
	var errs []error
	if r.Issuer == "" {
		errs = append(errs, errors.New("Issuer is required"))
	}
	if (r.Audience == "") != r.AnyAudience {
		errs = append(errs, errors.New("exactly one of Audience and AnyAudience is required"))
	}
	if len(r.Algorithms) == 0 {
		errs = append(errs, errors.New("Algorithms is required"))
	}
	for _, a := range r.Algorithms {
		if !slices.Contains(signingAlgorithms, a) {
			errs = append(errs, fmt.Errorf("algorithm %q is not an asymmetric signature algorithm", a))
		}
	}
	if r.Leeway < 0 || r.MaxTTL <= 0 || r.MaxDepth < 1 || r.MaxDepth > actor.MaxDepth || r.Now == nil {
		errs = append(errs, errors.New("Leeway ≥ 0, MaxTTL > 0, MaxDepth from 1 to 16 and Now are required"))
	}
	if len(errs) > 0 {
		return fmt.Errorf("verify: invalid Rules: %w", errors.Join(errs...))
	}
	return nil
}

// CheckJWS checks j, a parsed Mandate access token, against r with the
// issuer's keys, and returns what it says and its verified claims (for
// the claims Principal does not carry). It is Verify without the
// revocation check, and takes the same steps in the same order, the first
// failure being the one reported: the unverified iss must be r.Issuer,
// which scopes the kid lookup; the key by kid; the algorithm the key pins,
// among r.Algorithms; the signature; then, on the verified payload only,
// typ at+jwt, iss, aud, sub, jti, client_id, the act chain, the other
// claims and the lifetime; last exp, nbf and iat against the clock. Errors
// wrap the sentinels Verify returns; Rules that leave out a check are an
// error that wraps none of them. It is safe for concurrent use.
func CheckJWS(ctx context.Context, j *jwt.JWS, keys KeySource, r Rules) (*Principal, jwt.ClaimSet, error) {
	if err := r.validate(); err != nil {
		return nil, jwt.ClaimSet{}, err
	}
	p, claims, timeErr, err := check(ctx, j, keys, &r)
	if err == nil {
		err = timeErr
	}
	if err != nil {
		return nil, jwt.ClaimSet{}, err
	}
	return p, claims, nil
}

// check is CheckJWS on validated rules. A failure of the clock checks
// (exp, nbf, iat) comes back apart, as timeErr, with p: Verify ranks it
// below revocation.
func check(ctx context.Context, j *jwt.JWS, keys KeySource, r *Rules) (p *Principal, claims jwt.ClaimSet, timeErr, err error) {
	iss, _, err := j.UnverifiedString("iss")
	if err != nil {
		return nil, claims, nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if iss != r.Issuer {
		return nil, claims, nil, ErrIssuer
	}
	key, err := keys.Key(ctx, j.Header.KeyID)
	switch {
	case errors.Is(err, jwks.ErrRevokedKey):
		return nil, claims, nil, fmt.Errorf("%w: %w", ErrRevoked, err)
	case errors.Is(err, jwks.ErrUnknownKey):
		return nil, claims, nil, fmt.Errorf("%w: %w", ErrUnknownKey, err)
	case err != nil:
		return nil, claims, nil, fmt.Errorf("%w: %w", ErrKeyUnavailable, err)
	}
	if !jwt.Allows(key, j.Header.Algorithm, r.Algorithms) {
		return nil, claims, nil, ErrAlgorithm
	}
	pinned := [1]jose.SignatureAlgorithm{jose.SignatureAlgorithm(j.Header.Algorithm)}
	claims, err = j.Verify(key, pinned[:])
	switch {
	case errors.Is(err, jwt.ErrSignature):
		return nil, claims, nil, fmt.Errorf("%w: %w", ErrSignature, err)
	case errors.Is(err, jwt.ErrAlgorithm):
		return nil, claims, nil, fmt.Errorf("%w: %w", ErrAlgorithm, err)
	case err != nil:
		return nil, claims, nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if !accessTokenType(j.Header.Type) {
		// RFC 9068 §4, RFC 8725 §3.11: an ID token, a client assertion or
		// any other JWT from the same issuer is not an access token (T11).
		return nil, claims, nil, ErrType
	}
	p = &Principal{Issuer: iss, KeyID: j.Header.KeyID}
	if err := readClaims(claims, p, r); err != nil {
		return nil, claims, nil, err
	}
	if err := readTimes(claims, p, r.MaxTTL); err != nil {
		return nil, claims, nil, err
	}
	return p, claims, checkWindow(p, r), nil
}

// readClaims checks iss, aud and the identity claims into p; times are
// checked apart so that revocation can outrank expiry.
func readClaims(c jwt.ClaimSet, p *Principal, r *Rules) error {
	if _, same := c.StringEquals("iss", r.Issuer); !same {
		return ErrIssuer
	}
	aud, ok, err := c.Audience()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrAudience, err)
	}
	if !ok || !r.AnyAudience && !slices.Contains(aud, r.Audience) {
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
	if p.Chain, err = c.Chain("act", r.MaxDepth); err != nil {
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
	if p.ExchangedFrom, err = readExchangedFrom(c, r.MaxDepth+1); err != nil {
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
// "application/at+jwt" (RFC 9068 §2.1, §4; media types compare without
// case).
func accessTokenType(typ string) bool {
	return typ == oauth.AccessTokenJWTType ||
		strings.EqualFold(typ, oauth.AccessTokenJWTType) ||
		strings.EqualFold(typ, "application/"+oauth.AccessTokenJWTType)
}

// readTimes reads exp, iat and nbf into p and checks the lifetime: a
// missing exp or iat, a value that is not an integer date, or exp−iat above
// maxTTL is ErrClaims.
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
	if exp.Sub(iat) > maxTTL {
		return fmt.Errorf("%w: lifetime above the maximum", ErrClaims)
	}
	return nil
}

// checkWindow checks p's times against the clock: exp in the past beyond
// the leeway is ErrExpired; nbf or iat in the future beyond it is
// ErrNotYetValid (with 60 s leeway, 8 s ahead passes and 61 s does not);
// then an exp before iat beyond the leeway, a token never valid, is
// ErrClaims.
func checkWindow(p *Principal, r *Rules) error {
	now := r.Now()
	if !p.Expiry.After(now.Add(-r.Leeway)) {
		return ErrExpired
	}
	limit := now.Add(r.Leeway)
	if p.NotBefore.After(limit) || p.IssuedAt.After(limit) {
		return ErrNotYetValid
	}
	if !p.Expiry.After(p.IssuedAt.Add(-r.Leeway)) {
		return fmt.Errorf("%w: exp before iat", ErrClaims)
	}
	return nil
}
