// Package policy decides whether a token exchange may proceed, from rules
// written in CEL (https://cel.dev).
//
// A rule has an optional `if` that selects requests and a `require` that must
// then hold; the first rule whose `if` holds and whose `require` does not
// denies the request with that rule's name. Rules are compiled once by New;
// Decide does no I/O, is safe for concurrent use, and bounds each evaluation
// with a cost limit. A rule that cannot be evaluated (a missing context key, a
// wrong type, the cost limit) makes Decide return an error, never an allow:
// the caller refuses the request.
package policy
