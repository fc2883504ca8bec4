package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// TestAuditNoSecrets is THREATS T71 (issue 6, must-show 4) with the real
// binary on every backend: after the demo's two stories are played against
// a server whose every secret is a canary, no canary is found at rest. The
// places scanned are every file of the data directory (the SQLite database
// and its -wal and -shm while the server runs and after it stops, the audit
// witness file), every row of every table of the store read back as
// values (SQLite, or the test's PostgreSQL schema), the server's standard
// output and error, and `mandate audit export`. The canaries are the admin
// token, each agent's client secret, a wrong secret tried against an agent,
// a client assertion (private_key_jwt), subject tokens that were refused,
// the database password, and every access token issued (whole, and its
// signature segment: a jti may appear, a bearer token may not).
//
// `mandate demo` plays the same stories, but cannot be given canaries: its
// agents' secrets are written into its stories, its admin token is random,
// its server logs nowhere and its data directory is removed when it exits.
// So the stories are played here, through HTTP, against `mandate serve`.
func TestAuditNoSecrets(t *testing.T) {
	onEveryBackend(t, func(t *testing.T, bin string, b backend) {
		dir, port := t.TempDir(), freePort(t)
		c := newLeakCanaries(t)
		if b.name == "postgres" {
			if u, err := url.Parse(postgresURL(t)); err == nil {
				if pw, ok := u.User.Password(); ok && len(pw) >= 8 {
					c.add("the database password", pw)
				}
			}
		}
		cfgPath := c.writeConfig(t, dir, port, b)
		// A control: the configuration file holds the secrets, and the
		// scan finds them there.
		cfgText := leakRead(t, cfgPath)
		for _, n := range c.values {
			if !bytes.Contains(cfgText, n.value) {
				t.Fatalf("the scan does not find %s in the configuration file that holds it", n.what)
			}
		}
		srv := startLeakServer(t, bin, cfgPath, port, dir)

		s := &leakStories{t: t, c: c, base: srv.base, client: &http.Client{Timeout: 10 * time.Second}}
		s.play()
		t.Logf("%d access tokens issued, %d canaries in all", len(s.issued), len(c.values))

		// While the server runs, the SQLite write-ahead log holds the
		// newest pages.
		running := leakScanDir(t, filepath.Join(dir, "data"))
		srv.stop(t)
		scans := map[string][]byte{}
		for name, content := range running {
			scans["(server running) "+name] = content
		}
		for name, content := range leakScanDir(t, filepath.Join(dir, "data")) {
			scans["(server stopped) "+name] = content
		}
		for _, name := range []string{"server.stdout", "server.stderr"} {
			scans[name] = leakRead(t, filepath.Join(dir, name))
		}
		if len(scans["server.stderr"]) == 0 {
			t.Error("the server logged nothing: the log scan would prove nothing")
		}
		export := filepath.Join(dir, "export.jsonl")
		out, code := auditRun(t, bin, "export", "--config", cfgPath, "--out", export)
		if code != 0 {
			t.Fatalf("audit export: exit %d: %s", code, out)
		}
		scans["audit export"] = leakRead(t, export)
		scans["audit export (command output)"] = []byte(out)
		if !bytes.Contains(scans["audit export"], []byte(`"token.exchange"`)) || !bytes.Contains(scans["audit export"], []byte(`"token.refused"`)) {
			t.Fatalf("the export lacks the stories' records:\n%s", scans["audit export"])
		}
		scans["store tables ("+b.name+")"] = leakDumpTables(t, openDB(t, b, dir), b.name)
		if b.name == "sqlite" {
			if _, ok := scans["(server stopped) mandate.db"]; !ok {
				t.Fatalf("no mandate.db in the data directory: %v", leakNames(scans))
			}
		}
		if _, ok := scans["(server stopped) audit-witness.txt"]; !ok {
			t.Errorf("no audit witness file in the data directory: %v", leakNames(scans))
		}

		// The scan must be able to see: the jti of every issued token
		// is at rest, in the store and in the export.
		for _, tok := range s.issued {
			jti := jtiOf(t, tok)
			for _, where := range []string{"audit export", "store tables (" + b.name + ")"} {
				if !bytes.Contains(scans[where], []byte(jti)) {
					t.Errorf("%s lacks the jti %s of an issued token: the scan cannot be trusted", where, jti)
				}
			}
		}

		hits := 0
		for _, name := range leakNames(scans) {
			for _, n := range c.needles() {
				if i := bytes.Index(scans[name], n.value); i >= 0 {
					hits++
					t.Errorf("%s found in %s at byte %d: …%s…", n.what, name, i, leakContext(scans[name], i, len(n.value)))
				}
			}
		}
		t.Logf("scanned %v for %d needles: %d hits", leakNames(scans), len(c.needles()), hits)
	})
}

// leakCanaries are the secret values of one run, each random and marked.
type leakCanaries struct {
	values []leakNeedle
	admin  string
	// secrets are the agents' client secrets by agent id.
	secrets map[string]string
	// signer is the private_key_jwt agent's key.
	signer *ecdsa.PrivateKey
}

type leakNeedle struct {
	what  string
	value []byte
}

func leakRandom(prefix string) string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

func newLeakCanaries(t *testing.T) *leakCanaries {
	t.Helper()
	c := &leakCanaries{secrets: map[string]string{}}
	c.admin = leakRandom("canary-admin-token-")
	c.add("the admin token", c.admin)
	for _, a := range []string{"agent:infrabot", "agent:argocd", "agent:cleanup_agent", "agent:reaper", "agent:expense-agent-001", "agent:mallory"} {
		c.secrets[a] = leakRandom("canary-secret-" + strings.TrimPrefix(a, "agent:") + "-")
		c.add(a+"'s client secret", c.secrets[a])
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	c.signer = key
	return c
}

// add makes v a canary. Tokens are added with their signature segment too.
func (c *leakCanaries) add(what, v string) {
	c.values = append(c.values, leakNeedle{what: what, value: []byte(v)})
	if parts := strings.Split(v, "."); len(parts) == 3 && len(parts[2]) >= 16 {
		c.values = append(c.values, leakNeedle{what: what + " (its signature)", value: []byte(parts[2])})
	}
}

// needles are the canaries as they are and in hex and base64, the forms a
// byte column or an encoder would give them.
func (c *leakCanaries) needles() []leakNeedle {
	var out []leakNeedle
	for _, n := range c.values {
		out = append(out, n,
			leakNeedle{what: n.what + " (hex)", value: []byte(hex.EncodeToString(n.value))},
			leakNeedle{what: n.what + " (base64)", value: []byte(base64.StdEncoding.EncodeToString(n.value))},
			leakNeedle{what: n.what + " (base64url)", value: []byte(base64.RawURLEncoding.EncodeToString(n.value))},
		)
	}
	return out
}

// writeConfig writes the demo's cast (internal/cli demoConfig) with the
// canaries as its secrets, plus agent:signer (private_key_jwt) and
// agent:mallory, on the backend.
func (c *leakCanaries) writeConfig(t *testing.T, dir string, port int, b backend) string {
	t.Helper()
	jwk, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &c.signer.PublicKey, KeyID: "signer-1", Algorithm: "ES256", Use: "sig"}}})
	if err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`issuer: http://127.0.0.1:%[1]d
listen: 127.0.0.1:%[1]d
data_dir: %[2]s
%[3]sadmin:
  token: %[4]s
delegation:
  max_depth: 3
users:
  - id: user:sam
    permissions: [monitoring:read, deploy:create, deploy:comment, secrets:manage, deploy:tag, infrastructure:clean]
  - id: user:alice
    permissions: [expense:approve, expense:read]
    limits:
      - type: expense_approval
        max_amount: 1000
        currency: USD
agents:
  - id: agent:infrabot
    secret: %[5]s
    scopes: [monitoring:read, deploy:comment, deploy:create, deploy:tag]
    delegate_to: [agent:argocd]
  - id: agent:argocd
    secret: %[6]s
    scopes: [deploy:create, deploy:tag, monitoring:read]
    delegate_to: [agent:cleanup_agent]
  - id: agent:cleanup_agent
    secret: %[7]s
    scopes: [deploy:tag, infrastructure:clean]
    delegate_to: [agent:reaper]
  - id: agent:reaper
    secret: %[8]s
    scopes: [deploy:tag]
  - id: agent:expense-agent-001
    secret: %[9]s
    scopes: [expense:approve, expense:read]
  - id: agent:mallory
    secret: %[10]s
    scopes: [monitoring:read]
  - id: agent:signer
    jwks: %[11]s
    scopes: [monitoring:read]
delegations:
  - subject: user:sam
    actor: agent:infrabot
    scopes: [monitoring:read, deploy:create, deploy:comment, deploy:tag]
  - subject: user:alice
    actor: agent:expense-agent-001
    scopes: [expense:approve]
policies:
  - name: prod-deploys-only-from-ci
    if: 'context.environment == "prod" && "deploy:create" in scopes'
    require: 'context.trigger == "ci_pipeline"'
`, port, filepath.Join(dir, "data"), b.yaml, c.admin,
		c.secrets["agent:infrabot"], c.secrets["agent:argocd"], c.secrets["agent:cleanup_agent"], c.secrets["agent:reaper"],
		c.secrets["agent:expense-agent-001"], c.secrets["agent:mallory"], jwk)
	path := filepath.Join(dir, "mandate.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// assertion is a fresh private_key_jwt client assertion of agent:signer;
// it is a canary too.
func (c *leakCanaries) assertion(t *testing.T, audience string) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: c.signer},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "signer-1"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	payload, _ := json.Marshal(map[string]any{
		"iss": "agent:signer", "sub": "agent:signer", "aud": audience, "jti": leakRandom("assertion-"),
		"iat": now.Unix(), "exp": now.Add(time.Minute).Unix(),
	})
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	s, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	c.add("a client assertion", s)
	return s
}

// leakServer is a running `mandate serve` whose output goes to files.
type leakServer struct {
	cmd  *exec.Cmd
	base string
}

func startLeakServer(t *testing.T, bin, cfgPath string, port int, dir string) *leakServer {
	t.Helper()
	stdout, err := os.Create(filepath.Join(dir, "server.stdout"))
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := os.Create(filepath.Join(dir, "server.stderr"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdout.Close(); stderr.Close() })
	cmd := exec.Command(bin, "serve", "--config", cfgPath)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &leakServer{cmd: cmd, base: fmt.Sprintf("http://127.0.0.1:%d", port)}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	client := &http.Client{Timeout: 2 * time.Second}
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if resp, err := client.Get(s.base + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s
			}
		}
	}
	t.Fatalf("server did not become healthy:\n%s", leakRead(t, filepath.Join(dir, "server.stderr")))
	return nil
}

// stop stops the server as an operator would (SIGTERM) and waits for it.
func (s *leakServer) stop(t *testing.T) {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("server exit: %v", err)
		}
	case <-time.After(20 * time.Second):
		_ = s.cmd.Process.Kill()
		t.Fatal("the server did not stop within 20 s of SIGTERM")
	}
}

// leakStories plays the demo's stories and the other decisions that see a
// secret, collecting every access token issued as a canary.
type leakStories struct {
	t      *testing.T
	c      *leakCanaries
	base   string
	client *http.Client
	issued []string
}

// call sends a request and decodes the JSON answer, failing the test when
// the status is not want.
func (s *leakStories) call(req *http.Request, want int) map[string]any {
	s.t.Helper()
	resp, err := s.client.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&body)
	if resp.StatusCode != want {
		s.t.Fatalf("%s %s: %d %v, want %d", req.Method, req.URL.Path, resp.StatusCode, body, want)
	}
	if tok, _ := body["access_token"].(string); tok != "" {
		s.issued = append(s.issued, tok)
		s.c.add("an issued access token", tok)
	}
	return body
}

func (s *leakStories) admin(method, path string, body any, want int) map[string]any {
	s.t.Helper()
	var b []byte
	if body != nil {
		b, _ = json.Marshal(body)
	}
	req, _ := http.NewRequest(method, s.base+path, bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+s.c.admin)
	req.Header.Set("Content-Type", "application/json")
	return s.call(req, want)
}

// form posts to path as client, with its canary secret in the
// Authorization header (client_secret_basic), or with secret when given.
func (s *leakStories) form(path, client, secret string, f url.Values, want int) map[string]any {
	s.t.Helper()
	if secret == "" {
		secret = s.c.secrets[client]
	}
	req, _ := http.NewRequest(http.MethodPost, s.base+path, strings.NewReader(f.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(client), url.QueryEscape(secret))
	return s.call(req, want)
}

// exchange is a token exchange by client; kv are more form parameters.
func (s *leakStories) exchange(client, subject string, want int, kv ...string) string {
	s.t.Helper()
	f := url.Values{
		"grant_type":         {"urn:ietf:params:oauth:grant-type:token-exchange"},
		"subject_token":      {subject},
		"subject_token_type": {"urn:ietf:params:oauth:token-type:access_token"},
	}
	for i := 0; i+1 < len(kv); i += 2 {
		f.Add(kv[i], kv[i+1])
	}
	tok, _ := s.form("/token", client, "", f, want)["access_token"].(string)
	return tok
}

func (s *leakStories) signIn(user string) string {
	s.t.Helper()
	return s.admin(http.MethodPost, "/admin/users/"+user+"/token", nil, http.StatusOK)["access_token"].(string)
}

func (s *leakStories) play() {
	t := s.t
	const deployAPI, monitoringAPI, expenseAPI = "https://deploy.example", "https://monitoring.example", "https://expense.example"

	// Story 1: Sam -> InfraBot -> ArgoCD -> CleanupAgent.
	sam := s.signIn("user:sam")
	s.exchange("agent:infrabot", sam, 200, "audience", monitoringAPI, "scope", "monitoring:read secrets:manage")
	s.exchange("agent:infrabot", sam, 400, "audience", "agent:argocd", "scope", "deploy:create",
		"context", `{"environment":"prod","trigger":"chat"}`)
	hop1 := s.exchange("agent:infrabot", sam, 200, "audience", "agent:argocd", "scope", "deploy:create deploy:tag",
		"context", `{"environment":"prod","trigger":"ci_pipeline"}`)
	s.exchange("agent:argocd", hop1, 200, "audience", deployAPI, "scope", "deploy:create")
	hop3 := s.exchange("agent:argocd", hop1, 200, "audience", "agent:cleanup_agent", "scope", "deploy:tag")
	hop4 := s.exchange("agent:cleanup_agent", hop3, 200, "audience", "agent:reaper", "scope", "deploy:tag")
	s.exchange("agent:reaper", hop4, 400, "resource", "https://aws.example/tags")

	// Story 2: Alice -> expense-agent-001, with a limit.
	alice := s.signIn("user:alice")
	s.exchange("agent:expense-agent-001", alice, 200, "audience", expenseAPI, "scope", "expense:approve",
		"authorization_details", `[{"type":"expense_approval","max_amount":5000,"currency":"USD"}]`)

	// Credentials that fail: a wrong secret, refused subject tokens (one
	// shaped like a JWT with a canary signature).
	wrong := leakRandom("canary-wrong-secret-")
	s.c.add("a wrong client secret", wrong)
	s.form("/token", "agent:infrabot", wrong, url.Values{"grant_type": {"client_credentials"}}, http.StatusUnauthorized)
	garbage := leakRandom("canary-subject-token-")
	s.c.add("a refused subject token", garbage)
	s.exchange("agent:infrabot", garbage, 400, "audience", deployAPI)
	parts := strings.Split(sam, ".")
	forged := parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString([]byte(leakRandom("canary-forged-signature-")))
	s.c.add("a forged subject token", forged)
	s.exchange("agent:infrabot", forged, 400, "audience", deployAPI)

	// client_credentials with a secret and with private_key_jwt, and an
	// exchange naming the client's own token as actor_token.
	own := s.form("/token", "agent:argocd", "", url.Values{"grant_type": {"client_credentials"}, "scope": {"monitoring:read"}}, 200)["access_token"].(string)
	s.exchange("agent:argocd", hop1, 200, "audience", deployAPI, "scope", "deploy:tag",
		"actor_token", own, "actor_token_type", "urn:ietf:params:oauth:token-type:access_token")
	req, _ := http.NewRequest(http.MethodPost, s.base+"/token", strings.NewReader(url.Values{
		"grant_type":            {"client_credentials"},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
		"client_assertion":      {s.c.assertion(t, s.base+"/token")},
	}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	s.call(req, 200)

	// Introspection and revocation: own, another client's, garbage.
	if body := s.form("/introspect", "agent:infrabot", "", url.Values{"token": {hop1}}, 200); body["active"] != true {
		t.Fatalf("introspection of hop1: %v", body)
	}
	s.form("/introspect", "agent:mallory", "", url.Values{"token": {hop1}}, 200)
	s.form("/revoke", "agent:mallory", "", url.Values{"token": {hop1}}, 200)
	s.form("/revoke", "agent:infrabot", "", url.Values{"token": {garbage}}, 200)
	s.form("/revoke", "agent:infrabot", "", url.Values{"token": {hop1}}, 200)
	if body := s.form("/introspect", "agent:infrabot", "", url.Values{"token": {hop1}}, 200); body["active"] != false {
		t.Fatalf("introspection of revoked hop1: %v", body)
	}

	// Administrators' changes.
	s.admin(http.MethodPut, "/admin/users/user:alice/permissions", map[string]any{"permissions": []string{"expense:approve"}}, 200)
	s.admin(http.MethodPut, "/admin/users/user:alice/limits", map[string]any{"limits": []map[string]any{{"type": "expense_approval", "max_amount": 500, "currency": "USD"}}}, 200)
	d := s.admin(http.MethodPost, "/admin/delegations", map[string]any{"subject": "user:alice", "actor": "agent:mallory", "scopes": []string{"expense:approve"}}, 201)
	s.admin(http.MethodDelete, "/admin/delegations/"+d["id"].(string), nil, 200)
	s.admin(http.MethodPost, "/admin/agents/agent:mallory/disable", nil, 200)
	s.admin(http.MethodPost, "/admin/agents/agent:mallory/enable", nil, 200)
	s.admin(http.MethodPost, "/admin/revoke", map[string]any{"jti": jtiOf(t, hop3)}, 200)
	s.admin(http.MethodPost, "/admin/revoke", map[string]any{"subject": "user:sam"}, 200)
	s.admin(http.MethodGet, "/audit?limit=1000", nil, 200)

	// A signed checkpoint, so that the witness file is written.
	s.admin(http.MethodPost, "/audit/checkpoints", nil, 200)
}

// leakScanDir reads every file under dir, by path relative to it.
func leakScanDir(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		b, err := os.ReadFile(path)
		if os.IsNotExist(err) {
			return nil // the -wal or -shm went away
		}
		out[rel] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func leakRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// leakDumpTables reads every row of every table of the store, each value as
// it comes back (bytes as bytes, text as text), one row a line: a dump that
// needs no pg_dump, and on SQLite does not depend on a value lying whole in
// one page of the file.
func leakDumpTables(t *testing.T, db *sql.DB, backend string) []byte {
	t.Helper()
	list := "SELECT name FROM sqlite_master WHERE type = 'table'"
	if backend == "postgres" {
		list = "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
	}
	rows, err := db.Query(list)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, name)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	rows.Close()
	for _, want := range []string{"events", "tokens", "agents"} {
		found := false
		for _, name := range tables {
			found = found || strings.HasPrefix(name, want)
		}
		if !found {
			t.Fatalf("no %s table among %v: the dump would prove nothing", want, tables)
		}
	}
	var out bytes.Buffer
	for _, table := range tables {
		rows, err := db.Query(`SELECT * FROM "` + table + `"`)
		if err != nil {
			t.Fatalf("%s: %v", table, err)
		}
		cols, _ := rows.Columns()
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		for rows.Next() {
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatalf("%s: %v", table, err)
			}
			out.WriteString(table + ":")
			for _, v := range vals {
				out.WriteByte('\t')
				switch v := v.(type) {
				case []byte:
					// As it is, and in hex: SQLite keeps identifiers of
					// hex digits as the bytes they spell.
					out.Write(v)
					out.WriteByte('\t')
					out.WriteString(hex.EncodeToString(v))
				case string:
					out.WriteString(v)
				default:
					fmt.Fprint(&out, v)
				}
			}
			out.WriteByte('\n')
		}
		if err := rows.Err(); err != nil {
			t.Fatalf("%s: %v", table, err)
		}
		rows.Close()
	}
	return out.Bytes()
}

func leakNames(m map[string][]byte) []string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// leakContext shows a hit with a little of what surrounds it.
func leakContext(b []byte, i, n int) string {
	lo, hi := max(i-40, 0), min(i+n+40, len(b))
	return fmt.Sprintf("%q", b[lo:hi])
}
