// Package token owns Mandate's JWTs: the claims it mints (RFC 9068 access
// tokens with the RFC 8693 act claim), the signing keys and their rotation
// (Keyring), and the verification of every JWT the server is handed: its own
// tokens and identity providers' tokens (Verifier).
//
// Every token passes the JOSE gate of package jwt first (jwt.ParseJWS, the
// algorithm pinned by the key, the signature checked before any claim is
// read, claims read by exact name after strictjson); this package adds the
// issuer and key choice by (iss, kid) and the claim rules of Mandate's own
// tokens and of trusted identity providers.
package token
