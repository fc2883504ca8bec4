// Package mcpauth puts an MCP server built with the official Go SDK
// (github.com/modelcontextprotocol/go-sdk) behind verify, tool by tool.
//
//	g := mcpauth.New(v, mcpauth.Tools{"deploy": {"deploy:create"}, "metrics": {"monitoring:read"}})
//	mux.Handle(v.MetadataPath(), v.ProtectedResourceMetadata())
//	server.AddReceivingMiddleware(g.Middleware())
//	mux.Handle("/mcp", g.Handler(mcp.NewStreamableHTTPHandler(getServer, nil)))
//
// Handler runs verify's Middleware first: a request without a valid token
// is answered 401 with WWW-Authenticate naming the resource metadata and
// the scopes to request (verify.ResourceMetadata.RequestScopes). It then
// reads the JSON-RPC message as the SDK does (member names matched
// exactly; a message that repeats method, params or name, or names one in
// another case, is refused with 400), names its method (and for
// tools/call the tool) in the audit record, and answers a tools/call whose token lacks a
// scope of the tool with 403 insufficient_scope and scope="…" naming every
// scope the tool needs, which is what MCP clients step up from. Middleware
// checks the same map inside the SDK, where the SDK has decoded the call,
// and refuses a tool the map does not name: a tool added to the server
// without its scopes is refused, not open.
//
// tools/list lists every tool, whatever the token's scopes: a client
// learns what it could do and steps up when it calls a tool it lacks the
// scope for; hiding tools would hide what stepping up can unlock.
//
// The package imports verify and the SDK; verify itself does not import
// the SDK.
package mcpauth
