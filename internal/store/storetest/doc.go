// Package storetest owns the store.Store contract as executable tests: Run
// is the conformance suite every backend runs (CRUD and sentinel errors per
// aggregate, atomic updates with their audit events, the group commit, event
// queries, nonces, the generation counter, the revocation feed and
// concurrency), and RunReopen proves durability across a reopen and two
// handles on one database.
//
// Faulty wraps any store.Store and injects errors, so that tests of the
// server can prove it fails closed when the store does.
package storetest
