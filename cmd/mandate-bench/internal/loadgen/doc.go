// Package loadgen drives Mandate's token endpoint over HTTP and measures it:
// Run sends requests from N concurrent workers over one keep-alive client for
// a duration or a request count, and reports throughput, latency
// percentiles, statuses and, given the server's process id, the server's CPU
// time per request and its resident memory, read from /proc.
//
// It also holds IdP, a loopback identity provider (an ES256 key and its
// JWKS) that mints the subject tokens a token exchange presents. The package
// is the engine of cmd/mandate-bench, under which it lives so that nothing
// of the product can import it; it never imports the server.
package loadgen
