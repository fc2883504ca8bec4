package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mandate-dev/mandate/internal/cli"
	"github.com/mandate-dev/mandate/internal/config"
)

// TestAgainstServeDev runs the command against a real `mandate serve
// --dev`, in process, as the ten-minute guide does: a call without a token
// is answered 401 with the metadata that names the dev server, and the dev
// server takes an MCP client that registers itself and sends it, for the
// MCP server the dev cast registers, to Sam's sign-in.
func TestAgainstServeDev(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })

	mandateAddr, mcpAddr := freeAddr(t), freeAddr(t)
	issuer := "http://" + mandateAddr
	args := []string{"serve", "--dev", "--listen", mandateAddr, "--data-dir", t.TempDir()}
	wg.Add(1)
	go func() {
		defer wg.Done()
		if code := cli.Main(ctx, args, io.Discard, io.Discard); code != 0 && ctx.Err() == nil {
			t.Errorf("serve --dev exited %d", code)
		}
	}()
	waitFor(t, issuer+"/healthz", http.StatusOK)

	var out lockedBuffer
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := run(ctx, []string{"--issuer", issuer, "--listen", mcpAddr, "--reporter-secret", config.DevMCPReporterSecret}, &out, io.Discard); err != nil {
			t.Errorf("mcpserver: %v", err)
		}
	}()
	endpoint := "http://" + mcpAddr + "/mcp"
	metadata := "http://" + mcpAddr + "/.well-known/oauth-protected-resource/mcp"
	resp := waitFor(t, endpoint, http.StatusUnauthorized)
	if got, want := resp.Header.Get("WWW-Authenticate"), `Bearer scope="monitoring:read", resource_metadata="`+metadata+`"`; got != want {
		t.Errorf("WWW-Authenticate %q, want %q", got, want)
	}
	if !strings.Contains(out.String(), "The example MCP server is at "+endpoint+", behind Mandate at "+issuer) {
		t.Errorf("the command says %q", out.String())
	}
	var doc struct {
		Resource             string   `json:"resource"`
		AuthorizationServers []string `json:"authorization_servers"`
	}
	getJSON(t, metadata, &doc)
	if doc.Resource != endpoint || len(doc.AuthorizationServers) != 1 || doc.AuthorizationServers[0] != issuer {
		t.Errorf("metadata %+v, want %s at %s", doc, endpoint, issuer)
	}

	// The dev cast: registration open, and the example MCP server a
	// resource its clients may ask for.
	reg, _ := json.Marshal(map[string]any{"redirect_uris": []string{"http://127.0.0.1:9/callback"}, "token_endpoint_auth_method": "none",
		"client_name": "test client", "grant_types": []string{"authorization_code"}, "response_types": []string{"code"}})
	r, err := http.Post(issuer+"/register", "application/json", bytes.NewReader(reg))
	if err != nil {
		t.Fatal(err)
	}
	var client struct {
		ClientID string `json:"client_id"`
	}
	err = json.NewDecoder(r.Body).Decode(&client)
	r.Body.Close()
	if err != nil || r.StatusCode != http.StatusCreated {
		t.Fatalf("register: %d %v", r.StatusCode, err)
	}
	q := url.Values{"client_id": {client.ClientID}, "redirect_uri": {"http://127.0.0.1:9/callback"}, "response_type": {"code"},
		"resource": {config.DevMCPResource}, "state": {"s"},
		"code_challenge": {"E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"}, "code_challenge_method": {"S256"}}
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	a, err := noRedirect.Get(issuer + "/authorize?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	a.Body.Close()
	if loc := a.Header.Get("Location"); a.StatusCode != http.StatusFound || !strings.HasPrefix(loc, "/login") {
		t.Errorf("authorize for %s: %d to %q, want Sam's sign-in", config.DevMCPResource, a.StatusCode, loc)
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// waitFor GETs u until it answers status, for at most 20 s.
func waitFor(t *testing.T, u string, status int) *http.Response {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		resp, err := http.Get(u)
		if err != nil {
			continue
		}
		resp.Body.Close()
		if resp.StatusCode == status {
			return resp
		}
	}
	t.Fatalf("%s did not answer %d", u, status)
	return nil
}

func getJSON(t *testing.T, u string, v any) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v", u, resp.StatusCode, err)
	}
}

// lockedBuffer is a buffer the command writes while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
