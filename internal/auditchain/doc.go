// Package auditchain makes the audit log tamper-evident: the canonical
// encoding of a record (versioned, length-prefixed fields in a fixed order,
// never a concatenation a shifted delimiter could forge; a record keeps the
// encoding of the version it was written in), its leaf hash (RFC 6962 /
// golang.org/x/mod/sumdb/tlog, so that signed checkpoints of the log's
// Merkle tree can be proved consistent), and the hash chain that links
// every record to the one before it, so that the first edited, deleted,
// swapped or inserted record is named.
package auditchain
