package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/mandate-dev/mandate/internal/app"
	"github.com/mandate-dev/mandate/internal/config"
	"github.com/mandate-dev/mandate/internal/idlemem"
	"github.com/mandate-dev/mandate/internal/provision"
	"github.com/mandate-dev/mandate/internal/server"
	"github.com/mandate-dev/mandate/internal/termsafe"
)

type serveFlags struct {
	configPath string
	dev        bool
	reset      bool
	dataDir    string
	listen     string
}

func newServeCmd(stdout, stderr io.Writer) *cobra.Command {
	var f serveFlags
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the authorization server",
		Long: `Run the authorization server.

With --config FILE it reads that YAML file (see docs/config.md). With --dev it
needs no file: it starts on 127.0.0.1:8080 with a data directory, a generated
signing key, an admin token and the InfraBot cast (user:sam, agent:infrabot,
agent:argocd, agent:cleanup_agent), the example MCP server registered as a
resource (http://127.0.0.1:8090/mcp, its agent agent:example_mcp) with MCP
clients free to register themselves, and prints curl lines to try it. The data
directory (./mandate-dev unless --data-dir) is kept between starts, with every
change made through the admin API; --dev --reset removes it first and starts
the dev cast afresh.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runServe(cmd.Context(), f, stdout, stderr)
		},
	}
	cmd.Flags().StringVar(&f.configPath, "config", "", "configuration file (YAML)")
	cmd.Flags().BoolVar(&f.dev, "dev", false, "development mode: demo users and agents, generated secrets")
	cmd.Flags().BoolVar(&f.reset, "reset", false, "with --dev: remove the dev data directory first and start the dev cast afresh")
	cmd.Flags().StringVar(&f.dataDir, "data-dir", "", "data directory (overrides data_dir)")
	cmd.Flags().StringVar(&f.listen, "listen", "", "listen address (overrides listen; the issuer follows with --dev)")
	return cmd
}

// loadConfig reads the file or builds the dev configuration, applying the
// flag overrides. It writes nothing: the dev admin token is read or made
// later, by devAdminToken, once the listener is bound.
func loadConfig(f serveFlags) (*config.Config, error) {
	switch {
	case f.dev && f.configPath != "":
		return nil, &exitError{code: 2, err: errors.New("--dev and --config exclude each other")}
	case f.reset && !f.dev:
		return nil, &exitError{code: 2, err: errors.New("--reset starts the dev cast afresh and needs --dev")}
	case f.dev:
		cfg := config.Dev(devDataDir(f.dataDir))
		if f.listen != "" {
			cfg.Listen = f.listen
			cfg.Issuer = "http://" + f.listen
		}
		return cfg, cfg.Validate()
	case f.configPath == "":
		return nil, &exitError{code: 2, err: errors.New("give --config FILE, or --dev to try Mandate")}
	}
	cfg, err := config.Load(f.configPath)
	if err != nil {
		return nil, err
	}
	if f.dataDir != "" {
		cfg.DataDir = f.dataDir
	}
	if f.listen != "" {
		cfg.Listen = f.listen
	}
	return cfg, nil
}

// defaultDevDataDir is the data directory of `serve --dev` and of the
// other commands' --dev when --data-dir is not given.
const defaultDevDataDir = "./mandate-dev"

// devDataDir is dir, or defaultDevDataDir when dir is "".
func devDataDir(dir string) string {
	if dir == "" {
		return defaultDevDataDir
	}
	return dir
}

// devAdminTokenFile is the file in a dev data directory that holds the dev
// admin token; its presence marks a directory `serve --dev` made.
const devAdminTokenFile = "admin-token"

// resetDevDataDir removes the dev data directory dir, saying so on w. It
// refuses a directory `serve --dev` did not make (one that is not empty
// and holds no admin-token file), so that a mistyped --data-dir cannot
// remove someone's files.
func resetDevDataDir(w io.Writer, dir string) error {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		fmt.Fprintf(w, "--reset: there is no dev data directory at %s yet; starting afresh\n", dir)
		return nil
	case err != nil:
		return fmt.Errorf("--reset: %w", err)
	}
	if _, err := os.Stat(filepath.Join(dir, devAdminTokenFile)); len(entries) > 0 && err != nil {
		return &exitError{code: 2, err: fmt.Errorf("--reset: %s does not look like a dev data directory (it has no %s file); remove it yourself if you mean to", dir, devAdminTokenFile)}
	}
	fmt.Fprintf(w, "--reset: removing the dev data directory %s (its store, keys and admin token) and starting the dev cast afresh\n", dir)
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("--reset: %w", err)
	}
	return nil
}

// openDevConfig is the dev configuration for the commands that read the
// store of a `serve --dev` (keys, audit): the dev cast with dataDir (""
// for ./mandate-dev), which must already hold a dev server's data.
func openDevConfig(dataDir string) (*config.Config, error) {
	dir := devDataDir(dataDir)
	if _, err := os.Stat(filepath.Join(dir, devAdminTokenFile)); err != nil {
		return nil, fmt.Errorf("no dev data directory at %s (run this where `mandate serve --dev` ran, or give --data-dir): %w", dir, err)
	}
	return config.Dev(dir), nil
}

// devAdminToken returns the dev admin token kept in dir, making one on the
// first start.
func devAdminToken(dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("data directory: %w", err)
	}
	path := filepath.Join(dir, devAdminTokenFile)
	if b, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(b))) >= 32 {
		return strings.TrimSpace(string(b)), nil
	}
	var raw [32]byte
	_, _ = rand.Read(raw[:])
	token := hex.EncodeToString(raw[:])
	if err := os.WriteFile(path, []byte(token+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("admin token: %w", err)
	}
	return token, nil
}

// defaultGCPercent is the garbage collector's target (GOGC) of `mandate
// serve` when the environment sets none. The live heap is a few MB, so at
// Go's default of 100 the collector ran a dozen times a second under load;
// at 400 an exchange costs 4-8% less CPU and p99 falls by about a fifth,
// for about 10 MiB more resident memory under load (docs/benchmarks.md,
// "Garbage collection"). At idle, internal/idlemem gives it back.
const defaultGCPercent = 400

// tuneGC sets the collector's target to defaultGCPercent unless GOGC is set
// in the environment, which then wins, as for any Go program. It reports
// whether it changed the target.
func tuneGC(lookupEnv func(string) (string, bool)) bool {
	if _, set := lookupEnv("GOGC"); set {
		return false
	}
	debug.SetGCPercent(defaultGCPercent)
	return true
}

func runServe(ctx context.Context, f serveFlags, stdout, stderr io.Writer) error {
	if f.dev {
		// The first thing a newcomer sees: opening and seeding the store
		// takes a moment, and silence reads as a hang.
		fmt.Fprintf(stdout, "Starting Mandate in development mode (data in %s)...\n", devDataDir(f.dataDir))
	}
	cfg, err := loadConfig(f)
	if err != nil {
		return err
	}
	// The listener is bound before anything is written, so that a port in
	// use leaves no data directory behind.
	ln, err := listenServe(ctx, cfg.Listen)
	if err != nil {
		return err
	}
	defer ln.Close()
	if f.dev {
		if f.reset {
			if err := resetDevDataDir(stdout, cfg.DataDir); err != nil {
				return err
			}
		}
		if cfg.Admin.Token, err = devAdminToken(cfg.DataDir); err != nil {
			return err
		}
	}
	logger := newLogger(stderr)
	tuneGC(os.LookupEnv)
	for _, w := range cfg.Warnings() {
		logger.Warn("configuration", slog.String("warning", w.Error()))
	}
	app, err := app.Build(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer app.Close()
	report, err := provision.Sync(ctx, app.Store, cfg, false, time.Now())
	if err != nil {
		return fmt.Errorf("provisioning from the configuration: %w", err)
	}
	logReport(logger, report, f.dev)
	if cfg.IsPostgres() && cfg.AllowAsyncCommit {
		// A server that may lose acknowledged commits says so at every
		// start (docs/threats.md).
		logger.Error("allow_async_commit is set: if the database does not flush commits to disk, a crash of it loses tokens, revocations and audit records that Mandate already confirmed; use this for a test database only")
	}

	// Start-up's garbage goes back to the system now, and the heap's free
	// pages whenever the server is idle (internal/idlemem).
	idle := &idlemem.Releaser{}
	go idle.Run(ctx)
	srv := server.NewHTTPServer(cfg.Listen, idle.Handler(app.Handler))
	srv.RegisterOnShutdown(app.Drain)
	logger.Info("mandate serving", slog.String("issuer", cfg.Issuer), slog.String("listen", ln.Addr().String()))
	if f.dev {
		printDevHelp(stdout, cfg)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("shutdown: %w", err)
	}
	logger.Info("mandate stopped")
	return nil
}

// newLogger is the log of `mandate serve` and of a recorded demo: one JSON
// object a line on w, where nothing a caller sent can end a line or act on
// a terminal that shows the log (termsafe.NewJSONLogWriter; THREATS T85).
func newLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(termsafe.NewJSONLogWriter(w), nil))
}

// logReport logs what provisioning created and where the store and the
// configuration differ; dev says the configuration is the dev cast, which
// `serve --dev --reset` restores (config apply takes a file).
func logReport(logger *slog.Logger, r provision.Report, dev bool) {
	for _, c := range r.Created {
		logger.Info("created from configuration", slog.String("record", c))
	}
	msg := "the store differs from the configuration and is kept; run `mandate config apply` to make it match"
	if dev {
		msg = "the dev store differs from the dev cast and is kept (changes made through the admin API last across restarts); restart with `mandate serve --dev --reset` to start the dev cast afresh"
	}
	for _, d := range r.Differences {
		logger.Warn(msg, slog.String("record", d))
	}
}

// listenServe binds addr; when the address is in use it says which and how to
// choose another.
func listenServe(ctx context.Context, addr string) (net.Listener, error) {
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", addr)
	if errors.Is(err, syscall.EADDRINUSE) {
		return nil, fmt.Errorf("listen: %s is already in use (is another mandate running?); choose another address with --listen, such as --listen %s: %w", addr, nextPort(addr), err)
	}
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	return ln, nil
}

// nextPort is addr with the port after its own, the suggestion when addr is
// in use (127.0.0.1:8081 for 127.0.0.1:8080).
func nextPort(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	n, perr := strconv.Atoi(port)
	if err != nil || perr != nil || n <= 0 || n >= 65535 {
		return "127.0.0.1:8081"
	}
	return net.JoinHostPort(host, strconv.Itoa(n+1))
}

func printDevHelp(w io.Writer, cfg *config.Config) {
	iss := cfg.Issuer
	// The example MCP server trusts the default issuer unless told.
	issuerFlag := " --reporter-secret " + config.DevMCPReporterSecret
	if iss != config.DefaultIssuer {
		issuerFlag += " --issuer " + iss
	}
	fmt.Fprintf(w, `
Mandate is running in development mode at %[1]s (data in %[2]s).
Admin token: %[3]s

Paste these three lines to get a token InfraBot holds on behalf of Sam, and look inside it:

SAM=$(curl -s -X POST -H 'Authorization: Bearer %[3]s' %[1]s/admin/users/user:sam/token | sed -E 's/.*"access_token":"([^"]+)".*/\1/')
TOKEN=$(curl -s %[1]s/token -d client_id=agent:infrabot -d client_secret=infrabot-dev-secret -d grant_type=urn:ietf:params:oauth:grant-type:token-exchange -d subject_token_type=urn:ietf:params:oauth:token-type:access_token -d subject_token="$SAM" -d audience=agent:argocd -d 'scope=monitoring:read deploy:create' | sed -E 's/.*"access_token":"([^"]+)".*/\1/')
curl -s %[1]s/introspect -d client_id=agent:infrabot -d client_secret=infrabot-dev-secret -d token="$TOKEN"

The last line shows "sub":"user:sam" (on whose behalf) and "act":{"sub":"agent:infrabot"} (who acts).

An MCP server is registered too, %[4]s: run the example one with
go run ./examples/mcpserver/cmd/mcpserver%[5]s
and point an MCP client at it; the client registers itself here and Sam approves it (docs/mcp.md).
`, iss, cfg.DataDir, cfg.Admin.Token, config.DevMCPResource, issuerFlag)
}
