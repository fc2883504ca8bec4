package token

import (
	"errors"

	"github.com/mandate-dev/mandate/jwt"
)

// Errors returned by (*Verifier).Verify and (*Keyring).Sign, wrapped with
// detail. ErrMalformed, ErrAlgorithm, ErrSignature and ErrClaims are the
// errors of package jwt (the same values), so that errors.Is answers alike
// whichever layer refused. Only one is reported per token: checks run in a fixed order
// (structure, header, issuer, key, algorithm, signature, then claims), so a
// token that is both badly signed and expired reports ErrSignature.
var (
	// ErrMalformed: not a compact JWS within the limits, a refused header
	// member, or a header or payload that is not strict JSON.
	ErrMalformed = jwt.ErrMalformed
	// ErrUnknownIssuer: iss is neither Mandate's nor a configured provider's.
	ErrUnknownIssuer = errors.New("token: unknown issuer")
	// ErrUnknownKey: the issuer has no key with the token's kid.
	ErrUnknownKey = errors.New("token: unknown key")
	// ErrKeyUnavailable: the issuer's keys could not be fetched and the kid
	// is not cached; the caller answers 503, not 401.
	ErrKeyUnavailable = errors.New("token: signing keys unavailable")
	// ErrAlgorithm: the header's alg is not the one pinned by the key.
	ErrAlgorithm = jwt.ErrAlgorithm
	// ErrSignature: the signature does not verify.
	ErrSignature = jwt.ErrSignature
	// ErrType: the typ header is not the one required.
	ErrType = errors.New("token: wrong type")
	// ErrExpired: exp is not after now minus the leeway.
	ErrExpired = errors.New("token: expired")
	// ErrNotYetValid: nbf or iat is after now plus the leeway.
	ErrNotYetValid = errors.New("token: not yet valid")
	// ErrAudience: aud is missing or does not hold the expected audience.
	ErrAudience = errors.New("token: wrong audience")
	// ErrClaims: a claim is missing, of the wrong type or out of bounds.
	ErrClaims = jwt.ErrClaims
	// ErrNoActiveKey: the keyring has no key to sign with.
	ErrNoActiveKey = errors.New("token: no active signing key")
)
