package server_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mandate-dev/mandate/internal/app"
	"github.com/mandate-dev/mandate/internal/config"
	"github.com/mandate-dev/mandate/internal/provision"
	"github.com/mandate-dev/mandate/internal/store/sqlite"
	"github.com/mandate-dev/mandate/oauth"
)

// benchConfig is the configuration of the benchmarks, the same as
// `mandate-bench` writes: EdDSA tokens, an ES256 identity provider, one CEL
// policy. %[1]s is the issuer, %[2]s the IdP's URL.
const benchConfig = `
issuer: %[1]s
listen: 127.0.0.1:0
admin:
  token: ` + adminToken + `
tokens:
  signing_alg: EdDSA
identity_providers:
  - issuer: %[2]s
    jwks_uri: %[2]s/jwks
    audience: mandate
users:
  - id: user:sam
    permissions: [monitoring:read, deploy:create]
agents:
  - id: agent:bench-1
    secret: bench-secret-0123456789abcdef0123456789
    scopes: [monitoring:read, deploy:create]
delegations:
  - subject: user:sam
    actor: agent:bench-1
    scopes: [monitoring:read, deploy:create]
policies:
  - name: prod-deploys-only-from-ci
    if: 'context.environment == "prod" && "deploy:create" in scopes'
    require: 'context.trigger == "ci_pipeline"'
`

// benchHarness is a wired Mandate over real SQLite in b.TempDir(), with
// real keys, whose handler is called directly: the figures are the
// server's, without a socket.
type benchHarness struct {
	handler http.Handler
	idp     *idp
	agent   benchAgent
}

// benchAgent is the bench agent's credentials, sent as client_secret_post.
type benchAgent struct{ id, secret string }

func newBenchHarness(b *testing.B) *benchHarness {
	b.Helper()
	ctx := context.Background()
	idp := newIDP(b)
	const issuer = "http://127.0.0.1:8443"
	cfg, err := config.Parse([]byte(fmt.Sprintf(benchConfig, issuer, idp.srv.URL)), "bench.yaml")
	if err != nil {
		b.Fatal(err)
	}
	cfg.DataDir = b.TempDir() // the audit witness file goes there
	raw, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "mandate.db"))
	if err != nil {
		b.Fatal(err)
	}
	if _, err := provision.Sync(ctx, raw, cfg, false, time.Now()); err != nil {
		b.Fatal(err)
	}
	// Log as `mandate serve` does (JSON, one line per request), to nowhere:
	// formatting the line is part of the cost.
	app, err := app.BuildWith(ctx, cfg, raw, app.Env{Logger: slog.New(slog.NewJSONHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(app.Close)
	return &benchHarness{
		handler: app.Handler,
		idp:     idp,
		agent:   benchAgent{id: "agent:bench-1", secret: cfg.Agents[0].Secret},
	}
}

// exchangeBody is a token exchange by the bench agent of a fresh IdP token
// for Sam.
func (h *benchHarness) exchangeBody(b *testing.B) string {
	b.Helper()
	return url.Values{
		"grant_type":         {oauth.GrantTokenExchange},
		"client_id":          {h.agent.id},
		"client_secret":      {h.agent.secret},
		"subject_token":      {h.idp.token(b, "user:sam", nil)},
		"subject_token_type": {oauth.TokenTypeIDToken},
		"audience":           {"https://deploy.example"},
		"scope":              {"monitoring:read"},
	}.Encode()
}

// clientCredentialsBody is the baseline: the bench agent asks for a token
// for itself.
func (h *benchHarness) clientCredentialsBody(b *testing.B) string {
	b.Helper()
	return url.Values{
		"grant_type":    {oauth.GrantClientCredentials},
		"client_id":     {h.agent.id},
		"client_secret": {h.agent.secret},
		"audience":      {"https://deploy.example"},
		"scope":         {"monitoring:read"},
	}.Encode()
}

// post sends body to /token through the handler and returns the status.
func (h *benchHarness) post(body string) (int, string) {
	req := httptest.NewRequest(http.MethodPost, "/token", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec := httptest.NewRecorder()
	h.handler.ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}

// benchToken runs body against /token serially and in parallel, and reports
// the process's CPU time per request next to ns/op: with RunParallel ns/op
// is wall time divided by the requests of all goroutines, while cpu-µs/op is
// what a request costs whatever the number of cores. Both include the
// benchmark's own small share (building the request and the recorder).
func benchToken(b *testing.B, body func(*benchHarness, *testing.B) string) {
	h := newBenchHarness(b)
	if code, resp := h.post(body(h, b)); code != http.StatusOK {
		b.Fatalf("warm-up request: %d %s", code, resp)
	}
	b.Run("serial", func(b *testing.B) {
		s := body(h, b)
		b.ReportAllocs()
		cpu := startCPU(b)
		for b.Loop() {
			if code, resp := h.post(s); code != http.StatusOK {
				b.Fatalf("%d %s", code, resp)
			}
		}
		cpu.report(b)
	})
	// parallel runs GOMAXPROCS goroutines, parallel-32 32 of them per
	// GOMAXPROCS, like `mandate-bench --concurrency 32`: with more requests
	// in flight, the audit recorder groups more of them in one commit.
	for _, p := range []struct {
		name string
		n    int
	}{{"parallel", 1}, {"parallel-32", 32}} {
		b.Run(p.name, func(b *testing.B) {
			s := body(h, b)
			b.ReportAllocs()
			b.SetParallelism(p.n)
			var failed atomic.Value
			cpu := startCPU(b)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if code, resp := h.post(s); code != http.StatusOK {
						failed.CompareAndSwap(nil, fmt.Sprintf("%d %s", code, resp))
					}
				}
			})
			cpu.report(b)
			if f := failed.Load(); f != nil {
				b.Fatal(f)
			}
		})
	}
}

// BenchmarkExchange is a full RFC 8693 token exchange through the HTTP
// handler: client_secret_post, an ES256 subject token checked against the
// IdP's JWKS, the delegation, the CEL policy, an EdDSA signature, and the
// durable jti and audit records in SQLite.
func BenchmarkExchange(b *testing.B) {
	benchToken(b, (*benchHarness).exchangeBody)
}

// BenchmarkClientCredentials is the baseline: client authentication, one
// EdDSA signature, durable jti and audit records.
func BenchmarkClientCredentials(b *testing.B) {
	benchToken(b, (*benchHarness).clientCredentialsBody)
}

// cpuClock measures this process's CPU time over a benchmark loop.
type cpuClock struct {
	start time.Duration
	ok    bool
}

func startCPU(b *testing.B) cpuClock {
	s, err := processCPU()
	if err != nil {
		b.Logf("no CPU figure: %v", err)
		return cpuClock{}
	}
	return cpuClock{start: s, ok: true}
}

// report adds cpu-µs/op. The kernel accounts CPU time in scheduler ticks,
// so the figure is only meaningful for runs of a second or more
// (-benchtime 3s).
func (c cpuClock) report(b *testing.B) {
	if !c.ok || b.N == 0 {
		return
	}
	end, err := processCPU()
	if err != nil {
		return
	}
	cpu := end - c.start
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/op")
}
