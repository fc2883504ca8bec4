package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mandate-dev/mandate/agent"
	"github.com/mandate-dev/mandate/examples/deployapi"
	"github.com/mandate-dev/mandate/examples/mcpserver"
	"github.com/mandate-dev/mandate/verify"
)

// The MCP cast: Sam's MCP client, which may hand on to the example MCP
// server, whose deploy tool exchanges for the deploy API. The MCP server's
// agent id is its endpoint's URL, the audience of the tokens it receives:
// an agent exchanges only a token addressed to it.
const (
	mcpClientID     = "agent:mcp_client"
	mcpClientSecret = "mcp-client-secret"
	mcpServerSecret = "mcp-tools-secret"
)

// writeMCPConfig writes Sam, the MCP client with a delegation from Sam
// that it may hand on to the MCP server, and the MCP server (mcpServerID)
// as an agent.
func writeMCPConfig(t *testing.T, dir string, port int, mcpServerID string) string {
	t.Helper()
	cfg := fmt.Sprintf(`issuer: http://127.0.0.1:%[1]d
listen: 127.0.0.1:%[1]d
data_dir: %[2]s
admin:
  token: %[3]s
users:
  - id: user:sam
    permissions: [monitoring:read, deploy:create]
agents:
  - id: %[4]s
    secret: %[5]s
    scopes: [monitoring:read, deploy:create]
    delegate_to: [%[6]s]
  - id: %[6]s
    secret: %[7]s
    scopes: [deploy:create]
delegations:
  - subject: user:sam
    actor: %[4]s
    scopes: [monitoring:read, deploy:create]
`, port, filepath.Join(dir, "data"), testAdmin, mcpClientID, mcpClientSecret, mcpServerID, mcpServerSecret)
	path := filepath.Join(dir, "mandate-mcp.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// records keeps a verifier's records.
type records struct {
	mu   sync.Mutex
	list []verify.Record
}

func (r *records) Record(rec verify.Record) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.list = append(r.list, rec)
}

func (r *records) all() []verify.Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.list)
}

// seen is a response the MCP client's transport saw.
type seen struct {
	status    int
	challenge string
}

// bearer is the MCP client's HTTP transport: it sends token and notes
// every response.
type bearer struct {
	token string
	mu    sync.Mutex
	seen  []seen
}

func (b *bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err == nil {
		b.mu.Lock()
		b.seen = append(b.seen, seen{resp.StatusCode, resp.Header.Get("WWW-Authenticate")})
		b.mu.Unlock()
	}
	return resp, err
}

// refusal is the first response with a status of 400 or more.
func (b *bearer) refusal() seen {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, s := range b.seen {
		if s.status >= 400 {
			return s
		}
	}
	return seen{}
}

func (b *bearer) all() []seen {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.seen)
}

// connect opens an MCP session (the official Go SDK's client, streamable
// HTTP) to endpoint with token.
func connect(t *testing.T, endpoint, token string) (*mcp.ClientSession, *bearer) {
	t.Helper()
	b := &bearer{token: token}
	client := mcp.NewClient(&mcp.Implementation{Name: "test-client", Version: "1.0.0"}, nil)
	cs, err := client.Connect(t.Context(), &mcp.StreamableClientTransport{
		Endpoint: endpoint, HTTPClient: &http.Client{Transport: b}, MaxRetries: -1,
	}, nil)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { _ = cs.Close() })
	return cs, b
}

// TestMCPServerBehindMandate runs the example MCP server behind a real
// Mandate, with the official Go SDK as the MCP client: without a token the
// server answers 401 pointing at its path-inserted metadata and naming the
// scope to ask for; a token without deploy:create may list the tools and
// read metrics, and its deploy call is answered 403 insufficient_scope
// naming deploy:create; with it, the deploy tool exchanges the token and
// the deploy API sees Sam, the MCP client and the MCP server in one chain.
func TestMCPServerBehindMandate(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs real processes")
	}
	bin := buildBinary(t)
	dir := t.TempDir()
	port := freePort(t)
	// The MCP server: its endpoint's URL is its resource identifier, and
	// its agent id.
	mcpSrv := httptest.NewUnstartedServer(nil)
	t.Cleanup(mcpSrv.Close)
	origin := "http://" + mcpSrv.Listener.Addr().String()
	endpoint := origin + mcpserver.Path
	mcpServerID := endpoint
	p := startServer(t, bin, writeMCPConfig(t, dir, port, mcpServerID), port)
	ctx := t.Context()

	// The deploy API, behind verify, keeping its records.
	deployRecords := &records{}
	deploySrv := httptest.NewUnstartedServer(nil)
	t.Cleanup(deploySrv.Close)
	deployURL := "http://" + deploySrv.Listener.Addr().String()
	dv, err := verify.New(ctx, verify.Config{
		Issuer: p.base, Audience: deployURL, Algorithms: []string{"EdDSA"},
		Resource: deployapi.Metadata(), Records: deployRecords,
	})
	if err != nil {
		t.Fatal(err)
	}
	deploySrv.Config.Handler = deployapi.New(dv)
	deploySrv.Start()

	mcpRecords := &records{}
	mv, err := verify.New(ctx, verify.Config{
		Issuer: p.base, Audience: endpoint, Algorithms: []string{"EdDSA"},
		Resource: mcpserver.Metadata(), Records: mcpRecords,
	})
	if err != nil {
		t.Fatal(err)
	}
	tools, err := agent.New(agent.Config{TokenURL: p.base + "/token", ClientID: mcpServerID, ClientSecret: mcpServerSecret})
	if err != nil {
		t.Fatal(err)
	}
	h, err := mcpserver.New(mcpserver.Config{Verifier: mv, Agent: tools, DeployAPI: deployURL})
	if err != nil {
		t.Fatal(err)
	}
	mcpSrv.Config.Handler = h
	mcpSrv.Start()

	metadataURL := origin + "/.well-known/oauth-protected-resource/mcp"
	t.Run("fail/no-token", func(t *testing.T) {
		resp, err := http.Post(endpoint, "application/json", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		want := `Bearer scope="monitoring:read", resource_metadata="` + metadataURL + `"`
		if got := resp.Header.Get("WWW-Authenticate"); resp.StatusCode != http.StatusUnauthorized || got != want {
			t.Errorf("%d %q, want 401 %q", resp.StatusCode, got, want)
		}
		resp, err = http.Get(metadataURL)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var doc struct {
			Resource             string   `json:"resource"`
			AuthorizationServers []string `json:"authorization_servers"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil || doc.Resource != endpoint || !slices.Equal(doc.AuthorizationServers, []string{p.base}) {
			t.Errorf("metadata %+v (%v), want resource %s at %s", doc, err, endpoint, p.base)
		}
	})

	// Sam's tokens for the MCP client, as the client holds them after
	// Sam's consent: one without deploy:create, one with it.
	sam := p.personToken(t)
	readOnly := exchangeFor(t, p, sam, endpoint, "monitoring:read")
	withDeploy := exchangeFor(t, p, sam, endpoint, "monitoring:read deploy:create")

	t.Run("fail/deploy-without-scope", func(t *testing.T) {
		cs, b := connect(t, endpoint, readOnly)
		list, err := cs.ListTools(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, tool := range list.Tools {
			names = append(names, tool.Name)
		}
		slices.Sort(names)
		if !slices.Equal(names, []string{"deploy", "metrics"}) {
			t.Errorf("tools/list: %v, want every tool", names)
		}
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "metrics", Arguments: map[string]any{"service": "api"}})
		if err != nil || res.IsError {
			t.Fatalf("metrics: %v %+v", err, res)
		}
		if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "deploy", Arguments: map[string]any{"service": "api"}}); err == nil {
			t.Fatal("deploy without deploy:create: no error")
		}
		want := `Bearer error="insufficient_scope", error_description="the access token lacks a required scope", scope="deploy:create", resource_metadata="` + metadataURL + `"`
		if got := b.refusal(); got.status != http.StatusForbidden || got.challenge != want {
			t.Errorf("deploy: %d %q, want 403 %q (all: %+v)", got.status, got.challenge, want, b.all())
		}
		if rec := findRecord(mcpRecords, "tool/deploy"); rec == nil || rec.Result != verify.ResultRefused || rec.Reason != "insufficient_scope" {
			t.Errorf("the MCP server's record of the refused call: %+v", rec)
		}
	})

	t.Run("ok/deploy-by-exchange", func(t *testing.T) {
		cs, _ := connect(t, endpoint, withDeploy)
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "deploy", Arguments: map[string]any{"service": "api"}})
		if err != nil || res.IsError {
			t.Fatalf("deploy: %v %+v", err, toolText(res))
		}
		var out mcpserver.DeployResult
		b, _ := json.Marshal(res.StructuredContent)
		if err := json.Unmarshal(b, &out); err != nil || out.PerformedBy != mcpServerID || out.OnBehalfOf != "user:sam" {
			t.Errorf("deploy answered %s (%v)", b, err)
		}
		rec := findRecord(deployRecords, "service/api")
		if rec == nil {
			t.Fatalf("the deploy API has no record of the deployment: %+v", deployRecords.all())
		}
		if rec.OnBehalfOf != "user:sam" || !slices.Equal(rec.Chain, []string{mcpServerID, mcpClientID}) || !slices.Equal(rec.Scopes, []string{"deploy:create"}) {
			t.Errorf("deploy API record: on behalf of %s, chain %v, scopes %v; want user:sam, [%s %s], [deploy:create]",
				rec.OnBehalfOf, rec.Chain, rec.Scopes, mcpServerID, mcpClientID)
		}
		if rec := findRecord(mcpRecords, "tool/deploy"); rec == nil || rec.Action != "tools/call" {
			t.Errorf("the MCP server's record names no tool: %+v", mcpRecords.all())
		}
	})
}

// exchangeFor is the MCP client's exchange of Sam's token for the MCP
// server (audience) and scope.
func exchangeFor(t *testing.T, p *process, sam, audience, scope string) string {
	t.Helper()
	code, body, err := p.formAs(mcpClientID, mcpClientSecret, "/token", map[string][]string{
		"grant_type":         {"urn:ietf:params:oauth:grant-type:token-exchange"},
		"subject_token":      {sam},
		"subject_token_type": {"urn:ietf:params:oauth:token-type:access_token"},
		"audience":           {audience},
		"scope":              {scope},
	})
	tok, _ := body["access_token"].(string)
	if err != nil || code != http.StatusOK || tok == "" {
		t.Fatalf("exchange for %s: %d %v %v", audience, code, body, err)
	}
	return tok
}

// findRecord waits for a record about resource: a verifier hands its
// record over after the handler returns, which is after the client has its
// answer. Nil after 5 s.
func findRecord(r *records, resource string) *verify.Record {
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		recs := r.all()
		for i := len(recs) - 1; i >= 0; i-- {
			if recs[i].Resource == resource {
				return &recs[i]
			}
		}
	}
	return nil
}

// toolText is the text of a tool's result, for failure messages.
func toolText(res *mcp.CallToolResult) string {
	if res == nil {
		return ""
	}
	var out []string
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			out = append(out, tc.Text)
		}
	}
	return strings.Join(out, "; ")
}
