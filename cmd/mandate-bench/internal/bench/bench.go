package bench

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/mandate-dev/mandate/cmd/mandate-bench/internal/loadgen"
	"github.com/mandate-dev/mandate/internal/cli"
	"github.com/mandate-dev/mandate/oauth"
)

// Grants `mandate-bench` can drive.
const (
	benchGrantExchange = "exchange"
	benchGrantCC       = "client_credentials"
)

// The cast of a self-contained benchmark.
const (
	benchSubject  = "user:sam"
	benchAudience = "https://deploy.example"
	benchScope    = "monitoring:read"
)

type benchFlags struct {
	concurrency []int
	duration    time.Duration
	warmup      time.Duration
	requests    int
	rounds      int
	grants      []string
	agents      int
	sharedAgent bool
	serverCPU   int
	loadCPU     int
	noPin       bool
	signingAlg  string
	store       string
	storeSchema string
	propagation int
	feed        int
	feedSet     bool // --feed was given, so that --feed 0 is refused
	jsonOut     bool
	keep        bool
	actorToken  bool

	// The server's store and background work (self-contained runs).
	copyDB     string
	retention  time.Duration
	sweepEvery time.Duration
	tokenTTL   time.Duration
	rate       float64
	sizeEvery  time.Duration

	// Driving a running server instead (--url).
	url          string
	pid          int
	clientID     string
	clientSecret string
	subjectToken string
	subjectType  string
	audience     string
	scope        string
}

// newBenchCmd is the mandate-bench command itself (its subcommands are the
// hidden children it starts).
func newBenchCmd(stdout io.Writer) *cobra.Command {
	var f benchFlags
	cmd := &cobra.Command{
		Use:   "mandate-bench",
		Short: "Drive /token over loopback and report throughput, latency and server CPU per request",
		Long: `Drive /token over loopback and report throughput, latency and server CPU per request.

By default it is self-contained: it writes a configuration in a temporary
directory (a loopback identity provider with an ES256 key, user:sam, one bench
agent per worker and their delegations), starts "mandate serve" (built into
this executable) as a child process pinned to --server-cpu with taskset, pins
itself to --load-cpu, waits for /healthz, and for each --concurrency value and
each --grant runs a warm-up and a measured window. The server's CPU time per
request is read from /proc/PID/stat over the measured window, its memory from
/proc/PID/status. The child is stopped when the benchmark ends, fails or is
interrupted.

Before each run it times one ES256 verification and one EdDSA signature on the
load CPU (the "floor"), and it reports how much CPU other processes took
during the run ("others"): on a shared machine these say which runs to trust.
--rounds N repeats everything N times and adds a table of medians.

With --url it drives a server that is already running instead: give
--client-id and --client-secret, --subject-token for the exchange, and --pid
for the server's CPU and memory figures.

With --feed N it measures revocation propagation to verifiers instead: three
verify.Verifiers, each following the revocation stream with its own
feed.Feed, while an exchange load runs (--concurrency, 4 by default); on
each of N trials a fresh token is revoked and the time from the revoking
response to the last verifier's refusal is recorded. With a postgres://
--store, two instances share the database and the revocations go through
both, so that most refusals cross instances.

See docs/benchmarks.md for the figures and how to read them.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cmd.Flags().Changed("requests") && !cmd.Flags().Changed("duration") {
				f.duration = 0
			}
			f.feedSet = cmd.Flags().Changed("feed")
			if f.feedSet && !cmd.Flags().Changed("concurrency") {
				f.concurrency = []int{feedLoadConcurrency}
			}
			return runBench(cmd.Context(), f, stdout, cmd.ErrOrStderr())
		},
	}
	fl := cmd.Flags()
	fl.IntSliceVar(&f.concurrency, "concurrency", []int{1, 32}, "concurrent workers; one measured run per value")
	fl.DurationVar(&f.duration, "duration", 10*time.Second, "length of each measured window")
	fl.DurationVar(&f.warmup, "warmup", 2*time.Second, "warm-up before each measured window, left out of the figures")
	fl.IntVar(&f.rounds, "rounds", 1, "repeat every run this many times and add a table of medians (noisy machines)")
	fl.IntVar(&f.requests, "requests", 0, "requests per measured window (instead of --duration, or with it: whichever ends first)")
	fl.StringSliceVar(&f.grants, "grant", []string{benchGrantExchange, benchGrantCC}, "grants to measure: exchange, client_credentials (the baseline), bare (the exchange request answered by a bare net/http server with the same signatures and nothing else: the issue's scale reference)")
	fl.IntVar(&f.agents, "agents", 0, "bench agents to create; worker i uses agent i mod N (default: the largest --concurrency)")
	fl.BoolVar(&f.sharedAgent, "shared-agent", false, "every worker authenticates as the same agent")
	fl.IntVar(&f.serverCPU, "server-cpu", 1, "CPU the server is pinned to")
	fl.IntVar(&f.loadCPU, "load-cpu", 0, "CPU the load generator is pinned to")
	fl.BoolVar(&f.noPin, "no-pin", false, "pin neither the server nor the load")
	fl.StringVar(&f.signingAlg, "signing-alg", "EdDSA", "signing algorithm of the server's tokens: EdDSA, ES256 or RS256")
	fl.BoolVar(&f.jsonOut, "json", false, "print the results as JSON")
	fl.BoolVar(&f.actorToken, "actor-token", false, "exchanges also send the agent's own token (client_credentials, fetched from the server measured) as actor_token: two signatures to check per request")
	fl.IntVar(&f.feed, "feed", 0, "instead of load: run N trials of revocation propagation to three verifiers following the revocation feed, under an exchange load (two instances with a postgres:// --store)")
	fl.IntVar(&f.propagation, "propagation", 0, "instead of load: run N trials of revocation propagation between two instances on one PostgreSQL --store (an agent disabled on B, polled on A)")
	fl.StringVar(&f.store, "store", "", "the server's store: empty for SQLite in the temporary directory, or a postgres:// URL (a fresh schema is used and left behind, unless --store-schema names one)")
	fl.StringVar(&f.storeSchema, "store-schema", "", "with a postgres:// --store, the schema the server opens (an existing one keeps its log and its bench agents from one run to the next)")
	fl.StringVar(&f.copyDB, "copy-db", "", "start the server on a fresh copy of this SQLite database (a mandate-bench fill, say), made in the temporary directory; the original is never opened")
	fl.DurationVar(&f.retention, "retention", 0, "the server's audit.retention: records older than this are archived (to the temporary directory) and deleted while the load runs; 0 keeps every record")
	fl.DurationVar(&f.sweepEvery, "sweep-every", 0, "the server's storage.sweep_every, how often expired token rows are deleted (default: the server's, 1m)")
	fl.DurationVar(&f.tokenTTL, "token-ttl", 0, "the server's tokens.ttl and tokens.max_ttl (default: the server's)")
	fl.Float64Var(&f.rate, "rate", 0, "send at most this many requests a second, on a fixed schedule, over all workers (default: as fast as they go)")
	fl.DurationVar(&f.sizeEvery, "size-every", 0, "sample the store's live size (SQLite: pages in use, free pages, WAL; PostgreSQL: the schema's relations; and the records and token rows) this often during each run, and print the samples")
	fl.BoolVar(&f.keep, "keep", false, "keep the temporary directory (configuration, database, server log)")
	fl.StringVar(&f.url, "url", "", "base URL of a running server to drive instead of starting one")
	fl.IntVar(&f.pid, "pid", 0, "with --url: the server's process id, for CPU and memory figures")
	fl.StringVar(&f.clientID, "client-id", "", "with --url: the agent's client_id")
	fl.StringVar(&f.clientSecret, "client-secret", "", "with --url: the agent's client secret (client_secret_post)")
	fl.StringVar(&f.subjectToken, "subject-token", "", "with --url: the subject token to exchange (an IdP id_token)")
	fl.StringVar(&f.subjectType, "subject-token-type", oauth.TokenTypeIDToken, "with --url: the subject token's type")
	fl.StringVar(&f.audience, "audience", benchAudience, "audience to ask for")
	fl.StringVar(&f.scope, "scope", benchScope, "scope to ask for")
	return cmd
}

// benchResult is one measured run.
type benchResult struct {
	Grant string `json:"grant"`
	Round int    `json:"round"`
	// Floor is the signature floor measured on the load CPU just before
	// the run, while the server was idle.
	Floor loadgen.Calibration `json:"floor"`
	loadgen.Report
	// DBSize samples the store's live size during the run, warm-up
	// included (--size-every); DBTables is each table's share at its end.
	DBSize   []liveSize `json:"db_size,omitempty"`
	DBTables *storeSize `json:"db_tables,omitempty"`
}

// perFloor is the server's CPU per request in multiples of the signature
// floor; 0 when unknown.
func (r benchResult) perFloor() float64 {
	if r.Server == nil {
		return 0
	}
	return ratio(r.Server.CPUPerRequest, r.Floor.Floor)
}

// benchOutput is what `mandate-bench --json` prints.
type benchOutput struct {
	Machine    loadgen.Machine `json:"machine"`
	Self       bool            `json:"self_contained"`
	Pinned     bool            `json:"pinned"`
	ServerCPU  int             `json:"server_cpu"`
	LoadCPU    int             `json:"load_cpu"`
	SigningAlg string          `json:"signing_alg,omitempty"`
	Agents     int             `json:"agents"`
	Rounds     int             `json:"rounds"`
	IdleRSS    int64           `json:"idle_rss_bytes,omitempty"`
	FinalRSS   int64           `json:"final_rss_bytes,omitempty"`
	Runs       []benchResult   `json:"runs"`
}

func (f *benchFlags) check() error {
	usage := func(format string, args ...any) error {
		return cli.ExitCode(2, fmt.Errorf(format, args...))
	}
	if len(f.concurrency) == 0 || len(f.grants) == 0 {
		return usage("--concurrency and --grant need at least one value")
	}
	if f.rounds < 1 || f.rounds > 100 {
		return usage("--rounds %d: want 1 to 100", f.rounds)
	}
	for _, c := range f.concurrency {
		if c < 1 || c > 4096 {
			return usage("--concurrency %d: want 1 to 4096", c)
		}
	}
	for _, g := range f.grants {
		if g != benchGrantExchange && g != benchGrantCC && g != benchGrantBare {
			return usage("--grant %q: want %s, %s or %s", g, benchGrantExchange, benchGrantCC, benchGrantBare)
		}
	}
	switch {
	case f.duration < 0 || f.warmup < 0 || f.requests < 0:
		return usage("--duration, --warmup and --requests must not be negative")
	case f.duration == 0 && f.requests == 0:
		return usage("give --duration or --requests")
	case f.url == "" && (f.pid != 0 || f.clientID != "" || f.subjectToken != ""):
		return usage("--pid, --client-id and --subject-token go with --url")
	case f.url != "" && (f.clientID == "" || f.clientSecret == ""):
		return usage("--url needs --client-id and --client-secret")
	case f.propagation > 0 && (f.url != "" || !strings.HasPrefix(f.store, "postgres")):
		return usage("--propagation needs --store postgres://… and no --url")
	case f.feedSet && f.feed < 1:
		return usage("--feed %d: want at least 1 trial", f.feed)
	case f.feed > 0 && (f.url != "" || f.propagation > 0):
		return usage("--feed starts its own servers: it goes with neither --url nor --propagation")
	case f.feed > 0 && len(f.concurrency) != 1:
		return usage("--feed runs one background load: give one --concurrency value")
	case slices.Contains(f.grants, benchGrantBare) && (f.url != "" || f.feed > 0 || f.propagation > 0):
		return usage("--grant %s starts its own bare server beside mandate serve: it goes with neither --url, --feed nor --propagation", benchGrantBare)
	case f.url != "" && f.subjectToken == "" && slices.Contains(f.grants, benchGrantExchange):
		return usage("--url with --grant exchange needs --subject-token")
	case f.url != "" && (f.copyDB != "" || f.retention != 0 || f.sweepEvery != 0 || f.tokenTTL != 0 || f.sizeEvery != 0):
		return usage("--copy-db, --retention, --sweep-every, --token-ttl and --size-every configure the server started: they do not go with --url")
	case f.storeSchema != "" && !strings.HasPrefix(f.store, "postgres"):
		return usage("--store-schema goes with a postgres:// --store")
	case f.copyDB != "" && f.store != "":
		return usage("--copy-db is the SQLite database in the temporary directory: it does not go with --store")
	case f.rate < 0 || f.retention < 0 || f.sweepEvery < 0 || f.tokenTTL < 0 || f.sizeEvery < 0:
		return usage("--rate, --retention, --sweep-every, --token-ttl and --size-every must not be negative")
	}
	return nil
}

func runBench(ctx context.Context, f benchFlags, stdout, stderr io.Writer) error {
	if err := f.check(); err != nil {
		return err
	}
	out := benchOutput{Machine: loadgen.DescribeMachine(), Rounds: f.rounds}
	if f.url != "" {
		out.Agents = 1
		agent := loadgen.Agent{ID: f.clientID, Secret: f.clientSecret}
		w := workload{url: strings.TrimSuffix(f.url, "/") + "/token", pid: f.pid, agents: []loadgen.Agent{agent},
			exchange: loadgen.Exchange{SubjectToken: f.subjectToken, SubjectTokenType: f.subjectType}}
		runs, err := w.runAll(ctx, f, stderr)
		if err != nil {
			return err
		}
		out.Runs = runs
		return printBench(stdout, f, out)
	}
	return runSelfContained(ctx, f, &out, stdout, stderr)
}

// runSelfContained starts the identity provider and the server, runs the
// load and stops both.
func runSelfContained(ctx context.Context, f benchFlags, out *benchOutput, stdout, stderr io.Writer) (err error) {
	out.Self, out.SigningAlg = true, f.signingAlg
	if err := pin(ctx, &f, out, stderr); err != nil {
		return err
	}
	idp, err := loadgen.NewIdP()
	if err != nil {
		return err
	}
	defer idp.Close()

	dir, err := os.MkdirTemp("", "mandate-bench-")
	if err != nil {
		return fmt.Errorf("temporary directory: %w", err)
	}
	if f.keep {
		fmt.Fprintln(stderr, "bench: keeping", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	env, err := writeBenchConfig(dir, f, idp)
	if err != nil {
		return err
	}
	if f.copyDB != "" {
		if err := copyDatabase(f.copyDB, sqlitePath(dir, f)); err != nil {
			return err
		}
	}
	out.Agents = len(env.agents)
	if f.propagation > 0 {
		return runPropagation(ctx, dir, env, idp, f, stdout)
	}
	if f.feed > 0 {
		return runFeedBench(ctx, dir, env, idp, f, stdout, stderr)
	}
	srv, err := startBenchServer(ctx, dir, env.issuer, f)
	if err != nil {
		return err
	}
	defer func() {
		if stopErr := srv.Stop(10 * time.Second); stopErr != nil && err == nil {
			err = fmt.Errorf("stopping the server: %w", stopErr)
		}
	}()
	// Let the server settle after start-up before reading its idle memory.
	if err := sleepCtx(ctx, time.Second); err != nil {
		return err
	}
	if s, err := loadgen.ReadProc(srv.PID()); err == nil {
		out.IdleRSS = s.RSS
	}
	w := workload{url: env.issuer + "/token", pid: srv.PID(), agents: env.agents,
		exchange: loadgen.Exchange{IdP: idp, Subject: benchSubject}}
	if f.sizeEvery > 0 {
		w.sizeOf = sizeTarget{path: sqlitePath(dir, f)}
		if env.schema != "" {
			w.sizeOf = sizeTarget{url: f.store, schema: env.schema}
		}
	}
	if slices.Contains(f.grants, benchGrantBare) {
		bare, base, err := startBareServer(ctx, dir, f)
		if err != nil {
			return fmt.Errorf("starting the bare server: %w", err)
		}
		defer func() { _ = bare.Stop(10 * time.Second) }()
		w.bareURL, w.barePID = base+"/token", bare.PID()
	}
	out.Runs, err = w.runAll(ctx, f, stderr)
	if err != nil {
		if tail := srv.LogTail(2000); tail != "" && ctx.Err() == nil {
			fmt.Fprintf(stderr, "bench: the server's log ends with:\n%s\n", tail)
		}
		return err
	}
	if s, err := loadgen.ReadProc(srv.PID()); err == nil {
		out.FinalRSS = s.RSS
	}
	return printBench(stdout, f, *out)
}

// pin pins the load generator to its CPU, unless the run cannot or need
// not be pinned (then f.noPin is set and the reason said on stderr).
func pin(ctx context.Context, f *benchFlags, out *benchOutput, stderr io.Writer) error {
	if f.feed > 0 {
		// Servers, load and verifiers share the machine: the figure is a
		// latency, not CPU per request.
		f.noPin = true
	}
	if !f.noPin {
		if out.Machine.CPUs < 2 {
			fmt.Fprintln(stderr, "bench: fewer than two CPUs, running unpinned")
			f.noPin = true
		} else if _, lookErr := exec.LookPath("taskset"); lookErr != nil {
			fmt.Fprintln(stderr, "bench: taskset not found, running unpinned")
			f.noPin = true
		}
	}
	if f.noPin {
		return nil
	}
	if err := loadgen.PinSelf(ctx, f.loadCPU); err != nil {
		return fmt.Errorf("pinning the load generator: %w", err)
	}
	out.Pinned, out.ServerCPU, out.LoadCPU = true, f.serverCPU, f.loadCPU
	return nil
}

// startBenchServer starts `mandate serve` (`mandate-bench serve`) and waits
// until it is ready.
func startBenchServer(ctx context.Context, dir, issuer string, f benchFlags) (*loadgen.Process, error) {
	srv, _, err := startChild(ctx, dir, "server.log", issuer, f, "serve", "--config", filepath.Join(dir, "mandate.yaml"))
	return srv, err
}

// benchEnv is what writeBenchConfig set up.
type benchEnv struct {
	issuer string
	admin  string
	agents []loadgen.Agent
	// schema is the PostgreSQL store's schema; empty for SQLite.
	schema string
	// resource is the resource server's client (no scopes) that verifiers
	// subscribe to the revocation feed as; set with --feed only.
	resource loadgen.Agent
}

// writeBenchConfig writes DIR/mandate.yaml: the bench identity provider,
// user:sam, the bench agents with their delegations, a random admin token,
// and the CEL policy of the sample so that policy evaluation is paid
// for as in a real deployment.
func writeBenchConfig(dir string, f benchFlags, idp *loadgen.IdP) (benchEnv, error) {
	port, err := freePort()
	if err != nil {
		return benchEnv{}, err
	}
	env := benchEnv{issuer: "http://127.0.0.1:" + port, admin: randomHex(32)}
	n := f.agents
	if n <= 0 {
		n = max(1, maxOf(f.concurrency))
	}
	if f.sharedAgent {
		n = 1
	}
	if f.propagation > 0 {
		n = 2 // one agent is disabled, another watches
	}
	// Every value is quoted: in YAML flow style an unquoted "user:sam" would
	// read as a mapping.
	scopes := `["monitoring:read", "deploy:create"]`
	if f.feed > 0 {
		// The trials' actor, then one agent per load worker; the trials
		// revoke feedScope from the person, which the load never asks for.
		n = maxOf(f.concurrency) + 1
		scopes = fmt.Sprintf(`["monitoring:read", "deploy:create", %q]`, feedScope)
		env.resource = loadgen.Agent{ID: feedResourceClient, Secret: randomHex(32)}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "issuer: %q\nlisten: \"127.0.0.1:%s\"\ndata_dir: %q\n", env.issuer, port, filepath.Join(dir, "data"))
	fmt.Fprintf(&b, "admin: {token: %q}\ntokens: {signing_alg: %q", env.admin, f.signingAlg)
	if f.tokenTTL > 0 {
		fmt.Fprintf(&b, ", ttl: %q, max_ttl: %q", f.tokenTTL, f.tokenTTL)
	}
	b.WriteString("}\n")
	if f.retention > 0 {
		fmt.Fprintf(&b, "audit: {retention: %q}\n", f.retention)
	}
	if f.sweepEvery > 0 {
		fmt.Fprintf(&b, "storage: {sweep_every: %q}\n", f.sweepEvery)
	}
	if f.store != "" {
		fmt.Fprintf(&b, "store: %q\n", f.store)
		if strings.HasPrefix(f.store, "postgres") {
			env.schema = cmp.Or(f.storeSchema, "bench_"+randomHex(6))
			fmt.Fprintf(&b, "store_schema: %q\n", env.schema)
		}
	}
	fmt.Fprintf(&b, "identity_providers:\n  - {issuer: %q, jwks_uri: %q, audience: %q}\n", idp.URL(), idp.JWKSURI(), idp.Audience)
	fmt.Fprintf(&b, "users:\n  - {id: %q, permissions: %s}\nagents:\n", benchSubject, scopes)
	for i := 1; i <= n; i++ {
		a := loadgen.Agent{ID: fmt.Sprintf("agent:bench-%d", i), Secret: agentSecret(i, f)}
		env.agents = append(env.agents, a)
		fmt.Fprintf(&b, "  - {id: %q, secret: %q, scopes: %s}\n", a.ID, a.Secret, scopes)
	}
	if env.resource.ID != "" {
		fmt.Fprintf(&b, "  - {id: %q, secret: %q, scopes: []}\n", env.resource.ID, env.resource.Secret)
	}
	b.WriteString("delegations:\n")
	for _, a := range env.agents {
		fmt.Fprintf(&b, "  - {subject: %q, actor: %q, scopes: %s}\n", benchSubject, a.ID, scopes)
	}
	b.WriteString(`policies:
  - name: prod-deploys-only-from-ci
    if: 'context.environment == "prod" && "deploy:create" in scopes'
    require: 'context.trigger == "ci_pipeline"'
`)
	if err := os.WriteFile(filepath.Join(dir, "mandate.yaml"), []byte(b.String()), 0o600); err != nil {
		return benchEnv{}, fmt.Errorf("writing the configuration: %w", err)
	}
	return env, nil
}

// workload is what the runs send and where.
type workload struct {
	url      string
	pid      int
	agents   []loadgen.Agent
	exchange loadgen.Exchange
	// bareURL and barePID are the bare server's, for --grant bare.
	bareURL string
	barePID int
	// sizeOf is the server's store, whose size each run samples every
	// --size-every; the zero value for none.
	sizeOf sizeTarget
}

// runAll measures each concurrency with each grant, the grants of one
// concurrency back to back so that their ratio compares like with like, and
// all of it --rounds times.
func (w workload) runAll(ctx context.Context, f benchFlags, stderr io.Writer) ([]benchResult, error) {
	var runs []benchResult
	for round := 1; round <= f.rounds; round++ {
		for _, c := range f.concurrency {
			for _, g := range f.grants {
				r, err := w.run(ctx, f, g, c, stderr)
				if err != nil {
					return nil, fmt.Errorf("%s at concurrency %d: %w", g, c, err)
				}
				r.Round = round
				runs = append(runs, r)
			}
		}
	}
	return runs, nil
}

// run measures the signature floor, then grant at concurrency c.
func (w workload) run(ctx context.Context, f benchFlags, grant string, c int, stderr io.Writer) (benchResult, error) {
	body, err := w.bodies(grant, c, f)
	if err != nil {
		return benchResult{}, err
	}
	floor, err := loadgen.Calibrate(7, 100)
	if err != nil {
		return benchResult{}, err
	}
	fmt.Fprintf(stderr, "bench: %s, concurrency %d ...\n", grant, c)
	url, pid := w.url, w.pid
	if grant == benchGrantBare {
		url, pid = w.bareURL, w.barePID
	}
	var sizes *sizeRun
	if w.sizeOf != (sizeTarget{}) && grant != benchGrantBare {
		if sizes, err = startSizes(ctx, w.sizeOf, f.sizeEvery); err != nil {
			return benchResult{}, err
		}
	}
	rep, err := loadgen.Run(ctx, loadgen.Config{
		URL: url, Body: body, Concurrency: c, Duration: f.duration, Requests: f.requests,
		Warmup: f.warmup, PID: pid, Rate: f.rate,
	})
	samples, tables, sizeErr := sizes.end(ctx)
	if err != nil {
		return benchResult{}, err
	}
	if sizeErr != nil {
		return benchResult{}, sizeErr
	}
	if rep.Errors > 0 {
		fmt.Fprintf(stderr, "bench: %d of %d requests failed; first: %s\n", rep.Errors, rep.Requests, rep.FirstError)
	}
	return benchResult{Grant: grant, Floor: floor, Report: rep, DBSize: samples, DBTables: tables}, nil
}

func (w workload) bodies(grant string, workers int, f benchFlags) (func(int) (string, error), error) {
	if grant == benchGrantCC {
		return loadgen.ClientCredentials{Agents: w.agents, Audience: f.audience, Scope: f.scope}.Bodies(workers)
	}
	e := w.exchange
	e.Agents, e.Audience, e.Scope = w.agents, f.audience, f.scope
	if f.actorToken {
		url := w.url
		if grant == benchGrantBare {
			url = w.bareURL
		}
		e.ActorToken = func(a loadgen.Agent) (string, error) {
			return loadgen.ClientToken(context.Background(), url, a, f.scope)
		}
	}
	return e.Bodies(workers)
}

// writeJSON writes v as indented JSON (--json).
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("writing JSON: %w", err)
	}
	return nil
}

// printMachine writes the line that says what machine measured.
func printMachine(w io.Writer, m loadgen.Machine) {
	fmt.Fprintf(w, "machine: %d CPUs, %s, %s, Linux %s\n", m.CPUs, m.CPUModel, m.GoVersion, m.Kernel)
}

// printBench writes the table, or JSON with --json.
func printBench(w io.Writer, f benchFlags, out benchOutput) error {
	if f.jsonOut {
		return writeJSON(w, out)
	}
	printMachine(w, out.Machine)
	switch {
	case out.Self && out.Pinned:
		fmt.Fprintf(w, "server: mandate serve on CPU %d, load on CPU %d; %s tokens, ES256 subject tokens, %d agents\n",
			out.ServerCPU, out.LoadCPU, out.SigningAlg, out.Agents)
	case out.Self:
		fmt.Fprintf(w, "server: mandate serve, unpinned; %s tokens, ES256 subject tokens, %d agents\n", out.SigningAlg, out.Agents)
	default:
		fmt.Fprintf(w, "server: %s\n", f.url)
	}
	if out.IdleRSS > 0 {
		fmt.Fprintf(w, "server RSS: %s idle, %s at the end\n", mib(out.IdleRSS), mib(out.FinalRSS))
	}
	fmt.Fprintln(w, "floor: one ES256 verification + one EdDSA signature, timed on the load CPU before each run")
	fmt.Fprintln(w, "srv CPU: the server's CPU use (100% = one core); others: CPU used by other processes; steal: by other VMs")
	fmt.Fprintln(w, "srv KB/req: bytes the server wrote to disk per request (write_bytes of /proc/PID/io), in KiB")
	fmt.Fprintln(w)
	rows := [][]string{{"grant", "conc", "round", "requests", "errors", "req/s", "p50", "p90", "p99", "max",
		"floor µs", "srv CPU µs/req", "÷ floor", "srv CPU", "srv KB/req", "srv RSS", "load CPU µs/req", "others", "steal"}}
	for _, r := range out.Runs {
		l := r.Latency
		srvPer, perFloor, srvUtil, written, rss, loadPer, others, steal := "-", "-", "-", "-", "-", "-", "-", "-"
		if s := r.Server; s != nil {
			srvPer = fmt.Sprintf("%.0f", micros(s.CPUPerRequest))
			perFloor = fmt.Sprintf("%.1f", r.perFloor())
			srvUtil = fmt.Sprintf("%.0f%%", 100*s.Utilization)
			rss = mib(s.RSSAfter)
			if s.IO != nil {
				written = kib(s.IO.WriteBytesPerRequest)
			}
		}
		if s := r.Load; s != nil {
			loadPer = fmt.Sprintf("%.0f", micros(s.CPUPerRequest))
		}
		if m := r.Machine; m != nil {
			others, steal = fmt.Sprintf("%.0f%%", 100*m.Others), fmt.Sprintf("%.0f%%", 100*m.Steal)
		}
		rows = append(rows, []string{r.Grant, fmt.Sprint(r.Concurrency), fmt.Sprint(r.Round), fmt.Sprint(r.Requests),
			fmt.Sprint(r.Errors), fmt.Sprintf("%.0f", r.Throughput), ms(l.P50), ms(l.P90), ms(l.P99), ms(l.Max),
			fmt.Sprintf("%.0f", micros(r.Floor.Floor)), srvPer, perFloor, srvUtil, written, rss, loadPer, others, steal})
	}
	if err := writeTable(w, rows); err != nil {
		return err
	}
	if out.Rounds > 1 {
		if err := printMedians(w, out.Runs, f); err != nil {
			return err
		}
	}
	printRatios(w, out.Runs)
	return printSizes(w, out.Runs, f)
}

// printMedians writes, per grant and concurrency, the median of each figure
// over the rounds.
func printMedians(w io.Writer, runs []benchResult, f benchFlags) error {
	fmt.Fprintf(w, "\nmedians of %d rounds:\n", f.rounds)
	rows := [][]string{{"grant", "conc", "req/s", "p50", "p99", "srv CPU µs/req", "÷ floor", "srv KB/req"}}
	for _, c := range f.concurrency {
		for _, g := range f.grants {
			var rps, p50, p99, cpu, per, written []float64
			for _, r := range runs {
				if r.Grant != g || r.Concurrency != c {
					continue
				}
				rps, p50, p99 = append(rps, r.Throughput), append(p50, float64(r.Latency.P50)), append(p99, float64(r.Latency.P99))
				if r.Server != nil {
					cpu, per = append(cpu, micros(r.Server.CPUPerRequest)), append(per, r.perFloor())
					if r.Server.IO != nil {
						written = append(written, r.Server.IO.WriteBytesPerRequest)
					}
				}
			}
			kb := "-"
			if len(written) > 0 {
				kb = kib(median(written))
			}
			rows = append(rows, []string{g, fmt.Sprint(c), fmt.Sprintf("%.0f", median(rps)),
				ms(time.Duration(median(p50))), ms(time.Duration(median(p99))),
				fmt.Sprintf("%.0f", median(cpu)), fmt.Sprintf("%.1f", median(per)), kb})
		}
	}
	return writeTable(w, rows)
}

// median returns the median of xs, 0 for none; it sorts xs.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	slices.Sort(xs)
	if n := len(xs); n%2 == 0 {
		return (xs[n/2-1] + xs[n/2]) / 2
	}
	return xs[len(xs)/2]
}

// writeTable writes rows as columns two spaces apart, the first column
// aligned left and the figures right.
func writeTable(w io.Writer, rows [][]string) error {
	var widths []int
	for _, row := range rows {
		for i, cell := range row {
			if i == len(widths) {
				widths = append(widths, 0)
			}
			widths[i] = max(widths[i], utf8.RuneCountInString(cell))
		}
	}
	var b strings.Builder
	for _, row := range rows {
		for i, cell := range row {
			pad := strings.Repeat(" ", widths[i]-utf8.RuneCountInString(cell))
			switch {
			case i == 0:
				b.WriteString(cell + pad)
			default:
				b.WriteString("  " + pad + cell)
			}
		}
		b.WriteByte('\n')
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("writing the table: %w", err)
	}
	return nil
}

// printRatios compares each exchange run with the client_credentials run
// and with the bare server's run of the same round and concurrency, and
// gives the median over the rounds.
func printRatios(w io.Writer, runs []benchResult) {
	for _, base := range []string{benchGrantCC, benchGrantBare} {
		printRatio(w, runs, benchGrantExchange, base)
	}
}

// printRatio compares each num run with the base run of the same round and
// concurrency.
func printRatio(w io.Writer, runs []benchResult, num, base string) {
	type key struct{ round, conc int }
	den := map[key]loadgen.Report{}
	for _, r := range runs {
		if r.Grant == base {
			den[key{r.Round, r.Concurrency}] = r.Report
		}
	}
	var concs []int
	// By concurrency: throughput, p50, p99 and CPU ratios, then the bytes
	// written per request by num's server and by base's.
	ratios := map[int][6][]float64{}
	for _, r := range runs {
		b, ok := den[key{r.Round, r.Concurrency}]
		if r.Grant != num || !ok || b.Throughput == 0 {
			continue
		}
		q, seen := ratios[r.Concurrency]
		if !seen {
			concs = append(concs, r.Concurrency)
		}
		q[0] = append(q[0], r.Throughput/b.Throughput)
		q[1] = append(q[1], ratio(r.Latency.P50, b.Latency.P50))
		q[2] = append(q[2], ratio(r.Latency.P99, b.Latency.P99))
		if r.Server != nil && b.Server != nil {
			q[3] = append(q[3], ratio(r.Server.CPUPerRequest, b.Server.CPUPerRequest))
			if r.Server.IO != nil && b.Server.IO != nil {
				q[4] = append(q[4], r.Server.IO.WriteBytesPerRequest)
				q[5] = append(q[5], b.Server.IO.WriteBytesPerRequest)
			}
		}
		ratios[r.Concurrency] = q
	}
	if len(concs) == 0 {
		return
	}
	fmt.Fprintf(w, "\n%s ÷ %s (same round; median over rounds):\n", num, base)
	for _, c := range concs {
		q := ratios[c]
		line := fmt.Sprintf("  c=%d: throughput ×%.2f, p50 ×%.2f, p99 ×%.2f", c, median(q[0]), median(q[1]), median(q[2]))
		if len(q[3]) > 0 {
			line += fmt.Sprintf(", server CPU/req ×%.2f", median(q[3]))
		}
		if len(q[4]) > 0 {
			line += fmt.Sprintf("; written/req %s KiB (%s KiB)", kib(median(q[4])), kib(median(q[5])))
		}
		fmt.Fprintln(w, line)
	}
}

func ratio(a, b time.Duration) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

func micros(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond)) }

func mib(b int64) string { return fmt.Sprintf("%.1fMiB", float64(b)/(1<<20)) }

// kib formats a byte count in KiB, with one decimal.
func kib(b float64) string { return fmt.Sprintf("%.1f", b/(1<<10)) }

func maxOf(xs []int) int {
	m := 0
	for _, x := range xs {
		m = max(m, x)
	}
	return m
}

// agentSecret is bench agent i's client secret: random, but the same
// on every run with a --store sqlite:PATH or a --store-schema, which keep
// their agents from one run to the next (the store, not the file, is
// authoritative for an agent that exists).
func agentSecret(i int, f benchFlags) string {
	if !strings.HasPrefix(f.store, "sqlite:") && f.storeSchema == "" {
		return randomHex(32)
	}
	sum := sha256.Sum256(fmt.Appendf(nil, "mandate-bench agent %d", i))
	return hex.EncodeToString(sum[:])
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// freePort asks the kernel for a free loopback port. Another process could
// take it before the server binds; the server then fails to start and says
// so.
func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("finding a free port: %w", err)
	}
	defer ln.Close()
	_, port, err := net.SplitHostPort(ln.Addr().String())
	if err != nil {
		return "", fmt.Errorf("finding a free port: %w", err)
	}
	return port, nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
