// Package token owns Mandate's JWTs: the claims it mints (RFC 9068 access
// tokens with the RFC 8693 act claim), the signing keys and their rotation
// (Keyring), and the verification of every JWT the server is handed: its own
// tokens and identity providers' tokens (Verifier).
//
// Every token passes the JOSE gate of package jwt first (jwt.ParseJWS, the
// algorithm pinned by the key, the signature checked before any claim is
// read, claims read by exact name after strictjson); this package adds the
// issuer and key choice by (iss, kid). Mandate's own tokens are then held to
// verify.CheckJWS, the same code every resource server runs, so that the
// server and an API never disagree on one; the claim rules of trusted
// identity providers' tokens are this package's.
package token
