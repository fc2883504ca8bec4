package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mandate-dev/mandate/cmd/mandate-bench/internal/loadgen"
	"github.com/mandate-dev/mandate/oauth"
)

// runPropagation starts two instances on one database and measures, over
// f.propagation trials, how long after an agent is disabled through
// instance B instance A stops honouring its token (issue 3: p99 ≤ 1 s).
func runPropagation(ctx context.Context, dirA string, env benchEnv, idp *loadgen.IdP, f benchFlags, stdout io.Writer) (err error) {
	f.noPin = true // two servers and the driver share the machine
	a, err := startBenchServer(ctx, dirA, env.issuer, f)
	if err != nil {
		return err
	}
	defer func() { _ = a.Stop(10 * time.Second) }()
	b, issuerB, err := startSecondInstance(ctx, dirA, env, f)
	if err != nil {
		return err
	}
	defer func() { _ = b.Stop(10 * time.Second) }()

	t := &trialRunner{client: &http.Client{Timeout: 5 * time.Second}, a: env.issuer, b: issuerB, admin: env.admin,
		actor: env.agents[0], watcher: env.agents[1], idp: idp}
	var lat []time.Duration
	for i := range f.propagation {
		d, err := t.trial(ctx)
		if err != nil {
			return fmt.Errorf("trial %d: %w", i, err)
		}
		lat = append(lat, d)
	}
	s := loadgen.Summarize(lat)
	fmt.Fprintf(stdout, "revocation propagation between two instances on one PostgreSQL database\n")
	fmt.Fprintf(stdout, "trials %d  p50 %s  p90 %s  p99 %s  max %s  (target: p99 ≤ 1s)\n",
		len(lat), s.P50, s.P90, s.P99, s.Max)
	if s.P99 > time.Second {
		return fmt.Errorf("p99 propagation %s exceeds 1 s", s.P99)
	}
	return nil
}

// startSecondInstance starts instance B on instance A's store and schema:
// A's configuration in DIR/b with only the address changed. It returns B
// and its base URL; the caller stops it.
func startSecondInstance(ctx context.Context, dirA string, env benchEnv, f benchFlags) (*loadgen.Process, string, error) {
	cfg, err := os.ReadFile(filepath.Join(dirA, "mandate.yaml"))
	if err != nil {
		return nil, "", fmt.Errorf("reading the configuration: %w", err)
	}
	port, err := freePort()
	if err != nil {
		return nil, "", err
	}
	issuerB := "http://127.0.0.1:" + port
	cfgB := strings.NewReplacer(env.issuer, issuerB, strings.TrimPrefix(env.issuer, "http://"), "127.0.0.1:"+port).Replace(string(cfg))
	dirB := filepath.Join(dirA, "b")
	if err := os.MkdirAll(dirB, 0o700); err != nil {
		return nil, "", fmt.Errorf("instance B: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dirB, "mandate.yaml"), []byte(cfgB), 0o600); err != nil {
		return nil, "", fmt.Errorf("instance B: %w", err)
	}
	b, err := startBenchServer(ctx, dirB, issuerB, f)
	if err != nil {
		return nil, "", fmt.Errorf("instance B: %w", err)
	}
	return b, issuerB, nil
}

// trialRunner runs one propagation trial against instances a and b.
type trialRunner struct {
	client         *http.Client
	a, b, admin    string
	actor, watcher loadgen.Agent
	idp            *loadgen.IdP
}

// trial re-enables the actor on B, gets a token on A addressed to the
// watcher, disables the actor on B, and times until A's introspection (as
// the watcher) says inactive; it then checks that A refuses a new exchange.
func (t *trialRunner) trial(ctx context.Context) (time.Duration, error) {
	if err := t.adminPost(ctx, t.b, "/admin/agents/"+t.actor.ID+"/enable"); err != nil {
		return 0, err
	}
	var tok string
	for deadline := time.Now().Add(5 * time.Second); tok == ""; {
		var err error
		if tok, err = t.exchange(ctx); err != nil && time.Now().After(deadline) {
			return 0, fmt.Errorf("no token from A after enabling on B: %w", err)
		}
	}
	if active, err := t.active(ctx, tok); err != nil || !active {
		return 0, fmt.Errorf("the fresh token is not active on A (%v)", err)
	}
	if err := t.adminPost(ctx, t.b, "/admin/agents/"+t.actor.ID+"/disable"); err != nil {
		return 0, err
	}
	start := time.Now()
	for {
		active, err := t.active(ctx, tok)
		if err != nil {
			return 0, err
		}
		if !active {
			break
		}
		if time.Since(start) > 5*time.Second {
			return 0, fmt.Errorf("A still honours the token 5 s after B disabled the agent")
		}
		time.Sleep(2 * time.Millisecond)
	}
	elapsed := time.Since(start)
	if tok, _ := t.exchange(ctx); tok != "" {
		return 0, fmt.Errorf("A exchanged for a disabled agent")
	}
	return elapsed, nil
}

func (t *trialRunner) adminPost(ctx context.Context, base, path string) error {
	return adminCall(ctx, t.client, http.MethodPost, base+path, t.admin, nil)
}

func (t *trialRunner) exchange(ctx context.Context) (string, error) {
	return exchangeAt(ctx, t.client, t.a, t.actor, t.idp, t.watcher.ID, benchScope)
}

func (t *trialRunner) active(ctx context.Context, tok string) (bool, error) {
	body, err := postClientForm(ctx, t.client, t.a+"/introspect", t.watcher, url.Values{"token": {tok}})
	if err != nil {
		return false, err
	}
	active, _ := body["active"].(bool)
	return active, nil
}

// adminCall sends an admin API request with the admin bearer token and,
// when body is not nil, body as JSON; any answer but 200 is an error.
func adminCall(ctx context.Context, client *http.Client, method, u, admin string, body any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("admin %s: %w", u, err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return fmt.Errorf("admin %s: %w", u, err)
	}
	req.Header.Set("Authorization", "Bearer "+admin)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("admin %s %s: %w", method, u, err)
	}
	head, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("admin %s %s: %d %s", method, u, resp.StatusCode, bytes.TrimSpace(head))
	}
	return nil
}

// postClientForm POSTs form to u as client who (client_secret_post) and
// decodes the JSON answer; any answer but 200 is an error.
func postClientForm(ctx context.Context, client *http.Client, u string, who loadgen.Agent, form url.Values) (map[string]any, error) {
	form.Set("client_id", who.ID)
	form.Set("client_secret", who.Secret)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, fmt.Errorf("%s: %d: %w", u, resp.StatusCode, err)
	}
	if resp.StatusCode != http.StatusOK {
		return body, fmt.Errorf("%s: %d %v", u, resp.StatusCode, body["error"])
	}
	return body, nil
}

// exchangeAt has actor exchange a fresh identity-provider token for
// benchSubject at base for a token addressed to audience with scope.
func exchangeAt(ctx context.Context, client *http.Client, base string, actor loadgen.Agent, idp *loadgen.IdP, audience, scope string) (string, error) {
	subject, err := idp.Token(benchSubject, nil)
	if err != nil {
		return "", err
	}
	body, err := postClientForm(ctx, client, base+"/token", actor, url.Values{
		"grant_type": {oauth.GrantTokenExchange}, "subject_token": {subject},
		"subject_token_type": {oauth.TokenTypeIDToken}, "audience": {audience}, "scope": {scope},
	})
	if err != nil {
		return "", err
	}
	tok, _ := body["access_token"].(string)
	if tok == "" {
		return "", fmt.Errorf("%s/token: no access_token", base)
	}
	return tok, nil
}
