package server

import (
	"context"
	"crypto/sha256"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/mandate-dev/mandate/internal/audit"
	"github.com/mandate-dev/mandate/internal/auditlog"
	"github.com/mandate-dev/mandate/internal/buildinfo"
	"github.com/mandate-dev/mandate/internal/cimd"
	"github.com/mandate-dev/mandate/internal/clientauth"
	"github.com/mandate-dev/mandate/internal/directory"
	"github.com/mandate-dev/mandate/internal/exchange"
	"github.com/mandate-dev/mandate/internal/feed"
	"github.com/mandate-dev/mandate/internal/pages"
	"github.com/mandate-dev/mandate/internal/ratelimit"
	"github.com/mandate-dev/mandate/internal/registration"
	"github.com/mandate-dev/mandate/internal/resource"
	"github.com/mandate-dev/mandate/internal/signin"
	"github.com/mandate-dev/mandate/internal/store"
	"github.com/mandate-dev/mandate/internal/token"
	"github.com/mandate-dev/mandate/internal/tokenstate"
	"github.com/mandate-dev/mandate/internal/upstream"
	"github.com/mandate-dev/mandate/oauth"
)

// Config holds the live objects the server is built from. Every field but
// AdminToken, Logger, Registry and the limits is required.
type Config struct {
	Issuer string
	// Store is what the handlers read. The server writes nothing to the
	// store itself: users, agents, delegations and revocations change
	// through Directory, issued tokens and audit records through Grant
	// and Audit.
	Store Reader
	// Directory changes users, agents and delegations and revokes (the
	// admin API, /revoke), each change with its audit record.
	Directory *directory.Directory
	Grant     *exchange.Grant
	Auth      *clientauth.Authenticator
	Keys      *token.Keyring
	Verifier  *token.Verifier
	Tokens    *tokenstate.Checker
	Audit     *audit.Recorder
	// Feed is the revocation feed that /revocations serves.
	Feed *feed.Hub
	// Checkpoints signs checkpoints of the audit log (/audit/checkpoints).
	Checkpoints *auditlog.Checkpointer
	// AdminToken is the bearer for /admin and /audit; empty disables them.
	AdminToken string
	Logger     *slog.Logger
	// Registry receives the server's metrics; nil makes a private one.
	Registry *prometheus.Registry
	Now      func() time.Time
	// RequestTimeout bounds the work of one request, so that a store that
	// does not answer turns into a 503 rather than a hang (THREATS T60).
	// Default 1.8 s.
	RequestTimeout time.Duration
	// ClientLimit and IPLimit, when set, bound how often one client_id and
	// one remote address are served at /token, /introspect and /revoke
	// (THREATS T78).
	ClientLimit, IPLimit *ratelimit.Limiter
	// IngestLimit, when set, bounds how often one reporter (an
	// audit:report client) is served at POST /audit/ingest, after it
	// authenticates (THREATS T99).
	IngestLimit *ratelimit.Limiter
	// Build is the version and commit /healthz answers; the zero value
	// means the running binary's (buildinfo.Read).
	Build buildinfo.Info
	// SignIn runs people's sign-in and consent, and the code and refresh
	// token grants; nil serves neither the pages nor those grants.
	SignIn *signin.Service
	// Pages renders the pages; required with SignIn.
	Pages *pages.Renderer
	// Upstream is the identity providers people sign in through, listed
	// on the sign-in page (GET /login/provider, GET /login/callback); nil
	// or empty for none. Used with SignIn only.
	Upstream *upstream.Set
	// Registration is Dynamic Client Registration at POST /register; nil
	// answers it 404.
	Registration *registration.Registrar
	// RegisterLimit, when set, bounds how often one remote address may
	// register a client, at /register or by naming a metadata document
	// not yet admitted at /authorize.
	RegisterLimit *ratelimit.Limiter
	// Documents, when set, fetches the Client ID Metadata Document of an
	// https client_id at the authorization endpoint; Registration's policy
	// admits such a client as if it had registered. Nil: not accepted.
	Documents *cimd.Fetcher
	// ScopeDescriptions say what each scope allows, in words, on the
	// consent page.
	ScopeDescriptions map[string]string
	// Resources are the registered resources (MCP servers): the
	// authorization endpoint holds requests to them, the consent page
	// shows their names and discovery their scopes. nil for none.
	Resources *resource.Registry
	// Tracer starts a span for every request (docs/deploy.md, Traces);
	// nil means the no-op tracer.
	Tracer trace.Tracer
}

// Reader is what the handlers read from the store (a store.Store, or the
// cache over it): the admin API's lists, the audit log and checkpoints,
// and a ping for /healthz.
type Reader interface {
	ListUsers(ctx context.Context) ([]store.User, error)
	GetUser(ctx context.Context, id string) (store.User, error)
	ListAgents(ctx context.Context) ([]store.Agent, error)
	GetAgent(ctx context.Context, id string) (store.Agent, error)
	ListDelegations(ctx context.Context, f store.DelegationFilter) ([]store.Delegation, error)
	GetDelegation(ctx context.Context, id string) (store.Delegation, error)
	GetToken(ctx context.Context, jti string) (store.IssuedToken, error)
	QueryEvents(ctx context.Context, f store.EventFilter) ([]store.Event, error)
	TallyEvents(ctx context.Context, f store.TallyFilter) ([]store.EventTally, error)
	EventsAfter(ctx context.Context, afterSeq int64, limit int) ([]store.Event, error)
	Checkpoints(ctx context.Context, after int64, limit int) ([]store.Checkpoint, error)
	Ping(ctx context.Context) error
}

// Server is Mandate's HTTP handler.
type Server struct {
	cfg       Config
	adminHash [32]byte
	metrics   *metrics
	handler   http.Handler
	// mux routes the requests; routeNames names each of its patterns
	// (the route label of the metrics), for unmatched.
	mux        *http.ServeMux
	routeNames map[string]string
	// draining is closed by Drain: long-lived responses (the revocation
	// stream, SET long polls) end so that a graceful shutdown finishes.
	draining  chan struct{}
	drainOnce sync.Once
	// adminRefusals tallies refused admin calls for the audit log.
	adminRefusals refusalTally
	// clientRefusals tallies failed client authentications: per client_id
	// for registered clients, summed for the others.
	clientRefusals refusalTally
	// formRefusals tallies forms that could not be read, per action.
	formRefusals refusalTally
	// limitRefusals tallies the requests the rate limits refused.
	limitRefusals refusalTally
	// pageRefusals tallies refused page requests, per action and reason.
	pageRefusals refusalTally
	// registerRefusals tallies refused registrations, per reason.
	registerRefusals refusalTally
	// openStreams counts the open revocation streams per reader.
	openStreams streamCounts
}

// Drain ends the long-lived responses: the revocation streams and SET
// long polls return, so that http.Server.Shutdown, which waits for every
// handler, can finish. Register it with http.Server.RegisterOnShutdown.
func (s *Server) Drain() { s.drainOnce.Do(func() { close(s.draining) }) }

// New builds the server and its routes.
func New(cfg Config) (*Server, error) {
	switch {
	case cfg.Issuer == "", cfg.Store == nil, cfg.Directory == nil, cfg.Grant == nil, cfg.Auth == nil,
		cfg.Keys == nil, cfg.Verifier == nil, cfg.Tokens == nil, cfg.Audit == nil, cfg.Feed == nil, cfg.Checkpoints == nil:
		return nil, errors.New("server: incomplete configuration")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Build == (buildinfo.Info{}) {
		cfg.Build = buildinfo.Read()
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 1800 * time.Millisecond
	}
	if cfg.Tracer == nil {
		cfg.Tracer = noop.Tracer{}
	}
	s := &Server{cfg: cfg, metrics: newMetrics(cfg.Registry), draining: make(chan struct{}), adminRefusals: refusalTally{window: time.Second},
		clientRefusals:   refusalTally{window: time.Second, maxKeys: 1024, maxRecords: 32},
		formRefusals:     refusalTally{window: time.Second, maxKeys: 3, maxRecords: 3},
		limitRefusals:    refusalTally{window: time.Second, maxKeys: 1024, maxRecords: 32},
		pageRefusals:     refusalTally{window: time.Second, maxKeys: 64, maxRecords: 32},
		registerRefusals: refusalTally{window: time.Second, maxKeys: 32, maxRecords: 16}}
	feedMetrics(cfg.Registry, func() (int64, float64) {
		seq, since := cfg.Feed.Progress()
		return seq, since.Seconds()
	})
	if cfg.AdminToken != "" {
		s.adminHash = sha256.Sum256([]byte(cfg.AdminToken))
	}
	s.handler = underIssuerPath(cfg.Issuer, s.routes())
	return s, nil
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// NewHTTPServer returns an http.Server with the timeouts and header limits
// Mandate needs (THREATS.md T73, T76).
func NewHTTPServer(addr string, h http.Handler) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      15 * time.Second,
		IdleTimeout:       90 * time.Second,
		MaxHeaderBytes:    16 << 10,
	}
}

// handlerFunc is a handler that returns its error; serve answers it.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

type ctxKey int

const requestIDKey ctxKey = iota

// requestID returns the id serve gave the request.
func requestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey).(string)
	return id
}

// serve wraps h: it gives the request an id and a span, answers a returned
// error as RFC 6749 JSON, and logs the outcome without tokens or secrets.
func (s *Server) serve(name string, h handlerFunc) http.Handler {
	return s.serveFor(name, s.cfg.RequestTimeout, h)
}

// serveFor is serve with a request deadline of timeout; zero means none
// (a long-lived stream, which bounds its own writes).
func (s *Server) serveFor(name string, timeout time.Duration, h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := audit.NewID("req_")
		w.Header().Set("X-Request-Id", id)
		ctx, span := s.startSpan(withCallerSlot(context.WithValue(r.Context(), requestIDKey, id)), name, id, r)
		defer span.End()
		var cancel context.CancelFunc
		if timeout > 0 {
			ctx, cancel = context.WithTimeout(ctx, timeout)
		} else {
			ctx, cancel = context.WithCancel(ctx)
		}
		defer cancel()
		r = r.WithContext(ctx)
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		err := h(rec, r)
		level := slog.LevelInfo
		var buf [8]slog.Attr // at most eight attributes, on the stack
		attrs := append(buf[:0], slog.String("request_id", id), slog.String("route", name))
		if sc := span.SpanContext(); sc.IsSampled() {
			attrs = append(attrs, slog.String("trace_id", sc.TraceID().String()))
		}
		var e *oauth.Error
		if err != nil {
			e = oauth.As(err)
			oauth.WriteError(rec, e)
			attrs = append(attrs, slog.String("error", string(e.Code)), slog.String("reason", e.Reason))
			if e.HTTPStatus() >= 500 {
				level = slog.LevelWarn
				if e.Err != nil {
					attrs = append(attrs, slog.String("cause", e.Err.Error()))
				}
			}
		}
		attrs = append(attrs, slog.Int("status", rec.status), slog.Duration("duration", time.Since(start)))
		endSpan(span, rec.status, e)
		s.metrics.requests.WithLabelValues(name, statusClass(rec.status)).Inc()
		s.cfg.Logger.LogAttrs(r.Context(), level, "request", attrs...)
	})
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

// Unwrap lets http.ResponseController reach the connection (flushes and
// deadlines of the revocation stream).
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

func statusClass(code int) string {
	return []string{"1xx", "2xx", "3xx", "4xx", "5xx"}[min(max(code/100, 1), 5)-1]
}

// adminRefused audits a refused admin call and returns e; when its record
// is due but cannot be written the answer is 503, as for every refusal.
func (s *Server) adminRefused(r *http.Request, e *oauth.Error) error {
	ev := audit.Event{
		Action: audit.ActionAdminAuth, Result: audit.ResultRefused, Reason: e.Reason, Detail: e.Description,
		RequestID: requestID(r.Context()), Resource: r.URL.Path,
	}
	if err := s.recordTallied(r.Context(), &s.adminRefusals, s.adminRefusals.add("", ev, s.cfg.Now())); err != nil {
		return oauth.Unavailable("audit_unavailable", errors.Join(e, err))
	}
	return e
}

// storeError maps a store failure to the answer: not found is 404, anything
// else refuses with 503 (fail closed).
func storeError(err error, what string) error {
	if errors.Is(err, store.ErrNotFound) {
		return &oauth.Error{Code: oauth.ErrNotFound, Reason: "not_found", Description: what + " not found", Err: err}
	}
	return oauth.Unavailable("store_unavailable", err)
}
