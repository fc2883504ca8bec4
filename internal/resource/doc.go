// Package resource holds the registered resources: the MCP servers and
// other APIs that people's tokens are addressed to by their canonical URI
// (RFC 8707), each with its scope catalogue, the scopes asked when a client
// asks for none, and the agents that may receive tokens for it. A nil
// *Registry registers nothing, and every check passes as it did before
// resources were registered. The registry is read-only once built, so it
// is safe for concurrent use.
package resource
