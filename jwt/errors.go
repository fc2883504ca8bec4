package jwt

import "errors"

// Errors returned by ParseJWS, (*JWS).Verify and the ClaimSet readers,
// wrapped with detail; test them with errors.Is.
var (
	// ErrMalformed: not a compact JWS within the limits, a refused header
	// member, or a header or payload that is not strict JSON.
	ErrMalformed = errors.New("jwt: malformed")
	// ErrAlgorithm: the header's alg is not one the key allows.
	ErrAlgorithm = errors.New("jwt: algorithm not allowed")
	// ErrSignature: the signature does not verify.
	ErrSignature = errors.New("jwt: bad signature")
	// ErrClaims: a claim is of the wrong JSON type or out of bounds.
	ErrClaims = errors.New("jwt: invalid claims")
)
