// Package postgres is the store.Store for several Mandate instances on one
// PostgreSQL database, built on pgx. It owns the schema and its embedded,
// versioned migrations (applied at Open under an advisory lock, or by
// Migrate), the mapping between store records and rows, and the mapping of
// PostgreSQL errors to the store sentinels: no row is store.ErrNotFound, a
// unique violation store.ErrAlreadyExists, and a connection failure, timeout,
// serialization failure or deadlock store.ErrUnavailable.
//
// It keeps the SQLite backend's semantics: times to the microsecond in UTC,
// keys sorted bytewise, the Seq of audit events and of revocation entries in
// commit order (one order across instances, each from a locked counter row),
// and a Generation counter bumped by every change
// to users, agents, delegations and keys, which also sends NOTIFY so that
// Listen can tell every instance at once. Open refuses a server that does not
// commit durably unless told otherwise.
//
// The audit log is hash-chained (store.Event.Hash): the one append
// statement, appendEvents, chains each record to the one before under the
// events_head row lock that also hands out its Seq, so the chain follows
// commit order across instances; the server computes the SHA-256 links
// (PostgreSQL 11 or later) from the canonical encodings made in Go.
// Migration 5 chains the records written before it. Signed checkpoints and
// their key are kept in tables of their own.
package postgres
