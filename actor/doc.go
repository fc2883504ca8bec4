// Package actor models the RFC 8693 §4.1 "act" claim: the chain of agents
// acting on behalf of a token's subject, current actor outermost.
//
// Parse bounds the nesting before it decodes anything, refuses actor
// identifiers that are empty, oversized or hold control characters, and keeps
// only the members Mandate builds ("sub" and the nested "act"), so that a
// hostile chain can neither exhaust the parser nor smuggle scopes or
// audiences into an issued token.
package actor
