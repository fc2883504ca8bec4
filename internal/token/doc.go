// Package token owns Mandate's JWTs: the claims it mints (RFC 9068 access
// tokens with the RFC 8693 act claim), the signing keys and their rotation
// (Keyring), and the verification of every JWT the server is handed: its own
// tokens and identity providers' tokens (Verifier), and the JOSE gate that
// client assertions share with them (ParseJWS).
//
// The gate bounds size and structure before decoding, refuses header members
// that point at keys or change processing, pins the algorithm to the key,
// verifies the signature with go-jose before any claim is read, and decodes
// claims by exact member name after strictjson has refused duplicates.
package token
