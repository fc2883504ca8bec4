package server_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/mandate-dev/mandate/internal/app"
	"github.com/mandate-dev/mandate/internal/config"
	"github.com/mandate-dev/mandate/internal/provision"
	"github.com/mandate-dev/mandate/internal/store"
	"github.com/mandate-dev/mandate/internal/store/postgres/pgtest"
	"github.com/mandate-dev/mandate/internal/store/sqlite"
	"github.com/mandate-dev/mandate/internal/store/storetest"
	"github.com/mandate-dev/mandate/oauth"
)

const (
	adminToken  = "test-admin-token-0123456789abcdef0123456789"
	idpAudience = "mandate"
)

// testConfig is the cast of the server tests: Sam, the InfraBot chain, a
// rogue agent and a CEL policy. %[1]s is the issuer, %[2]s the IdP's URL.
const testConfig = `
issuer: %[1]s
listen: 127.0.0.1:0
admin:
  token: ` + adminToken + `
delegation:
  max_depth: 3
identity_providers:
  - issuer: %[2]s
    jwks_uri: %[2]s/jwks
    audience: ` + idpAudience + `
users:
  - id: user:sam
    permissions: [monitoring:read, deploy:create, secrets:manage, deploy:tag]
  - id: user:alex
    permissions: [monitoring:read]
  - id: user:alice
    permissions: [expense:approve]
    limits:
      - type: expense_approval
        max_amount: 1000
        currency: USD
agents:
  - id: agent:infrabot
    secret: infrabot-secret
    scopes: [monitoring:read, deploy:comment, deploy:create, deploy:tag]
    delegate_to: [agent:argocd]
  - id: agent:argocd
    secret: argocd-secret
    scopes: [monitoring:read, deploy:create, deploy:tag]
    delegate_to: [agent:cleanup_agent, agent:infrabot]
  - id: agent:cleanup_agent
    secret: cleanup_agent-secret
    scopes: [deploy:tag, monitoring:read]
    delegate_to: [agent:reaper]
  - id: agent:reaper
    secret: reaper-secret
    scopes: [deploy:tag]
  - id: agent:expense
    secret: expense-secret
    scopes: [expense:approve]
  - id: rs:deploy
    secret: rs-deploy-secret
  - id: rs:reporter
    secret: rs-reporter-secret
    scopes: [audit:report]
    resources: [https://expense.example]
  - id: agent:mallory
    secret: mallory-secret
    scopes: [monitoring:read, deploy:create, secrets:manage]
delegations:
  - subject: user:sam
    actor: agent:infrabot
    scopes: [monitoring:read, deploy:create, deploy:tag]
  - subject: user:alex
    actor: agent:infrabot
    scopes: [monitoring:read]
    audiences: [https://metrics.example]
  - subject: user:alice
    actor: agent:expense
    scopes: [expense:approve]
policies:
  - name: prod-deploys-only-from-ci
    if: 'context.environment == "prod" && "deploy:create" in scopes'
    require: 'context.trigger == "ci_pipeline"'
  # Fails to evaluate (no such key) for the requests it selects: the
  # engine-failure case of THREATS T32.
  - name: chaos-needs-a-ticket
    if: 'context.environment == "chaos"'
    require: 'context.ticket == "approved"'
`

// idp is a trusted identity provider: an ES256 key and its JWKS.
type idp struct {
	srv *httptest.Server
	key *ecdsa.PrivateKey
	kid string
}

func newIDP(t testing.TB) *idp {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p := &idp{key: key, kid: "idp-key-1"}
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: p.kid, Algorithm: "ES256", Use: "sig"}}}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(set)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

// token signs claims with the IdP key; nil values delete a default claim.
func (p *idp) token(t testing.TB, sub string, override map[string]any) string {
	t.Helper()
	now := time.Now()
	claims := map[string]any{
		"iss": p.srv.URL, "sub": sub, "aud": idpAudience,
		"iat": now.Unix(), "exp": now.Add(10 * time.Minute).Unix(),
	}
	for k, v := range override {
		if v == nil {
			delete(claims, k)
		} else {
			claims[k] = v
		}
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: p.key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", p.kid))
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(claims)
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	s, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// harness is a real Mandate over real SQLite behind real HTTP.
type harness struct {
	t      *testing.T
	url    string
	idp    *idp
	store  store.Store
	faulty *storetest.Faulty
	app    *app.App
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	return newHarnessOn(t, openSQLite, nil)
}

// openSQLite opens an SQLite store in t's temporary directory.
func openSQLite(t *testing.T) store.Store {
	t.Helper()
	raw, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "mandate.db"))
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// backend is a store the threat tests run on.
type backend struct {
	name string
	open func(t *testing.T) store.Store
}

// backends are SQLite always and PostgreSQL when MANDATE_TEST_POSTGRES_URL
// is set (a schema of the test's own; pgtest skips and says so without it).
func backends() []backend {
	return []backend{
		{name: "sqlite", open: openSQLite},
		{name: "postgres", open: func(t *testing.T) store.Store { return pgtest.Open(t) }},
	}
}

// onEveryBackend runs test on a fresh harness per backend.
func onEveryBackend(t *testing.T, test func(t *testing.T, h *harness)) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) { test(t, newHarnessOn(t, b.open, nil)) })
	}
}

// newHarnessOn is a harness on the store open returns, with the clock now
// (nil for time.Now).
func newHarnessOn(t *testing.T, open func(t *testing.T) store.Store, now func() time.Time) *harness {
	t.Helper()
	return newHarnessEdited(t, open, now, nil)
}

// newHarnessEdited is newHarnessOn with testConfig changed by edit (when
// not nil) before the server is built.
func newHarnessEdited(t *testing.T, open func(t *testing.T) store.Store, now func() time.Time, edit func(*config.Config)) *harness {
	t.Helper()
	return newHarnessEnv(t, open, edit, app.Env{Logger: slog.New(slog.DiscardHandler), Now: now})
}

// newHarnessEnv is newHarnessEdited with the app built in env (its
// logger, clock and tracer provider).
func newHarnessEnv(t *testing.T, open func(t *testing.T) store.Store, edit func(*config.Config), env app.Env) *harness {
	t.Helper()
	ctx := context.Background()
	p := newIDP(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	issuer := "http://" + ln.Addr().String()
	cfg, err := config.Parse([]byte(fmt.Sprintf(testConfig, issuer, p.srv.URL)), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg.DataDir = t.TempDir() // the audit witness file goes there
	if edit != nil {
		edit(cfg)
	}
	raw := open(t)
	faulty := storetest.NewFaulty(raw)
	if _, err := provision.Sync(ctx, faulty, cfg, false, time.Now()); err != nil {
		t.Fatal(err)
	}
	app, err := app.BuildWith(ctx, cfg, faulty, env)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(app.Handler)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(func() { srv.Close(); app.Close() })
	return &harness{t: t, url: issuer, idp: p, store: raw, faulty: faulty, app: app}
}

// response is a decoded HTTP answer.
type response struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func (r response) str(k string) string { s, _ := r.body[k].(string); return s }

func (h *harness) do(req *http.Request) response {
	h.t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	out := response{status: resp.StatusCode, header: resp.Header, raw: string(b)}
	_ = json.Unmarshal(b, &out.body)
	return out
}

// post sends a form to path, authenticating as client (client_secret_post)
// unless client is "".
func (h *harness) post(path, client string, form url.Values) response {
	h.t.Helper()
	return h.postAs(path, client, strings.TrimPrefix(client, "agent:")+"-secret", form, nil)
}

// postAs sends a form to path with client and secret (client_secret_post;
// none when client is ""), and any extra headers.
func (h *harness) postAs(path, client, secret string, form url.Values, header http.Header) response {
	h.t.Helper()
	if client != "" {
		form.Set("client_id", client)
		form.Set("client_secret", secret)
	}
	req, _ := http.NewRequest(http.MethodPost, h.url+path, strings.NewReader(form.Encode()))
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return h.do(req)
}

// admin calls the admin API.
func (h *harness) admin(method, path string, body any) response {
	h.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = strings.NewReader(string(b))
	}
	req, _ := http.NewRequest(method, h.url+path, rd)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	req.Header.Set("Content-Type", "application/json")
	return h.do(req)
}

// exchange runs a token exchange by client.
func (h *harness) exchange(client, subjectToken, subjectType string, extra url.Values) response {
	h.t.Helper()
	form := url.Values{
		"grant_type":         {oauth.GrantTokenExchange},
		"subject_token":      {subjectToken},
		"subject_token_type": {subjectType},
	}
	for k, v := range extra {
		form[k] = v
	}
	return h.post("/token", client, form)
}

// mustExchange exchanges and fails the test unless a token comes back.
func (h *harness) mustExchange(client, subjectToken, subjectType string, extra url.Values) string {
	h.t.Helper()
	r := h.exchange(client, subjectToken, subjectType, extra)
	if r.status != http.StatusOK || r.str("access_token") == "" {
		h.t.Fatalf("exchange by %s: %d %s", client, r.status, r.raw)
	}
	return r.str("access_token")
}

// samToken is Sam's IdP token.
func (h *harness) samToken() string { return h.idp.token(h.t, "user:sam", nil) }

// hop1 is InfraBot's token for Sam addressed to ArgoCD.
func (h *harness) hop1(scope string) string {
	return h.mustExchange("agent:infrabot", h.samToken(), oauth.TokenTypeIDToken,
		url.Values{"audience": {"agent:argocd"}, "scope": {scope}})
}

// claims decodes a JWT payload without verifying it (test inspection only).
func claims(t *testing.T, raw string) map[string]any {
	t.Helper()
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWS: %q", raw)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// events returns the audit events matching f.
func (h *harness) events(f store.EventFilter) []store.Event {
	h.t.Helper()
	f.Limit = 1000
	evs, err := h.store.QueryEvents(context.Background(), f)
	if err != nil {
		h.t.Fatal(err)
	}
	return evs
}

// counter counts calls, for canary servers.
type counter struct{ n atomic.Int64 }

func (c *counter) handler() http.Handler {
	return http.HandlerFunc(func(http.ResponseWriter, *http.Request) { c.n.Add(1) })
}
