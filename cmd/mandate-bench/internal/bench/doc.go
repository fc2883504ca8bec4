// Package bench is the mandate-bench command, Mandate's load lab, kept out
// of the product binary: it drives /token over loopback and reports
// throughput, latency and the server's CPU per request (the default), the
// time a revocation takes to reach verifiers following the feed (--feed), or
// between two instances on one PostgreSQL database (--propagation).
//
// `mandate-bench fill` writes a large audit log (records and token rows)
// into an empty store through the store's Commit, and `mandate-bench
// questions` times the forensic questions, the export and the log's
// verification against it.
//
// The servers it measures are child processes it starts from its own
// executable: `mandate-bench serve` is `mandate serve` (internal/cli), and
// `mandate-bench bare-server` is the bare reference endpoint
// (loadgen.NewBare). Main takes the arguments and output streams and returns
// the exit code. See docs/benchmarks.md.
package bench
