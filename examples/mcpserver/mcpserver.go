// Package mcpserver is an example MCP server, built with the official Go
// SDK and protected by verify (package verify/mcpauth). It exposes two
// tools: metrics (monitoring:read) answers from memory; deploy
// (deploy:create) hands the work on to the deploy API (package deployapi):
// it never passes the caller's token on, but exchanges it at Mandate for a
// token of its own for the deploy API (package agent), so that the deploy
// API sees the person, the MCP client and this server in one chain.
//
// The MCP endpoint is the resource identifier, with its path (for example
// http://127.0.0.1:8090/mcp); its RFC 9728 metadata is served at the
// path-inserted well-known location (/.well-known/oauth-protected-resource/mcp),
// where its 401 answers point.
package mcpserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mandate-dev/mandate/agent"
	"github.com/mandate-dev/mandate/verify"
	"github.com/mandate-dev/mandate/verify/mcpauth"
)

// Path is where New serves the MCP endpoint.
const Path = "/mcp"

// Tools is the server's tool map: the scopes each tool's calls need.
func Tools() mcpauth.Tools {
	return mcpauth.Tools{"deploy": {"deploy:create"}, "metrics": {"monitoring:read"}}
}

// Metadata describes the server in its RFC 9728 metadata: set it as the
// verify.Config's Resource. A client signing in is asked for
// monitoring:read only (RequestScopes), and steps up to deploy:create when
// it calls deploy.
func Metadata() verify.ResourceMetadata {
	return verify.ResourceMetadata{
		ResourceName:    "Example MCP server",
		ScopesSupported: []string{"deploy:create", "monitoring:read"},
		RequestScopes:   []string{"monitoring:read"},
	}
}

// Config is what New needs.
type Config struct {
	// Verifier checks the tokens sent to the server; its Audience is the
	// MCP endpoint's URL and its Resource is Metadata().
	Verifier *verify.Verifier
	// Agent is the server's own client at Mandate, which exchanges the
	// caller's token for one for the deploy API. Required with DeployAPI.
	Agent *agent.Client
	// DeployAPI is the deploy API's address, its audience. Empty means
	// none: the deploy tool then answers that it has nowhere to hand the
	// work on (its scope is still checked first).
	DeployAPI string
	// HTTPClient's Transport, when set, is the base transport of the calls
	// to the deploy API; nil means http.DefaultTransport.
	HTTPClient *http.Client
}

// New returns the server's HTTP handler: the MCP endpoint at Path behind
// mcpauth, and the metadata. It fails without a Verifier, or with a
// DeployAPI but no Agent.
func New(cfg Config) (http.Handler, error) {
	if cfg.Verifier == nil || (cfg.DeployAPI != "" && cfg.Agent == nil) {
		return nil, errors.New("mcpserver: Verifier is required, and Agent with DeployAPI")
	}
	guard := mcpauth.New(cfg.Verifier, Tools())
	server := mcp.NewServer(&mcp.Implementation{Name: "mandate-example", Version: "1.0.0"}, nil)
	server.AddReceivingMiddleware(guard.Middleware())
	d := &deployer{cfg: cfg}
	mcp.AddTool(server, &mcp.Tool{Name: "deploy", Description: "Deploy a service, through the deploy API (needs deploy:create)"}, d.deploy)
	mcp.AddTool(server, &mcp.Tool{Name: "metrics", Description: "Read a service's CPU (needs monitoring:read)"}, metrics)

	mux := http.NewServeMux()
	mux.Handle(cfg.Verifier.MetadataPath(), cfg.Verifier.ProtectedResourceMetadata())
	mux.Handle(Path, guard.Handler(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server }, nil)))
	return mux, nil
}

// DeployArgs are the deploy tool's arguments.
type DeployArgs struct {
	Service     string `json:"service" jsonschema:"the service to deploy"`
	Environment string `json:"environment,omitempty" jsonschema:"the environment (staging by default)"`
}

// DeployResult is what the deploy API answered.
type DeployResult struct {
	Status      string `json:"status"`
	Service     string `json:"service"`
	PerformedBy string `json:"performed_by"`
	OnBehalfOf  string `json:"on_behalf_of"`
	Message     string `json:"message"`
}

// deployer is the deploy tool.
type deployer struct{ cfg Config }

// deploy exchanges the caller's token for one for the deploy API, with
// deploy:create only, and starts the deployment there.
func (d *deployer) deploy(ctx context.Context, req *mcp.CallToolRequest, args DeployArgs) (*mcp.CallToolResult, DeployResult, error) {
	if d.cfg.DeployAPI == "" {
		return nil, DeployResult{}, errors.New("mcpserver: this server hands deploys on to no deploy API (it was started without one)")
	}
	subject, ok := mcpauth.BearerToken(req)
	if !ok {
		return nil, DeployResult{}, errors.New("mcpserver: the call carries no token")
	}
	env := args.Environment
	if env == "" {
		env = "staging"
	}
	var base http.RoundTripper
	if d.cfg.HTTPClient != nil {
		base = d.cfg.HTTPClient.Transport
	}
	rt, err := d.cfg.Agent.Transport(base, agent.Request{
		SubjectToken: subject, SubjectTokenType: agent.TokenTypeAccessToken,
		Audience: d.cfg.DeployAPI, Scopes: []string{"deploy:create"},
		Context: map[string]any{"environment": env, "trigger": "mcp"},
	})
	if err != nil {
		return nil, DeployResult{}, fmt.Errorf("mcpserver: %w", err)
	}
	body, _ := json.Marshal(map[string]string{"service": args.Service})
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(d.cfg.DeployAPI, "/")+"/deployments", strings.NewReader(string(body)))
	if err != nil {
		return nil, DeployResult{}, fmt.Errorf("mcpserver: %w", err)
	}
	hreq.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Transport: rt}).Do(hreq)
	if err != nil {
		// The exchange's refusal (agent.Error) says why, without the token.
		return nil, DeployResult{}, fmt.Errorf("mcpserver: deploy API: %w", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return nil, DeployResult{}, fmt.Errorf("mcpserver: the deploy API answered %d", resp.StatusCode)
	}
	var out DeployResult
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, DeployResult{}, fmt.Errorf("mcpserver: deploy API: %w", err)
	}
	return nil, out, nil
}

// MetricsArgs are the metrics tool's arguments.
type MetricsArgs struct {
	Service string `json:"service" jsonschema:"the service to read"`
}

// MetricsResult is a reading.
type MetricsResult struct {
	Service string  `json:"service"`
	CPU     float64 `json:"cpu"`
	ReadFor string  `json:"read_for"`
}

// metrics answers from memory, for the person the call is made for.
func metrics(_ context.Context, req *mcp.CallToolRequest, args MetricsArgs) (*mcp.CallToolResult, MetricsResult, error) {
	p, ok := mcpauth.PrincipalFrom(req)
	if !ok {
		return nil, MetricsResult{}, errors.New("mcpserver: the call was not verified")
	}
	return nil, MetricsResult{Service: args.Service, CPU: 0.42, ReadFor: p.OnBehalfOf()}, nil
}
