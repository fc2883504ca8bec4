package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
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
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseScenarioList(t *testing.T) {
	out := `Authorization server scenarios (test against an authorization server):
  - authorization-server-metadata-endpoint [2025-03-26,2025-06-18,2025-11-25,2026-07-28]
  - authorization-code-grant
`
	want := []string{"authorization-server-metadata-endpoint", "authorization-code-grant"}
	if diff := cmp.Diff(want, parseScenarioList(out)); diff != "" {
		t.Errorf("parseScenarioList (-want +got):\n%s", diff)
	}
}

// TestCollectResults: each scenario's checks come from its own directory,
// even when another scenario's name starts with its name.
func TestCollectResults(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, checks []check) {
		t.Helper()
		d := filepath.Join(dir, name)
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
		raw, _ := json.Marshal(checks)
		if err := os.WriteFile(filepath.Join(d, "checks.json"), raw, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("authorization-server-grant-2026-12-06T00-46-07-474Z", []check{{ID: "a", Status: "SUCCESS"}})
	write("authorization-server-grant-extra-2026-12-06T00-46-07-475Z", []check{{ID: "b", Status: "FAILURE"}})
	got := collectResults(dir, []string{"grant", "grant-extra", "absent"})
	want := []scenarioResult{
		{Scenario: "grant", Checks: []check{{ID: "a", Status: "SUCCESS"}}},
		{Scenario: "grant-extra", Checks: []check{{ID: "b", Status: "FAILURE"}}},
		{Scenario: "absent"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("collectResults (-want +got):\n%s", diff)
	}
}

// TestReport: only a run whose every scenario left checks, all SUCCESS,
// without a problem around the tool, passes.
func TestReport(t *testing.T) {
	pass := scenarioResult{Scenario: "s", Checks: []check{{ID: "c", Status: "SUCCESS"}}}
	tests := []struct {
		name string
		run  clientRun
		want bool
	}{
		{name: "ok/every-check-succeeded", run: clientRun{Scenarios: []scenarioResult{pass, pass}}, want: true},
		{name: "fail/failure", run: clientRun{Scenarios: []scenarioResult{pass, {Scenario: "t", Checks: []check{{ID: "c", Status: "FAILURE"}}}}}},
		{name: "fail/warning", run: clientRun{Scenarios: []scenarioResult{{Scenario: "t", Checks: []check{{ID: "c", Status: "WARNING"}}}}}},
		{name: "fail/skipped", run: clientRun{Scenarios: []scenarioResult{{Scenario: "t", Checks: []check{{ID: "c", Status: "SKIPPED"}}}}}},
		{name: "fail/no-result", run: clientRun{Scenarios: []scenarioResult{pass, {Scenario: "t"}}}},
		{name: "fail/sign-in", run: clientRun{Scenarios: []scenarioResult{pass}, Problem: "sign-in and consent: no form"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			got := report(&out, &results{Version: "1.0.0", Scenarios: []string{"s"}, Runs: []clientRun{tt.run}})
			if got != tt.want {
				t.Errorf("report = %v, want %v:\n%s", got, tt.want, out.String())
			}
			if !tt.want && !strings.Contains(out.String(), "FAIL") {
				t.Errorf("a failed run's report names no FAIL:\n%s", out.String())
			}
		})
	}
}

func TestRedactCode(t *testing.T) {
	for in, want := range map[string]string{
		"http://127.0.0.1:1/callback?code=secret&state=s": "http://127.0.0.1:1/callback?code=…&state=s",
		"http://127.0.0.1:1/callback?state=s&code=secret": "http://127.0.0.1:1/callback?state=s&code=…",
		"http://127.0.0.1:1/callback?error=access_denied": "http://127.0.0.1:1/callback?error=access_denied",
	} {
		if got := redactCode(in); got != want {
			t.Errorf("redactCode(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRunRefusesMissingFlags(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"-node", "node"}, &out, &errOut); code != 2 {
		t.Errorf("run without -mandate and -tool = %d, want 2 (%s)", code, errOut.String())
	}
}

// TestSignInThroughThePages plays the person's browser against a real
// mandate, as the run does when the tool prints its authorization URL: a
// client registers, Sam signs in and approves, the code comes back to the
// client's loopback callback and is redeemed. A wrong password is an error,
// not a silent pass.
func TestSignInThroughThePages(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts mandate")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	bin := filepath.Join(dir, "mandate")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "../../cmd/mandate").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, path := range []string{"", "/mandate"} {
		t.Run("issuer-path="+path, func(t *testing.T) {
			o := options{mandate: bin, work: t.TempDir()}
			srv, err := startMandate(ctx, o, "test", path)
			if err != nil {
				t.Fatal(err)
			}
			defer srv.stop()
			id, err := srv.register(ctx)
			if err != nil {
				t.Fatal(err)
			}
			authURL, verifier, callback, arrived := authorizationRequest(t, srv, id)

			if _, err := newBrowser().signIn(ctx, authURL, person, "not-the-password"); err == nil {
				t.Error("signIn with a wrong password succeeded")
			}
			back, err := newBrowser().signIn(ctx, authURL, person, personPassword)
			if err != nil {
				t.Fatalf("signIn: %v", err)
			}
			var got url.Values
			select {
			case got = <-arrived:
			case <-time.After(5 * time.Second):
				t.Fatal("the callback was not called")
			}
			if got.Get("state") != "st" || got.Get("iss") != srv.issuer || got.Get("code") == "" || !strings.HasPrefix(back, callback) {
				t.Fatalf("the callback got %v (sent back to %s), want state st, iss %s and a code", got, back, srv.issuer)
			}
			form := url.Values{"grant_type": {"authorization_code"}, "code": {got.Get("code")}, "client_id": {id},
				"redirect_uri": {callback}, "code_verifier": {verifier}}
			resp, err := http.PostForm(srv.issuer+"/token", form)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			raw, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusOK || !strings.Contains(string(raw), `"access_token"`) {
				t.Errorf("token: %d %s", resp.StatusCode, raw)
			}
		})
	}
}

// authorizationRequest is an authorization request of client id (PKCE
// S256, state "st") whose redirect URI is a loopback listener: the URL,
// the code verifier, the redirect URI, and where the listener sends the
// query it is called with.
func authorizationRequest(t *testing.T, srv *server, id string) (authURL, verifier, callback string, arrived chan url.Values) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	arrived = make(chan url.Values, 1)
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case arrived <- r.URL.Query():
		default:
		}
		fmt.Fprintln(w, "OK")
	})}
	go func() { _ = hs.Serve(l) }()
	t.Cleanup(func() { _ = hs.Close() })
	callback = fmt.Sprintf("http://127.0.0.1:%d/callback", l.Addr().(*net.TCPAddr).Port)
	var v [32]byte
	_, _ = rand.Read(v[:])
	verifier = base64.RawURLEncoding.EncodeToString(v[:])
	sum := sha256.Sum256([]byte(verifier))
	q := url.Values{"response_type": {"code"}, "client_id": {id}, "redirect_uri": {callback}, "state": {"st"},
		"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"}}
	return srv.issuer + "/authorize?" + q.Encode(), verifier, callback, arrived
}
