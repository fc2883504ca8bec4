package server_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mandate-dev/mandate/agent"
	"github.com/mandate-dev/mandate/examples/deployapi"
	"github.com/mandate-dev/mandate/examples/mcpserver"
	"github.com/mandate-dev/mandate/internal/audit"
	"github.com/mandate-dev/mandate/internal/config"
	"github.com/mandate-dev/mandate/internal/store"
	"github.com/mandate-dev/mandate/oauth"
	"github.com/mandate-dev/mandate/verify"
	"github.com/mandate-dev/mandate/verify/mcpauth"
)

// passthroughServer is an MCP server that does what the MCP security best
// practices forbid: its deploy tool forwards the client's own token to
// the deploy API. It answers with the deploy API's status.
func passthroughServer(v *verify.Verifier, deployURL string) http.Handler {
	g := mcpauth.New(v, mcpauth.Tools{"deploy": {"deploy:create"}})
	server := mcp.NewServer(&mcp.Implementation{Name: "passthrough", Version: "1"}, nil)
	server.AddReceivingMiddleware(g.Middleware())
	type args struct {
		Service string `json:"service"`
	}
	mcp.AddTool(server, &mcp.Tool{Name: "deploy"}, func(ctx context.Context, req *mcp.CallToolRequest, a args) (*mcp.CallToolResult, any, error) {
		tok, ok := mcpauth.BearerToken(req)
		if !ok {
			return nil, nil, errors.New("no token")
		}
		hreq, _ := http.NewRequestWithContext(ctx, http.MethodPost, deployURL+"/deployments", strings.NewReader(`{"service":"`+a.Service+`"}`))
		hreq.Header.Set("Content-Type", "application/json")
		hreq.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(hreq)
		if err != nil {
			return nil, nil, err
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != http.StatusOK {
			return nil, nil, fmt.Errorf("the deploy API answered %d %s", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
		}
		return nil, map[string]int{"status": resp.StatusCode}, nil
	})
	return g.Handler(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server }, nil))
}

// bearerTransport sends a fixed bearer token.
type bearerTransport string

func (b bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+string(b))
	return http.DefaultTransport.RoundTrip(r)
}

// TestT96TokenPassthrough is THREATS T96, in process: a real Mandate, the
// deploy API behind verify, the example MCP server (which exchanges), and
// an MCP server that passes its client's token on. Sam's MCP client holds
// a token for each MCP server. The passing server's deploy is refused by
// the deploy API's verify on the audience, and recorded there as refused;
// the example server's deploy succeeds, and the deploy API's record shows
// Sam, the MCP client and the MCP server in one chain, as does Mandate's
// record of the exchange.
func TestT96TokenPassthrough(t *testing.T) {
	const client = "agent:mcp_client"
	mcpSrv := httptest.NewUnstartedServer(nil)
	t.Cleanup(mcpSrv.Close)
	origin := "http://" + mcpSrv.Listener.Addr().String()
	good, bad := origin+mcpserver.Path, origin+"/passthrough/mcp"
	h := newHarnessEdited(t, openSQLite, nil, func(c *config.Config) {
		c.Agents = append(c.Agents,
			config.Agent{ID: client, Secret: "mcp_client-secret", Scopes: []string{"monitoring:read", "deploy:create"}, DelegateTo: []string{good, bad}},
			config.Agent{ID: good, Secret: "good-mcp-secret", Scopes: []string{"deploy:create"}},
			config.Agent{ID: bad, Secret: "bad-mcp-secret", Scopes: []string{"deploy:create"}})
		c.Delegations = append(c.Delegations, config.Delegation{Subject: "user:sam", Actor: client, Scopes: []string{"monitoring:read", "deploy:create"}})
	})
	ctx := t.Context()
	newVerifier := func(audience string, md verify.ResourceMetadata, sink verify.RecordSink) *verify.Verifier {
		v, err := verify.New(ctx, verify.Config{Issuer: h.url, Audience: audience, Algorithms: []string{"EdDSA", "ES256", "RS256"},
			JWKSURI: h.url + "/jwks", Resource: md, Records: sink})
		if err != nil {
			t.Fatal(err)
		}
		return v
	}

	deployRecords := &recordSink{}
	deploySrv := httptest.NewUnstartedServer(nil)
	t.Cleanup(deploySrv.Close)
	deployURL := "http://" + deploySrv.Listener.Addr().String()
	deploySrv.Config.Handler = deployapi.New(newVerifier(deployURL, deployapi.Metadata(), deployRecords))
	deploySrv.Start()

	tools, err := agent.New(agent.Config{TokenURL: h.url + "/token", ClientID: good, ClientSecret: "good-mcp-secret"})
	if err != nil {
		t.Fatal(err)
	}
	example, err := mcpserver.New(mcpserver.Config{Verifier: newVerifier(good, mcpserver.Metadata(), nil), Agent: tools, DeployAPI: deployURL})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/", example)
	mux.Handle("/passthrough/mcp", passthroughServer(newVerifier(bad, mcpserver.Metadata(), nil), deployURL))
	mcpSrv.Config.Handler = mux
	mcpSrv.Start()

	callDeploy := func(endpoint string) (*mcp.CallToolResult, error) {
		tok := h.mustExchange(client, h.samToken(), oauth.TokenTypeIDToken, url.Values{"audience": {endpoint}, "scope": {"deploy:create"}})
		cs, err := mcp.NewClient(&mcp.Implementation{Name: "sam's client", Version: "1"}, nil).Connect(ctx, &mcp.StreamableClientTransport{
			Endpoint: endpoint, HTTPClient: &http.Client{Transport: bearerTransport(tok)}, MaxRetries: -1}, nil)
		if err != nil {
			t.Fatalf("connect to %s: %v", endpoint, err)
		}
		defer cs.Close()
		return cs.CallTool(ctx, &mcp.CallToolParams{Name: "deploy", Arguments: map[string]any{"service": "api"}})
	}

	t.Run("fail/passthrough", func(t *testing.T) {
		res, err := callDeploy(bad)
		if err == nil && !res.IsError {
			t.Fatalf("the passed-on token deployed: %+v", res)
		}
		if got := deployRecords.reasons(1); !slices.Equal(got, []string{"refused audience_mismatch"}) {
			t.Errorf("the deploy API's records: %v, want one refusal audience_mismatch", got)
		}
	})

	t.Run("ok/exchange", func(t *testing.T) {
		res, err := callDeploy(good)
		if err != nil || res.IsError {
			t.Fatalf("deploy through the example server: %v %+v", err, res)
		}
		deployRecords.reasons(2)
		deployRecords.mu.Lock()
		rec := deployRecords.list[len(deployRecords.list)-1]
		deployRecords.mu.Unlock()
		if rec.Result != verify.ResultGranted || rec.OnBehalfOf != "user:sam" || !slices.Equal(rec.Chain, []string{good, client}) || rec.Resource != "service/api" {
			t.Errorf("the deploy API's record: %s for %s by chain %v on %s; want granted for user:sam by [%s %s] on service/api",
				rec.Result, rec.OnBehalfOf, rec.Chain, rec.Resource, good, client)
		}
		// Mandate's own record of the exchange shows the same chain.
		var found bool
		for deadline := time.Now().Add(5 * time.Second); !found && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			for _, ev := range h.events(store.EventFilter{Action: audit.ActionTokenExchange, Audience: deployURL}) {
				found = found || ev.Result == audit.ResultGranted && ev.OnBehalf == "user:sam" && slices.Equal(ev.Chain, []string{good, client})
			}
		}
		if !found {
			t.Errorf("no granted token.exchange record for %s with the chain [%s %s]", deployURL, good, client)
		}
	})
}
