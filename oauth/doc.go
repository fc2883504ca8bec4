// Package oauth holds the OAuth 2.0 vocabulary Mandate speaks on the wire:
// grant types and token-type URNs (RFC 6749, RFC 8693, RFC 7523), the error
// codes of RFC 6749 §5.2, RFC 6750 §3.1 and RFC 8693 §2.2.2, and Error, the
// one error value every endpoint returns.
//
// Error separates what the client may read (Code, Description) from what only
// the operator may read (Err), and carries the machine-readable Reason that the
// audit trail records for every refusal.
package oauth
