// Package upstream owns sign-in through a company's OpenID Connect
// provider: one Provider per identity_providers[] entry with a login
// section, and the Set of them, looked up by issuer.
//
// Start returns the provider's authorization URL and the Pending state the
// caller keeps server-side; Finish checks the callback (RFC 9207 iss, state,
// an error answer), redeems the code with its PKCE verifier, verifies the ID
// token (signature, iss, aud, exp, nonce) and maps the claims to an Identity:
// the person's Mandate id, permissions and roles, as the configuration's
// rules say. Recheck asks the provider again with a refresh token, so that a
// person removed there loses what Mandate granted them. Discovery, the code
// exchange and ID token verification are github.com/zitadel/oidc/v3's rp
// package; this package stores nothing, writes no page and serves no route.
package upstream
