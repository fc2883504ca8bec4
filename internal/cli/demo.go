package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/spf13/cobra"

	"github.com/mandate-dev/mandate/agent"
	"github.com/mandate-dev/mandate/examples/deployapi"
	"github.com/mandate-dev/mandate/examples/expenseapi"
	"github.com/mandate-dev/mandate/examples/monitoringapi"
	"github.com/mandate-dev/mandate/internal/app"
	"github.com/mandate-dev/mandate/internal/audit"
	"github.com/mandate-dev/mandate/internal/config"
	"github.com/mandate-dev/mandate/internal/forensics"
	"github.com/mandate-dev/mandate/internal/provision"
	"github.com/mandate-dev/mandate/internal/server"
	"github.com/mandate-dev/mandate/internal/store"
	"github.com/mandate-dev/mandate/internal/termsafe"
	"github.com/mandate-dev/mandate/verify"
	"github.com/mandate-dev/mandate/verify/forward"
)

func newDemoCmd(stdout io.Writer) *cobra.Command {
	var record string
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Play the InfraBot and expense-agent stories against a real server and real APIs on loopback",
		Long: `Play the two stories, step by step, against a real Mandate server
and three example APIs protected by the verify package, all on 127.0.0.1 with a
temporary data directory:

  Sam -> InfraBot -> ArgoCD -> CleanupAgent: monitoring, a prod deploy from CI,
  a refused manual prod deploy, a three-hop chain and a refused fourth hop;
  Alice -> expense-agent-001: $487.50 approved, $1,250 refused (limit $1,000).

The APIs forward their per-request records to the server (POST /audit/ingest),
and the demo ends with the audit table: who acted, for whom, on what, with which
result. With --record DIR the data directory is kept in DIR with a
configuration file, DIR/mandate.yaml, and the server's and the APIs' logs,
DIR/mandate.log, so that the run can be questioned afterwards:

  mandate audit agent agent:argocd --config DIR/mandate.yaml
  mandate audit who-approved --resource expense/EXP-1042 --config DIR/mandate.yaml
  mandate audit agents --config DIR/mandate.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runDemo(cmd.Context(), stdout, record) },
	}
	cmd.Flags().StringVar(&record, "record", "", "keep the run's data directory here (new or empty), with mandate.yaml to query it")
	return cmd
}

// demoReporter is the client the example APIs forward their records as.
const (
	demoReporter       = "rs:demo-apis"
	demoReporterSecret = "demo-apis-reporter-secret"
)

// demoVersions are the versions the demo's agents declare (agent_version).
var demoVersions = map[string]string{
	"agent:infrabot": "2.1.0", "agent:argocd": "2.9.4", "agent:cleanup_agent": "0.3.1",
	"agent:reaper": "0.1.0", "agent:expense-agent-001": "1.0.3",
}

// demoAPI is one example service on loopback, and the forwarder that
// reports its records to the server.
type demoAPI struct {
	url string
	fwd *forward.Forwarder
}

// listen binds a free loopback port.
func listen() (net.Listener, string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", fmt.Errorf("listen: %w", err)
	}
	return ln, "http://" + ln.Addr().String(), nil
}

// demoConfig is the cast of both stories; apis are the example APIs'
// URLs (their audiences), which demoReporter reports for.
func demoConfig(dir, issuer string, apis ...string) *config.Config {
	cfg := config.Dev(dir)
	cfg.Issuer = issuer
	cfg.Listen = strings.TrimPrefix(issuer, "http://")
	cfg.Delegation.MaxDepth = 3
	cfg.Admin.Token = audit.NewID("demo-admin-")
	cfg.Users = append(cfg.Users, config.User{
		ID:          "user:alice",
		Permissions: []string{"expense:approve", "expense:read"},
		Limits:      []map[string]any{{"type": "expense_approval", "max_amount": 1000, "currency": "USD"}},
	})
	cfg.Agents = append(cfg.Agents,
		config.Agent{ID: "agent:expense-agent-001", Secret: "expense-demo-secret", Scopes: []string{"expense:approve", "expense:read"}},
		config.Agent{ID: "agent:reaper", Secret: "reaper-demo-secret", Scopes: []string{"deploy:tag"}},
		config.Agent{ID: demoReporter, Secret: demoReporterSecret, Scopes: []string{server.ScopeAuditReport}, Resources: apis},
	)
	for i := range cfg.Agents {
		if cfg.Agents[i].ID == "agent:cleanup_agent" {
			cfg.Agents[i].DelegateTo = []string{"agent:reaper"}
		}
	}
	cfg.Delegations = append(cfg.Delegations, config.Delegation{
		ID: config.DelegationID("user:alice", "agent:expense-agent-001"), Subject: "user:alice",
		Actor: "agent:expense-agent-001", Scopes: []string{"expense:approve"},
	})
	return cfg
}

func runDemo(ctx context.Context, stdout io.Writer, record string) error {
	dir, err := demoDir(record)
	if err != nil {
		return err
	}
	if record == "" {
		defer os.RemoveAll(dir)
	}
	ln, issuer, err := listen()
	if err != nil {
		return err
	}
	// The APIs' addresses are their audiences, which their reporter must
	// be registered for: they are taken before the configuration is made.
	apiListeners, apiURLs, err := listenAPIs()
	for _, l := range apiListeners {
		defer l.Close()
	}
	if err != nil {
		return err
	}
	cfg := demoConfig(dir, issuer, apiURLs...)
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("demo configuration: %w", err)
	}
	logger := slog.New(slog.DiscardHandler)
	if record != "" {
		if err := writeDemoConfig(cfg); err != nil {
			return err
		}
		// The server's and the APIs' logs are kept with the run.
		logFile, err := os.OpenFile(filepath.Join(dir, demoLogFile), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return fmt.Errorf("demo: %w", err)
		}
		defer logFile.Close()
		logger = newLogger(logFile)
	}
	app, err := app.Build(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer app.Close()
	if _, err := provision.Sync(ctx, app.Store, cfg, false, time.Now()); err != nil {
		return err
	}
	srv := server.NewHTTPServer(cfg.Listen, app.Handler)
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()

	apis := map[string]*demoAPI{}
	for name, mk := range map[string]func(*verify.Verifier) http.Handler{
		"deploy": deployapi.New, "monitoring": monitoringapi.New, "expense": expenseapi.New,
	} {
		api, stop, err := startDemoAPI(ctx, issuer, apiListeners[name], mk, logger)
		if err != nil {
			return err
		}
		defer stop()
		apis[name] = api
	}
	d := &demo{out: stdout, issuer: issuer, admin: cfg.Admin.Token, apis: apis, started: time.Now()}
	if err := d.infraBot(ctx); err != nil {
		return err
	}
	if err := d.expenses(ctx); err != nil {
		return err
	}
	if err := flushAPIs(ctx, apis); err != nil {
		return err
	}
	if err := d.auditTable(ctx); err != nil {
		return err
	}
	if record != "" {
		return d.recorded(ctx, dir)
	}
	return nil
}

// listenAPIs takes a loopback address for each example API. Their
// addresses are their audiences, which their reporter must be registered
// for: they are taken before the configuration is made. The caller closes
// the listeners, also those returned with an error.
func listenAPIs() (map[string]net.Listener, []string, error) {
	names := []string{"deploy", "monitoring", "expense"}
	listeners, urls := map[string]net.Listener{}, make([]string, 0, len(names))
	for _, name := range names {
		l, url, err := listen()
		if err != nil {
			return listeners, nil, err
		}
		listeners[name] = l
		urls = append(urls, url)
	}
	return listeners, urls, nil
}

// flushAPIs makes the APIs' records reach the server before the table is
// read, and fails if any was lost.
func flushAPIs(ctx context.Context, apis map[string]*demoAPI) error {
	for name, api := range apis {
		if err := api.fwd.Close(ctx); err != nil {
			return fmt.Errorf("demo: the %s API's records: %w", name, err)
		}
		if st := api.fwd.Stats(); st.Dropped+st.Rejected > 0 {
			return fmt.Errorf("demo: the %s API lost records: %+v", name, st)
		}
	}
	return nil
}

// recorded ends a recorded run: a signed checkpoint of the whole run, for
// audit verify, and the questions to ask of it.
func (d *demo) recorded(ctx context.Context, dir string) error {
	if err := d.checkpoint(ctx); err != nil {
		return err
	}
	path := filepath.Join(dir, demoConfigFile)
	fmt.Fprintf(d.out, "\nThe run is recorded in %s. Question it with:\n\n", dir)
	for _, q := range []string{"agent agent:argocd", "who-approved --resource expense/EXP-1042", "agents", "query --actor agent:infrabot"} {
		fmt.Fprintf(d.out, "  mandate audit %s --config %s\n", q, path)
	}
	fmt.Fprintf(d.out, "  mandate audit verify --config %s\n", path)
	return nil
}

// demoConfigFile is the configuration a recorded run leaves in its
// directory, and demoLogFile the server's and the APIs' logs.
const (
	demoConfigFile = "mandate.yaml"
	demoLogFile    = "mandate.log"
)

// demoDir is the run's data directory: record, which must be new or empty,
// or a temporary one.
func demoDir(record string) (string, error) {
	if record == "" {
		dir, err := os.MkdirTemp("", "mandate-demo-")
		if err != nil {
			return "", fmt.Errorf("demo: %w", err)
		}
		return dir, nil
	}
	entries, err := os.ReadDir(record)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(record, 0o700); err != nil {
			return "", fmt.Errorf("demo: --record: %w", err)
		}
	case err != nil:
		return "", fmt.Errorf("demo: --record: %w", err)
	case len(entries) > 0:
		return "", usage("demo: --record " + record + " is not empty: give a new or empty directory")
	}
	return filepath.Abs(record)
}

// writeDemoConfig writes the configuration of the recorded run to its data
// directory (mode 0600: it holds the demo's admin token): the issuer, the
// data directory and the admin token. The cast is in the store already,
// which is authoritative once written; the file is for `mandate audit ...
// --config` and `mandate serve --config`.
func writeDemoConfig(cfg *config.Config) error {
	b, err := yaml.Marshal(map[string]any{
		"issuer": cfg.Issuer, "listen": cfg.Listen, "data_dir": cfg.DataDir,
		"admin": map[string]string{"token": cfg.Admin.Token},
	})
	if err != nil {
		return fmt.Errorf("demo: write the configuration: %w", err)
	}
	path := filepath.Join(cfg.DataDir, demoConfigFile)
	if _, err := config.Parse(b, path); err != nil {
		return fmt.Errorf("demo: the recorded configuration does not load back: %w", err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return fmt.Errorf("demo: write the configuration: %w", err)
	}
	return nil
}

// startDemoAPI runs an example service on ln whose audience is its own
// URL, and which forwards its records to the server as demoReporter.
func startDemoAPI(ctx context.Context, issuer string, ln net.Listener, mk func(*verify.Verifier) http.Handler, logger *slog.Logger) (*demoAPI, func(), error) {
	url := "http://" + ln.Addr().String()
	fwd, err := forward.New(ctx, forward.Config{
		URL: issuer + "/audit/ingest", ClientID: demoReporter, ClientSecret: demoReporterSecret,
		FlushEvery: 100 * time.Millisecond, Logger: logger,
	})
	if err != nil {
		ln.Close()
		return nil, nil, fmt.Errorf("demo API: %w", err)
	}
	v, err := verify.New(ctx, verify.Config{
		Issuer: issuer, Audience: url, Algorithms: []string{"EdDSA", "ES256", "RS256"}, Records: fwd, Logger: logger,
	})
	if err != nil {
		ln.Close()
		_ = fwd.Close(ctx)
		return nil, nil, fmt.Errorf("demo API: %w", err)
	}
	srv := server.NewHTTPServer(ln.Addr().String(), mk(v))
	go func() { _ = srv.Serve(ln) }()
	return &demoAPI{url: url, fwd: fwd}, func() { _ = srv.Close(); _ = fwd.Close(ctx) }, nil
}

// demo plays the stories and prints each decision.
type demo struct {
	out     io.Writer
	issuer  string
	admin   string
	apis    map[string]*demoAPI
	started time.Time
	step    int
}

func (d *demo) say(format string, args ...any) {
	d.step++
	fmt.Fprintf(d.out, "\n%2d. %s\n", d.step, fmt.Sprintf(format, args...))
}

// result prints an outcome; what the server and the APIs answered is
// escaped (termsafe).
func (d *demo) result(format string, args ...any) {
	fmt.Fprintf(d.out, "    -> %s\n", termsafe.String(fmt.Sprintf(format, args...)))
}

// signIn gets a person's own token (the admin API stands in for sign-in).
func (d *demo) signIn(ctx context.Context, user string) (string, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, d.issuer+"/admin/users/"+user+"/token", nil)
	req.Header.Set("Authorization", "Bearer "+d.admin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("sign-in: %w", err)
	}
	defer resp.Body.Close()
	var body struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.AccessToken == "" {
		return "", fmt.Errorf("sign-in of %s failed (%d)", user, resp.StatusCode)
	}
	return body.AccessToken, nil
}

func (d *demo) agent(id, secret string) (*agent.Client, error) {
	return agent.New(agent.Config{TokenURL: d.issuer + "/token", ClientID: id, ClientSecret: secret, Version: demoVersions[id]})
}

// exchange runs one exchange and prints the decision; refused says whether
// a refusal is the expected outcome.
func (d *demo) exchange(ctx context.Context, c *agent.Client, who string, req agent.Request, refused bool) (*agent.Token, error) {
	tok, err := c.Exchange(ctx, req)
	var e *agent.Error
	switch {
	case err == nil && !refused:
		d.result("granted to %s: scope %q for %s, expires in %s", who, strings.Join(tok.Scopes, " "), req.Audience+req.Resource,
			time.Until(tok.ExpiresAt).Round(time.Second))
		return tok, nil
	case errors.As(err, &e) && refused:
		d.result("refused: %d %s (%s)", e.Status, e.Code, e.Description)
		return nil, nil
	case err == nil:
		return nil, fmt.Errorf("demo: %s was granted a token that should have been refused", who)
	default:
		return nil, fmt.Errorf("demo: exchange by %s: %w", who, err)
	}
}

// call sends a request to an example API with tok and prints its answer;
// wantStatus is the expected status.
func (d *demo) call(ctx context.Context, method, url, tok, body string, wantStatus int) error {
	req, _ := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("demo: %s %s: %w", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	d.result("%s %s: %d %s", method, strings.TrimPrefix(url, "http://"), resp.StatusCode, strings.TrimSpace(string(b)))
	if resp.StatusCode != wantStatus {
		return fmt.Errorf("demo: %s %s answered %d, expected %d", method, url, resp.StatusCode, wantStatus)
	}
	return nil
}

func (d *demo) infraBot(ctx context.Context) error {
	fmt.Fprintf(d.out, "Story 1: Sam -> InfraBot -> ArgoCD -> CleanupAgent (server %s)\n", d.issuer)
	infrabot, err := d.agent("agent:infrabot", "infrabot-dev-secret")
	if err != nil {
		return err
	}
	argocd, _ := d.agent("agent:argocd", "argocd-dev-secret")
	cleanup, _ := d.agent("agent:cleanup_agent", "cleanup-dev-secret")
	reaper, _ := d.agent("agent:reaper", "reaper-demo-secret")

	d.say("Sam signs in and hands InfraBot his token.")
	sam, err := d.signIn(ctx, "user:sam")
	if err != nil {
		return err
	}
	d.result("Sam holds monitoring:read deploy:create deploy:comment secrets:manage deploy:tag infrastructure:clean")

	mon := d.apis["monitoring"].url
	d.say("InfraBot asks for monitoring:read and secrets:manage at the monitoring API: the delegation lacks secrets:manage, so it is dropped.")
	tok, err := d.exchange(ctx, infrabot, "agent:infrabot", agent.Request{SubjectToken: sam, Audience: mon, Scopes: []string{"monitoring:read", "secrets:manage"}}, false)
	if err != nil {
		return err
	}
	d.say("InfraBot reads a dashboard for Sam.")
	if err := d.call(ctx, http.MethodGet, mon+"/metrics/cpu", tok.AccessToken, "", http.StatusOK); err != nil {
		return err
	}

	d.say("InfraBot, prompted in chat, asks for a prod deploy token: policy prod-deploys-only-from-ci refuses it.")
	if _, err := d.exchange(ctx, infrabot, "agent:infrabot", agent.Request{SubjectToken: sam, Audience: "agent:argocd",
		Scopes: []string{"deploy:create"}, Context: map[string]any{"environment": "prod", "trigger": "chat"}}, true); err != nil {
		return err
	}

	d.say("The CI pipeline triggers InfraBot: it gets a prod deploy token addressed to ArgoCD.")
	hop1, err := d.exchange(ctx, infrabot, "agent:infrabot", agent.Request{SubjectToken: sam, Audience: "agent:argocd",
		Scopes: []string{"deploy:create", "deploy:tag"}, Context: map[string]any{"environment": "prod", "trigger": "ci_pipeline"}}, false)
	if err != nil {
		return err
	}
	dep := d.apis["deploy"].url
	d.say("ArgoCD exchanges it for the deploy API (chain: ArgoCD, InfraBot) and deploys.")
	hop2, err := d.exchange(ctx, argocd, "agent:argocd", agent.Request{SubjectToken: hop1.AccessToken, Audience: dep, Scopes: []string{"deploy:create"}}, false)
	if err != nil {
		return err
	}
	if err := d.call(ctx, http.MethodPost, dep+"/deployments", hop2.AccessToken, `{"service":"checkout"}`, http.StatusOK); err != nil {
		return err
	}

	d.say("ArgoCD hands the tagging on to CleanupAgent (chain: CleanupAgent, ArgoCD, InfraBot: depth 3, the limit).")
	hop3, err := d.exchange(ctx, argocd, "agent:argocd", agent.Request{SubjectToken: hop1.AccessToken, Audience: "agent:cleanup_agent", Scopes: []string{"deploy:tag"}}, false)
	if err != nil {
		return err
	}
	hop4, err := d.exchange(ctx, cleanup, "agent:cleanup_agent", agent.Request{SubjectToken: hop3.AccessToken, Audience: "agent:reaper", Scopes: []string{"deploy:tag"}}, false)
	if err != nil {
		return err
	}
	d.say("CleanupAgent tries to hand on to a fourth agent: refused, the chain would be too deep.")
	_, err = d.exchange(ctx, reaper, "agent:reaper", agent.Request{SubjectToken: hop4.AccessToken, Resource: "https://aws.example/tags"}, true)
	return err
}

func (d *demo) expenses(ctx context.Context) error {
	fmt.Fprintf(d.out, "\nStory 2: Alice -> expense-agent-001 (Alice may approve up to $1,000)\n")
	ea, err := d.agent("agent:expense-agent-001", "expense-demo-secret")
	if err != nil {
		return err
	}
	d.say("Alice signs in and asks her expense agent to approve her team's expenses.")
	alice, err := d.signIn(ctx, "user:alice")
	if err != nil {
		return err
	}
	exp := d.apis["expense"].url
	d.say("The agent asks for an expense_approval limit of $5,000: Mandate grants no more than Alice holds.")
	tok, err := d.exchange(ctx, ea, "agent:expense-agent-001", agent.Request{SubjectToken: alice, Audience: exp, Scopes: []string{"expense:approve"},
		AuthorizationDetails: []map[string]any{{"type": "expense_approval", "max_amount": 5000, "currency": "USD"}}}, false)
	if err != nil {
		return err
	}
	d.result("authorization_details granted: %s", tok.AuthorizationDetails)
	d.say("It approves a $487.50 expense.")
	if err := d.call(ctx, http.MethodPost, exp+"/expenses/EXP-1042/approve", tok.AccessToken, `{"amount":487.50,"currency":"USD"}`, http.StatusOK); err != nil {
		return err
	}
	d.say("It tries to approve a $1,250 expense: limit exceeded.")
	return d.call(ctx, http.MethodPost, exp+"/expenses/EXP-1043/approve", tok.AccessToken, `{"amount":1250,"currency":"USD"}`, http.StatusForbidden)
}

// checkpoint asks the server to sign a checkpoint of the log as it is.
func (d *demo) checkpoint(ctx context.Context) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, d.issuer+"/audit/checkpoints", nil)
	req.Header.Set("Authorization", "Bearer "+d.admin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("demo: checkpoint: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("demo: checkpoint: %s", resp.Status)
	}
	return nil
}

// auditTable prints what the server recorded since the demo began, its
// own decisions and the requests the APIs forwarded, oldest first.
func (d *demo) auditTable(ctx context.Context) error {
	src := &forensics.Server{URL: d.issuer, AdminToken: d.admin}
	var evs []store.Event
	err := forensics.Each(ctx, src, store.EventFilter{Since: d.started}, func(ev store.Event) error {
		if ev.Performer != "config" { // the cast being created at start
			evs = append(evs, ev)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("demo: audit: %w", err)
	}
	// In the order things happened: the APIs' records arrive in batches.
	slices.SortStableFunc(evs, func(a, b store.Event) int { return a.Time.Compare(b.Time) })
	fmt.Fprintf(d.out, "\nAudit: who acted, on whose behalf, on what, with which result\n\n")
	return printEvents(d.out, evs, false)
}
