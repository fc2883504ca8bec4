// Package archive owns the audit log's archives: segments of the oldest
// records moved out of the store once they are older than the retention.
// A segment is gzip-compressed JSON lines, each record as `mandate audit
// export` writes it (with its seq and chain hash), and a last line holding
// the signed checkpoint of the log up to its last record; its name carries
// its first and last seq. Store puts, gets and lists segments (Dir is a
// directory; an object store would be another Store); Archiver moves
// records out; Verify checks the archives and the live log as one chain.
package archive
