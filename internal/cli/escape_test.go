package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/goccy/go-yaml"

	"github.com/mandate-dev/mandate/internal/app"
	"github.com/mandate-dev/mandate/internal/config"
	"github.com/mandate-dev/mandate/internal/forensics"
	"github.com/mandate-dev/mandate/internal/provision"
	"github.com/mandate-dev/mandate/internal/store"
	"github.com/mandate-dev/mandate/internal/store/postgres/pgtest"
	"github.com/mandate-dev/mandate/oauth"
	"github.com/mandate-dev/mandate/verify"
)

// forgedRow is a line of the audit table, as a caller would like it to
// appear: a grant that never happened.
const forgedRow = "2099-01-01 00:00:00.000  token.exchange  agent:infrabot  user:sam  prod  granted"

// Hostile values a caller sends (THREATS T85): a URL path, an audience, a
// client id and a context value.
const (
	hostilePath     = "/admin/users/x\n" + forgedRow + "/token"
	hostileAudience = "agent:argocd\x1b[2J\x1b[1;1H\x1b[32mgranted\x1b[0m\u202etoor"
	hostileClientID = "agent:evil\n" + forgedRow + "\t\x1b]0;pwned\x07"
	hostileContext  = "dev\r\x00\u2066hidden\u2069\u0085"
)

// syncBuffer is a bytes.Buffer a server's goroutines may write to.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// hostileServer runs a real server (the dev cast, real HTTP) on backend,
// "sqlite" (in a temporary directory) or "postgres" (a fresh schema;
// skipped without MANDATE_TEST_POSTGRES_URL), with logger writing to logs,
// and returns its configuration file, its URL and its admin token; the
// server stops at the end of the test, or at stop.
func hostileServer(t *testing.T, backend string, logger func(io.Writer) *slog.Logger, logs io.Writer) (cfgPath, url, admin string, stop func()) {
	t.Helper()
	dir := t.TempDir()
	cfg := config.Dev(dir)
	if backend == "postgres" {
		cfg.Store, cfg.StoreSchema = pgtest.URL(t), pgtest.NewSchema(t)
	}
	srv := httptest.NewUnstartedServer(nil)
	cfg.Issuer = "http://" + srv.Listener.Addr().String()
	cfg.Listen = srv.Listener.Addr().String()
	cfg.Admin.Token = "escape-test-admin-token-0123456789abcdef"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	b, err := yaml.Marshal(map[string]any{
		"issuer": cfg.Issuer, "listen": cfg.Listen, "data_dir": cfg.DataDir, "store": cfg.Store, "store_schema": cfg.StoreSchema,
		"admin": map[string]string{"token": cfg.Admin.Token},
	})
	if err != nil {
		t.Fatal(err)
	}
	cfgPath = filepath.Join(dir, "mandate.yaml")
	if err := os.WriteFile(cfgPath, b, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	app, err := app.Build(ctx, cfg, logger(logs))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := provision.Sync(ctx, app.Store, cfg, false, time.Now()); err != nil {
		app.Close()
		t.Fatal(err)
	}
	srv.Config.Handler = app.Handler
	srv.Start()
	var once sync.Once
	stop = func() { once.Do(func() { srv.Close(); app.Close() }) }
	t.Cleanup(stop)
	return cfgPath, srv.URL, cfg.Admin.Token, stop
}

// post sends a form (nil for none) to path, with the admin token when
// admin is set, and returns the status and the decoded JSON answer.
func post(t *testing.T, base, path string, form url.Values, admin string) (int, map[string]any) {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = path // escaped by URL.String: a newline travels as %0A
	req, err := http.NewRequest(http.MethodPost, u.String(), strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if admin != "" {
		req.Header.Set("Authorization", "Bearer "+admin)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body
}

// rawControls lists the control, format (bidi and other invisible) and
// other non-graphic runes of out, and its invalid UTF-8, except the line
// feeds that end lines.
func rawControls(out string) []string {
	var bad []string
	for i, r := range out {
		switch {
		case r == '\n':
		case r == utf8.RuneError:
			if _, size := utf8.DecodeRuneInString(out[i:]); size == 1 {
				bad = append(bad, "invalid UTF-8")
			}
		case r != ' ' && !unicode.IsGraphic(r):
			bad = append(bad, fmt.Sprintf("%U", r))
		}
	}
	return bad
}

// TestAuditTableEscapesCallerValues is THREATS T85 end to end: values a
// caller sends, unauthenticated or not, reach the audit tables escaped. A
// real server records an unauthenticated admin call whose URL path holds
// a newline and a forged row, a token exchange whose audience holds ANSI
// escapes and a bidi override and whose context holds CR and NUL, and a
// client authentication whose client_id holds a newline, a tab and an OSC
// sequence. Every table command, from the store and from the server, then
// prints one line per record (no forged row), no ESC and no other raw
// control or bidi rune, and shows the escaped forms; the JSON export
// still holds every value exactly as sent.
func TestAuditTableEscapesCallerValues(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) { testAuditTableEscapes(t, backend) })
	}
}

func testAuditTableEscapes(t *testing.T, backend string) {
	logs := &syncBuffer{}
	cfgPath, base, admin, stop := hostileServer(t, backend, newLogger, logs)

	// Unauthenticated: no admin token.
	if code, _ := post(t, base, hostilePath, nil, ""); code != http.StatusUnauthorized {
		t.Fatalf("unauthenticated admin call: %d, want 401", code)
	}
	code, body := post(t, base, "/admin/users/user:sam/token", nil, admin)
	if code != http.StatusOK {
		t.Fatalf("sign-in: %d %v", code, body)
	}
	subject := body["access_token"].(string)
	ctxJSON, _ := json.Marshal(map[string]string{"environment": hostileContext})
	exchange := func(audience string) (int, map[string]any) {
		return post(t, base, "/token", url.Values{
			"client_id": {"agent:infrabot"}, "client_secret": {"infrabot-dev-secret"},
			"grant_type": {oauth.GrantTokenExchange}, "subject_token_type": {oauth.TokenTypeAccessToken},
			"subject_token": {subject}, "audience": {audience}, "scope": {"monitoring:read"},
			"context": {string(ctxJSON)},
		}, "")
	}
	if code, body := exchange(hostileAudience); code != http.StatusBadRequest {
		t.Fatalf("exchange for the hostile audience: %d %v, want 400", code, body)
	}
	if code, body := exchange("agent:argocd"); code != http.StatusOK {
		t.Fatalf("exchange with the hostile context: %d %v", code, body)
	}
	if code, body := post(t, base, "/token", url.Values{
		"client_id": {hostileClientID}, "client_secret": {"wrong"}, "grant_type": {oauth.GrantClientCredentials},
	}, ""); code != http.StatusUnauthorized {
		t.Fatalf("client authentication with the hostile client_id: %d %v, want 401", code, body)
	}

	checkLogLines(t, "the server's log", logs.String(), -1)

	// The JSON export keeps every value exactly as sent.
	found := map[string]bool{}
	for _, ev := range decodeLines[store.Event](t, run(t, "audit", "export", "--config", cfgPath)) {
		found["path"] = found["path"] || ev.Resource == hostilePath
		found["audience"] = found["audience"] || ev.Audience == hostileAudience
		found["client_id"] = found["client_id"] || ev.ClientID == hostileClientID
		var c map[string]string
		if json.Unmarshal(ev.Context, &c) == nil && c["environment"] == hostileContext {
			found["context"] = true
		}
	}
	for _, what := range []string{"path", "audience", "client_id", "context"} {
		if !found[what] {
			t.Errorf("no exported record holds the %s exactly as sent", what)
		}
	}

	// checkTable holds a table's output to the rules: no forged row, no
	// raw control, bidi or escape rune, and the wanted escaped forms.
	checkTable := func(t *testing.T, out string, want ...string) {
		t.Helper()
		for _, line := range strings.Split(out, "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), "2099-") {
				t.Errorf("a forged row made it to a line of its own: %q", line)
			}
		}
		if strings.ContainsRune(out, 0x1b) {
			t.Errorf("ESC reaches the terminal")
		}
		if bad := rawControls(out); len(bad) > 0 {
			t.Errorf("raw control, bidi or invalid runes reach the terminal: %q", bad)
		}
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Errorf("the output lacks the escaped %q", w)
			}
		}
		if t.Failed() {
			t.Logf("output:\n%s", out)
		}
	}
	escPath := `/admin/users/x\n2099-01-01`
	escAudience := `agent:argocd\x1b[2J\x1b[1;1H\x1b[32mgranted\x1b[0m\u202etoor`
	escClient := `agent:evil\n2099-01-01`

	sources := map[string][]string{
		"store":  {"--config", cfgPath},
		"server": {"--server", base, "--admin-token", admin},
	}
	for _, name := range []string{"server", "store"} {
		src := sources[name]
		if name == "store" {
			stop() // the store read by itself, as after an incident
		}
		t.Run(name+"/query", func(t *testing.T) {
			out := run(t, append([]string{"audit", "query", "--limit", "0"}, src...)...)
			n := len(decodeLines[store.Event](t, run(t, append([]string{"audit", "query", "--limit", "0", "--json"}, src...)...)))
			if lines := strings.Count(out, "\n"); lines != n+1 {
				t.Errorf("%d lines for %d records and the header: a value made a row of its own", lines, n)
			}
			checkTable(t, out, escPath, escAudience)
		})
		t.Run(name+"/agent", func(t *testing.T) {
			out := run(t, append([]string{"audit", "agent", "agent:infrabot"}, src...)...)
			a := decodeLines[forensics.Activity](t, run(t, append([]string{"audit", "agent", "agent:infrabot", "--json"}, src...)...))[0]
			events := strings.SplitN(out, "\n\n", 3)[1]
			if lines := strings.Count(events, "\n"); lines != len(a.Events) {
				t.Errorf("%d lines for %d records and the header: a value made a row of its own", lines, len(a.Events))
			}
			checkTable(t, out, escAudience)
		})
		t.Run(name+"/agents", func(t *testing.T) {
			out := run(t, append([]string{"audit", "agents"}, src...)...)
			n := len(decodeLines[forensics.AgentStats](t, run(t, append([]string{"audit", "agents", "--json"}, src...)...)))
			if lines := strings.Count(out, "\n"); lines != n+1 {
				t.Errorf("%d lines for %d rows and the header: a value made a row of its own", lines, n)
			}
			checkTable(t, out, escClient, `\t\x1b]0;pwned\x07`)
		})
		t.Run(name+"/who-approved", func(t *testing.T) {
			out := run(t, append([]string{"audit", "who-approved", "--resource", hostilePath}, src...)...)
			checkTable(t, out, escPath)
			out = run(t, append([]string{"audit", "who-approved", "--resource", "token.exchange"}, src...)...)
			checkTable(t, out, escAudience, `"environment":"dev\r\u0000\u2066hidden\u2069\u0085"`)
		})
	}
}

// TestAuditVerifyWitnessWithoutCheckpoint: `audit verify --witness FILE`
// on a file that holds no checkpoint fails (exit 1) and says so, instead
// of reporting the log OK against nothing; a witness file with the
// server's checkpoint verifies.
func TestAuditVerifyWitnessWithoutCheckpoint(t *testing.T) {
	cfgPath, base, admin, stop := hostileServer(t, "sqlite", func(io.Writer) *slog.Logger { return slog.New(slog.DiscardHandler) }, io.Discard)
	get := func(method, path string) map[string]any {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, nil)
		req.Header.Set("Authorization", "Bearer "+admin)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("%s %s: %d %v", method, path, resp.StatusCode, err)
		}
		return body
	}
	get(http.MethodPost, "/audit/checkpoints")
	key := get(http.MethodGet, "/audit/checkpoints")["verifier_key"].(string)
	stop()
	dir := t.TempDir()
	export := filepath.Join(dir, "audit.jsonl")
	run(t, "audit", "export", "--config", cfgPath, "--out", export)
	// The log holds the dev cast's creation: a record per user, agent
	// and delegation.
	dev := config.Dev(t.TempDir())
	castRecords := len(dev.Users) + len(dev.Agents) + len(dev.Delegations)
	c, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		witness string // the file's text
		server  bool   // the server's own witness file instead
		code    int
		want    string
	}{
		{name: "fail/empty-file", code: 1, want: "holds no checkpoint"},
		{name: "fail/text-without-a-note", witness: "not a checkpoint\n\nnor this\n", code: 1, want: "holds no checkpoint"},
		{name: "ok/the-server-witness", server: true, code: 0, want: fmt.Sprintf("audit log OK: %d records", castRecords)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := c.WitnessPath()
			if !tc.server {
				path = filepath.Join(dir, strings.ReplaceAll(tc.name, "/", "-")+".txt")
				if err := os.WriteFile(path, []byte(tc.witness), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			args := []string{"audit", "verify", "--file", export, "--witness", path, "--key", key}
			for _, args := range [][]string{args, append(args[:len(args):len(args)], "--json"), args[:6]} {
				if tc.server && len(args) == 6 {
					continue // the server's checkpoints need the key
				}
				var stdout, stderr bytes.Buffer
				code := Main(context.Background(), args, &stdout, &stderr)
				want := tc.want
				if slices.Contains(args, "--json") && !tc.server {
					want = `"problem":"the witness file`
				} else if slices.Contains(args, "--json") {
					want = fmt.Sprintf(`"records":%d`, castRecords)
				}
				if code != tc.code || !strings.Contains(stdout.String()+stderr.String(), want) {
					t.Errorf("%s: exit %d, want %d with %q:\n%s%s", strings.Join(args[2:], " "), code, tc.code, want, stdout.String(), stderr.String())
				}
			}
		})
	}
}

// checkLogLines holds a log to the rules of THREATS T85: n records, each
// one line of JSON, with no raw control, bidi or other invisible rune.
func checkLogLines(t *testing.T, name, log string, n int) []map[string]any {
	t.Helper()
	if bad := rawControls(log); len(bad) > 0 {
		t.Errorf("%s: raw control, bidi or invalid runes in the log: %q", name, bad)
	}
	lines := strings.Split(strings.TrimSuffix(log, "\n"), "\n")
	if n >= 0 && len(lines) != n {
		t.Errorf("%s: %d lines for %d records", name, len(lines), n)
	}
	var recs []map[string]any
	for _, line := range lines {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Errorf("%s: a line is not a record: %v: %q", name, err, line)
		}
		recs = append(recs, rec)
	}
	if t.Failed() {
		t.Logf("%s:\n%s", name, log)
	}
	return recs
}

// TestLogLinesEscapeCallerValues is THREATS T85 for logs: the logger of
// `mandate serve` and of a recorded demo (newLogger) writes one line of
// JSON per record whatever a caller sent, with no raw control, bidi or
// other invisible rune, and the values decode exactly as sent. The
// server's own request log carries no caller text (route names, error
// codes and reasons only); an API's verify middleware logs the request's
// path and the token's context, which a caller chooses, so it is driven
// with a hostile path and a hostile context here.
func TestLogLinesEscapeCallerValues(t *testing.T) {
	serverLogs, apiLogs := &syncBuffer{}, &syncBuffer{}
	_, base, admin, stop := hostileServer(t, "sqlite", newLogger, serverLogs)
	ctx := context.Background()
	api := httptest.NewUnstartedServer(nil)
	apiURL := "http://" + api.Listener.Addr().String()
	v, err := verify.New(ctx, verify.Config{
		Issuer: base, Audience: apiURL, Algorithms: []string{"EdDSA", "ES256", "RS256"}, Logger: newLogger(apiLogs),
	})
	if err != nil {
		t.Fatal(err)
	}
	api.Config.Handler = v.Middleware(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	api.Start()
	defer api.Close()

	code, body := post(t, base, "/admin/users/user:sam/token", nil, admin)
	if code != http.StatusOK {
		t.Fatalf("sign-in: %d %v", code, body)
	}
	ctxJSON, _ := json.Marshal(map[string]string{"environment": hostileContext})
	code, body = post(t, base, "/token", url.Values{
		"client_id": {"agent:infrabot"}, "client_secret": {"infrabot-dev-secret"},
		"grant_type": {oauth.GrantTokenExchange}, "subject_token_type": {oauth.TokenTypeAccessToken},
		"subject_token": {body["access_token"].(string)}, "audience": {apiURL}, "scope": {"monitoring:read"},
		"context": {string(ctxJSON)},
	}, "")
	if code != http.StatusOK {
		t.Fatalf("exchange: %d %v", code, body)
	}
	hostileAPIPath := "/dashboards/x\n" + `{"level":"INFO","msg":"verify","result":"granted"}` + "\u202e\x1b[2J\u0085"
	call := func(path, token string) {
		t.Helper()
		u, _ := url.Parse(apiURL)
		u.Path = path
		req, _ := http.NewRequest(http.MethodGet, u.String(), nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	call(hostileAPIPath, "")                             // refused: no token
	call("/dashboards/1", body["access_token"].(string)) // granted: the hostile context
	recs := checkLogLines(t, "the API's log", apiLogs.String(), 2)
	if len(recs) == 2 {
		if recs[0]["resource"] != hostileAPIPath || recs[0]["result"] != "refused" {
			t.Errorf("the refusal's record: %v, want the resource exactly as sent", recs[0])
		}
		if c, _ := recs[1]["context"].(map[string]any); c["environment"] != hostileContext || recs[1]["result"] != "granted" {
			t.Errorf("the grant's record: %v, want the context exactly as sent", recs[1])
		}
	}
	stop()
	checkLogLines(t, "the server's log", serverLogs.String(), -1)
}

// TestAuditRecordsBoundCallerValues is THREATS T85's "stored as sent,
// bounded", on every backend: a 20 KB admin URL path with a NUL and a byte
// that is not UTF-8 (unauthenticated), a client_id with the same, and a
// 50 KB audience are each answered as a refusal (never 503: PostgreSQL
// stores no NUL and no invalid UTF-8, and a record it refuses fails every
// request committed with it), and recorded bounded: at most
// audit.MaxFieldBytes of the value as sent, cut at a character, with the
// size it had, NUL and invalid bytes as U+FFFD. The log still verifies.
func TestAuditRecordsBoundCallerValues(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			cfgPath, base, admin, stop := hostileServer(t, backend, func(io.Writer) *slog.Logger { return slog.New(slog.DiscardHandler) }, io.Discard)
			longPath := "/admin/users/x\x00\xff" + strings.Repeat("a", 20_000) + "/token"
			longAudience := "agent:" + strings.Repeat("b", 50_000) + "\x00"
			badClient := "agent:\x00\xff"
			if code, body := post(t, base, longPath, nil, ""); code != http.StatusUnauthorized {
				t.Errorf("unauthenticated admin call with a long path: %d %v, want 401", code, body)
			}
			if code, body := post(t, base, "/token", url.Values{
				"client_id": {badClient}, "client_secret": {"wrong"}, "grant_type": {oauth.GrantClientCredentials},
			}, ""); code != http.StatusUnauthorized {
				t.Errorf("client_id with NUL: %d %v, want 401", code, body)
			}
			code, body := post(t, base, "/admin/users/user:sam/token", nil, admin)
			if code != http.StatusOK {
				t.Fatalf("sign-in: %d %v", code, body)
			}
			if code, body := post(t, base, "/token", url.Values{
				"client_id": {"agent:infrabot"}, "client_secret": {"infrabot-dev-secret"},
				"grant_type": {oauth.GrantTokenExchange}, "subject_token_type": {oauth.TokenTypeAccessToken},
				"subject_token": {body["access_token"].(string)}, "audience": {longAudience},
			}, ""); code != http.StatusBadRequest {
				t.Errorf("exchange for a 50 KB audience: %d %v, want 400", code, body)
			}
			stop()
			evs := decodeLines[store.Event](t, run(t, "audit", "export", "--config", cfgPath))
			// bounded says whether v is raw as recorded: its start, at
			// most MaxFieldBytes, valid UTF-8 without NUL, and the size
			// raw had.
			bounded := func(v, raw, start string) bool {
				return strings.HasPrefix(v, start) && len(v) <= 1024+32 && utf8.ValidString(v) && !strings.ContainsRune(v, 0) &&
					strings.Contains(v, strconv.Itoa(len(raw))+" bytes")
			}
			var path, client, aud bool
			for _, ev := range evs {
				path = path || bounded(ev.Resource, longPath, "/admin/users/x\uFFFD\uFFFDaaa")
				client = client || ev.ClientID == "agent:\uFFFD\uFFFD"
				aud = aud || bounded(ev.Audience, longAudience, "agent:bbb")
			}
			if !path || !client || !aud {
				t.Errorf("recorded bounded: path %v, client_id %v, audience %v; want all", path, client, aud)
				for _, ev := range evs {
					t.Logf("%s %s resource %d bytes %.40q, client_id %q, audience %d bytes %.40q", ev.Action, ev.Result, len(ev.Resource), ev.Resource,
						ev.ClientID, len(ev.Audience), ev.Audience)
				}
			}
			if out := run(t, "audit", "verify", "--config", cfgPath); !strings.Contains(out, "audit log OK") {
				t.Errorf("verify: %s", out)
			}
		})
	}
}

// TestErrorLineEscaped: the error line of a command quotes what it was
// given or read (a file name here) escaped, and keeps the line breaks
// between the problems it lists.
func TestErrorLineEscaped(t *testing.T) {
	dir := t.TempDir()
	var stdout, stderr bytes.Buffer
	bad := filepath.Join(dir, "x\x1b[2J\u202e\n2099-01-01.jsonl")
	if code := Main(context.Background(), []string{"audit", "query", "--file", bad}, &stdout, &stderr); code != 1 {
		t.Fatalf("exit %d, want 1: %s", code, stderr.String())
	}
	if got := stderr.String(); strings.Count(got, "\n") != 1 || len(rawControls(got)) > 0 || !strings.Contains(got, `x\x1b[2J\u202e\n2099-01-01.jsonl`) {
		t.Errorf("error line %q: want one line with the name escaped", got)
	}
	cfg := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(cfg, []byte("issuer: ftp://x\nlisten: nowhere\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	stderr.Reset()
	if code := Main(context.Background(), []string{"config", "check", "--config", cfg}, &stdout, &stderr); code == 0 || strings.Count(stderr.String(), "\n") < 2 {
		t.Errorf("exit %d with %q: want every problem on a line of its own", code, stderr.String())
	}
}
