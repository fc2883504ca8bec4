package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/modelcontextprotocol/go-sdk/oauthex"

	"github.com/mandate-dev/mandate/agent"
	"github.com/mandate-dev/mandate/examples/deployapi"
	"github.com/mandate-dev/mandate/examples/mcpserver"
	"github.com/mandate-dev/mandate/internal/config"
	"github.com/mandate-dev/mandate/verify"
	"github.com/mandate-dev/mandate/verify/feed"
)

// The sign-in cast: the MCP server is a resource people's tokens are
// addressed to (its endpoint's URL), an agent at Mandate that may hand
// those tokens on, and a subscriber of the revocation feed (a client with
// no scopes, as the feed asks).
const (
	// signInServerID is the MCP server's agent, which may exchange the
	// tokens addressed to the MCP server for the deploy API.
	signInServerID   = "agent:example_mcp"
	signInFeedID     = "mcp-tools-feed"
	signInFeedSecret = "mcp-tools-feed-secret"
	// signInTTL is the access tokens' lifetime: short, so that the SDK's
	// token source (golang.org/x/oauth2, which takes a token for expired
	// 10 s before its exp) refreshes 2 s after each grant.
	signInTTL = 12 * time.Second
	// clientRedirect is where the MCP client takes codes; nothing listens
	// there, since Sam's browser hands the code over itself.
	clientRedirect = "http://127.0.0.1:8765/callback"
)

// writeSignInConfig writes Sam with a password, the MCP server registered
// as a resource (monitoring:read by default, deploy:create on request)
// whose agent may hand its tokens on to the deploy API, the feed
// subscriber, and registration open to clients that register themselves or
// describe themselves in a metadata document served on loopback.
func writeSignInConfig(t *testing.T, dir string, port int, endpoint, deployURL string) string {
	t.Helper()
	cfg := fmt.Sprintf(`issuer: http://127.0.0.1:%[1]d
listen: 127.0.0.1:%[1]d
data_dir: %[2]s
admin:
  token: %[3]s
tokens:
  ttl: %[4]s
users:
  - id: user:sam
    permissions: [monitoring:read, deploy:create]
    password_hash: '%[5]s'
agents:
  - id: %[11]s
    secret: %[7]s
    scopes: [deploy:create]
  - id: %[8]s
    secret: %[9]s
resources:
  - uri: %[6]s
    name: Example MCP server
    scopes:
      - {name: 'monitoring:read', description: Read the services' metrics}
      - {name: 'deploy:create', description: Start deployments}
    default_scopes: ['monitoring:read']
    agent: %[11]s
    hand_on: [%[10]s]
registration:
  policy: open
  metadata_documents: true
  metadata_documents_loopback: true
  scopes: [monitoring:read, deploy:create]
`, port, filepath.Join(dir, "data"), testAdmin, signInTTL, config.DevPasswordHash,
		endpoint, mcpServerSecret, signInFeedID, signInFeedSecret, deployURL, signInServerID)
	path := filepath.Join(dir, "mandate-signin.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// signInStage is what both registrations share: one Mandate, the MCP
// server behind it and the deploy API the server hands work on to.
type signInStage struct {
	p                         *process
	endpoint, metadataURL     string
	mcpServerID               string
	deployURL                 string
	mcpRecords, deployRecords *records
	docURL                    string
	// docFetches counts the metadata document's fetches.
	docFetches atomic.Int32
}

// TestMCPClientSignsSamIn is the MCP client's story with the official Go
// SDK on both sides and a real Mandate: the client discovers Mandate from
// the MCP server's 401 (RFC 9728 metadata, then RFC 8414), registers (once
// by a Client ID Metadata Document served over TLS on loopback, once by
// Dynamic Client Registration), and signs Sam in through the consent page,
// driven by a headless browser that the SDK hands the authorization URL;
// it calls a tool, is refused 403 insufficient_scope on a tool needing a
// scope Sam did not give, steps up (Sam consents again) and the call goes
// through, the MCP server handing the work on to the deploy API by token
// exchange; its token source refreshes; and once Sam revokes the client on
// My agents, its next call is refused within a second.
func TestMCPClientSignsSamIn(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs real processes")
	}
	s := startSignInStage(t)

	// By its metadata document: the client asks for every scope the
	// server supports and Sam unticks deploy:create.
	t.Run("metadata-document", func(t *testing.T) {
		s.story(t, &auth.AuthorizationCodeHandlerConfig{
			ClientIDMetadataDocumentConfig: &auth.ClientIDMetadataDocumentConfig{URL: s.docURL},
			RedirectURL:                    clientRedirect,
			ScopeFilter: func(discovered []string) []string {
				return union(discovered, mcpserver.Metadata().ScopesSupported)
			},
		}, "monitoring:read")
	})
	// By Dynamic Client Registration: the client asks for the scope the
	// server's 401 names, which Sam approves.
	t.Run("dynamic-registration", func(t *testing.T) {
		s.story(t, &auth.AuthorizationCodeHandlerConfig{
			DynamicClientRegistrationConfig: &auth.DynamicClientRegistrationConfig{Metadata: &oauthex.ClientRegistrationMetadata{
				RedirectURIs: []string{clientRedirect}, ClientName: "Notes MCP (registered)", TokenEndpointAuthMethod: "none",
				GrantTypes: []string{"authorization_code", "refresh_token"}, ResponseTypes: []string{"code"},
			}},
		}, "")
	})
}

// startSignInStage starts Mandate (trusting the document server's
// certificate), the document server, the deploy API and the MCP server,
// whose verifier follows the revocation feed.
func startSignInStage(t *testing.T) *signInStage {
	t.Helper()
	bin := buildBinary(t)
	dir := t.TempDir()
	port := freePort(t)
	ctx := t.Context()

	mcpSrv := httptest.NewUnstartedServer(nil)
	t.Cleanup(mcpSrv.Close)
	origin := "http://" + mcpSrv.Listener.Addr().String()
	s := &signInStage{
		endpoint: origin + mcpserver.Path, metadataURL: origin + "/.well-known/oauth-protected-resource/mcp",
		mcpRecords: &records{}, deployRecords: &records{},
	}
	s.mcpServerID = signInServerID

	// The MCP client's metadata document, over TLS on loopback. Mandate
	// trusts the test server's certificate and nothing else: SSL_CERT_FILE
	// replaces the system's roots.
	docSrv := httptest.NewUnstartedServer(nil)
	t.Cleanup(docSrv.Close)
	docSrv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/clients/notes.json" {
			http.NotFound(w, r)
			return
		}
		s.docFetches.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "max-age=300")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"client_id": s.docURL, "client_name": "Notes MCP", "redirect_uris": []string{clientRedirect},
			"token_endpoint_auth_method": "none", "grant_types": []string{"authorization_code", "refresh_token"},
			"response_types": []string{"code"},
		})
	})
	docSrv.StartTLS()
	s.docURL = docSrv.URL + "/clients/notes.json"
	certFile := filepath.Join(dir, "roots.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: docSrv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	// The deploy API's address, before Mandate starts.
	deploySrv := httptest.NewUnstartedServer(nil)
	t.Cleanup(deploySrv.Close)
	s.deployURL = "http://" + deploySrv.Listener.Addr().String()

	s.p, _ = startServerEnv(t, bin, writeSignInConfig(t, dir, port, s.endpoint, s.deployURL), port, []string{"SSL_CERT_FILE=" + certFile})

	// The deploy API, behind verify.
	dv, err := verify.New(ctx, verify.Config{
		Issuer: s.p.base, Audience: s.deployURL, Algorithms: []string{"EdDSA"},
		Resource: deployapi.Metadata(), Records: s.deployRecords,
	})
	if err != nil {
		t.Fatal(err)
	}
	deploySrv.Config.Handler = deployapi.New(dv)
	deploySrv.Start()

	// The MCP server, following the revocation feed.
	rf, err := feed.New(ctx, feed.Config{
		URL: s.p.base + "/revocations/stream", ClientID: signInFeedID, ClientSecret: signInFeedSecret,
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	mv, err := verify.New(ctx, verify.Config{
		Issuer: s.p.base, Audience: s.endpoint, Algorithms: []string{"EdDSA"},
		Resource: mcpserver.Metadata(), Records: s.mcpRecords, Revocation: rf,
	})
	if err != nil {
		t.Fatal(err)
	}
	ready, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := rf.Ready(ready); err != nil {
		t.Fatalf("revocation feed: %v", err)
	}
	tools, err := agent.New(agent.Config{TokenURL: s.p.base + "/token", ClientID: s.mcpServerID, ClientSecret: mcpServerSecret})
	if err != nil {
		t.Fatal(err)
	}
	h, err := mcpserver.New(mcpserver.Config{Verifier: mv, Agent: tools, DeployAPI: s.deployURL})
	if err != nil {
		t.Fatal(err)
	}
	mcpSrv.Config.Handler = h
	mcpSrv.Start()
	return s
}

// story runs the client's story with the SDK's authorization-code handler
// configured by cfg (its registration and scope choice; the rest is set
// here). ticks are the scopes Sam leaves ticked at the first consent ("" keeps
// the page's ticks).
func (s *signInStage) story(t *testing.T, cfg *auth.AuthorizationCodeHandlerConfig, ticks string) {
	r := s.newClientRun(t, cfg, ticks)
	r.signIn(t)
	t.Run("ok/tool", r.tool)
	t.Run("ok/step-up", r.stepUp)
	t.Run("ok/refresh", r.refresh)
	t.Run("ok/revoked-on-my-agents", r.revoked)
}

// clientRun is one MCP client's story: the SDK's handler and session, Sam's
// browser, and what the client's transports saw.
type clientRun struct {
	s       *signInStage
	cfg     *auth.AuthorizationCodeHandlerConfig
	sam     *samBrowser
	handler *auth.AuthorizationCodeHandler
	client  *mcp.Client
	cs      *mcp.ClientSession
	// answers are the MCP server's answers; grants the token requests.
	answers *watcher
	grants  *tokenGrants
	// clientIDs are the clients Sam approved: one, unless the SDK
	// registers again.
	clientIDs []string
	// story is the whole story's test, whose end closes the sessions.
	story *testing.T
}

func (s *signInStage) newClientRun(t *testing.T, cfg *auth.AuthorizationCodeHandlerConfig, ticks string) *clientRun {
	t.Helper()
	r := &clientRun{s: s, cfg: cfg, story: t, sam: newSamBrowser(s.p.base, "user:sam", config.DevPassword),
		answers: &watcher{}, grants: &tokenGrants{},
		client: mcp.NewClient(&mcp.Implementation{Name: "notes-mcp", Version: "1.0.0"}, nil)}
	if ticks != "" {
		r.sam.ticks(strings.Fields(ticks)...)
	}
	cfg.AuthorizationCodeFetcher = r.sam.fetch
	cfg.RequestRefreshToken = true
	cfg.Client = &http.Client{Transport: r.grants, Timeout: 10 * time.Second}
	h, err := auth.NewAuthorizationCodeHandler(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r.handler = h
	return r
}

// connect opens an MCP session with the SDK's handler, which lives until
// the story ends.
func (r *clientRun) connect(t *testing.T) {
	t.Helper()
	cs, err := r.client.Connect(r.story.Context(), &mcp.StreamableClientTransport{
		Endpoint: r.s.endpoint, HTTPClient: &http.Client{Transport: r.answers}, OAuthHandler: r.handler, MaxRetries: -1,
	}, nil)
	if err != nil {
		t.Fatalf("connect: %v (answers %+v, visits %+v)", err, r.answers.all(), r.sam.history())
	}
	r.story.Cleanup(func() { _ = cs.Close() })
	r.cs = cs
}

func (r *clientRun) byDocument() bool { return r.cfg.ClientIDMetadataDocumentConfig != nil }

// call calls a tool with service "api".
func (r *clientRun) call(t *testing.T, tool string) (*mcp.CallToolResult, error) {
	return r.cs.CallTool(t.Context(), &mcp.CallToolParams{Name: tool, Arguments: map[string]any{"service": "api"}})
}

// signIn connects: discovery, registration, sign-in and consent all happen
// inside Connect, whose initialize is answered 401.
func (r *clientRun) signIn(t *testing.T) {
	s := r.s
	r.connect(t)
	if first := r.answers.all()[0]; first.status != http.StatusUnauthorized || !strings.Contains(first.challenge, `resource_metadata="`+s.metadataURL+`"`) {
		t.Errorf("the first answer: %d %q, want 401 pointing at %s", first.status, first.challenge, s.metadataURL)
	}
	visits := r.sam.history()
	if len(visits) != 1 || !visits[0].signIn {
		t.Fatalf("visits %+v, want one, with a sign-in", visits)
	}
	q := visits[0].query
	clientID := q.Get("client_id")
	r.clientIDs = []string{clientID}
	if r.byDocument() && clientID != s.docURL {
		t.Errorf("client_id %q, want the document's URL %s", clientID, s.docURL)
	}
	// offline_access: Mandate lists it, so the SDK asks for it.
	scope := strings.Fields(q.Get("scope"))
	if q.Get("resource") != s.endpoint || q.Get("code_challenge_method") != "S256" || !slices.Contains(scope, "monitoring:read") || !slices.Contains(scope, "offline_access") {
		t.Errorf("the authorization request: %v", q)
	}
	consent := visits[0].consent
	if !strings.Contains(consent, clientID+" asks to act for you") || !strings.Contains(consent, "Example MCP server") {
		t.Errorf("the consent page:\n%s", consent)
	}
	if r.byDocument() && (!strings.Contains(consent, "calls itself Notes MCP") || !strings.Contains(consent, "any program listening there could receive it")) {
		t.Errorf("the consent page shows neither the document's name as the client's claim nor the loopback warning:\n%s", consent)
	}
	// Mandate keeps the client as the way it came: a public client,
	// registered by its document or by itself.
	way := "dcr"
	if r.byDocument() {
		way = "cimd"
		if s.docFetches.Load() == 0 {
			t.Error("Mandate never fetched the metadata document")
		}
	}
	code, stored, err := s.p.admin(http.MethodGet, "/admin/agents/"+url.PathEscape(clientID), "")
	if err != nil || code != http.StatusOK || stored["registration"] != way || stored["public"] != true {
		t.Errorf("the stored client: %d %v %v, want a public client registered by %s", code, stored, err, way)
	}
	c := claimsOf(t, currentToken(t, r.handler))
	if c.Sub != "user:sam" || c.Act.Sub != clientID || c.ClientID != clientID || c.Aud != s.endpoint || c.Scope != "monitoring:read" {
		t.Errorf("the access token: %+v, want Sam, acted for by %s, for %s, monitoring:read", c, clientID, s.endpoint)
	}
}

// tool calls metrics, which monitoring:read allows.
func (r *clientRun) tool(t *testing.T) {
	clientID := r.clientIDs[0]
	res, err := r.call(t, "metrics")
	if err != nil || res.IsError {
		t.Fatalf("metrics: %v %s", err, toolText(res))
	}
	rec := waitRecord(r.s.mcpRecords, func(rec verify.Record) bool { return rec.Resource == "tool/metrics" && rec.PerformedBy == clientID })
	if rec == nil || rec.Result != verify.ResultGranted || rec.OnBehalfOf != "user:sam" || !slices.Equal(rec.Chain, []string{clientID}) {
		t.Errorf("the MCP server's record: %+v, want Sam through %s (all: %+v)", rec, clientID, r.s.mcpRecords.all())
	}
}

// stepUp calls deploy, which needs deploy:create: the MCP server refuses
// it 403 insufficient_scope, the SDK asks Sam again for it with what it
// held, and the call goes through.
func (r *clientRun) stepUp(t *testing.T) {
	s := r.s
	res, err := r.call(t, "deploy")
	want := `Bearer error="insufficient_scope", error_description="the access token lacks a required scope", scope="deploy:create", resource_metadata="` + s.metadataURL + `"`
	if got := r.answers.first(http.StatusForbidden); got.challenge != want {
		t.Errorf("the deploy call's refusal: %q, want 403 %q (answers %+v)", got.challenge, want, r.answers.all())
	}
	visits := r.sam.history()
	if len(visits) != 2 || visits[1].signIn {
		t.Fatalf("visits %+v, want a second one on the same session", visits)
	}
	if next := visits[1].query.Get("client_id"); next != r.clientIDs[0] {
		// The SDK registers anew at each authorization under Dynamic
		// Client Registration (v1.8.0 keeps no registration), so the
		// step-up is a second client, which Sam approves as such. The
		// MCP server binds a session to the person and the agent that
		// opened it, so the first session refuses the second client's
		// token (403, no challenge); the client opens another.
		if r.byDocument() || err == nil {
			t.Fatalf("the step-up changed the client from %s to %s (deploy: %v)", r.clientIDs[0], next, err)
		}
		if !slices.Contains(r.answers.all(), seen{status: http.StatusForbidden}) {
			t.Errorf("the first session did not refuse the second client 403: %+v", r.answers.all())
		}
		t.Logf("the SDK registered again for the step-up: %s, then %s", r.clientIDs[0], next)
		r.clientIDs = append(r.clientIDs, next)
		r.connect(t)
		res, err = r.call(t, "deploy")
	}
	if err != nil {
		t.Fatalf("deploy: %v (answers %+v)", err, r.answers.all())
	}
	if got := strings.Fields(visits[1].query.Get("scope")); !slices.Contains(got, "deploy:create") || !slices.Contains(got, "monitoring:read") {
		t.Errorf("the step-up asked for %v, want deploy:create with what it held", got)
	}
	if c := claimsOf(t, currentToken(t, r.handler)); !slices.Contains(strings.Fields(c.Scope), "deploy:create") {
		t.Errorf("the stepped-up token: %+v", c)
	}
	stepped := r.clientIDs[len(r.clientIDs)-1]
	if rec := waitRecord(s.mcpRecords, func(rec verify.Record) bool {
		return rec.Resource == "tool/deploy" && rec.PerformedBy == stepped && rec.Result != verify.ResultRefused
	}); rec == nil || !slices.Contains(rec.Scopes, "deploy:create") {
		t.Errorf("the MCP server let no deploy call through after the step-up: %+v (all: %+v)", rec, s.mcpRecords.all())
	}
	// The deploy tool hands the work on by exchange: the resource's
	// agent may, for the deploy API, as Sam was shown.
	if res.IsError {
		t.Fatalf("deploy: %s", toolText(res))
	}
	var out mcpserver.DeployResult
	b, _ := json.Marshal(res.StructuredContent)
	if err := json.Unmarshal(b, &out); err != nil || out.PerformedBy != s.mcpServerID || out.OnBehalfOf != "user:sam" {
		t.Errorf("deploy answered %s (%v)", b, err)
	}
	rec := waitRecord(s.deployRecords, func(rec verify.Record) bool {
		return rec.Resource == "service/api" && slices.Contains(rec.Chain, stepped)
	})
	if rec == nil || rec.OnBehalfOf != "user:sam" || !slices.Equal(rec.Chain, []string{s.mcpServerID, stepped}) || !slices.Equal(rec.Scopes, []string{"deploy:create"}) {
		t.Errorf("the deploy API's record: %+v, want Sam, through %s then %s, deploy:create (all: %+v)", rec, s.mcpServerID, stepped, s.deployRecords.all())
	}
	if c := visits[1].consent; !strings.Contains(c, s.mcpServerID) || !strings.Contains(c, s.deployURL) {
		t.Errorf("the step-up's consent page names neither the MCP server's agent nor where it hands on:\n%s", c)
	}
}

// refresh waits for the token to expire in the token source's eyes and
// calls a tool: the SDK refreshes, without asking Sam.
func (r *clientRun) refresh(t *testing.T) {
	before := r.grants.count("refresh_token")
	// The token source takes a token for expired 10 s before its exp.
	time.Sleep(time.Until(r.grants.lastAt().Add(signInTTL - 10*time.Second + 200*time.Millisecond)))
	res, err := r.call(t, "metrics")
	if err != nil || res.IsError {
		t.Fatalf("metrics after expiry: %v %s", err, toolText(res))
	}
	if r.grants.count("refresh_token") <= before {
		t.Errorf("no refresh: token requests %v", r.grants.all())
	}
	if n := len(r.sam.history()); n != 2 {
		t.Errorf("Sam was asked again (%d visits): a refresh needs no consent", n)
	}
}

// revoked has Sam revoke the client on My agents (and decline when the
// SDK sends him back): the next call is refused within a second.
func (r *clientRun) revoked(t *testing.T) {
	r.sam.declines()
	for _, id := range r.clientIDs {
		n, err := r.sam.revoke(t.Context(), id)
		if err != nil || n == 0 {
			t.Fatalf("revoke %s on My agents: %d, %v", id, n, err)
		}
		t.Logf("Sam revoked %d delegations to %s", n, id)
	}
	revoked := time.Now()
	var took time.Duration
	for {
		res, err := r.call(t, "metrics")
		if err != nil || res.IsError {
			took = time.Since(revoked)
			break
		}
		if time.Since(revoked) > 5*time.Second {
			t.Fatal("calls still answered 5 s after Sam revoked the client")
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("refused %v after Sam revoked", took.Round(time.Millisecond))
	if took > time.Second {
		t.Errorf("refused only %v after Sam revoked, want within a second", took)
	}
	if got := r.answers.refusal(http.StatusUnauthorized); !strings.Contains(got.challenge, `error="invalid_token"`) {
		t.Errorf("the refusal after revocation: %+v", r.answers.all())
	}
}

// waitRecord waits for a record that match accepts: a verifier hands its
// record over after the handler returns, which is after the client has its
// answer. Nil after 5 s.
func waitRecord(r *records, match func(verify.Record) bool) *verify.Record {
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		recs := r.all()
		for i := len(recs) - 1; i >= 0; i-- {
			if match(recs[i]) {
				return &recs[i]
			}
		}
	}
	return nil
}

// union is a followed by the members of b it lacks.
func union(a, b []string) []string {
	out := slices.Clone(a)
	for _, s := range b {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// currentToken is the access token the SDK's handler holds.
func currentToken(t *testing.T, h *auth.AuthorizationCodeHandler) string {
	t.Helper()
	ts, err := h.TokenSource(t.Context())
	if err != nil || ts == nil {
		t.Fatalf("token source: %v", err)
	}
	tok, err := ts.Token()
	if err != nil {
		t.Fatal(err)
	}
	return tok.AccessToken
}

// accessClaims are the claims of an access token the test reads.
type accessClaims struct {
	Sub      string `json:"sub"`
	Aud      string `json:"aud"`
	Scope    string `json:"scope"`
	ClientID string `json:"client_id"`
	Act      struct {
		Sub string `json:"sub"`
	} `json:"act"`
}

// claimsOf reads an access token's claims, unchecked.
func claimsOf(t *testing.T, tok string) accessClaims {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %d parts", len(parts))
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c accessClaims
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// watcher is the MCP client's HTTP transport: it notes every answer.
type watcher struct {
	mu   sync.Mutex
	seen []seen
}

func (w *watcher) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err == nil {
		w.mu.Lock()
		w.seen = append(w.seen, seen{resp.StatusCode, resp.Header.Get("WWW-Authenticate")})
		w.mu.Unlock()
	}
	return resp, err
}

func (w *watcher) all() []seen {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.seen)
}

// first is the first answer with status.
func (w *watcher) first(status int) seen {
	for _, a := range w.all() {
		if a.status == status {
			return a
		}
	}
	return seen{}
}

// refusal is the last answer with status.
func (w *watcher) refusal(status int) seen {
	all := w.all()
	for i := len(all) - 1; i >= 0; i-- {
		if all[i].status == status {
			return all[i]
		}
	}
	return seen{}
}

// tokenGrants is the transport of the SDK's own requests to Mandate
// (metadata, registration, token): it notes the grant type of each token
// request and when the last one was answered.
type tokenGrants struct {
	mu     sync.Mutex
	grants []string
	last   time.Time
}

func (g *tokenGrants) RoundTrip(r *http.Request) (*http.Response, error) {
	grant := ""
	if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/token") && r.Body != nil {
		b, err := io.ReadAll(r.Body)
		_ = r.Body.Close()
		if err != nil {
			return nil, err
		}
		r = r.Clone(r.Context())
		r.Body = io.NopCloser(bytes.NewReader(b))
		form, _ := url.ParseQuery(string(b))
		grant = form.Get("grant_type")
	}
	resp, err := http.DefaultTransport.RoundTrip(r)
	if grant != "" && err == nil && resp.StatusCode == http.StatusOK {
		g.mu.Lock()
		g.grants = append(g.grants, grant)
		g.last = time.Now()
		g.mu.Unlock()
	}
	return resp, err
}

func (g *tokenGrants) count(grant string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := 0
	for _, x := range g.grants {
		if x == grant {
			n++
		}
	}
	return n
}

func (g *tokenGrants) all() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.grants)
}

func (g *tokenGrants) lastAt() time.Time {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.last
}
