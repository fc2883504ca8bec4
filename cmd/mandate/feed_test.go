package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mandate-dev/mandate/examples/deployapi"
	"github.com/mandate-dev/mandate/examples/monitoringapi"
	"github.com/mandate-dev/mandate/verify"
	"github.com/mandate-dev/mandate/verify/feed"
)

// Process tests of the revocation feed (docs/revocation.md): a real
// `mandate serve`, and the example APIs served in the test process behind
// the verify package, each following the server's /revocations/stream with
// a feed.Feed of its own, as a resource server in production would.

// The example APIs' audiences, which are also their client ids at the
// server: a resource server subscribes to the feed with its own
// credentials.
const (
	rsDeployAud     = "https://deploy.example"
	rsMonitoringAud = "https://monitoring.example"
)

// rsSecrets are the client secrets of writeFeedConfig's clients.
var rsSecrets = map[string]string{
	"agent:infrabot":      "infrabot-secret",
	"agent:argocd":        "argocd-secret",
	"agent:cleanup_agent": "cleanup-secret",
	"agent:watcher":       "watcher-secret",
	rsDeployAud:           "deploy-api-secret",
	rsMonitoringAud:       "monitoring-api-secret",
}

// writeFeedConfig writes the cast of the feed tests: Sam; InfraBot, which
// may hand on to ArgoCD, which may hand on to CleanupAgent (Sam → InfraBot
// → ArgoCD → CleanupAgent, three hops); Watcher with a delegation of its
// own; and the two example APIs registered as clients whose only scope,
// audit:report, lets them forward their records (POST /audit/ingest).
func writeFeedConfig(t *testing.T, dir string, port int, b backend) string {
	t.Helper()
	cfg := fmt.Sprintf(`issuer: http://127.0.0.1:%[1]d
listen: 127.0.0.1:%[1]d
data_dir: %[2]s
%[3]sadmin:
  token: %[4]s
users:
  - id: user:sam
    permissions: [monitoring:read, deploy:create, deploy:tag]
agents:
  - id: agent:infrabot
    secret: %[5]s
    scopes: [monitoring:read, deploy:create, deploy:tag]
    delegate_to: [agent:argocd]
  - id: agent:argocd
    secret: %[6]s
    scopes: [deploy:create, deploy:tag, monitoring:read]
    delegate_to: [agent:cleanup_agent]
  - id: agent:cleanup_agent
    secret: %[7]s
    scopes: [deploy:create, deploy:tag]
  - id: agent:watcher
    secret: %[8]s
    scopes: [monitoring:read]
  - id: %[9]s
    secret: %[10]s
    scopes: [audit:report]
  - id: %[11]s
    secret: %[12]s
    scopes: [audit:report]
delegations:
  - subject: user:sam
    actor: agent:infrabot
    scopes: [monitoring:read, deploy:create, deploy:tag]
  - subject: user:sam
    actor: agent:watcher
    scopes: [monitoring:read]
`, port, filepath.Join(dir, "data"), b.yaml, testAdmin,
		rsSecrets["agent:infrabot"], rsSecrets["agent:argocd"], rsSecrets["agent:cleanup_agent"], rsSecrets["agent:watcher"],
		rsDeployAud, rsSecrets[rsDeployAud], rsMonitoringAud, rsSecrets[rsMonitoringAud])
	path := filepath.Join(dir, fmt.Sprintf("mandate-feed-%d.yaml", port))
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// exchangeAs is client's token exchange of subject for one audience and
// the scopes.
func (p *process) exchangeAs(client, subject, audience string, scopes ...string) (int, map[string]any, error) {
	return p.formAs(client, rsSecrets[client], "/token", url.Values{
		"grant_type":         {"urn:ietf:params:oauth:grant-type:token-exchange"},
		"subject_token":      {subject},
		"subject_token_type": {"urn:ietf:params:oauth:token-type:access_token"},
		"audience":           {audience},
		"scope":              {strings.Join(scopes, " ")},
	})
}

// mustExchange is exchangeAs that fails the test unless a token comes back.
func (p *process) mustExchange(t *testing.T, client, subject, audience string, scopes ...string) string {
	t.Helper()
	code, body, err := p.exchangeAs(client, subject, audience, scopes...)
	tok, _ := body["access_token"].(string)
	if err != nil || code != http.StatusOK || tok == "" {
		t.Fatalf("exchange by %s for %s: %d %v %v", client, audience, code, body, err)
	}
	return tok
}

// introspectAs is introspection of tok by a client.
func (p *process) introspectAs(client, tok string) (int, bool, error) {
	code, body, err := p.formAs(client, rsSecrets[client], "/introspect", url.Values{"token": {tok}})
	active, _ := body["active"].(bool)
	return code, active, err
}

// mustAdmin is an admin call that must answer 200 (or 201).
func (p *process) mustAdmin(t *testing.T, method, path, body string) map[string]any {
	t.Helper()
	code, out, err := p.admin(method, path, body)
	if err != nil || (code != http.StatusOK && code != http.StatusCreated) {
		t.Fatalf("%s %s: %d %v %v", method, path, code, out, err)
	}
	return out
}

// rsLog collects a Feed's log records.
type rsLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *rsLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *rsLog) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.buf.String(), s)
}

func (l *rsLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// rsAPI is an example API served in the test process: its verifier checks
// signatures against the issuer's JWKS and revocations against a Feed
// subscribed to a server's stream.
type rsAPI struct {
	aud    string
	url    string
	feed   *feed.Feed
	log    *rsLog
	client *http.Client
}

// rsOptions are where an rsAPI's Feed and keys come from; zero values mean
// the issuer's own stream and JWKS, and the Feed's default staleness.
type rsOptions struct {
	feedURL      string
	jwksURI      string
	maxStaleness time.Duration
}

// startRS serves the example API of audience (deployapi or monitoringapi)
// with a verifier for issuer, and waits for its Feed's first snapshot.
func startRS(t *testing.T, issuer, audience string, o rsOptions) *rsAPI {
	t.Helper()
	if o.feedURL == "" {
		o.feedURL = issuer + "/revocations/stream"
	}
	if o.jwksURI == "" {
		o.jwksURI = issuer + "/jwks"
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	log := &rsLog{}
	sub, err := feed.New(ctx, feed.Config{
		URL: o.feedURL, ClientID: audience, ClientSecret: rsSecrets[audience],
		MaxStaleness: o.maxStaleness,
		Logger:       slog.New(slog.NewJSONHandler(log, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	v, err := verify.New(ctx, verify.Config{
		Issuer: issuer, Audience: audience, Algorithms: []string{"EdDSA", "ES256", "RS256"},
		JWKSURI: o.jwksURI, Revocation: sub,
	})
	if err != nil {
		t.Fatal(err)
	}
	mk := monitoringapi.New
	if audience == rsDeployAud {
		mk = deployapi.New
	}
	srv := httptest.NewServer(mk(v))
	t.Cleanup(srv.Close)
	rctx, rcancel := context.WithTimeout(ctx, 20*time.Second)
	defer rcancel()
	if err := sub.Ready(rctx); err != nil {
		t.Fatalf("%s: %v\nfeed log:\n%s", audience, err, log)
	}
	a := &rsAPI{aud: audience, url: srv.URL, feed: sub, log: log,
		client: &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}}
	// Ready returns as the snapshot is loaded, a moment before it is
	// logged; the tests count the loads in the log.
	if !eventually(5*time.Second, func() bool { return a.snapshots() >= 1 }) {
		t.Fatalf("%s: no snapshot load logged\nfeed log:\n%s", audience, log)
	}
	return a
}

// rsAnswer is an API's answer: the status (0 when the request failed),
// the Retry-After header, and whether the body says the token was revoked
// (the verifier's answer to a revocation, as opposed to any other 401).
type rsAnswer struct {
	code       int
	retryAfter string
	revoked    bool
}

// ask calls the API with tok: a deployment, or a metric read.
func (a *rsAPI) ask(tok string) rsAnswer {
	var req *http.Request
	if a.aud == rsDeployAud {
		req, _ = http.NewRequest(http.MethodPost, a.url+"/deployments", strings.NewReader(`{"service":"checkout"}`))
		req.Header.Set("Content-Type", "application/json")
	} else {
		req, _ = http.NewRequest(http.MethodGet, a.url+"/metrics/cpu", nil)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := a.client.Do(req)
	if err != nil {
		return rsAnswer{}
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	return rsAnswer{code: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After"),
		revoked: resp.StatusCode == http.StatusUnauthorized && strings.Contains(string(b), "has been revoked")}
}

// expect fails the test unless the API answers tok with want.
func (a *rsAPI) expect(t *testing.T, what, tok string, want int) {
	t.Helper()
	ans := a.ask(tok)
	if ans.code != want || (want == http.StatusUnauthorized && !ans.revoked) {
		t.Errorf("%s at %s: %+v, want %d (feed log:\n%s)", what, a.aud, ans, want, a.log)
	}
}

// snapshots is how many snapshots the Feed has loaded.
func (a *rsAPI) snapshots() int { return a.log.count("revocation feed: snapshot loaded") }

// reconnects is the Feed's mandate_revocation_reconnects_total.
func (a *rsAPI) reconnects() int {
	var b bytes.Buffer
	_ = a.feed.WriteMetrics(&b)
	for _, line := range strings.Split(b.String(), "\n") {
		if v, ok := strings.CutPrefix(line, "mandate_revocation_reconnects_total "); ok {
			n, _ := strconv.Atoi(v)
			return n
		}
	}
	return 0
}

// rsProbe is a token an API is asked about until it refuses it.
type rsProbe struct {
	what string
	api  *rsAPI
	tok  string
}

// awaitRefused asks every probe's API about its token every 5 ms until it
// answers 401 because the token was revoked, and returns, per probe, how
// long after since that was. Any other answer than 200 fails the test, and
// so does a token still accepted after limit (it is asked until limit+4 s,
// to tell how late).
func awaitRefused(t *testing.T, since time.Time, limit time.Duration, probes ...rsProbe) []time.Duration {
	t.Helper()
	out := make([]time.Duration, len(probes))
	odd := make([][]int, len(probes))
	var wg sync.WaitGroup
	for i, pr := range probes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = -1
			for time.Since(since) < limit+4*time.Second {
				ans := pr.api.ask(pr.tok)
				if ans.revoked {
					out[i] = time.Since(since)
					return
				}
				if ans.code != http.StatusOK && len(odd[i]) < 10 {
					odd[i] = append(odd[i], ans.code)
				}
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	wg.Wait()
	for i, pr := range probes {
		switch {
		case out[i] < 0:
			t.Errorf("%s: still accepted by %s %v after the revocation (feed log:\n%s)", pr.what, pr.api.aud, limit+4*time.Second, pr.api.log)
		case out[i] > limit:
			t.Errorf("%s: refused by %s only %v after the revocation, more than %v", pr.what, pr.api.aud, out[i].Round(time.Millisecond), limit)
		default:
			t.Logf("%s: refused (401) by %s %v after the revoking response", pr.what, pr.api.aud, out[i].Round(100*time.Microsecond))
		}
		if len(odd[i]) > 0 {
			t.Errorf("%s: %s answered %v while the revocation propagated (only 200 then 401 expected)", pr.what, pr.api.aud, odd[i])
		}
	}
	return out
}

// eventually retries fn every 20 ms until it returns true or the time is
// up, and reports whether it did.
func eventually(within time.Duration, fn func() bool) bool {
	for deadline := time.Now().Add(within); ; time.Sleep(20 * time.Millisecond) {
		if fn() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

// kidOf returns the kid in a JWT's header.
func kidOf(t *testing.T, tok string) string {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[0])
	if err != nil {
		t.Fatal(err)
	}
	var h struct {
		KID string `json:"kid"`
	}
	if err := json.Unmarshal(b, &h); err != nil || h.KID == "" {
		t.Fatalf("no kid in the token header: %v", err)
	}
	return h.KID
}

// TestFeedEndToEnd is issue 5's first must-show, against a real server on
// every backend: each kind of revocation made at the server is refused,
// within a second of the revoking response, by an example API that only
// follows the feed (no call to the server per request), while tokens the
// revocation does not hit keep working. It logs each measured latency.
// THREATS T52 (a revoked ancestor, an agent disabled as the current or a
// prior actor, a removed permission, a deleted delegation), T24 (a revoked
// chain is not exchanged further: 400), T55 (an emergency-revoked key).
func TestFeedEndToEnd(t *testing.T) {
	onEveryBackend(t, func(t *testing.T, bin string, b backend) {
		dir, port := t.TempDir(), freePort(t)
		cfg := writeFeedConfig(t, dir, port, b)
		p := startServer(t, bin, cfg, port)
		deploy := startRS(t, p.base, rsDeployAud, rsOptions{})
		mon := startRS(t, p.base, rsMonitoringAud, rsOptions{})

		// (a) Sam loses monitoring:read: InfraBot's token carrying it
		// dies; his token without it lives; giving the permission back
		// revives nothing.
		t.Run("permission-removed", func(t *testing.T) {
			sam := p.personToken(t)
			withRead := p.mustExchange(t, "agent:infrabot", sam, rsMonitoringAud, "monitoring:read")
			without := p.mustExchange(t, "agent:infrabot", sam, rsDeployAud, "deploy:create")
			mon.expect(t, "InfraBot token with monitoring:read", withRead, 200)
			deploy.expect(t, "InfraBot token without monitoring:read", without, 200)

			restore := `{"permissions":["monitoring:read","deploy:create","deploy:tag"]}`
			t.Cleanup(func() { _, _, _ = p.admin(http.MethodPut, "/admin/users/user:sam/permissions", restore) })
			p.mustAdmin(t, http.MethodPut, "/admin/users/user:sam/permissions", `{"permissions":["deploy:create","deploy:tag"]}`)
			awaitRefused(t, time.Now(), time.Second, rsProbe{"InfraBot token with monitoring:read", mon, withRead})
			deploy.expect(t, "InfraBot token without monitoring:read, after the removal", without, 200)

			p.mustAdmin(t, http.MethodPut, "/admin/users/user:sam/permissions", restore)
			fresh := ""
			if !eventually(5*time.Second, func() bool {
				code, body, err := p.exchangeAs("agent:infrabot", p.personToken(t), rsMonitoringAud, "monitoring:read")
				fresh, _ = body["access_token"].(string)
				return err == nil && code == 200 && fresh != "" && strings.Contains(fmt.Sprint(body["scope"]), "monitoring:read")
			}) {
				t.Fatal("no token with monitoring:read after the permission was given back")
			}
			mon.expect(t, "a token minted after the permission was given back", fresh, 200)
			mon.expect(t, "the token revoked by the removal, after the permission was given back", withRead, 401)
		})

		// (b) The first hop of Sam → InfraBot → ArgoCD is revoked: the
		// ArgoCD token exchanged from it dies, and nothing in its
		// lineage can be exchanged further.
		t.Run("first-hop-revoked", func(t *testing.T) {
			sam := p.personToken(t)
			hop1 := p.mustExchange(t, "agent:infrabot", sam, "agent:argocd", "deploy:create")
			hop2 := p.mustExchange(t, "agent:argocd", hop1, rsDeployAud, "deploy:create")
			hop3 := p.mustExchange(t, "agent:argocd", hop1, "agent:cleanup_agent", "deploy:create")
			control := p.mustExchange(t, "agent:infrabot", sam, rsDeployAud, "deploy:create")
			deploy.expect(t, "ArgoCD token", hop2, 200)
			deploy.expect(t, "InfraBot token of another lineage", control, 200)

			p.mustAdmin(t, http.MethodPost, "/admin/revoke", `{"jti":"`+jtiOf(t, hop1)+`"}`)
			awaitRefused(t, time.Now(), time.Second, rsProbe{"ArgoCD token exchanged from the revoked InfraBot token", deploy, hop2})
			deploy.expect(t, "InfraBot token of another lineage, after the revocation", control, 200)

			if code, body, err := p.exchangeAs("agent:cleanup_agent", hop3, rsDeployAud, "deploy:create"); err != nil || code != http.StatusBadRequest {
				t.Errorf("CleanupAgent exchanged ArgoCD's token whose first hop is revoked: %d %v %v", code, body, err)
			}
			if code, body, err := p.exchangeAs("agent:argocd", hop1, "agent:cleanup_agent", "deploy:create"); err != nil || code != http.StatusBadRequest {
				t.Errorf("ArgoCD exchanged the revoked InfraBot token: %d %v %v", code, body, err)
			}
			if _, active, err := p.introspectAs(rsDeployAud, hop2); err != nil || active {
				t.Errorf("introspection of the ArgoCD token by the deploy API: active %v (%v)", active, err)
			}
			if _, active, err := p.introspectAs(rsDeployAud, control); err != nil || !active {
				t.Errorf("introspection of the unrevoked token by the deploy API: active %v (%v)", active, err)
			}
		})

		// (c) ArgoCD is disabled: every token with it in the chain
		// dies, as the current actor and as a prior one (CleanupAgent's
		// token, chain CleanupAgent ← ArgoCD ← InfraBot); enabling it
		// again revives none of them.
		t.Run("agent-disabled", func(t *testing.T) {
			sam := p.personToken(t)
			hop1 := p.mustExchange(t, "agent:infrabot", sam, "agent:argocd", "deploy:create")
			hop2 := p.mustExchange(t, "agent:argocd", hop1, rsDeployAud, "deploy:create")
			hop3 := p.mustExchange(t, "agent:argocd", hop1, "agent:cleanup_agent", "deploy:create")
			hop4 := p.mustExchange(t, "agent:cleanup_agent", hop3, rsDeployAud, "deploy:create")
			control := p.mustExchange(t, "agent:infrabot", sam, rsDeployAud, "deploy:create")
			for what, tok := range map[string]string{"ArgoCD token": hop2, "CleanupAgent token": hop4, "InfraBot token": control} {
				deploy.expect(t, what, tok, 200)
			}

			t.Cleanup(func() { _, _, _ = p.admin(http.MethodPost, "/admin/agents/agent:argocd/enable", "") })
			p.mustAdmin(t, http.MethodPost, "/admin/agents/agent:argocd/disable", "")
			awaitRefused(t, time.Now(), time.Second,
				rsProbe{"ArgoCD token (ArgoCD the current actor)", deploy, hop2},
				rsProbe{"CleanupAgent token (ArgoCD a prior actor)", deploy, hop4})
			deploy.expect(t, "InfraBot token without ArgoCD in its chain", control, 200)
			if code, _, err := p.introspectAs("agent:argocd", control); err != nil || code != http.StatusUnauthorized {
				t.Errorf("the disabled ArgoCD authenticated as a client: %d %v", code, err)
			}
			if code, body, err := p.exchangeAs("agent:cleanup_agent", hop3, rsDeployAud, "deploy:create"); err != nil || code != http.StatusBadRequest {
				t.Errorf("CleanupAgent exchanged a token with the disabled ArgoCD in its chain: %d %v %v", code, body, err)
			}

			p.mustAdmin(t, http.MethodPost, "/admin/agents/agent:argocd/enable", "")
			var fresh string
			if !eventually(5*time.Second, func() bool {
				code, body, err := p.exchangeAs("agent:argocd", p.mustExchange(t, "agent:infrabot", sam, "agent:argocd", "deploy:create"), rsDeployAud, "deploy:create")
				fresh, _ = body["access_token"].(string)
				return err == nil && code == 200 && fresh != ""
			}) {
				t.Fatal("ArgoCD could not exchange after it was enabled again")
			}
			deploy.expect(t, "an ArgoCD token minted after it was enabled again", fresh, 200)
			deploy.expect(t, "the ArgoCD token from before, after it was enabled again", hop2, 401)
			deploy.expect(t, "the CleanupAgent token from before, after ArgoCD was enabled again", hop4, 401)
		})

		// (d) Sam's delegation to Watcher is deleted: Watcher's token
		// dies; InfraBot's, under another delegation, lives.
		t.Run("delegation-deleted", func(t *testing.T) {
			sam := p.personToken(t)
			watch := p.mustExchange(t, "agent:watcher", sam, rsMonitoringAud, "monitoring:read")
			control := p.mustExchange(t, "agent:infrabot", sam, rsMonitoringAud, "monitoring:read")
			mon.expect(t, "Watcher token", watch, 200)
			mon.expect(t, "InfraBot token", control, 200)
			list := p.mustAdmin(t, http.MethodGet, "/admin/delegations?subject=user:sam&actor=agent:watcher", "")
			ds, _ := list["delegations"].([]any)
			if len(ds) != 1 {
				t.Fatalf("delegations of Sam to Watcher: %v", list)
			}
			id, _ := ds[0].(map[string]any)["id"].(string)

			p.mustAdmin(t, http.MethodDelete, "/admin/delegations/"+id, "")
			awaitRefused(t, time.Now(), time.Second, rsProbe{"Watcher token under the deleted delegation", mon, watch})
			mon.expect(t, "InfraBot token under another delegation", control, 200)
			if code, body, err := p.exchangeAs("agent:watcher", p.personToken(t), rsMonitoringAud, "monitoring:read"); err != nil || code != http.StatusBadRequest {
				t.Errorf("Watcher exchanged without its delegation: %d %v %v", code, body, err)
			}
		})

		// (e) The signing key is revoked with `mandate keys revoke`,
		// another process on the same store: its tokens die although the
		// APIs hold the key in their JWKS caches. Last: the server has
		// no key to sign with afterwards.
		t.Run("signing-key-revoked", func(t *testing.T) {
			tok := p.mustExchange(t, "agent:infrabot", p.personToken(t), rsDeployAud, "deploy:create")
			deploy.expect(t, "InfraBot token", tok, 200)
			out, err := exec.Command(bin, "keys", "revoke", "--config", cfg, "--", kidOf(t, tok)).CombinedOutput()
			if err != nil {
				t.Fatalf("mandate keys revoke: %v\n%s", err, out)
			}
			awaitRefused(t, time.Now(), time.Second, rsProbe{"token signed with the revoked key", deploy, tok})
		})
	})
}
