package mcpauth_test

import (
	"context"
	"log"
	"net/http"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mandate-dev/mandate/verify"
	"github.com/mandate-dev/mandate/verify/mcpauth"
)

// An MCP server at https://tools.example/mcp whose deploy tool needs
// deploy:create and whose metrics tool needs monitoring:read.
func Example() {
	ctx := context.Background()
	v, err := verify.New(ctx, verify.Config{
		Issuer:     "https://mandate.example",
		Audience:   "https://tools.example/mcp",
		Algorithms: []string{"EdDSA"},
		JWKSURI:    "https://mandate.example/jwks",
		Resource: verify.ResourceMetadata{
			ScopesSupported: []string{"deploy:create", "monitoring:read"},
			RequestScopes:   []string{"monitoring:read"},
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	guard := mcpauth.New(v, mcpauth.Tools{"deploy": {"deploy:create"}, "metrics": {"monitoring:read"}})
	server := mcp.NewServer(&mcp.Implementation{Name: "tools", Version: "1.0.0"}, nil)
	server.AddReceivingMiddleware(guard.Middleware())
	type args struct {
		Service string `json:"service"`
	}
	mcp.AddTool(server, &mcp.Tool{Name: "metrics"}, func(_ context.Context, req *mcp.CallToolRequest, a args) (*mcp.CallToolResult, any, error) {
		p, _ := mcpauth.PrincipalFrom(req)
		return nil, map[string]string{"service": a.Service, "for": p.OnBehalfOf(), "by": p.PerformedBy()}, nil
	})

	mux := http.NewServeMux()
	// /.well-known/oauth-protected-resource/mcp, where the 401s point.
	mux.Handle(v.MetadataPath(), v.ProtectedResourceMetadata())
	mux.Handle("/mcp", guard.Handler(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server }, nil)))
	_ = http.ListenAndServe // serve mux
}
