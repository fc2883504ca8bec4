// Package audit records what Mandate decides. Recorder commits audit events,
// together with the tokens they record, durably and before the caller
// answers: concurrent requests are grouped so that one transaction (one
// fsync) serves many of them, and a record that cannot be written is an error
// the caller must turn into a refusal (fail closed).
//
// Event names and results are constants here so that every producer writes
// the same vocabulary.
package audit
