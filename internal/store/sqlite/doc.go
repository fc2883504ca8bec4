// Package sqlite is the embedded store.Store: one SQLite file (pure Go,
// modernc.org/sqlite) in WAL mode with synchronous=FULL, so a call that
// returned has been fsynced. It owns the schema and its embedded, versioned
// migrations, the mapping between store records and rows, and the mapping of
// SQLite errors to the store sentinels. Several processes may open the same
// file: writes take the write lock at BEGIN (BEGIN IMMEDIATE), and within one
// process they go through a single connection while reads use a small pool.
// Times are kept as unix microseconds, the precision PostgreSQL keeps too.
//
// The audit log is hash-chained (store.Event.Hash): the one append path,
// insertEvents, chains each record to the one before in the transaction
// that appends it, from the last record itself, or the archived mark when
// that is past it (SQLite's single writer orders them), and migration 6
// chains the records written before it.
// Signed checkpoints and their key are kept in tables of their own.
//
// An append writes the records only: a token committed with the record of
// its issuance travels in that record's row (tokenfacts.go). The audit
// log's query indexes and the tokens rows are written by a background
// indexer in batches (indexer.go), and queries and token lookups read the
// records it has not reached yet by seq, so that a lone commit writes few
// pages.
package sqlite
