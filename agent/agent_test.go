package agent_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/google/go-cmp/cmp"

	"github.com/mandate-dev/mandate/agent"
	"github.com/mandate-dev/mandate/internal/app"
	"github.com/mandate-dev/mandate/internal/config"
	"github.com/mandate-dev/mandate/internal/provision"
	"github.com/mandate-dev/mandate/internal/store"
	"github.com/mandate-dev/mandate/internal/store/sqlite"
	"github.com/mandate-dev/mandate/oauth"
	"github.com/mandate-dev/mandate/verify"
)

const adminToken = "agent-test-admin-token-0123456789abcdef"

// mandate is a real Mandate server over SQLite on loopback.
type mandate struct {
	url   string
	store store.Store
	key   ed25519.PrivateKey
}

func startMandate(t *testing.T) *mandate {
	t.Helper()
	ctx := context.Background()
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	jwk, _ := json.Marshal(jose.JSONWebKey{Key: pub, KeyID: "k1", Algorithm: "EdDSA", Use: "sig"})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	issuer := "http://" + ln.Addr().String()
	yaml := fmt.Sprintf(`issuer: %s
admin: {token: %s}
users:
  - id: user:sam
    permissions: [monitoring:read, deploy:create]
agents:
  - id: agent:infrabot
    secret: infrabot-secret
    scopes: [monitoring:read, deploy:create]
  - id: agent:keybot
    jwks: {"keys": [%s]}
    scopes: [monitoring:read]
delegations:
  - subject: user:sam
    actor: agent:infrabot
    scopes: [monitoring:read, deploy:create]
  - subject: user:sam
    actor: agent:keybot
    scopes: [monitoring:read]
`, issuer, adminToken, jwk)
	cfg, err := config.Parse([]byte(yaml), "agent-test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg.DataDir = t.TempDir() // the audit witness file goes there
	s, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "m.db"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := provision.Sync(ctx, s, cfg, false, time.Now()); err != nil {
		t.Fatal(err)
	}
	app, err := app.BuildWith(ctx, cfg, s, app.Env{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(app.Handler)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(func() { srv.Close(); app.Close() })
	return &mandate{url: issuer, store: s, key: priv}
}

// samToken is Sam's own token from the admin API.
func (m *mandate) samToken(t *testing.T) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, m.url+"/admin/users/user:sam/token", nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		AccessToken string `json:"access_token"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return body.AccessToken
}

func (m *mandate) exchanges(t *testing.T) int {
	t.Helper()
	evs, err := m.store.QueryEvents(context.Background(), store.EventFilter{Action: "token.exchange", Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return len(evs)
}

func TestExchange(t *testing.T) {
	m := startMandate(t)
	tests := []struct {
		name      string
		cfg       agent.Config
		req       agent.Request
		wantCode  oauth.ErrorCode
		wantScope []string
	}{
		{
			name:      "ok/client-secret",
			cfg:       agent.Config{ClientID: "agent:infrabot", ClientSecret: "infrabot-secret"},
			req:       agent.Request{Audience: "https://deploy.example", Scopes: []string{"deploy:create"}, Context: map[string]any{"trigger": "ci_pipeline"}},
			wantScope: []string{"deploy:create"},
		},
		{
			name:      "ok/private-key-jwt",
			cfg:       agent.Config{ClientID: "agent:keybot", Key: m.key, KeyID: "k1", Algorithm: "EdDSA"},
			req:       agent.Request{Audience: "https://metrics.example"},
			wantScope: []string{"monitoring:read"},
		},
		{
			name:     "fail/wrong-secret",
			cfg:      agent.Config{ClientID: "agent:infrabot", ClientSecret: "nope"},
			req:      agent.Request{Audience: "https://deploy.example"},
			wantCode: oauth.ErrInvalidClient,
		},
		{
			name:     "fail/scope-not-delegated",
			cfg:      agent.Config{ClientID: "agent:keybot", Key: m.key, KeyID: "k1", Algorithm: "EdDSA"},
			req:      agent.Request{Audience: "https://deploy.example", Scopes: []string{"deploy:create"}},
			wantCode: oauth.ErrInvalidScope,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.TokenURL = m.url + "/token"
			c, err := agent.New(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			tc.req.SubjectToken = m.samToken(t)
			tok, err := c.Exchange(context.Background(), tc.req)
			if tc.wantCode != "" {
				var e *agent.Error
				if !errors.As(err, &e) || e.Code != tc.wantCode {
					t.Fatalf("err = %v, want %s", err, tc.wantCode)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(tok.Scopes, " ") != strings.Join(tc.wantScope, " ") || tok.ExpiresAt.Before(time.Now().Add(5*time.Minute)) {
				t.Errorf("token = %+v", tok)
			}
		})
	}
}

func TestCacheAndRenewal(t *testing.T) {
	m := startMandate(t)
	now := time.Now()
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	c, err := agent.New(agent.Config{TokenURL: m.url + "/token", ClientID: "agent:infrabot", ClientSecret: "infrabot-secret", Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	req := agent.Request{SubjectToken: m.samToken(t), Audience: "https://deploy.example"}
	var wg sync.WaitGroup
	toks := make([]string, 8)
	for i := range toks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tok, err := c.Exchange(context.Background(), req)
			if err == nil {
				toks[i] = tok.AccessToken
			}
		}()
	}
	wg.Wait()
	for _, tok := range toks {
		if tok == "" || tok != toks[0] {
			t.Fatal("concurrent callers did not share one token")
		}
	}
	if n := m.exchanges(t); n != 1 {
		t.Fatalf("%d exchanges for 8 concurrent callers, want 1", n)
	}
	mu.Lock()
	now = now.Add(10 * time.Minute) // past expiry minus RefreshBefore
	mu.Unlock()
	tok, err := c.Exchange(context.Background(), req)
	if err != nil || tok.AccessToken == toks[0] {
		t.Fatalf("no renewal near expiry: %v", err)
	}
	if n := m.exchanges(t); n != 2 {
		t.Fatalf("%d exchanges after renewal, want 2", n)
	}
}

// TestTransportToVerifiedAPI is the whole path: the agent's transport gets a
// delegated token, and an API protected by verify sees Sam and InfraBot.
func TestTransportToVerifiedAPI(t *testing.T) {
	m := startMandate(t)
	ctx := context.Background()
	v, err := verify.New(ctx, verify.Config{Issuer: m.url, Audience: "https://deploy.example", Algorithms: []string{"EdDSA"}})
	if err != nil {
		t.Fatal(err)
	}
	api := httptest.NewServer(v.Middleware(verify.RequireScope("deploy:create").Then(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := verify.FromContext(r.Context())
		fmt.Fprintf(w, "%s for %s", p.PerformedBy(), p.OnBehalfOf())
	}))))
	defer api.Close()
	// The audience names the service; here it is served on loopback.
	c, err := agent.New(agent.Config{TokenURL: m.url + "/token", ClientID: "agent:infrabot", ClientSecret: "infrabot-secret",
		Origins: map[string]string{"https://deploy.example": api.URL}})
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Transport: transport(t, c, nil, agent.Request{
		SubjectToken: m.samToken(t), Audience: "https://deploy.example", Scopes: []string{"deploy:create"},
	})}
	resp, err := hc.Get(api.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "agent:infrabot for user:sam" {
		t.Fatalf("API answered %d %q", resp.StatusCode, body)
	}
	// The transport surfaces a refusal as an error, without calling the API.
	bad := &http.Client{Transport: transport(t, c, nil, agent.Request{SubjectToken: "garbage", Audience: "https://deploy.example"})}
	if _, err := bad.Get(api.URL); err == nil {
		t.Fatal("a refused exchange still reached the API")
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	for name, cfg := range map[string]agent.Config{
		"fail/no-url":           {ClientID: "a", ClientSecret: "s"},
		"fail/no-client":        {TokenURL: "https://m/token", ClientSecret: "s"},
		"fail/no-credential":    {TokenURL: "https://m/token", ClientID: "a"},
		"fail/key-without-id":   {TokenURL: "https://m/token", ClientID: "a", Key: ed25519.NewKeyFromSeed(make([]byte, 32))},
		"fail/version-charset":  {TokenURL: "https://m/token", ClientID: "a", ClientSecret: "s", Version: "1.0 beta"},
		"fail/version-too-long": {TokenURL: "https://m/token", ClientID: "a", ClientSecret: "s", Version: strings.Repeat("1", 65)},
	} {
		if _, err := agent.New(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestVersionSent: Config.Version goes out as agent_version with both
// grants, and nothing is sent without it.
func TestVersionSent(t *testing.T) {
	var mu sync.Mutex
	var got []url.Values
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			t.Error(err)
		}
		mu.Lock()
		got = append(got, r.PostForm)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"access_token":"t","token_type":"Bearer","expires_in":300,"scope":"s"}`)
	}))
	defer srv.Close()
	tests := []struct {
		name    string
		version string
		call    func(c *agent.Client) error
		want    []string // the agent_version values sent
	}{
		{
			name: "ok/exchange-with-version", version: "1.4.2+g3f2a9c",
			call: func(c *agent.Client) error {
				_, err := c.Exchange(context.Background(), agent.Request{SubjectToken: "s", Audience: "https://deploy.example"})
				return err
			},
			want: []string{"1.4.2+g3f2a9c"},
		},
		{
			name: "ok/client-credentials-with-version", version: "2026.03_rc-1",
			call: func(c *agent.Client) error {
				_, err := c.ClientCredentials(context.Background(), "", nil)
				return err
			},
			want: []string{"2026.03_rc-1"},
		},
		{
			name: "ok/no-version",
			call: func(c *agent.Client) error {
				_, err := c.Exchange(context.Background(), agent.Request{SubjectToken: "s", Audience: "https://deploy.example"})
				return err
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mu.Lock()
			got = nil
			mu.Unlock()
			c, err := agent.New(agent.Config{TokenURL: srv.URL + "/token", ClientID: "agent:infrabot", ClientSecret: "x", Version: tc.version})
			if err != nil {
				t.Fatal(err)
			}
			if err := tc.call(c); err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(got) != 1 {
				t.Fatalf("%d requests, want 1", len(got))
			}
			if diff := cmp.Diff(tc.want, got[0]["agent_version"]); diff != "" {
				t.Errorf("agent_version (-want +got):\n%s", diff)
			}
		})
	}
}
