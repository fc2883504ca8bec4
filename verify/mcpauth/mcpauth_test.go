package mcpauth_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mandate-dev/mandate/jwks"
	"github.com/mandate-dev/mandate/verify"
	"github.com/mandate-dev/mandate/verify/mcpauth"
)

const issuer = "https://mandate.example"

// fixture is an MCP server behind a Guard, with a key to sign tokens.
type fixture struct {
	key      ed25519.PrivateKey
	endpoint string
	records  *records
	// called names the tools that ran.
	mu     sync.Mutex
	called []string
}

type records struct {
	mu   sync.Mutex
	list []verify.Record
}

func (r *records) Record(rec verify.Record) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.list = append(r.list, rec)
}

// about waits for the record of the n-th request about resource (from 1):
// Middleware hands a record over after the handler returns, which is after
// the client has its answer.
func (r *records) about(t *testing.T, resource string, n int) verify.Record {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		r.mu.Lock()
		seen := 0
		for _, rec := range r.list {
			if rec.Resource == resource {
				if seen++; seen == n {
					r.mu.Unlock()
					return rec
				}
			}
		}
		r.mu.Unlock()
	}
	t.Fatalf("no record %d about %s", n, resource)
	return verify.Record{}
}

type empty struct{}

// newFixture serves tools deploy (deploy:create), metrics
// (monitoring:read), ping (no scope) and secret (not in the map).
func newFixture(t *testing.T) *fixture {
	t.Helper()
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	f := &fixture{key: key, records: &records{}}
	srv := httptest.NewUnstartedServer(nil)
	t.Cleanup(srv.Close)
	f.endpoint = "http://" + srv.Listener.Addr().String() + "/mcp"
	v, err := verify.New(t.Context(), verify.Config{
		Issuer: issuer, Audience: f.endpoint, Algorithms: []string{"EdDSA"},
		Keys:     jwks.Static{"k1": {Key: key.Public(), KeyID: "k1", Algorithm: "EdDSA", Use: "sig"}},
		Resource: verify.ResourceMetadata{RequestScopes: []string{"monitoring:read"}},
		Records:  f.records,
	})
	if err != nil {
		t.Fatal(err)
	}
	g := mcpauth.New(v, mcpauth.Tools{"deploy": {"deploy:create"}, "metrics": {"monitoring:read"}, "ping": nil})
	server := mcp.NewServer(&mcp.Implementation{Name: "test", Version: "1"}, nil)
	server.AddReceivingMiddleware(g.Middleware())
	for _, name := range []string{"deploy", "metrics", "ping", "secret"} {
		mcp.AddTool(server, &mcp.Tool{Name: name}, func(_ context.Context, req *mcp.CallToolRequest, _ empty) (*mcp.CallToolResult, any, error) {
			p, ok := mcpauth.PrincipalFrom(req)
			tok, hasTok := mcpauth.BearerToken(req)
			if !ok || !hasTok || tok == "" {
				return nil, nil, errors.New("no principal or token")
			}
			f.mu.Lock()
			f.called = append(f.called, name)
			f.mu.Unlock()
			return nil, map[string]string{"for": p.OnBehalfOf()}, nil
		})
	}
	mux := http.NewServeMux()
	mux.Handle(v.MetadataPath(), v.ProtectedResourceMetadata())
	mux.Handle("/mcp", g.Handler(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server }, nil)))
	srv.Config.Handler = mux
	srv.Start()
	return f
}

// token signs a token for Sam, acting through agent:client, with scope.
func (f *fixture) token(scope string) string {
	now := time.Now()
	claims, _ := json.Marshal(map[string]any{
		"iss": issuer, "sub": "user:sam", "aud": f.endpoint, "scope": scope,
		"act": map[string]any{"sub": "agent:client"}, "client_id": "agent:client",
		"jti": "jti-" + scope, "iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(),
	})
	enc := base64.RawURLEncoding.EncodeToString
	input := enc([]byte(`{"alg":"EdDSA","kid":"k1","typ":"at+jwt"}`)) + "." + enc(claims)
	return input + "." + enc(ed25519.Sign(f.key, []byte(input)))
}

// post sends one JSON-RPC message with token (none when "").
func (f *fixture) post(t *testing.T, token, body string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, f.endpoint, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// withToken is an HTTP client that sends token.
type withToken string

func (w withToken) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+string(w))
	return http.DefaultTransport.RoundTrip(r)
}

func (f *fixture) session(t *testing.T, scope string) *mcp.ClientSession {
	t.Helper()
	client := mcp.NewClient(&mcp.Implementation{Name: "c", Version: "1"}, nil)
	cs, err := client.Connect(t.Context(), &mcp.StreamableClientTransport{
		Endpoint: f.endpoint, HTTPClient: &http.Client{Transport: withToken(f.token(scope))}, MaxRetries: -1,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cs.Close() })
	return cs
}

func TestChallenges(t *testing.T) {
	f := newFixture(t)
	metadata := strings.Replace(f.endpoint, "/mcp", "/.well-known/oauth-protected-resource/mcp", 1)
	call := func(tool string) string {
		return `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"` + tool + `","arguments":{}}}`
	}
	for _, tc := range []struct {
		name, token, body string
		status            int
		challenge         string
	}{
		{name: "fail/no-token", body: call("deploy"), status: http.StatusUnauthorized,
			challenge: `Bearer scope="monitoring:read", resource_metadata="` + metadata + `"`},
		{name: "fail/missing-scope", token: f.token("monitoring:read"), body: call("deploy"), status: http.StatusForbidden,
			challenge: `Bearer error="insufficient_scope", error_description="the access token lacks a required scope", scope="deploy:create", resource_metadata="` + metadata + `"`},
		{name: "fail/batch-names-every-scope", token: f.token("other"), body: "[" + call("deploy") + "," + call("metrics") + "," + call("ping") + "]", status: http.StatusForbidden,
			challenge: `Bearer error="insufficient_scope", error_description="the access token lacks a required scope", scope="deploy:create monitoring:read", resource_metadata="` + metadata + `"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := f.post(t, tc.token, tc.body)
			if got := resp.Header.Get("WWW-Authenticate"); resp.StatusCode != tc.status || got != tc.challenge {
				t.Errorf("%d %q\nwant %d %q", resp.StatusCode, got, tc.status, tc.challenge)
			}
		})
	}
	resp, err := http.Get(metadata)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("metadata at %s: %d", metadata, resp.StatusCode)
	}
}

// TestToolCalls: through the SDK's client, every tool is listed; a call is
// allowed with the tool's scopes, the record names the tool, and a tool
// the map does not name is refused inside the SDK before it runs.
func TestToolCalls(t *testing.T) {
	f := newFixture(t)
	cs := f.session(t, "monitoring:read deploy:create")
	list, err := cs.ListTools(t.Context(), nil)
	if err != nil || len(list.Tools) != 4 {
		t.Fatalf("tools/list: %v %v", list, err)
	}
	for _, tool := range []string{"deploy", "metrics", "ping"} {
		res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: tool, Arguments: map[string]any{}})
		if err != nil || res.IsError {
			t.Fatalf("%s: %v %+v", tool, err, res)
		}
		if rec := f.records.about(t, "tool/"+tool, 1); rec.Action != "tools/call" || rec.Resource != "tool/"+tool || rec.Result != verify.ResultGranted || rec.OnBehalfOf != "user:sam" {
			t.Errorf("%s: record %+v", tool, rec)
		}
	}
	_, err = cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "secret", Arguments: map[string]any{}})
	var werr *jsonrpc.Error
	if !errors.As(err, &werr) || werr.Code != mcpauth.CodeForbidden || !strings.Contains(werr.Message, "the tool is not allowed") {
		t.Errorf("secret: %v, want a JSON-RPC error %d", err, mcpauth.CodeForbidden)
	}
	if rec := f.records.about(t, "tool/secret", 1); rec.Resource != "tool/secret" || rec.Result != verify.ResultRefused || rec.Reason != "tool_not_allowed" {
		t.Errorf("secret: record %+v", rec)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if strings.Join(f.called, " ") != "deploy metrics ping" {
		t.Errorf("tools run: %v", f.called)
	}
}

// TestMiddlewareFailsClosed: the SDK middleware alone (a server not behind
// Handler) refuses every tool call, as no principal came with it.
func TestMiddlewareFailsClosed(t *testing.T) {
	g := mcpauth.New(nil, mcpauth.Tools{"ping": nil})
	server := mcp.NewServer(&mcp.Implementation{Name: "bare", Version: "1"}, nil)
	server.AddReceivingMiddleware(g.Middleware())
	ran := false
	mcp.AddTool(server, &mcp.Tool{Name: "ping"}, func(context.Context, *mcp.CallToolRequest, empty) (*mcp.CallToolResult, any, error) {
		ran = true
		return nil, nil, nil
	})
	srv := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server }, nil))
	t.Cleanup(srv.Close)
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "c", Version: "1"}, nil).Connect(t.Context(), &mcp.StreamableClientTransport{Endpoint: srv.URL, MaxRetries: -1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	if _, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "ping", Arguments: map[string]any{}}); err == nil || ran {
		t.Errorf("ping without Handler: %v, ran %v", err, ran)
	}
}

// TestBodyTooLarge: a body over the SDK's own bound is refused before it
// is parsed.
func TestBodyTooLarge(t *testing.T) {
	f := newFixture(t)
	resp := f.post(t, f.token("deploy:create"), `{"jsonrpc":"2.0","id":1,"method":"ping","params":{"x":"`+strings.Repeat("a", mcp.DefaultMaxRequestBodyBytes)+`"}}`)
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("%d, want 413", resp.StatusCode)
	}
}
