// Package clientauth authenticates OAuth clients (Mandate's agents) at the
// token, introspection and revocation endpoints: client_secret_basic and
// client_secret_post (RFC 6749 §2.3.1) and private_key_jwt (RFC 7523 §2.2,
// §3) with single-use assertion jti through store.Nonces.
//
// Extract reads the credentials from a request and refuses more than one
// method at once; Authenticate checks them and answers every failure with an
// invalid_client *oauth.Error whose Reason says why, and store trouble with
// temporarily_unavailable. Assertions pass the same JOSE gate as every other
// JWT the server reads (jwt.ParseJWS).
package clientauth
