// Package revocation is the vocabulary of Mandate's revocation feed: the
// entries the server publishes (Entry, Snapshot, Heartbeat) and the Set that
// a verifier, and the server itself, hold in memory to decide whether a
// token is revoked without a network call.
//
// An entry names what was revoked (a token and everything exchanged from
// it, a delegation, a person, one scope of a person, an agent, a signing
// key) and until when it matters. Entries about people and agents apply to
// tokens minted at a lower store generation (the "gen" claim), a counter,
// never a wall-clock comparison: moving a clock back brings nothing back
// to life. The package imports nothing from Mandate's internal packages.
package revocation
