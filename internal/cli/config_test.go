package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestConfigCheckWarnsReadableSecrets: `mandate config check` warns about
// every file the configuration names that holds a secret (a secret file,
// the SQLite database that holds the signing keys, the configuration itself
// when it holds a secret inline) and that group or others may read, naming
// the file and the fix; the check still passes (the file is valid). Files
// that are 0600, or that hold no secret, draw no warning.
func TestConfigCheckWarnsReadableSecrets(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no Unix file modes")
	}
	const secret = "a-client-secret-of-32-bytes-or-more"
	type file struct {
		name string
		mode os.FileMode
		data string
	}
	for _, tc := range []struct {
		name string
		// yaml is the configuration; DIR stands for the test's directory.
		yaml  string
		mode  os.FileMode // of the configuration
		files []file
		// warn names the files a warning is expected for ("mandate.yaml"
		// for the configuration), in order.
		warn []string
	}{
		{name: "ok/inline-secret-0600", mode: 0o600,
			yaml: "agents:\n  - {id: agent:a, secret: " + secret + ", scopes: [x]}\n"},
		{name: "fail/inline-agent-secret-0644", mode: 0o644,
			yaml: "agents:\n  - {id: agent:a, secret: " + secret + ", scopes: [x]}\n",
			warn: []string{"mandate.yaml"}},
		{name: "fail/inline-admin-token-0640", mode: 0o640,
			yaml: "admin: {token: " + secret + "}\n",
			warn: []string{"mandate.yaml"}},
		{name: "fail/store-url-password-0604", mode: 0o604,
			yaml: "store: postgres://mandate:" + secret + "@db.example/mandate\n",
			warn: []string{"mandate.yaml"}},
		{name: "ok/no-inline-secret-0644", mode: 0o644,
			yaml:  "agents:\n  - {id: agent:a, secret_file: DIR/agent.secret, scopes: [x]}\n",
			files: []file{{name: "agent.secret", mode: 0o600, data: secret}}},
		{name: "fail/secret-file-0640", mode: 0o600,
			yaml:  "agents:\n  - {id: agent:a, secret_file: DIR/agent.secret, scopes: [x]}\n",
			files: []file{{name: "agent.secret", mode: 0o640, data: secret}},
			warn:  []string{"agent.secret"}},
		{name: "fail/admin-token-file-0604", mode: 0o600,
			yaml:  "admin: {token_file: DIR/admin.token}\n",
			files: []file{{name: "admin.token", mode: 0o604, data: secret}},
			warn:  []string{"admin.token"}},
		{name: "fail/store-password-file-0644", mode: 0o600,
			yaml:  "store: postgres://mandate@db.example/mandate\nstore_password_file: DIR/pg.password\n",
			files: []file{{name: "pg.password", mode: 0o644, data: secret}},
			warn:  []string{"pg.password"}},
		{name: "fail/signing-keys-database-0644", mode: 0o600,
			yaml:  "data_dir: DIR/data\n",
			files: []file{{name: "data/mandate.db", mode: 0o644}, {name: "data/mandate.db-wal", mode: 0o644}},
			warn:  []string{"data/mandate.db", "data/mandate.db-wal"}},
		{name: "fail/sqlite-store-path-0660", mode: 0o600,
			yaml:  "store: sqlite:DIR/keys.db\n",
			files: []file{{name: "keys.db", mode: 0o660}},
			warn:  []string{"keys.db"}},
		{name: "ok/database-0600", mode: 0o600,
			yaml:  "data_dir: DIR/data\n",
			files: []file{{name: "data/mandate.db", mode: 0o600}}},
		{name: "ok/database-not-created-yet", mode: 0o600, yaml: "data_dir: DIR/data\n"},
		{name: "fail/everything-at-once", mode: 0o644,
			yaml: "admin: {token: " + secret + "}\ndata_dir: DIR/data\n" +
				"agents:\n  - {id: agent:a, secret_file: DIR/agent.secret, scopes: [x]}\n",
			files: []file{{name: "agent.secret", mode: 0o644, data: secret}, {name: "data/mandate.db", mode: 0o644}},
			warn:  []string{"mandate.yaml", "agent.secret", "data/mandate.db"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, f := range tc.files {
				path := filepath.Join(dir, f.name)
				if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(f.data), f.mode); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(path, f.mode); err != nil { // past the umask
					t.Fatal(err)
				}
			}
			cfg := filepath.Join(dir, "mandate.yaml")
			if err := os.WriteFile(cfg, []byte(strings.ReplaceAll(tc.yaml, "DIR", dir)), tc.mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(cfg, tc.mode); err != nil {
				t.Fatal(err)
			}
			var stdout, stderr bytes.Buffer
			code := Main(context.Background(), []string{"config", "check", "--config", cfg}, &stdout, &stderr)
			if code != 0 || stdout.String() != cfg+": ok\n" {
				t.Fatalf("exit %d, stdout %q, stderr %q; want 0 and %q", code, stdout.String(), stderr.String(), cfg+": ok\n")
			}
			var lines []string
			if s := strings.TrimSpace(stderr.String()); s != "" {
				lines = strings.Split(s, "\n")
			}
			if len(lines) != len(tc.warn) {
				t.Fatalf("warnings:\n%s\nwant %d, about %v", stderr.String(), len(tc.warn), tc.warn)
			}
			for i, name := range tc.warn {
				path := filepath.Join(dir, name)
				if !strings.HasPrefix(lines[i], "warning: ") || !strings.HasSuffix(lines[i], "chmod 600 "+path) ||
					strings.Count(lines[i], path) != 2 || !strings.Contains(lines[i], "readable by group or others") {
					t.Errorf("warning %d = %q, want one naming %s and the fix chmod 600 %s", i, lines[i], path, path)
				}
				if strings.Contains(lines[i], secret) {
					t.Errorf("warning %d shows the secret: %q", i, lines[i])
				}
			}
			if strings.Contains(stderr.String()+stdout.String(), secret) {
				t.Error("the output shows a secret")
			}
		})
	}
}

// TestConfigProblemsOneALine: `mandate config check` and `mandate serve`
// refuse a file with several problems by printing them all, one a line,
// sorted by line, each with the file, line, column and field.
func TestConfigProblemsOneALine(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "mandate.yaml")
	const yaml = `listn: 127.0.0.1:8080
tokens:
  ttl: 600
agents:
  - id: agent:a
    secret: a-secret-long-enough
    scope: [deploy:create]
  - id: agent:a
    secret: a-secret-long-enough
delegation:
  max_depth: 99
`
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	want := "mandate: " + strings.Join([]string{
		cfg + `:1:1: unknown field "listn"; did you mean "listen"?`,
		cfg + `:3:8: tokens.ttl: want a duration such as "10m" or "90s"`,
		cfg + `:7:5: agents[0]: unknown field "scope"; did you mean "scopes"?`,
		cfg + `:8:5: agents[1].id: "agent:a" duplicates agents[0]`,
		cfg + `:11:3: delegation.max_depth: must be from 1 to 10, is 99`,
	}, "\n") + "\n"
	for _, args := range [][]string{
		{"config", "check", "--config", cfg},
		{"serve", "--config", cfg, "--data-dir", filepath.Join(t.TempDir(), "data")},
	} {
		var stdout, stderr bytes.Buffer
		code := Main(context.Background(), args, &stdout, &stderr)
		if code != 1 || stdout.Len() != 0 || stderr.String() != want {
			t.Errorf("mandate %s: exit %d, stdout %q, stderr:\n%s\nwant exit 1 and:\n%s", strings.Join(args, " "), code, stdout.String(), stderr.String(), want)
		}
	}
}
