// Package store defines what Mandate keeps: users and their permissions,
// agents, delegations, issued tokens, signing keys, single-use nonces, the
// audit log, the revocation feed, the not-before epoch that a restore
// from backup advances, and what people's sign-in and consent need
// (authorization codes, refresh tokens, sessions, pending steps). It
// holds the records, narrow per-aggregate interfaces and the sentinel errors
// callers branch on, and imports no database driver.
//
// Backends live in sub-packages (sqlite, later postgres) and prove themselves
// against the shared conformance suite in storetest. Every write is durable
// when the call returns; updates take a function so the backend performs the
// read-modify-write atomically; and writes that must be audited take the audit
// events with them, committed in the same transaction. Revocation feed
// entries are written the same way: every backend derives them with this
// package's functions (UserRevocations, ...) inside the change's transaction.
package store
