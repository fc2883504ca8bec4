package main

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// The tests in this package build the real binary and run it as separate
// processes: they kill it, restart it and run two of it on one database.

const testAdmin = "process-test-admin-token-0123456789abcdef"

// backend is a store a process test runs against.
type backend struct {
	name string
	// yaml is the store part of the configuration.
	yaml string
}

// backends returns SQLite always, and PostgreSQL (in a fresh schema) when
// MANDATE_TEST_POSTGRES_URL is set.
func backends(t *testing.T) []backend {
	t.Helper()
	out := []backend{{name: "sqlite"}}
	if u := os.Getenv("MANDATE_TEST_POSTGRES_URL"); u != "" {
		var b [6]byte
		_, _ = rand.Read(b[:])
		out = append(out, backend{name: "postgres", yaml: fmt.Sprintf("store: %q\nstore_schema: t_%s\n", u, hex.EncodeToString(b[:]))})
	} else {
		t.Log("MANDATE_TEST_POSTGRES_URL not set: the PostgreSQL variant is skipped")
	}
	return out
}

// postgresURL returns MANDATE_TEST_POSTGRES_URL, skipping the test when
// it is unset.
func postgresURL(t *testing.T) string {
	t.Helper()
	u := os.Getenv("MANDATE_TEST_POSTGRES_URL")
	if u == "" {
		t.Skip("MANDATE_TEST_POSTGRES_URL not set: PostgreSQL tests skipped")
	}
	return u
}

// postgresBackend is the PostgreSQL backend (a fresh schema); with via,
// the server reaches the database through the address via returns for the
// database's host:port (a proxy under the test's control).
func postgresBackend(t *testing.T, via func(dbHost string) string) backend {
	t.Helper()
	raw := postgresURL(t)
	b := backends(t)[1]
	if via != nil {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		u.Host = via(u.Host)
		b.yaml = strings.Replace(b.yaml, fmt.Sprintf("%q", raw), fmt.Sprintf("%q", u.String()), 1)
	}
	return b
}

// testBinDir is where builtBinary puts the mandate command; TestMain makes
// it and removes it.
var testBinDir string

// builtBinary compiles the mandate command the first time a process test
// asks for it: one link of the 40 MB binary per test run instead of one per
// test.
var builtBinary = sync.OnceValues(func() (string, error) {
	bin := filepath.Join(testBinDir, "mandate")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build: %w", err)
	}
	return bin, nil
})

// TestMain runs the tests with a directory for the binary they share.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "mandate-test-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	testBinDir = dir
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// buildBinary returns the mandate command, compiled once per test run.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin, err := builtBinary()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// writeConfig writes an instance's configuration: Sam, InfraBot with a
// delegation, on the given backend and port.
func writeConfig(t *testing.T, dir string, port int, b backend) string {
	t.Helper()
	cfg := fmt.Sprintf(`issuer: http://127.0.0.1:%[1]d
listen: 127.0.0.1:%[1]d
data_dir: %[2]s
%[3]sadmin:
  token: %[4]s
users:
  - id: user:sam
    permissions: [monitoring:read, deploy:create]
agents:
  - id: agent:infrabot
    secret: infrabot-secret
    scopes: [monitoring:read, deploy:create]
  - id: agent:watcher
    secret: watcher-secret
    scopes: [monitoring:read]
delegations:
  - subject: user:sam
    actor: agent:infrabot
    scopes: [monitoring:read, deploy:create]
`, port, filepath.Join(dir, "data"), b.yaml, testAdmin)
	path := filepath.Join(dir, fmt.Sprintf("mandate-%d.yaml", port))
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// process is one running `mandate serve`.
type process struct {
	cmd    *exec.Cmd
	base   string
	client *http.Client
}

func startServer(t *testing.T, bin, configPath string, port int) *process {
	t.Helper()
	p, _ := startServerEnv(t, bin, configPath, port, nil)
	return p
}

// startServerEnv is startServer with env added to the server's
// environment; it also returns the path of the server's log.
func startServerEnv(t *testing.T, bin, configPath string, port int, env []string) (*process, string) {
	t.Helper()
	cmd := exec.Command(bin, "serve", "--config", configPath)
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	logPath := filepath.Join(t.TempDir(), "server.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = io.Discard, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = logFile.Close()
		if t.Failed() {
			if b, err := os.ReadFile(logPath); err == nil {
				t.Logf("server log (warnings and errors):\n%s", warnings(string(b)))
			}
		}
	})
	p := &process{cmd: cmd, base: fmt.Sprintf("http://127.0.0.1:%d", port), client: &http.Client{Timeout: 5 * time.Second}}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := p.client.Get(p.base + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p, logPath
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("server did not become healthy")
	return nil, ""
}

func (p *process) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(os.Kill); err != nil {
		t.Fatal(err)
	}
	_ = p.cmd.Wait()
}

func decode(resp *http.Response, err error) (int, map[string]any, error) {
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out, nil
}

func (p *process) admin(method, path, body string) (int, map[string]any, error) {
	req, _ := http.NewRequest(method, p.base+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+testAdmin)
	req.Header.Set("Content-Type", "application/json")
	return decode(p.client.Do(req))
}

func (p *process) form(path string, form url.Values) (int, map[string]any, error) {
	return p.formAs("agent:infrabot", "infrabot-secret", path, form)
}

func (p *process) formAs(client, secret, path string, form url.Values) (int, map[string]any, error) {
	form.Set("client_id", client)
	form.Set("client_secret", secret)
	return decode(p.client.PostForm(p.base+path, form))
}

// personToken is Sam's own token (the admin API's sign-in stand-in).
func (p *process) personToken(t *testing.T) string {
	t.Helper()
	code, body, err := p.admin(http.MethodPost, "/admin/users/user:sam/token", "")
	if err != nil || code != 200 {
		t.Fatalf("sign-in: %d %v", code, err)
	}
	return body["access_token"].(string)
}

// exchange is InfraBot's token exchange of a person token.
func (p *process) exchange(subject string) (int, map[string]any, error) {
	return p.form("/token", url.Values{
		"grant_type":         {"urn:ietf:params:oauth:grant-type:token-exchange"},
		"subject_token":      {subject},
		"subject_token_type": {"urn:ietf:params:oauth:token-type:access_token"},
		"audience":           {"https://deploy.example"},
		"scope":              {"monitoring:read"},
	})
}

func (p *process) active(tok string) (bool, error) {
	_, body, err := p.form("/introspect", url.Values{"token": {tok}})
	if err != nil {
		return false, err
	}
	active, _ := body["active"].(bool)
	return active, nil
}

func jtiOf(t *testing.T, tok string) string {
	t.Helper()
	parts := strings.Split(tok, ".")
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		JTI string `json:"jti"`
	}
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c.JTI
}

// auditActions returns the actions of the audit records about jti.
func (p *process) auditActions(t *testing.T, jti string) map[string]bool {
	t.Helper()
	_, body, err := p.admin(http.MethodGet, "/audit?jti="+jti, "")
	if err != nil {
		t.Fatal(err)
	}
	actions := map[string]bool{}
	evs, _ := body["events"].([]any)
	for _, e := range evs {
		ev := e.(map[string]any)
		if ev["jti"] == jti {
			actions[ev["action"].(string)] = true
		}
	}
	return actions
}

// warnings keeps the log lines above INFO, at most 20.
func warnings(log string) string {
	var out []string
	for _, line := range strings.Split(log, "\n") {
		if !strings.Contains(line, `"level":"INFO"`) && line != "" && len(out) < 20 {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

// onEveryBackend runs fn as a subtest per backend, with the mandate
// command built; it skips in -short mode, since it runs real processes.
func onEveryBackend(t *testing.T, fn func(t *testing.T, bin string, b backend)) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs real processes")
	}
	bin := buildBinary(t)
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) { fn(t, bin, b) })
	}
}
