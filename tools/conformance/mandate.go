package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// The cast of the run: Sam signs in with a password and approves the
// clients; the file's public client is an MCP client a person installed;
// the resource is the MCP server its tokens are for (nothing needs to
// answer there: the tool tests the authorization server alone).
const (
	person         = "user:sam"
	personPassword = "conformance-password"
	publicClient   = "agent:mcp-conformance"
	// redirectURI is registered without a port: a loopback redirect URI
	// matches on any port (RFC 8252 §7.3), as the tool's callback server
	// takes the one it is given.
	redirectURI = "http://127.0.0.1/callback"
)

// server is a running `mandate serve`.
type server struct {
	issuer   string
	port     int
	resource string
	cmd      *exec.Cmd
	exited   chan struct{}
	log      string
}

// configYAML is the run's configuration: listen on port, the issuer there
// with path (empty or /SEGMENT), the resource at resource, Sam's password
// hash.
func configYAML(port int, path, dataDir, resource, hash string) string {
	return fmt.Sprintf(`issuer: http://127.0.0.1:%[1]d%[8]s
listen: 127.0.0.1:%[1]d
data_dir: %[2]s
users:
  - id: %[3]s
    permissions: [tools:read, deploy:create]
    password_hash: '%[4]s'
agents:
  - id: %[5]s
    public: true
    scopes: [tools:read, deploy:create]
    redirect_uris: ['%[6]s']
resources:
  - uri: %[7]s
    name: Conformance MCP server
    scopes:
      - {name: 'tools:read', description: List the tools}
      - {name: 'deploy:create', description: Start deployments}
    default_scopes: ['tools:read']
registration:
  policy: open
  scopes: [tools:read]
  metadata_documents: true
`, port, dataDir, person, hash, publicClient, redirectURI, resource, path)
}

// startMandate hashes Sam's password with the binary, writes the
// configuration (the issuer with path, empty or /SEGMENT) and starts the
// server on a free loopback port, trying another when the port is taken
// between the choice and the bind. It returns once /healthz answers 200.
func startMandate(ctx context.Context, o options, name, path string) (*server, error) {
	hash, err := hashPassword(ctx, o.mandate, personPassword)
	if err != nil {
		return nil, err
	}
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		resourcePort, err := freePort()
		if err != nil {
			return nil, err
		}
		dir := filepath.Join(o.work, fmt.Sprintf("%s-%d", name, attempt))
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
		resource := fmt.Sprintf("http://127.0.0.1:%d/mcp", resourcePort)
		cfg := filepath.Join(dir, "mandate.yaml")
		if err := os.WriteFile(cfg, []byte(configYAML(port, path, filepath.Join(dir, "data"), resource, hash)), 0o600); err != nil {
			return nil, err
		}
		s := &server{issuer: fmt.Sprintf("http://127.0.0.1:%d%s", port, path), resource: resource, port: port,
			exited: make(chan struct{}), log: filepath.Join(dir, "serve.log")}
		if lastErr = s.start(ctx, o.mandate, cfg); lastErr == nil {
			return s, nil
		}
		if !strings.Contains(lastErr.Error(), "in use") {
			return nil, lastErr
		}
	}
	return nil, lastErr
}

// start runs `mandate serve --config cfg` and waits for /healthz.
func (s *server) start(ctx context.Context, bin, cfg string) error {
	logFile, err := os.Create(s.log)
	if err != nil {
		return err
	}
	defer logFile.Close()
	s.cmd = exec.Command(bin, "serve", "--config", cfg)
	s.cmd.Stdout, s.cmd.Stderr = logFile, logFile
	if err := s.cmd.Start(); err != nil {
		return fmt.Errorf("start mandate: %w", err)
	}
	go func() { _ = s.cmd.Wait(); close(s.exited) }()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-s.exited:
			return fmt.Errorf("mandate serve exited: %s", tail(s.log))
		case <-ctx.Done():
			s.stop()
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/healthz", s.port))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
	}
	s.stop()
	return fmt.Errorf("mandate serve did not answer /healthz in 20 s: %s", tail(s.log))
}

// stop ends the server (SIGTERM, then SIGKILL after 5 s) and waits for it.
func (s *server) stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	select {
	case <-s.exited:
		return
	default:
	}
	_ = s.cmd.Process.Signal(os.Interrupt)
	select {
	case <-s.exited:
	case <-time.After(5 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}

// register registers a public client through Dynamic Client Registration
// (RFC 7591), as an MCP client without a client_id does, and returns its
// client_id.
func (s *server) register(ctx context.Context) (string, error) {
	body, _ := json.Marshal(map[string]any{
		"redirect_uris":              []string{redirectURI},
		"token_endpoint_auth_method": "none",
		"grant_types":                []string{"authorization_code", "refresh_token"},
		"response_types":             []string{"code"},
		"client_name":                "MCP conformance tool",
	})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.issuer+"/register", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("register: %w", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	var answer struct {
		ClientID string `json:"client_id"`
	}
	if resp.StatusCode != http.StatusCreated || json.Unmarshal(raw, &answer) != nil || answer.ClientID == "" {
		return "", fmt.Errorf("register: %d %s", resp.StatusCode, raw)
	}
	return answer.ClientID, nil
}

// hashPassword is `mandate users hash-password` for pw.
func hashPassword(ctx context.Context, bin, pw string) (string, error) {
	cmd := exec.CommandContext(ctx, bin, "users", "hash-password")
	cmd.Stdin = strings.NewReader(pw + "\n")
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("mandate users hash-password: %w: %s", err, errOut.String())
	}
	hash := strings.TrimSpace(out.String())
	if !strings.HasPrefix(hash, "$argon2id$") {
		return "", errors.New("mandate users hash-password printed no hash")
	}
	return hash, nil
}

// freePort is a loopback port nothing listened on a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// tail is the end of the file at path, for an error message.
func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return strings.TrimSpace(string(b))
}
