// Package examples holds small real services protected by the verify
// package, the ones `mandate demo` runs: deployapi (deploy:create; prod
// only from the CI pipeline), monitoringapi (monitoring:read) and
// expenseapi (expense approvals within the person's limit). Each is a few
// lines of verify setup around an ordinary handler, and serves its RFC 9728
// protected-resource metadata at /.well-known/oauth-protected-resource,
// where its 401 answers point (WWW-Authenticate resource_metadata).
//
// mcpserver is an MCP server built with the official Go SDK and protected
// by verify/mcpauth, with a deploy tool (deploy:create) that hands the work
// on to deployapi by token exchange, and a metrics tool (monitoring:read).
// Its endpoint has a path (/mcp), so its metadata is at
// /.well-known/oauth-protected-resource/mcp. `mandate demo` runs it in its
// third story, and `go run ./examples/mcpserver/cmd/mcpserver` runs it
// against `mandate serve --dev`.
package examples
