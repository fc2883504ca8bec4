// Package jwks owns remote and inline JSON Web Key Sets (RFC 7517): the keys
// of Mandate itself as a resource server sees them (package verify), of
// trusted identity providers, and of agents that authenticate with
// private_key_jwt.
//
// Cache fetches a set over HTTPS (plain HTTP on loopback only), caps the body
// and the time a fetch may take, refetches on an unknown kid at most once per
// cooldown and keeps the last good set when a fetch fails, never with a key
// its owner revoked (Config.Revoked). ParseSet accepts public signing keys
// only and refuses a set with private members or duplicate kids.
package jwks
