package cli

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// issueSample is the configuration file of issue 2, which `mandate serve`
// must accept exactly as it is.
const issueSample = `issuer: http://127.0.0.1:8080
listen: 127.0.0.1:8080
data_dir: ./mandate-data          # SQLite file, signing keys (0600)
admin:
  token: change-me-32-bytes-or-more   # bearer for /admin and /audit; token_file also accepted
tokens:
  ttl: 10m
  max_ttl: 15m
delegation:
  max_depth: 3                    # actors in a chain; default 4
identity_providers:               # where people's tokens come from
  - issuer: https://idp.example
    jwks_uri: https://idp.example/jwks
    audience: mandate             # the aud their tokens must carry
users:
  - id: user:sam
    permissions: [monitoring:read, deploy:create, secrets:manage]
agents:
  - id: agent:infrabot
    secret: infrabot-secret       # client_secret_basic / _post; or jwks / jwks_uri for private_key_jwt
    scopes: [monitoring:read, deploy:comment, deploy:create]   # the most it may ever hold
    delegate_to: [agent:argocd]   # agents it may hand its delegation on to
    max_depth: 2                  # optional, tighter than the global one
delegations:                      # standing grants an administrator made
  - subject: user:sam
    actor: agent:infrabot
    scopes: [monitoring:read, deploy:create]
    audiences: [https://deploy.example, agent:argocd]   # optional; absent = any
    expires: 2027-01-01T00:00:00Z                        # optional
policies:                         # CEL; ` + "`if`" + ` selects requests, ` + "`require`" + ` must then hold
  - name: prod-deploys-only-from-ci
    if: 'context.environment == "prod" && "deploy:create" in scopes'
    require: 'context.trigger == "ci_pipeline"'
`

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestServeAcceptsTheIssueSample starts `mandate serve --config` on the
// sample file (only the listen address is overridden, so that the test does
// not need port 8080) and waits until it answers.
func TestServeAcceptsTheIssueSample(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	if err := os.WriteFile("mandate.yaml", []byte(issueSample), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- Main(ctx, []string{"serve", "--config", "mandate.yaml", "--listen", addr}, &stdout, &stderr)
	}()
	ok := false
	for i := 0; i < 100 && !ok; i++ {
		if resp, err := http.Get("http://" + addr + "/healthz"); err == nil {
			ok = resp.StatusCode == 200
			resp.Body.Close()
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	if code := <-done; code != 0 || !ok {
		t.Fatalf("serve: exit %d, healthy %v\n%s", code, ok, stderr.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "mandate-data", "mandate.db")); err != nil {
		t.Fatalf("no database in data_dir: %v", err)
	}
	for _, secret := range []string{"infrabot-secret", "change-me-32-bytes-or-more"} {
		if strings.Contains(stderr.String(), secret) || strings.Contains(stdout.String(), secret) {
			t.Errorf("the log shows the secret %q", secret)
		}
	}
}

func TestConfigErrorsNameFileAndField(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bad.yaml")
	bad := strings.Replace(issueSample, "ttl: 10m", "ttl: 20m", 1) + "surprise: true\n"
	if err := os.WriteFile(path, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	code := Main(context.Background(), []string{"config", "check", "--config", path}, &stdout, &stderr)
	if code == 0 || !strings.Contains(stderr.String(), "bad.yaml") || !strings.Contains(stderr.String(), "surprise") {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
}

func TestKeysRotateAndList(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	if err := os.WriteFile("mandate.yaml", []byte(issueSample), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) string {
		t.Helper()
		var stdout, stderr bytes.Buffer
		if code := Main(context.Background(), args, &stdout, &stderr); code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, stderr.String())
		}
		return stdout.String()
	}
	run("keys", "rotate", "--config", "mandate.yaml")
	out := run("keys", "list", "--config", "mandate.yaml")
	if !strings.Contains(out, "active") || !strings.Contains(out, "next") {
		t.Fatalf("keys list after rotate:\n%s", out)
	}
}
