package verify

import (
	"context"
	"fmt"
	"strings"

	"github.com/mandate-dev/mandate/jwt"
)

// Verifier checks Mandate access tokens for one resource server. Build it
// with New; it is safe for concurrent use.
type Verifier struct {
	cfg   Config
	rules Rules
	keys  KeySource
	// requestScope is Resource.RequestScopes as the scope parameter of a
	// 401's challenge.
	requestScope string
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
	return &Verifier{cfg: cfg, rules: cfg.rules(), keys: keys, requestScope: strings.Join(cfg.Resource.RequestScopes, " ")}, nil
}

// Verify checks raw, a compact JWS access token, and returns what it says.
// In order, and the first failure is the one reported (see the errors):
// structure and header (8 KiB, three canonical base64url segments, no
// jku/jwk/x5u/x5c/crit/zip/b64/cty, strict JSON); then the Rules of the
// Config (CheckJWS): the unverified iss must be the issuer, which scopes
// the kid lookup (THREATS.md T14); the key by kid (a key the issuer revoked
// is ErrRevoked here, see KeyRevocation); the algorithm the key pins; the
// signature; then, on the verified payload only, typ at+jwt, iss, aud, the
// required claims, the chain depth, the lifetime; then revocation, and
// last exp, nbf and iat with the leeway.
func (v *Verifier) Verify(ctx context.Context, raw string) (*Principal, error) {
	j, err := jwt.ParseJWS(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	p, _, timeErr, err := check(ctx, j, v.keys, &v.rules)
	if err != nil {
		return nil, err
	}
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

// Config returns the configuration in force, defaults filled in. Slices
// are shared: do not modify them.
func (v *Verifier) Config() Config { return v.cfg }
