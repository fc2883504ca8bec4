package feed

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/mandate-dev/mandate/internal/store"
	"github.com/mandate-dev/mandate/revocation"
)

// ErrStale means the hub has not been able to read the store for longer
// than its bound: what it holds may be missing revocations, and whoever
// asks must refuse rather than answer.
var ErrStale = errors.New("feed: revocation state is stale")

// Source is what the hub reads: the store's revocation entries and its
// not-before epoch.
type Source interface {
	ListRevocations(ctx context.Context, after int64, limit int) ([]store.Revocation, error)
	RevocationSeq(ctx context.Context) (int64, error)
	NotBefore(ctx context.Context) (time.Time, error)
}

// Config configures a Hub. Source and MaxTTL are required.
type Config struct {
	Source Source
	// MaxTTL is the longest lifetime of a token: an entry that is not
	// about one token matters for MaxTTL plus Slack after it was made.
	MaxTTL time.Duration
	// Slack covers the verifiers' leeway on exp and clock skew; default
	// 2 minutes.
	Slack time.Duration
	// PollInterval is how often the store's head is read when no local
	// write says to look; default 100 ms.
	PollInterval time.Duration
	// StaleAfter is how long the hub may go without reading the store
	// before Check and Snapshot fail with ErrStale; default 5 s.
	StaleAfter time.Duration
	// CollectEvery is how often expired entries are dropped from memory;
	// default 1 minute. The store's are deleted by the store's sweep
	// (store.Sweeper), with the same MaxTTL and Slack.
	CollectEvery time.Duration
	Now          func() time.Time
	Logger       *slog.Logger
}

// Hub follows the store's revocation feed. Build it with New and start Run;
// it is safe for concurrent use.
type Hub struct {
	cfg  Config
	set  *revocation.Set
	poke chan struct{}

	mu       sync.Mutex
	stream   string
	seq      int64
	nb       int64
	log      []revocation.Entry // recent entries in seq order, for resuming
	loadedAt time.Time
	changed  chan struct{} // closed and replaced when seq or stream moves
}

// New returns a Hub for cfg; nothing is read until Run.
func New(cfg Config) (*Hub, error) {
	if cfg.Source == nil || cfg.MaxTTL <= 0 {
		return nil, errors.New("feed: Source and MaxTTL are required")
	}
	if cfg.Slack <= 0 {
		cfg.Slack = 2 * time.Minute
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 100 * time.Millisecond
	}
	if cfg.StaleAfter <= 0 {
		cfg.StaleAfter = 5 * time.Second
	}
	if cfg.CollectEvery <= 0 {
		cfg.CollectEvery = time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Hub{cfg: cfg, set: revocation.NewSet(), poke: make(chan struct{}, 1), changed: make(chan struct{})}, nil
}

// Poke asks the hub to read the store now (after a local write).
func (h *Hub) Poke() {
	select {
	case h.poke <- struct{}{}:
	default:
	}
}

// Run follows the store until ctx ends.
func (h *Hub) Run(ctx context.Context) {
	poll := time.NewTicker(h.cfg.PollInterval)
	defer poll.Stop()
	collect := time.NewTicker(h.cfg.CollectEvery)
	defer collect.Stop()
	var lastErr string
	for {
		if err := h.Load(ctx); err != nil && ctx.Err() == nil {
			if err.Error() != lastErr {
				h.cfg.Logger.Warn("revocation feed: reading the store", slog.String("error", err.Error()))
			}
			lastErr = err.Error()
		} else {
			lastErr = ""
		}
		select {
		case <-ctx.Done():
			return
		case <-poll.C:
		case <-h.poke:
		case <-collect.C:
			h.collect()
		}
	}
}

// Load reads what the store added since the last Load. It is what Run
// calls on every tick; tests call it to be sure.
func (h *Hub) Load(ctx context.Context) error {
	nb, err := h.cfg.Source.NotBefore(ctx)
	if err != nil {
		return fmt.Errorf("feed: not-before: %w", err)
	}
	stream := streamName(nb)
	h.mu.Lock()
	after := h.seq
	if stream != h.stream {
		after = 0
	}
	h.mu.Unlock()
	var fresh []revocation.Entry
	for {
		page, err := h.cfg.Source.ListRevocations(ctx, after, 1000)
		if err != nil {
			return fmt.Errorf("feed: %w", err)
		}
		for _, r := range page {
			fresh = append(fresh, h.entry(r))
			after = r.Seq
		}
		if len(page) < 1000 {
			break
		}
	}
	return h.publish(stream, nb, fresh, after)
}

// publish applies what Load read. A new stream (the store was restored and
// its not-before epoch advanced) starts the set again.
func (h *Hub) publish(stream string, nb time.Time, fresh []revocation.Entry, seq int64) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	moved := false
	if stream != h.stream {
		snap := revocation.Snapshot{Stream: stream, Seq: seq, Entries: fresh}
		if !nb.IsZero() {
			snap.NotBefore = nb.Unix()
			if nb.After(time.Unix(snap.NotBefore, 0)) {
				snap.NotBefore++ // round up: nothing issued before the epoch survives
			}
		}
		if err := h.set.Reset(snap); err != nil {
			return fmt.Errorf("feed: %w", err)
		}
		h.stream, h.nb, h.log, moved = stream, snap.NotBefore, append([]revocation.Entry(nil), fresh...), true
	} else if len(fresh) > 0 {
		if err := h.set.Apply(fresh...); err != nil {
			return fmt.Errorf("feed: %w", err)
		}
		h.log, moved = append(h.log, fresh...), true
	}
	h.seq = seq
	h.loadedAt = h.cfg.Now()
	if moved {
		close(h.changed)
		h.changed = make(chan struct{})
	}
	return nil
}

// entry turns a store record into what the feed publishes. An entry lives
// at least MaxTTL plus Slack from the moment the hub first reads it, by its
// own clock, whatever the clock said when it was made: a clock stepped
// back when the revocation was made cannot shorten its life and revive the
// tokens minted before the step (THREATS T56).
func (h *Hub) entry(r store.Revocation) revocation.Entry {
	e := revocation.Entry{Seq: r.Seq, Kind: r.Kind, ID: r.ID, Scope: r.Scope, Gen: r.Gen}
	if r.Kind == revocation.KindToken && !r.Expires.IsZero() {
		e.Until = revocation.UntilFor(r.Expires, 0, h.cfg.Slack)
	} else {
		e.Until = revocation.UntilFor(r.At, h.cfg.MaxTTL, h.cfg.Slack)
	}
	e.Until = max(e.Until, revocation.UntilFor(h.cfg.Now(), h.cfg.MaxTTL, h.cfg.Slack))
	return e
}

// collect drops expired entries from memory. Those of the store are the
// store sweep's: deleted in small batches, by one loop for every kind of
// expired row.
func (h *Hub) collect() {
	now := h.cfg.Now()
	h.set.Collect(now.Unix())
	h.mu.Lock()
	kept := h.log[:0]
	for _, e := range h.log {
		if e.Until >= now.Unix() {
			kept = append(kept, e)
		}
	}
	clear(h.log[len(kept):])
	h.log = kept
	h.mu.Unlock()
}

// fresh returns ErrStale when the store has not been read recently.
func (h *Hub) fresh() error {
	if h.loadedAt.IsZero() || h.cfg.Now().Sub(h.loadedAt) > h.cfg.StaleAfter {
		return ErrStale
	}
	return nil
}

// Check returns the kind of the entry that revokes t ("" when none), or
// ErrStale.
func (h *Hub) Check(t *revocation.Token) (string, error) {
	h.mu.Lock()
	err := h.fresh()
	h.mu.Unlock()
	if err != nil {
		return "", err
	}
	return h.set.Check(t), nil
}

// Progress returns the last sequence read and how long ago the store was
// last read (the hub's staleness), whether or not it is within the bound.
func (h *Hub) Progress() (seq int64, since time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.loadedAt.IsZero() {
		return h.seq, 0
	}
	return h.seq, h.cfg.Now().Sub(h.loadedAt)
}

// Position is where the feed stands and a channel closed when it moves.
type Position struct {
	Stream  string
	Seq     int64
	Changed <-chan struct{}
}

// Position returns where the feed stands, or ErrStale.
func (h *Hub) Position() (Position, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.fresh(); err != nil {
		return Position{}, err
	}
	return Position{Stream: h.stream, Seq: h.seq, Changed: h.changed}, nil
}

// Snapshot returns everything in force, or ErrStale.
func (h *Hub) Snapshot() (revocation.Snapshot, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.fresh(); err != nil {
		return revocation.Snapshot{}, err
	}
	return revocation.Snapshot{Stream: h.stream, Seq: h.seq, NotBefore: h.nb, Entries: h.set.Entries()}, nil
}

// Since returns the entries of stream after seq, and false when they cannot
// be given (another stream, or a position the hub never reached): the
// subscriber must then start from a snapshot.
func (h *Hub) Since(stream string, seq int64) ([]revocation.Entry, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if stream != h.stream || seq > h.seq || seq < 0 {
		return nil, false
	}
	// h.log is in seq order; entries dropped from it had expired.
	i := len(h.log)
	for i > 0 && h.log[i-1].Seq > seq {
		i--
	}
	return append([]revocation.Entry(nil), h.log[i:]...), true
}

// streamName names the sequence of a not-before epoch: seq numbers of a
// store restored from a backup start again under another name.
func streamName(nb time.Time) string {
	if nb.IsZero() {
		return "s0"
	}
	return "s" + strconv.FormatInt(nb.UnixMicro(), 36)
}
