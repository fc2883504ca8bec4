// Package cache keeps users, agents, delegations and the not-before epoch in
// memory in front of a store.Store, so that the token path reads them
// without a database round trip. Writes made through the cache invalidate it
// at once; writes made by other processes are noticed through
// store.Generation, which Run polls.
//
// Everything else (tokens, nonces, keys, the audit log, and sign-in's codes,
// refresh tokens, sessions and pending steps, which are single-use or
// short-lived and never cached) passes straight through.
package cache
