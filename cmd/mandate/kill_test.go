package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

const killAdmin = "kill-test-admin-token-0123456789abcdef"

// buildBinary compiles the mandate command once per test.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "mandate")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("go build: %v", err)
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

// process is one running `mandate serve`.
type process struct {
	cmd  *exec.Cmd
	base string
}

func startServer(t *testing.T, bin, configPath, base string) *process {
	t.Helper()
	cmd := exec.Command(bin, "serve", "--config", configPath)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: cmd, base: base}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(base + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("server did not become healthy")
	return nil
}

func (p *process) admin(method, path, body string) (int, map[string]any, error) {
	req, _ := http.NewRequest(method, p.base+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+killAdmin)
	req.Header.Set("Content-Type", "application/json")
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out, nil
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

// TestSIGKILLLosesNothingAcknowledged kills a real server in the middle of a
// burst of revocations and checks, after a restart on the same data, that
// every revocation answered 200 is in force and every acknowledged issuance
// and revocation has its audit record (THREATS.md T57, T58).
func TestSIGKILLLosesNothingAcknowledged(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills real processes")
	}
	bin := buildBinary(t)
	for trial := range 3 {
		t.Run(fmt.Sprintf("trial-%d", trial), func(t *testing.T) {
			dir := t.TempDir()
			port := freePort(t)
			base := fmt.Sprintf("http://127.0.0.1:%d", port)
			cfgPath := filepath.Join(dir, "mandate.yaml")
			cfg := fmt.Sprintf(`issuer: %[1]s
listen: 127.0.0.1:%[2]d
data_dir: %[3]s
admin:
  token: %[4]s
users:
  - id: user:sam
    permissions: [monitoring:read]
`, base, port, filepath.Join(dir, "data"), killAdmin)
			if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
				t.Fatal(err)
			}
			p := startServer(t, bin, cfgPath, base)

			// Acknowledged issuances.
			const n = 300
			var jtis []string
			for range n {
				code, body, err := p.admin(http.MethodPost, "/admin/users/user:sam/token", "")
				if err != nil || code != 200 {
					t.Fatalf("issue: %d %v", code, err)
				}
				jtis = append(jtis, jtiOf(t, body["access_token"].(string)))
			}

			// A burst of revocations, killed at a random moment.
			var mu sync.Mutex
			var acked []string
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			next := make(chan string)
			for range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for jti := range next {
						code, _, err := p.admin(http.MethodPost, "/admin/revoke", `{"jti":"`+jti+`"}`)
						if err == nil && code == 200 {
							mu.Lock()
							acked = append(acked, jti)
							mu.Unlock()
						}
					}
				}()
			}
			go func() {
				defer close(next)
				for _, j := range jtis {
					select {
					case next <- j:
					case <-ctx.Done():
						return
					}
				}
			}()
			time.Sleep(time.Duration(20+rand.IntN(200)) * time.Millisecond)
			if err := p.cmd.Process.Signal(os.Kill); err != nil {
				t.Fatal(err)
			}
			_ = p.cmd.Wait()
			cancel()
			wg.Wait()
			t.Logf("%d of %d revocations acknowledged before SIGKILL", len(acked), n)

			p = startServer(t, bin, cfgPath, base)
			for _, jti := range acked {
				req, _ := http.NewRequest(http.MethodGet, base+"/revocations/"+jti, nil)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				var st struct {
					Revoked bool `json:"revoked"`
				}
				_ = json.NewDecoder(resp.Body).Decode(&st)
				resp.Body.Close()
				if !st.Revoked {
					t.Errorf("acknowledged revocation of %s was lost", jti)
				}
			}
			for i, jti := range jtis {
				_, body, err := p.admin(http.MethodGet, "/audit?jti="+jti, "")
				if err != nil {
					t.Fatal(err)
				}
				actions := map[string]bool{}
				evs, _ := body["events"].([]any)
				for _, e := range evs {
					actions[e.(map[string]any)["action"].(string)] = true
				}
				if !actions["token.issue"] {
					t.Errorf("issuance %d (%s) has no audit record", i, jti)
				}
				if slices.Contains(acked, jti) && !actions["token.revoked"] {
					t.Errorf("acknowledged revocation of %s has no audit record", jti)
				}
			}
		})
	}
}
