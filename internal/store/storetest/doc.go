// Package storetest owns the store.Store contract as executable tests: Run
// is the conformance suite every backend runs (CRUD and sentinel errors per
// aggregate, atomic updates with their audit events, the group commit, event
// queries, the audit hash chain over every write path, checkpoints and
// their key, nonces, the generation counter, the revocation feed,
// concurrency, and sign-in's codes, refresh tokens, sessions and pending
// steps with their single use under races), RunRefusedEvents proves that
// sign-in writes and their audit records commit together, and RunReopen proves durability across a reopen and two
// handles on one database. VerifyChain checks a store's audit chain as an
// offline verifier would.
//
// Faulty wraps any store.Store and injects errors, so that tests of the
// server can prove it fails closed when the store does.
package storetest
