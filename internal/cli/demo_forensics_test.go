package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/mandate-dev/mandate/internal/app"
	"github.com/mandate-dev/mandate/internal/config"
	"github.com/mandate-dev/mandate/internal/forensics"
	"github.com/mandate-dev/mandate/internal/store"
)

// recordDemo runs `mandate demo --record` once and returns the recorded
// configuration's path and what the demo printed.
func recordDemo(t *testing.T) (cfgPath, out string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "run")
	var stdout, stderr bytes.Buffer
	if code := Main(context.Background(), []string{"demo", "--record", dir}, &stdout, &stderr); code != 0 {
		t.Fatalf("demo exited %d: %s\n%s", code, stderr.String(), stdout.String())
	}
	return filepath.Join(dir, demoConfigFile), stdout.String()
}

// run runs a mandate command and returns its standard output.
func run(t *testing.T, args ...string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if code := Main(context.Background(), args, &stdout, &stderr); code != 0 {
		t.Fatalf("mandate %s exited %d: %s", strings.Join(args, " "), code, stderr.String())
	}
	return stdout.String()
}

// decodeLines decodes JSON lines into values of T.
func decodeLines[T any](t *testing.T, out string) []T {
	t.Helper()
	var l []T
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var v T
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			t.Fatalf("%v: %q", err, line)
		}
		l = append(l, v)
	}
	return l
}

// hasLine says whether a line of out holds every one of parts, in order.
func hasLine(out string, parts ...string) bool {
	for _, line := range strings.Split(out, "\n") {
		rest, ok := line, true
		for _, p := range parts {
			i := strings.Index(rest, p)
			if i < 0 {
				ok = false
				break
			}
			rest = rest[i+len(p):]
		}
		if ok {
			return true
		}
	}
	return false
}

// TestDemoForensics is issue 6's must-show 2: the forensics questions
// answered from a recorded run of `mandate demo`, each from the command's
// own output: what agent:argocd did and for whom, who approved the $487.50
// expense, and each agent's refusal rate. The APIs' requests are in the
// server's log because the demo's APIs forward them (forward.Forwarder to
// POST /audit/ingest).
func TestDemoForensics(t *testing.T) {
	cfg, demoOut := recordDemo(t)
	if !strings.Contains(demoOut, "EXP-1042/approve: 200") || !strings.Contains(demoOut, `"amount":487.5`) {
		t.Fatalf("the demo did not approve the $487.50 expense as EXP-1042:\n%s", demoOut)
	}

	t.Run("what-argocd-did-and-for-whom", func(t *testing.T) {
		table := run(t, "audit", "agent", "agent:argocd", "--config", cfg)
		for _, want := range [][]string{
			{"deploy:create", "agent:argocd", "user:sam", "service/checkout", "granted"},                          // its deploy, reported by the deploy API
			{"token.refused", "agent:reaper", "user:sam", "refused (delegation_depth_exceeded)"},                  // a chain it was in, refused further down
			{"agent:reaper", "user:sam", "agent:reaper <- agent:cleanup_agent <- agent:argocd <- agent:infrabot"}, // the CHAIN column says why
			{"TIME", "PERFORMED BY", "ON BEHALF OF", "CHAIN", "RESOURCE"},                                         //
		} {
			if !hasLine(table, want...) {
				t.Errorf("no line of the table has %q:\n%s", want, table)
			}
		}
		if !regexp.MustCompile(`(?m)^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z  deploy:create  `).MatchString(table) {
			t.Errorf("the deploy's time is not RFC 3339 in UTC:\n%s", table)
		}
		a := decodeLines[forensics.Activity](t, run(t, "audit", "agent", "agent:argocd", "--config", cfg, "--json"))[0]
		if want := []forensics.Subject{{Subject: "user:sam", Tokens: 2, Requests: 1, Refused: 1, ReportedBy: []string{demoReporter}}}; fmt.Sprint(a.For) != fmt.Sprint(want) {
			t.Errorf("for whom: %+v, want %+v", a.For, want)
		}
		deploys := 0
		for _, ev := range a.Events {
			if ev.Action == "request" && ev.Operation == "deploy:create" && ev.Resource == "service/checkout" &&
				ev.OnBehalf == "user:sam" && slices.Equal(ev.Chain, []string{"agent:argocd", "agent:infrabot"}) && ev.ReportedBy == demoReporter {
				deploys++
			}
		}
		if deploys != 1 {
			t.Errorf("%d deploy records by argocd for sam, want 1", deploys)
		}
	})

	t.Run("who-approved-the-mcp-deploy", func(t *testing.T) {
		// The MCP story's deploy: the MCP server for the MCP client for
		// Sam, back to his approval on the consent page.
		table := run(t, "audit", "who-approved", "--resource", "service/search", "--config", cfg)
		for _, want := range [][]string{
			{"deploy:create service/search: granted"},
			{"performed by", "agent:example_mcp"},
			{"chain", "agent:example_mcp <- agent:"},
			{"authority", "delegation.created", "for user:sam", "scopes", "deploy:create", "delegation dlg_"}, // with monitoring:read, in either order
			{"authority", "token.exchange: agent:example_mcp for user:sam, scopes deploy:create"},
		} {
			if !hasLine(table, want...) {
				t.Errorf("no line of the answer has %q:\n%s", want, table)
			}
		}
	})

	t.Run("who-approved-the-487.50-expense", func(t *testing.T) {
		table := run(t, "audit", "who-approved", "--resource", "expense/EXP-1042", "--config", cfg)
		for _, want := range []string{"expense:approve expense/EXP-1042: granted", "on behalf of  user:alice",
			"performed by  agent:expense-agent-001", `"amount":"487.50"`, `"max_amount":1000`} {
			if !strings.Contains(table, want) {
				t.Errorf("the answer lacks %q:\n%s", want, table)
			}
		}
		aps := decodeLines[forensics.Approval](t, run(t, "audit", "who-approved", "--resource", "expense/EXP-1042", "--config", cfg, "--json"))
		if len(aps) != 1 {
			t.Fatalf("%d approvals, want 1", len(aps))
		}
		ap := aps[0]
		var attrs map[string]string
		_ = json.Unmarshal(ap.Event.Attributes, &attrs)
		if ap.Event.Result != "granted" || ap.Event.OnBehalf != "user:alice" || ap.Event.Performer != "agent:expense-agent-001" || attrs["amount"] != "487.50" {
			t.Errorf("approval %+v", ap.Event)
		}
		if len(ap.Authority) != 2 || ap.Authority[0].OnBehalf != "user:alice" || ap.Authority[1].ClientID != "agent:expense-agent-001" ||
			ap.Authority[1].DelegationID == "" || !strings.Contains(string(ap.Authority[1].AuthorizationDetails), `"max_amount":1000`) {
			t.Errorf("authority %+v: want Alice's approval on the consent page, then the token issued under it with the $1,000 limit", ap.Authority)
		}
	})

	t.Run("refusal-rates-per-agent", func(t *testing.T) {
		table := run(t, "audit", "agents", "--config", cfg)
		if !strings.Contains(table, "REFUSAL RATE") || !strings.Contains(table, "40.0%") {
			t.Errorf("the table lacks InfraBot's 40.0%%:\n%s", table)
		}
		type key struct{ agent, version string }
		got := map[key]forensics.AgentStats{}
		for _, r := range decodeLines[forensics.AgentStats](t, run(t, "audit", "agents", "--config", cfg, "--json")) {
			got[key{r.Agent, r.Version}] = r
		}
		reporter := []string{demoReporter}
		for _, want := range []forensics.AgentStats{
			{Agent: "agent:infrabot", Issued: 3, Refused: 2, RefusalRate: 2.0 / 5, APIGranted: 1, APIReportedBy: reporter}, // secrets:manage never approved, the chat-triggered prod deploy
			{Agent: "agent:infrabot", Version: "2.1.0", Issued: 3, Refused: 2, RefusalRate: 2.0 / 5},                       // as the version it declared
			{Agent: "agent:reaper", Refused: 1, RefusalRate: 1},                                                            // the fourth hop
			{Agent: "agent:expense-agent-001", Issued: 2, APIGranted: 1, APIRefused: 1, APIReportedBy: reporter},           // $1,250 refused by the API
			{Agent: "agent:argocd", Issued: 2, APIGranted: 1, APIReportedBy: reporter},                                     //
			{Agent: "agent:cleanup_agent", Issued: 1},                                                                      //
		} {
			if g := got[key{want.Agent, want.Version}]; fmt.Sprintf("%+v", g) != fmt.Sprintf("%+v", want) {
				t.Errorf("%s %s: got %+v, want %+v", want.Agent, want.Version, g, want)
			}
		}
		if !hasLine(table, "agent:argocd", "(all)", demoReporter) {
			t.Errorf("the table does not name who reported argocd's API requests:\n%s", table)
		}
	})

	t.Run("token-lineage", func(t *testing.T) {
		hop := decodeLines[store.Event](t, run(t, "audit", "query", "--config", cfg, "--actor", "agent:argocd",
			"--action", "token.exchange", "--audience", "agent:cleanup_agent", "--json"))
		if len(hop) != 1 {
			t.Fatalf("%d hops to cleanup_agent", len(hop))
		}
		var actions []string
		for _, ev := range decodeLines[store.Event](t, run(t, "audit", "query", "--config", cfg, "--jti", hop[0].JTI, "--lineage", "--json")) {
			actions = append(actions, ev.ClientID+" "+ev.Action)
		}
		want := []string{"agent:infrabot token.issue", "agent:argocd token.exchange",
			"agent:cleanup_agent token.exchange", "agent:reaper token.refused"}
		if !slices.Equal(actions, want) {
			t.Errorf("lineage %q, want %q", actions, want)
		}
	})

	t.Run("log-verifies", func(t *testing.T) {
		if out := run(t, "audit", "verify", "--config", cfg); !strings.Contains(out, "audit log OK") {
			t.Errorf("verify: %s", out)
		}
	})

	// Issue 6's must-show 4 on the recorded run: the demo's secrets (its
	// agents' and the APIs' reporter secret) and its admin token appear
	// nowhere in the database, the witness file, the logs or the export.
	t.Run("no-secrets-in-the-record", func(t *testing.T) {
		c, err := config.Load(cfg)
		if err != nil {
			t.Fatal(err)
		}
		secrets := []string{c.Admin.Token, demoReporterSecret}
		for _, a := range demoConfig(t.TempDir(), "http://127.0.0.1:1").Agents {
			if a.Secret != "" {
				secrets = append(secrets, a.Secret)
			}
		}
		export := run(t, "audit", "export", "--config", cfg)
		blobs := map[string][]byte{"export": []byte(export)}
		entries, _ := os.ReadDir(c.DataDir)
		for _, e := range entries {
			if e.Name() == demoConfigFile || e.IsDir() {
				continue // the configuration holds the admin token by design
			}
			b, err := os.ReadFile(filepath.Join(c.DataDir, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			blobs[e.Name()] = b
		}
		if len(blobs) < 4 {
			t.Fatalf("only %d files to scan", len(blobs))
		}
		// The logs are among them, and they hold the run's requests.
		if log := string(blobs[demoLogFile]); !strings.Contains(log, `"route":"token"`) || !strings.Contains(log, `"performed_by":"agent:expense-agent-001"`) {
			t.Fatalf("the recorded log lacks the server's or the APIs' records:\n%.2000s", log)
		}
		for name, b := range blobs {
			for _, s := range secrets {
				if bytes.Contains(b, []byte(s)) {
					t.Errorf("%s holds the secret %.6s…", name, s)
				}
			}
		}
	})
}

// TestAuditQueryFromEverySource: `mandate audit` with filters (the same as
// `mandate audit query`) gives the same records from the store, from a
// running server and from an export; bad flags are usage errors (exit 2).
func TestAuditQueryFromEverySource(t *testing.T) {
	cfg, _ := recordDemo(t)
	export := filepath.Join(t.TempDir(), "audit.jsonl")
	run(t, "audit", "export", "--config", cfg, "--out", export)
	want := run(t, "audit", "--config", cfg, "--actor", "agent:argocd", "--result", "granted", "--json")
	if n := len(decodeLines[store.Event](t, want)); n != 4 {
		t.Fatalf("%d records, want argocd's 3 tokens and its deploy", n)
	}
	if got := run(t, "audit", "query", "--file", export, "--actor", "agent:argocd", "--result", "granted", "--json"); got != want {
		t.Errorf("from the export:\n%s\nfrom the store:\n%s", got, want)
	}
	// A server on the recorded store, asked over HTTP.
	c, err := config.Load(cfg)
	if err != nil {
		t.Fatal(err)
	}
	app, err := app.Build(context.Background(), c, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	srv := httptest.NewServer(app.Handler)
	defer srv.Close()
	if got := run(t, "audit", "--server", srv.URL, "--admin-token", c.Admin.Token, "--actor", "agent:argocd", "--result", "granted", "--json"); got != want {
		t.Errorf("from the server:\n%s\nfrom the store:\n%s", got, want)
	}
	if got := run(t, "audit", "who-approved", "--server", srv.URL, "--admin-token", c.Admin.Token, "--resource", "expense/EXP-1042"); !strings.Contains(got, `"amount":"487.50"`) {
		t.Errorf("who-approved from the server:\n%s", got)
	}
	for _, tc := range []struct {
		name string
		args []string
	}{
		{name: "no-source", args: []string{"audit", "query"}},
		{name: "two-sources", args: []string{"audit", "query", "--config", cfg, "--file", export}},
		{name: "lineage-without-jti", args: []string{"audit", "query", "--config", cfg, "--lineage"}},
		{name: "bad-since", args: []string{"audit", "query", "--config", cfg, "--since", "yesterday"}},
		{name: "who-approved-without-resource", args: []string{"audit", "who-approved", "--config", cfg}},
		{name: "follow-every-not-positive", args: []string{"audit", "export", "--config", cfg, "--follow", "--every", "0s"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := Main(context.Background(), tc.args, &stdout, &stderr); code != 2 {
				t.Errorf("exit %d, want 2 (usage): %s", code, stderr.String())
			}
		})
	}
}
