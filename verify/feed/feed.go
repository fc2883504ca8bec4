package feed

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mandate-dev/mandate/revocation"
	"github.com/mandate-dev/mandate/strictjson"
	"github.com/mandate-dev/mandate/verify"
	"github.com/mandate-dev/mandate/verify/internal/backchannel"
)

// Defaults and bounds of a Feed.
const (
	// DefaultMaxStaleness is how long a Feed goes without hearing from
	// the issuer before Revoked fails.
	DefaultMaxStaleness = 30 * time.Second
	// DefaultKeepAtLeast is how long a Feed keeps an entry after it
	// arrives, at least.
	DefaultKeepAtLeast = 17 * time.Minute

	// maxSnapshotData bounds a snapshot event's data (one JSON line).
	maxSnapshotData = 64 << 20
	// maxEventData bounds the data of every other event.
	maxEventData = 64 << 10
	// maxErrorBody is what is read of a refusal before the connection is
	// closed.
	maxErrorBody = 4 << 10
	// maxRevokedKeys bounds the kids of revoked keys a Feed remembers
	// after their entries are gone; beyond it the oldest is forgotten.
	maxRevokedKeys = 1024

	feedBackoffMin = 100 * time.Millisecond
	feedBackoffMax = 5 * time.Second
	feedCollect    = 30 * time.Second

	// Server-Sent Events names, as revocation defines them.
	feedSnapshot   = revocation.EventSnapshot
	feedRevocation = revocation.EventRevocation
	feedHeartbeat  = revocation.EventHeartbeat
)

// ErrStale is wrapped by the error Revoked returns when the Feed cannot
// answer: it has not loaded its first snapshot yet, has heard nothing from
// the issuer for longer than Config.MaxStaleness, or waits for a new
// snapshot after data it refused. A Verifier reports it wrapped in
// verify.ErrRevocationUnavailable, so both match (503).
var ErrStale = errors.New("feed: revocation state stale")

// Config configures a Feed. URL, ClientID and ClientSecret are
// required.
type Config struct {
	// URL is the issuer's revocation stream, such as
	// "https://mandate.example/revocations/stream". It must be https;
	// plain http is accepted for loopback hosts only (localhost,
	// 127.0.0.0/8, ::1), as the client secret travels with every request.
	URL string
	// ClientID and ClientSecret are this resource server's client
	// credentials at the issuer, sent with HTTP Basic authentication,
	// each form-urlencoded first (RFC 6749 §2.3.1). The secret is never
	// logged.
	ClientID, ClientSecret string
	// HTTPClient makes the requests; nil means a client with dial, TLS
	// handshake and response-header timeouts of 10 s and no overall
	// timeout. The stream is long-lived: a client with a Timeout cuts it
	// every Timeout, and the Feed reconnects. Redirects are never followed.
	HTTPClient *http.Client
	// MaxStaleness is how long the Feed may go without hearing from the
	// issuer (an event or a heartbeat) before Revoked fails with
	// ErrStale; zero means DefaultMaxStaleness (30 s). The Feed
	// asks for a heartbeat every MaxStaleness/3 (the heartbeat query
	// parameter, unless URL has one; Mandate serves 200 ms to 30 s). A
	// connection silent for MaxStaleness is dropped and reopened.
	MaxStaleness time.Duration
	// KeepAtLeast is how long an entry is kept after it arrives, by this
	// Feed's clock, whatever its until says: the issuer's longest token
	// lifetime plus the leeway. Zero means DefaultKeepAtLeast (17 min:
	// Mandate's default max_ttl of 15 min plus 2). It makes the state
	// independent of the issuer's clock: a revocation stamped by a clock
	// an hour behind is not dropped an hour early.
	KeepAtLeast time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger receives connection failures, refused data and snapshot
	// loads; nil means none.
	Logger *slog.Logger
}

// Feed holds the issuer's revocations in memory, kept current by a
// subscription to its revocation stream, and answers Revoked from that
// state alone: set it as verify.Config.Revocation. Build it with New; it
// is safe for concurrent use.
//
// It fails closed: until the first snapshot is loaded, whenever nothing
// has been heard from the issuer for MaxStaleness, and from data it
// refuses or a new stream until the snapshot it then asks for, Revoked
// returns an error wrapping ErrStale and the Verifier refuses every token
// with verify.ErrRevocationUnavailable (the middleware answers 503 with
// Retry-After). It recovers by itself when the stream comes back.
type Feed struct {
	cfg    Config
	client *http.Client
	log    *slog.Logger
	set    *revocation.Set
	// keys remembers the issuer's revoked signing keys past their entries.
	keys  revokedKeys
	start time.Time
	// streamURL is cfg.URL asking for heartbeats three times per
	// MaxStaleness, unless it names its own.
	streamURL string

	// heard is cfg.Now() in Unix nanoseconds when the issuer last spoke
	// for the state held; 0 before the first snapshot.
	heard  atomic.Int64
	loaded atomic.Bool
	// current is false from the moment the stream says something the
	// state held cannot follow (refused data, a new stream) until the
	// next snapshot: the state may miss a revocation.
	current    atomic.Bool
	reconnects atomic.Int64
	ready      chan struct{} // closed when the first snapshot is loaded
	done       chan struct{} // closed when the goroutine has returned

	// Owned by the goroutine.
	resync      bool // the next connection must start from a snapshot
	lastCollect time.Time
}

// New checks cfg and starts following the issuer's revocation stream
// in a goroutine that runs until ctx ends. It does not wait for the
// network: Revoked fails until the first snapshot has arrived, which Ready
// waits for.
func New(ctx context.Context, cfg Config) (*Feed, error) {
	f, err := newFeed(cfg)
	if err != nil {
		return nil, err
	}
	go f.run(ctx)
	return f, nil
}

// newFeed checks cfg, fills in the defaults and returns a Feed that has
// not started.
func newFeed(cfg Config) (*Feed, error) {
	errs := backchannel.Check("feed: Config", cfg.URL, cfg.ClientID, cfg.ClientSecret)
	if cfg.MaxStaleness < 0 || cfg.KeepAtLeast < 0 {
		errs = append(errs, errors.New("feed: Config.MaxStaleness and KeepAtLeast must not be negative"))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	cfg.MaxStaleness = cmp.Or(cfg.MaxStaleness, DefaultMaxStaleness)
	cfg.KeepAtLeast = cmp.Or(cfg.KeepAtLeast, DefaultKeepAtLeast)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	client, log := backchannel.Client(cfg.HTTPClient, cfg.Logger)
	u, _ := url.Parse(cfg.URL) // CheckURI parsed it
	if q := u.Query(); !q.Has("heartbeat") {
		q.Set("heartbeat", (cfg.MaxStaleness / 3).Round(time.Millisecond).String())
		u.RawQuery = q.Encode()
	}
	return &Feed{
		streamURL: u.String(),
		cfg:       cfg,
		client:    client,
		log:       log,
		set:       revocation.NewSet(),
		start:     cfg.Now(),
		ready:     make(chan struct{}),
		done:      make(chan struct{}),
		resync:    true,
	}, nil
}

// Revoked reports whether a revocation held hits p: its jti or one it was
// exchanged from, its key (however long ago it was revoked, see
// KeyRevoked), its delegation, subject or one of the subject's scopes at
// its generation, an agent in its chain or its client at its generation, or
// an issue time before the issuer's not-before epoch. It answers from
// memory. It returns an error wrapping ErrStale when no snapshot
// has been loaded yet, when nothing has been heard from the issuer for
// MaxStaleness, and from the moment the stream sends data the Feed refuses
// or names a new stream until a new snapshot is loaded.
func (f *Feed) Revoked(_ context.Context, p *verify.Principal) (bool, error) {
	if !f.loaded.Load() {
		return false, fmt.Errorf("%w: no snapshot loaded yet", ErrStale)
	}
	if !f.current.Load() {
		return false, fmt.Errorf("%w: waiting for a new snapshot", ErrStale)
	}
	if age := f.Staleness(); age > f.cfg.MaxStaleness {
		return false, fmt.Errorf("%w: nothing heard from the issuer for %v", ErrStale, age.Round(time.Millisecond))
	}
	t := revocation.Token{
		JTI:           p.JTI,
		ExchangedFrom: p.ExchangedFrom,
		Subject:       p.Subject,
		Chain:         p.Chain,
		ClientID:      p.ClientID,
		DelegationID:  p.DelegationID,
		Scopes:        p.Scopes,
		Gen:           p.Generation,
		IssuedAt:      p.IssuedAt.Unix(),
		KeyID:         p.KeyID,
	}
	return f.set.Check(&t) != "" || f.keys.has(p.KeyID), nil
}

// KeyRevoked reports whether the issuer has revoked its signing key kid, as
// far as the Feed has heard since it started, however long ago: a key that
// leaked signs new tokens after its entry's until has passed, so the Feed
// remembers the kid for as long as it runs (the most recent 1024 kids),
// through collections and new snapshots that no longer list the entry. It
// answers from memory, stale or not: a revocation is never undone. It
// implements verify.KeyRevocation, through which a Verifier keeps revoked
// keys out of its key cache.
func (f *Feed) KeyRevoked(kid string) bool { return f.keys.has(kid) }

// Ready waits until the first snapshot is loaded. It returns an error when
// ctx ends first, or when the Feed stopped (its context ended) without one.
func (f *Feed) Ready(ctx context.Context) error {
	select {
	case <-f.ready:
		return nil
	default:
	}
	select {
	case <-f.ready:
		return nil
	case <-f.done:
		select {
		case <-f.ready:
			return nil
		default:
			return errors.New("feed: stopped before its first snapshot")
		}
	case <-ctx.Done():
		return fmt.Errorf("feed: not ready: %w", context.Cause(ctx))
	}
}

// Staleness returns the time since the issuer was last heard from (an
// event or a heartbeat on the stream held), or since New before the
// first snapshot.
func (f *Feed) Staleness() time.Duration {
	now := f.cfg.Now()
	if h := f.heard.Load(); h != 0 {
		return max(now.Sub(time.Unix(0, h)), 0)
	}
	return max(now.Sub(f.start), 0)
}

// Seq returns the position held in the issuer's revocation sequence; 0
// before the first snapshot.
func (f *Feed) Seq() int64 {
	_, seq := f.set.Position()
	return seq
}

// WriteMetrics writes the Feed's state to w in the Prometheus text
// exposition format: mandate_revocation_staleness_seconds,
// mandate_revocation_sequence and mandate_revocation_entries (gauges) and
// mandate_revocation_reconnects_total (a counter).
func (f *Feed) WriteMetrics(w io.Writer) error {
	var b []byte
	metric := func(name, typ, help, value string) {
		b = fmt.Appendf(b, "# HELP %s %s\n# TYPE %s %s\n%s %s\n", name, help, name, typ, name, value)
	}
	metric("mandate_revocation_staleness_seconds", "gauge",
		"Seconds since the revocation feed last heard from the issuer.",
		strconv.FormatFloat(f.Staleness().Seconds(), 'f', 3, 64))
	metric("mandate_revocation_sequence", "gauge",
		"Position held in the issuer's revocation sequence.",
		strconv.FormatInt(f.Seq(), 10))
	metric("mandate_revocation_entries", "gauge",
		"Revocation entries held in memory.",
		strconv.Itoa(f.set.Len()))
	metric("mandate_revocation_reconnects_total", "counter",
		"Connections to the revocation stream opened after the first.",
		strconv.FormatInt(f.reconnects.Load(), 10))
	_, err := w.Write(b)
	return err
}

// errResync: the state held cannot be continued from the stream (a new
// stream, refused or malformed data); the next connection asks for a
// snapshot.
var errResync = errors.New("resynchronise")

// run connects, follows the stream and reconnects with exponential
// back-off and jitter until ctx ends.
func (f *Feed) run(ctx context.Context) {
	defer close(f.done)
	backoff := feedBackoffMin
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			f.reconnects.Add(1)
		}
		heard, err := f.follow(ctx)
		if ctx.Err() != nil {
			return
		}
		switch {
		case errors.Is(err, errResync):
			f.log.LogAttrs(ctx, slog.LevelError, "verify: revocation feed: reconnecting for a snapshot", slog.String("error", err.Error()))
		case err != nil:
			f.log.LogAttrs(ctx, slog.LevelWarn, "verify: revocation feed: connection failed", slog.String("error", err.Error()), slog.Int("attempt", attempt))
		}
		if heard {
			backoff = feedBackoffMin
		}
		// Equal jitter: at least half the back-off, so that a fleet of
		// resource servers does not reconnect in step.
		wait := backoff/2 + rand.N(backoff/2+1)
		backoff = min(2*backoff, feedBackoffMax)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// follow opens one connection and applies its events until it ends; heard
// reports whether any event was applied.
func (f *Feed) follow(parent context.Context) (heard bool, err error) {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	// A connection silent for MaxStaleness is dead (a server that never
	// answers, a half-open TCP connection whose Read never returns): drop
	// it. Until its first event, bytes arriving count as life too, so that
	// a large snapshot on a slow link is not cut.
	idle := time.AfterFunc(f.cfg.MaxStaleness, cancel)
	defer idle.Stop()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.streamURL, nil)
	if err != nil {
		return false, err
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Cache-Control", "no-store")
	req.SetBasicAuth(url.QueryEscape(f.cfg.ClientID), url.QueryEscape(f.cfg.ClientSecret))
	if !f.resync {
		stream, seq := f.set.Position()
		req.Header.Set("Last-Event-ID", revocation.EventID(stream, seq))
	}
	resp, err := f.client.Do(req)
	if err != nil {
		if ctx.Err() != nil && parent.Err() == nil {
			err = fmt.Errorf("no answer within %v: %w", f.cfg.MaxStaleness, err)
		}
		return false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
		return false, fmt.Errorf("status %d", resp.StatusCode)
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "text/event-stream" {
		return false, errors.New("response is not text/event-stream")
	}
	first := true
	body := readerFunc(func(p []byte) (int, error) {
		n, err := resp.Body.Read(p)
		if n > 0 && first {
			idle.Reset(f.cfg.MaxStaleness)
		}
		return n, err
	})
	heard, err = f.consume(body, func() {
		first = false
		idle.Reset(f.cfg.MaxStaleness)
	})
	if err != nil && ctx.Err() != nil && parent.Err() == nil {
		err = fmt.Errorf("nothing heard for %v: %w", f.cfg.MaxStaleness, err)
	}
	return heard, err
}

// readerFunc is an io.Reader.
type readerFunc func([]byte) (int, error)

func (r readerFunc) Read(p []byte) (int, error) { return r(p) }

// consume applies the events of body until it ends or refuses one; alive
// is called after every event applied.
func (f *Feed) consume(body io.Reader, alive func()) (heard bool, err error) {
	r := newSSEReader(body, maxSnapshotData)
	for {
		ev, err := r.next()
		switch {
		case errors.Is(err, errEventTooLarge), errors.Is(err, bufio.ErrTooLong):
			f.resync = true
			f.current.Store(false)
			return heard, fmt.Errorf("%w: %w", errResync, err)
		case err == io.EOF:
			return heard, errors.New("stream ended")
		case err != nil:
			return heard, err
		}
		applied, err := f.apply(ev)
		if err != nil {
			f.resync = true
			f.current.Store(false)
			return heard, err
		}
		if applied {
			heard = true
			alive()
		}
	}
}

// apply applies one event to the state; applied is false for an event the
// feed does not know, which is ignored. An error wraps errResync.
func (f *Feed) apply(ev sseEvent) (applied bool, err error) {
	if ev.typ != feedSnapshot && len(ev.data) > maxEventData {
		return false, fmt.Errorf("%w: %s event above %d bytes", errResync, ev.typ, maxEventData)
	}
	switch ev.typ {
	case feedSnapshot:
		err = f.applySnapshot(ev.data)
	case feedRevocation:
		err = f.applyEntry(ev.id, ev.data)
	case feedHeartbeat:
		err = f.applyHeartbeat(ev.data)
	default:
		return false, nil
	}
	if err != nil {
		return false, err
	}
	now := f.cfg.Now()
	f.heard.Store(now.UnixNano())
	if now.Sub(f.lastCollect) >= feedCollect {
		f.lastCollect = now
		f.set.Collect(now.Unix())
	}
	return true, nil
}

// keepUntil is the least until of an entry arriving now (Unix seconds).
func (f *Feed) keepUntil() int64 {
	return f.cfg.Now().Add(f.cfg.KeepAtLeast).Unix() + 1
}

func (f *Feed) applySnapshot(data []byte) error {
	var snap revocation.Snapshot
	if err := decodeFeedJSON(data, &snap); err != nil {
		return fmt.Errorf("%w: snapshot: %w", errResync, err)
	}
	if err := revocation.CheckStream(snap.Stream); err != nil || snap.Seq < 0 || snap.NotBefore < 0 {
		return fmt.Errorf("%w: snapshot: invalid stream, seq or not_before", errResync)
	}
	floor := f.keepUntil()
	for i := range snap.Entries {
		snap.Entries[i].Until = max(snap.Entries[i].Until, floor)
	}
	if err := f.set.Reset(snap); err != nil {
		return fmt.Errorf("%w: snapshot: %w", errResync, err)
	}
	f.keys.addEntries(snap.Entries...)
	f.resync = false
	f.current.Store(true)
	if !f.loaded.Swap(true) {
		close(f.ready)
	}
	f.log.LogAttrs(context.Background(), slog.LevelInfo, "verify: revocation feed: snapshot loaded",
		slog.String("stream", snap.Stream), slog.Int64("seq", snap.Seq), slog.Int("entries", len(snap.Entries)))
	return nil
}

// applyEntry applies a revocation event whose id is "<stream>/<seq>". An
// entry of another stream is applied too (one more revocation is never
// unsafe), but the numbers no longer follow the state held: resynchronise.
func (f *Feed) applyEntry(id string, data []byte) error {
	if f.resync {
		return fmt.Errorf("%w: a revocation before the snapshot", errResync)
	}
	var e revocation.Entry
	if err := decodeFeedJSON(data, &e); err != nil {
		return fmt.Errorf("%w: revocation: %w", errResync, err)
	}
	stream, seq, ok := revocation.ParseEventID(id)
	if !ok || seq != e.Seq {
		return fmt.Errorf("%w: revocation: the event id does not name the entry's position", errResync)
	}
	e.Until = max(e.Until, f.keepUntil())
	if err := f.set.Apply(e); err != nil {
		return fmt.Errorf("%w: revocation: %w", errResync, err)
	}
	f.keys.addEntries(e)
	if held, _ := f.set.Position(); stream != held {
		return fmt.Errorf("%w: revocation of another stream", errResync)
	}
	return nil
}

// applyHeartbeat advances the position; a heartbeat of another stream
// means the issuer's store was restored, and the state held is of no use.
func (f *Feed) applyHeartbeat(data []byte) error {
	if f.resync {
		return fmt.Errorf("%w: a heartbeat before the snapshot", errResync)
	}
	var hb revocation.Heartbeat
	if err := decodeFeedJSON(data, &hb); err != nil {
		return fmt.Errorf("%w: heartbeat: %w", errResync, err)
	}
	if hb.Seq < 0 {
		return fmt.Errorf("%w: heartbeat: negative seq", errResync)
	}
	if held, _ := f.set.Position(); hb.Stream != held {
		return fmt.Errorf("%w: the issuer moved to a new stream", errResync)
	}
	f.set.Advance(hb.Seq)
	return nil
}

// revokedKeys are the kids of key entries a Feed has applied, kept for its
// life (at most maxRevokedKeys, the oldest forgotten first). Safe for
// concurrent use.
type revokedKeys struct {
	mu    sync.RWMutex
	kids  map[string]struct{}
	order []string // oldest first
}

// addEntries remembers the kid of every key entry among entries.
func (r *revokedKeys) addEntries(entries ...revocation.Entry) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range entries {
		if e.Kind != revocation.KindKey {
			continue
		}
		if _, ok := r.kids[e.ID]; ok {
			continue
		}
		if r.kids == nil {
			r.kids = make(map[string]struct{})
		}
		if len(r.order) >= maxRevokedKeys {
			delete(r.kids, r.order[0])
			r.order = slices.Delete(r.order, 0, 1)
		}
		r.kids[e.ID] = struct{}{}
		r.order = append(r.order, e.ID)
	}
}

// has reports whether kid is remembered; never for "".
func (r *revokedKeys) has(kid string) bool {
	if kid == "" {
		return false
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	_, ok := r.kids[kid]
	return ok
}

// decodeFeedJSON decodes one JSON value read from the stream, refusing
// what parsers could read differently (duplicate or case-variant members).
func decodeFeedJSON(data []byte, v any) error {
	if err := strictjson.Check(data, 0); err != nil {
		return err
	}
	return json.Unmarshal(data, v)
}
