package verify

import (
	"errors"
	"net/http"

	"github.com/mandate-dev/mandate/oauth"
)

// Errors returned by Verify, wrapped with detail; test them with errors.Is.
// Verify reports one per token, the most severe: checks run in the order
// below, cryptographic ones first, so a token that is both badly signed and
// expired reports ErrSignature, and a revoked token that has also expired
// reports ErrRevoked. Every error but ErrKeyUnavailable and
// ErrRevocationUnavailable means the token is invalid (the middleware
// answers 401); those two mean its validity cannot be known now (503).
var (
	// ErrMalformed: not a compact JWS within 8 KiB, a refused header member
	// (jku, jwk, x5u, x5c, crit, zip, enc, b64, cty, …), or a header or
	// payload that is not strict JSON (duplicate or case-variant members).
	ErrMalformed = errors.New("verify: malformed token")
	// ErrIssuer: iss is not the configured issuer, exactly.
	ErrIssuer = errors.New("verify: wrong issuer")
	// ErrUnknownKey: the issuer's key set has no key with the token's kid,
	// after at most one refetch per cooldown.
	ErrUnknownKey = errors.New("verify: unknown key")
	// ErrKeyUnavailable: the key set could not be fetched and the kid is
	// not cached. Not a verdict on the token: answer 503.
	ErrKeyUnavailable = errors.New("verify: keys unavailable")
	// ErrAlgorithm: the header's alg is not one the key pins and the
	// configuration allows.
	ErrAlgorithm = errors.New("verify: algorithm not allowed")
	// ErrSignature: the signature does not verify.
	ErrSignature = errors.New("verify: bad signature")
	// ErrType: the typ header is not "at+jwt" (RFC 9068 §4).
	ErrType = errors.New("verify: not an access token")
	// ErrAudience: aud is missing or does not hold the configured audience.
	ErrAudience = errors.New("verify: wrong audience")
	// ErrClaims: a required claim (sub, jti, exp, iat, client_id) is
	// missing, or a claim is of the wrong type or out of bounds, or the
	// lifetime exceeds MaxTTL.
	ErrClaims = errors.New("verify: invalid claims")
	// ErrTooDeep: the act chain is deeper than MaxDepth.
	ErrTooDeep = errors.New("verify: delegation chain too deep")
	// ErrRevoked: the Revocation hook says the token is revoked, or the
	// issuer revoked the key that signed it (KeyRevocation).
	ErrRevoked = errors.New("verify: token revoked")
	// ErrRevocationUnavailable: the Revocation hook could not say. Not a
	// verdict on the token: answer 503.
	ErrRevocationUnavailable = errors.New("verify: revocation state unavailable")
	// ErrExpired: exp is not after now minus the leeway.
	ErrExpired = errors.New("verify: token expired")
	// ErrNotYetValid: nbf or iat is after now plus the leeway.
	ErrNotYetValid = errors.New("verify: token not yet valid")
	// ErrNoToken: the request carries no bearer token (middleware only).
	ErrNoToken = errors.New("verify: no bearer token")
	// ErrBadRequest: the request carries the token in a way RFC 6750 §3.1
	// refuses: twice, in the query string, or alongside another scheme
	// (middleware only).
	ErrBadRequest = errors.New("verify: bad bearer request")
	// ErrLimitExceeded: an amount is above the limit an
	// authorization_details entry grants, or no entry grants it
	// (CheckAmount).
	ErrLimitExceeded = errors.New("verify: limit exceeded")
)

// refusal is how the middleware answers an error: the status, the RFC 6750
// code, a fixed description that never reflects the request, and the
// machine-readable reason for the audit record.
type refusal struct {
	status      int
	code        oauth.ErrorCode
	description string
	reason      string
}

// refusals maps each sentinel to its answer, in the order refusalFor tries
// them. Read-only.
var refusals = [...]struct {
	err error
	r   refusal
}{
	{ErrKeyUnavailable, refusal{http.StatusServiceUnavailable, oauth.ErrTemporarilyUnavailable, "the token issuer's keys cannot be obtained; retry later", "key_unavailable"}},
	{ErrRevocationUnavailable, refusal{http.StatusServiceUnavailable, oauth.ErrTemporarilyUnavailable, "the revocation state cannot be checked; retry later", "revocation_unavailable"}},
	{ErrNoToken, refusal{http.StatusUnauthorized, oauth.ErrInvalidToken, "an access token is required", "token_missing"}},
	{ErrBadRequest, refusal{http.StatusBadRequest, oauth.ErrInvalidRequest, "send the access token once, in the Authorization header", "token_request_invalid"}},
	{ErrMalformed, refusal{http.StatusUnauthorized, oauth.ErrInvalidToken, "the access token is malformed", "token_malformed"}},
	{ErrIssuer, refusal{http.StatusUnauthorized, oauth.ErrInvalidToken, "the access token was not issued by the trusted issuer", "issuer_mismatch"}},
	{ErrUnknownKey, refusal{http.StatusUnauthorized, oauth.ErrInvalidToken, "the access token is signed with an unknown key", "key_unknown"}},
	{ErrAlgorithm, refusal{http.StatusUnauthorized, oauth.ErrInvalidToken, "the access token's algorithm is not allowed", "algorithm_not_allowed"}},
	{ErrSignature, refusal{http.StatusUnauthorized, oauth.ErrInvalidToken, "the access token's signature is invalid", "signature_invalid"}},
	{ErrType, refusal{http.StatusUnauthorized, oauth.ErrInvalidToken, "the token is not an access token", "token_type_invalid"}},
	{ErrAudience, refusal{http.StatusUnauthorized, oauth.ErrInvalidToken, "the access token is not meant for this resource", "audience_mismatch"}},
	{ErrTooDeep, refusal{http.StatusUnauthorized, oauth.ErrInvalidToken, "the access token's delegation chain is too deep", "delegation_depth_exceeded"}},
	{ErrClaims, refusal{http.StatusUnauthorized, oauth.ErrInvalidToken, "the access token's claims are invalid", "claims_invalid"}},
	{ErrRevoked, refusal{http.StatusUnauthorized, oauth.ErrInvalidToken, "the access token has been revoked", "token_revoked"}},
	{ErrExpired, refusal{http.StatusUnauthorized, oauth.ErrInvalidToken, "the access token has expired", "token_expired"}},
	{ErrNotYetValid, refusal{http.StatusUnauthorized, oauth.ErrInvalidToken, "the access token is not valid yet", "token_not_yet_valid"}},
}

// refusalFor returns the answer to err; anything unknown is an invalid
// token, never an allow.
func refusalFor(err error) refusal {
	for _, e := range refusals {
		if errors.Is(err, e.err) {
			return e.r
		}
	}
	return refusal{http.StatusUnauthorized, oauth.ErrInvalidToken, "the access token is invalid", "token_invalid"}
}
