// Package exchange implements the grants of the token endpoint: the RFC 8693
// token exchange that mints on-behalf-of tokens, and the client_credentials
// grant an agent uses for itself. It knows nothing of HTTP: the server hands
// it an authenticated client and parsed parameters, and it returns a result
// or an *oauth.Error.
//
// The order of the checks is fixed inside Grant.Exchange, every refusal is
// audited with a machine-readable reason before it is returned, and a token
// is returned only after its record and its audit event are durable.
package exchange
