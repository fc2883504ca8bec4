// Package auditlog keeps the audit log honest over time: a Checkpointer
// that signs, every few seconds and on demand, the log's size, Merkle root
// and chain head as a note (golang.org/x/mod/sumdb/note, Ed25519) stored
// apart from the log and appended to a witness file; and Verify, which
// replays a log (live or exported) and names the first record that does
// not chain, or the checkpoint the log no longer matches (a cut-off tail,
// an older log swapped in, a re-hashed forgery).
package auditlog
