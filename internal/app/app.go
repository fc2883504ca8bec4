package app

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/mandate-dev/mandate/internal/archive"
	"github.com/mandate-dev/mandate/internal/audit"
	"github.com/mandate-dev/mandate/internal/auditlog"
	"github.com/mandate-dev/mandate/internal/cimd"
	"github.com/mandate-dev/mandate/internal/clientauth"
	"github.com/mandate-dev/mandate/internal/config"
	"github.com/mandate-dev/mandate/internal/directory"
	"github.com/mandate-dev/mandate/internal/exchange"
	"github.com/mandate-dev/mandate/internal/feed"
	"github.com/mandate-dev/mandate/internal/policy"
	"github.com/mandate-dev/mandate/internal/ratelimit"
	"github.com/mandate-dev/mandate/internal/server"
	"github.com/mandate-dev/mandate/internal/store"
	"github.com/mandate-dev/mandate/internal/store/cache"
	"github.com/mandate-dev/mandate/internal/token"
	"github.com/mandate-dev/mandate/internal/tokenstate"

	"github.com/mandate-dev/mandate/jwks"
)

// App is a wired Mandate: the store and the HTTP handler over it, with the
// background loops that keep its caches and keys current.
type App struct {
	Store   *cache.Store
	Keys    *token.Keyring
	Handler http.Handler
	// Drain ends the long-lived responses (revocation streams, SET long
	// polls); serve registers it with http.Server.RegisterOnShutdown.
	Drain func()

	cancel context.CancelFunc
	wg     sync.WaitGroup
	audit  *audit.Recorder
	raw    store.Store
	// stopTracing flushes and stops the tracer provider Build made; nil
	// when it made none.
	stopTracing func(context.Context) error
	logger      *slog.Logger
	// sweeper deletes what has expired from the store (Sweep).
	sweeper  *sweeper
	archiver *archive.Archiver
	// rechecker asks the identity providers again about their people.
	rechecker *rechecker
}

// Close stops the loops, flushes the audit recorder and the last spans,
// and closes the store.
func (a *App) Close() {
	a.cancel()
	a.wg.Wait()
	a.audit.Close()
	stopTracing(a.stopTracing, a.logger)
	_ = a.raw.Close()
}

// Env is what a wired Mandate takes from its surroundings.
type Env struct {
	Logger *slog.Logger
	// Now is the clock; nil means time.Now. Tests move it to show that no
	// decision depends on it where it must not (THREATS T56).
	Now func() time.Time
	// TracerProvider, when set, makes the spans of requests and of the
	// grants' steps instead of the configuration's tracing section (tests
	// record them); the App does not shut it down.
	TracerProvider trace.TracerProvider
	// ArchivePause, when set, is called at each stage of the audit archive
	// pass (archive.Archiver.Pause); tests stop a process there.
	ArchivePause func(ctx context.Context, stage string)
	// Documents, when set, fetches Client ID Metadata Documents instead of
	// the one registration.metadata_documents makes (tests trust their own
	// TLS server on loopback with it).
	Documents *cimd.Fetcher
}

// Build turns a validated configuration into live objects.
func Build(ctx context.Context, cfg *config.Config, logger *slog.Logger) (*App, error) {
	raw, err := OpenStore(ctx, cfg)
	if err != nil {
		return nil, err
	}
	app, err := build(ctx, cfg, raw, Env{Logger: logger, ArchivePause: pauseFromEnv(logger)})
	if err != nil {
		_ = raw.Close()
		return nil, err
	}
	return app, nil
}

// BuildWith wires a Mandate over an already open store (tests use it with
// fault-injecting wrappers). The App owns s from then on.
func BuildWith(ctx context.Context, cfg *config.Config, s store.Store, env Env) (*App, error) {
	return build(ctx, cfg, s, env)
}

func build(ctx context.Context, cfg *config.Config, raw store.Store, env Env) (*App, error) {
	now, logger := env.Now, env.Logger
	if now == nil {
		now = time.Now
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cached := cache.New(raw)
	keys, verifier, err := buildTokens(ctx, cfg, raw, now)
	if err != nil {
		return nil, err
	}
	engine, err := policy.New(cfg.PolicyRules())
	if err != nil {
		return nil, fmt.Errorf("policies: %w", err)
	}
	resources, err := cfg.ResourceRegistry()
	if err != nil {
		return nil, err
	}
	reg := prometheus.NewRegistry()
	recorder := newRecorder(raw, reg, now)
	// undo stops, newest first, what was started when a later part fails.
	var undo []func()
	fail := func(err error) (*App, error) {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
		return nil, err
	}
	undo = append(undo, recorder.Close)
	hub, err := newFeed(ctx, cfg, cached, now, logger)
	if err != nil {
		return fail(err)
	}
	checker := &tokenstate.Checker{Store: cached, Revocations: hub, Now: now}
	tp, shutdownTracing, err := newTracerProvider(ctx, cfg, env)
	if err != nil {
		return fail(err)
	}
	undo = append(undo, func() { stopTracing(shutdownTracing, logger) })
	grant := newGrant(cfg, cached, checker, verifier, keys, engine, recorder, now, tp.Tracer(scopeExchange))
	grant.Resources = resources
	auth := &clientauth.Authenticator{
		Agents: cached, Nonces: raw, Issuer: cfg.Issuer, TokenEndpoint: cfg.Issuer + "/token", Now: now,
		KeySourceFor: agentKeySources(),
	}
	adminToken, err := cfg.Admin.Resolve()
	if err != nil {
		return fail(fmt.Errorf("admin: %w", err))
	}
	checkpoints := newCheckpointer(cfg, raw, now, logger)
	door, err := newFrontDoor(cfg, raw, cached, grant, recorder, now, env)
	if err != nil {
		return fail(err)
	}
	srv, err := server.New(server.Config{
		Issuer: cfg.Issuer, Store: cached, Directory: &directory.Directory{Store: cached, Now: now}, Grant: grant, Auth: auth, Keys: keys, Verifier: verifier,
		Tokens: checker, Audit: recorder, Feed: hub, Checkpoints: checkpoints, AdminToken: adminToken, Logger: logger, Registry: reg, Now: now,
		ClientLimit: newLimiter(cfg.RateLimits.PerClient, now), IPLimit: newLimiter(cfg.RateLimits.PerIP, now),
		IngestLimit: newLimiter(cfg.RateLimits.IngestPerReporter, now), Tracer: tp.Tracer(scopeServer),
		SignIn: door.people, Pages: door.pages, Upstream: door.providers, ScopeDescriptions: cfg.ScopeDescriptions(),
		Resources:    resources,
		Registration: door.registrar, RegisterLimit: door.registerLimit, Documents: door.documents,
	})
	if err != nil {
		return fail(err)
	}
	sweep := newSweeper(raw, cfg.Storage.SweepEvery.Std(), cfg.Storage.SweepBatch, cfg.Tokens.Leeway.Std(), cfg.Tokens.MaxTTL.Std(),
		now, logger, reg)
	loopCtx, cancel := context.WithCancel(context.Background())
	app := &App{Store: cached, Keys: keys, Handler: srv, Drain: srv.Drain, cancel: cancel, audit: recorder, raw: raw,
		stopTracing: shutdownTracing, logger: logger, sweeper: sweep, archiver: newArchiver(cfg, raw, env, now, logger),
		rechecker: &rechecker{people: door.people, providers: door.providers, logger: logger}}
	app.start(loopCtx, loops{raw: raw, cached: cached, checkpoints: checkpoints, hub: hub, keys: keys, sweeper: sweep, logger: logger,
		archiver: app.archiver, rechecker: app.rechecker})
	return app, nil
}

// newFeed is the revocation feed over the cache, loaded with the
// revocations in force before the server answers. The feed keeps an entry
// in memory for as long as the sweep keeps it in the store, and longer. A
// store that cannot be read now is retried by the loops (and refused until
// then).
func newFeed(ctx context.Context, cfg *config.Config, cached *cache.Store, now func() time.Time, logger *slog.Logger) (*feed.Hub, error) {
	hub, err := feed.New(feed.Config{Source: cached, MaxTTL: cfg.Tokens.MaxTTL.Std(), Slack: grace(cfg.Tokens.Leeway.Std()), Now: now, Logger: logger})
	if err != nil {
		return nil, err
	}
	cached.OnWrite = hub.Poke
	cached.Sync(ctx)
	if err := hub.Load(ctx); err != nil {
		logger.Warn("revocation feed: first read of the store", slog.String("error", err.Error()))
	}
	return hub, nil
}

// newGrant is the token endpoint's grants, bounded as the configuration
// says, reading through the cache at its generation.
func newGrant(cfg *config.Config, cached *cache.Store, checker *tokenstate.Checker, verifier *token.Verifier, keys *token.Keyring,
	engine *policy.Engine, recorder *audit.Recorder, now func() time.Time, tracer trace.Tracer) *exchange.Grant {
	return &exchange.Grant{
		Issuer: cfg.Issuer, Directory: cached, Tokens: checker, Verifier: verifier, Signer: keys, Policy: engine,
		Audit: recorder, Now: now, TTL: cfg.Tokens.TTL.Std(), MaxTTL: cfg.Tokens.MaxTTL.Std(),
		MaxDepth: cfg.Delegation.MaxDepth, Tracer: tracer, Generation: cached.CachedGeneration,
	}
}

// buildTokens is the keyring that signs and the verifier of presented
// tokens (Mandate's own and the identity providers').
func buildTokens(ctx context.Context, cfg *config.Config, raw store.Store, now func() time.Time) (*token.Keyring, *token.Verifier, error) {
	keys, err := token.NewKeyring(ctx, raw, token.KeyringConfig{
		Alg:          cfg.Tokens.SigningAlg,
		PublishDelay: cfg.Tokens.KeyPublishDelay.Std(),
		RetireAfter:  cfg.Tokens.MaxTTL.Std() + cfg.Tokens.Leeway.Std(),
		Now:          now,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("signing keys: %w", err)
	}
	providers, err := buildProviders(cfg)
	if err != nil {
		return nil, nil, err
	}
	return keys, &token.Verifier{
		Issuer:    cfg.Issuer,
		Keyring:   keys,
		Providers: providers,
		Leeway:    cfg.Tokens.Leeway.Std(),
		MaxTTL:    cfg.Tokens.MaxTTL.Std(),
		Now:       now,
	}, nil
}

// newRecorder is the audit recorder over raw, counting failed commits in
// mandate_audit_failures_total and committed records in reg.
func newRecorder(raw store.Store, reg *prometheus.Registry, now func() time.Time) *audit.Recorder {
	auditFailures := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "mandate_audit_failures_total", Help: "Audit commits that failed (each refused its requests).",
	})
	reg.MustRegister(auditFailures)
	return audit.NewRecorder(raw, audit.Config{Now: now, OnCommit: func(_ int, err error) {
		if err != nil {
			auditFailures.Inc()
		}
	}, OnCommitted: server.AuditMetrics(reg)})
}

// newCheckpointer is the audit log's checkpointer: signed checkpoints every
// audit.checkpoint_every, copied to the witness file.
func newCheckpointer(cfg *config.Config, raw store.Store, now func() time.Time, logger *slog.Logger) *auditlog.Checkpointer {
	checkpoints := &auditlog.Checkpointer{
		Store: raw, Origin: cfg.Issuer, Every: cfg.Audit.CheckpointEvery.Std(),
		Witness: cfg.WitnessPath(), Now: now, Logger: logger,
	}
	if cfg.IsPostgres() {
		// A page read from PostgreSQL costs a round trip; read ahead in
		// pages as large as a second's worth at a few hundred tokens a
		// second, not SQLite's 16.
		checkpoints.ReadPage = pgReadPage
	}
	return checkpoints
}

// pgReadPage is the audit checkpointer's page on PostgreSQL.
const pgReadPage = 256

// limiterKeys is how many callers a rate limit tracks at once; beyond
// that, new ones share one bucket (internal/ratelimit).
const limiterKeys = 10_000

// newLimiter is a rate limit of perSecond requests a second per caller, in
// bursts of twice that; nil (no limit) for 0.
func newLimiter(perSecond float64, now func() time.Time) *ratelimit.Limiter {
	if perSecond <= 0 {
		return nil
	}
	return ratelimit.New(perSecond, max(int(2*perSecond), 1), limiterKeys, now)
}

func buildProviders(cfg *config.Config) ([]*token.Provider, error) {
	var out []*token.Provider
	for i, p := range cfg.IdentityProviders {
		if p.JWKSURI == "" {
			continue // a provider people sign in through, not trusted for subject tokens
		}
		keys, err := jwks.New(jwks.Config{URI: p.JWKSURI})
		if err != nil {
			return nil, fmt.Errorf("identity_providers[%d]: %w", i, err)
		}
		out = append(out, &token.Provider{Issuer: p.Issuer, Audience: p.Audience, Algorithms: p.Algorithms, Keys: keys})
	}
	return out, nil
}

// agentKeySources returns the jwks_uri key sources of agents that use
// private_key_jwt with published keys: one cache per URI, kept for the life
// of the process, so the refetch cooldown holds across requests.
func agentKeySources() func(store.Agent) (token.KeySource, error) {
	var mu sync.Mutex
	caches := make(map[string]*jwks.Cache)
	return func(a store.Agent) (token.KeySource, error) {
		mu.Lock()
		defer mu.Unlock()
		if c, ok := caches[a.JWKSURI]; ok {
			return c, nil
		}
		c, err := jwks.New(jwks.Config{URI: a.JWKSURI})
		if err != nil {
			return nil, fmt.Errorf("agent %s jwks_uri: %w", a.ID, err)
		}
		caches[a.JWKSURI] = c
		return c, nil
	}
}
