package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/spf13/cobra"

	"github.com/mandate-dev/mandate/examples/deployapi"
	"github.com/mandate-dev/mandate/examples/expenseapi"
	"github.com/mandate-dev/mandate/examples/mcpserver"
	"github.com/mandate-dev/mandate/examples/monitoringapi"
	"github.com/mandate-dev/mandate/internal/app"
	"github.com/mandate-dev/mandate/internal/audit"
	"github.com/mandate-dev/mandate/internal/config"
	"github.com/mandate-dev/mandate/internal/provision"
	"github.com/mandate-dev/mandate/internal/server"
	"github.com/mandate-dev/mandate/verify"
	"github.com/mandate-dev/mandate/verify/forward"
)

func newDemoCmd(stdout io.Writer) *cobra.Command {
	var record string
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Play the InfraBot, expense-agent and MCP stories against a real server, real APIs and an MCP server on loopback",
		Long: `Play the three stories, step by step, against a real Mandate server,
three example APIs and an example MCP server protected by the verify package,
all on 127.0.0.1 with a temporary data directory:

  Sam -> InfraBot -> ArgoCD -> CleanupAgent -> Reaper: an API's 401 answer
  and the protected-resource metadata it points to (RFC 9728), monitoring, a
  prod deploy from CI, a refused manual prod deploy, a token with its act
  chain decoded, a three-agent chain and a refused fourth agent;
  Alice -> expense-agent-001: $487.50 approved, $1,250 refused (limit $1,000);
  Sam -> an MCP client -> the example MCP server -> the deploy API: the
  official MCP Go SDK's client finds Mandate from the MCP server's 401,
  registers itself (Dynamic Client Registration), has Sam sign in and approve
  it on the consent page (played headless), lists and calls tools, is refused
  deploy 403 insufficient_scope and steps up (Sam approves again, replacing
  his earlier approval), and the MCP server hands the deploy on to the deploy
  API by token exchange: Sam, the client and the server in one chain.

Each person and agent is introduced before it first acts, and each step says
what it leaves in the audit table. The APIs forward their per-request records
to the server (POST /audit/ingest), the MCP server's too, and the demo ends with the audit table:
who acted, for whom, through which delegation chain, on what, with which
result, at which time (RFC 3339, UTC). With --record DIR the data directory is kept in DIR with a
configuration file, DIR/mandate.yaml, and the server's and the APIs' logs,
DIR/mandate.log, so that the run can be questioned afterwards:

  mandate audit agent agent:argocd --config DIR/mandate.yaml
  mandate audit who-approved --resource expense/EXP-1042 --config DIR/mandate.yaml
  mandate audit who-approved --resource service/search --config DIR/mandate.yaml
  mandate audit agents --config DIR/mandate.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runDemo(cmd.Context(), stdout, record) },
	}
	cmd.Flags().StringVar(&record, "record", "", "keep the run's data directory here (new or empty), with mandate.yaml to query it")
	return cmd
}

// alicePassword is Alice's password in the demo; alicePasswordHash its
// argon2id hash.
const (
	alicePassword     = "alice-demo-password"
	alicePasswordHash = "$argon2id$v=19$m=19456,t=2,p=1$o6+X6A3yADlmaKOuq+miFg$E+2MPZc7MaQTAwNXcY0QIa263ftFGFnQVX7f1cgmCio"
)

// demoReporter is the client the example APIs forward their records as.
const (
	demoReporter       = "rs:demo-apis"
	demoReporterSecret = "demo-apis-reporter-secret"
)

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
		ID:           "user:alice",
		Permissions:  []string{"expense:approve", "expense:read"},
		Limits:       []map[string]any{{"type": "expense_approval", "max_amount": 1000, "currency": "USD"}},
		PasswordHash: alicePasswordHash,
	})
	cfg.Agents = append(cfg.Agents,
		config.Agent{ID: "agent:expense-agent-001", Secret: "expense-demo-secret", Scopes: []string{"expense:approve", "expense:read"},
			RedirectURIs: []string{config.DevRedirectURI}},
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
	mcpCast(cfg, apiURLs[len(apiURLs)-1], apiURLs[0])
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
	for _, e := range []struct {
		name string
		mk   func(*verify.Verifier) http.Handler
		md   verify.ResourceMetadata
	}{
		{"deploy", deployapi.New, deployapi.Metadata()},
		{"monitoring", monitoringapi.New, monitoringapi.Metadata()},
		{"expense", expenseapi.New, expenseapi.Metadata()},
	} {
		api, stop, err := startDemoAPI(ctx, issuer, apiListeners[e.name], "", e.mk, e.md, logger)
		if err != nil {
			return err
		}
		defer stop()
		apis[e.name] = api
	}
	api, stop, err := startDemoMCP(ctx, issuer, apiListeners["mcp"], apis["deploy"].url, logger)
	if err != nil {
		return err
	}
	defer stop()
	apis["mcp"] = api
	d := &demo{out: stdout, issuer: issuer, admin: cfg.Admin.Token, cfg: cfg, apis: apis, started: time.Now()}
	return d.play(ctx, record, dir)
}

// play tells both stories, then prints the audit table and, for a
// recorded run, the commands to question it.
func (d *demo) play(ctx context.Context, record, dir string) error {
	d.preface()
	if err := d.infraBot(ctx); err != nil {
		return err
	}
	if err := d.expenses(ctx); err != nil {
		return err
	}
	if err := d.mcpStory(ctx); err != nil {
		return err
	}
	if err := flushAPIs(ctx, d.apis); err != nil {
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

// listenAPIs takes a loopback address for each example API and for the
// example MCP server. Their addresses are their audiences (the MCP
// server's with its endpoint's path, last of the URLs), which their
// reporter must be registered for: they are taken before the
// configuration is made. The caller closes the listeners, also those
// returned with an error.
func listenAPIs() (map[string]net.Listener, []string, error) {
	names := []string{"deploy", "monitoring", "expense", "mcp"}
	listeners, urls := map[string]net.Listener{}, make([]string, 0, len(names))
	for _, name := range names {
		l, url, err := listen()
		if err != nil {
			return listeners, nil, err
		}
		listeners[name] = l
		if name == "mcp" {
			url += mcpserver.Path
		}
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
	for _, q := range []string{"agent agent:argocd", "who-approved --resource expense/EXP-1042", "who-approved --resource service/search",
		"agents", "query --actor agent:infrabot"} {
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
// URL with path (its endpoint's, for an MCP server; "" for an API), described by md in its RFC 9728 metadata, and which forwards its
// records to the server as demoReporter.
func startDemoAPI(ctx context.Context, issuer string, ln net.Listener, path string, mk func(*verify.Verifier) http.Handler, md verify.ResourceMetadata,
	logger *slog.Logger) (*demoAPI, func(), error) {
	url := "http://" + ln.Addr().String() + path
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
		Resource: md,
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
