package app

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mandate-dev/mandate/internal/store"
)

// Rows stay in the store for a grace period after they stop being
// presentable: a token's row goes grace after its exp, a token's feed entry
// grace after the token's exp, another feed entry tokens.max_ttl plus grace
// after it was made, and a sign-in row (a code, a refresh token, a session,
// a pending step) grace after its own expiry.
const (
	// sweepMargin is added to the verifiers' leeway (tokens.leeway): clock
	// skew between the instances and the verifiers beyond the leeway.
	sweepMargin = time.Minute
	// minGrace is the least grace, the revocation feed's slack before the
	// sweep existed: the default leeway (60 s) plus the margin.
	minGrace = 2 * time.Minute
	// sweepPause is the least pause between two batches of one sweep, so
	// that requests' commits get the write lock between them; after a
	// long batch the pause is longer (pacer, backgroundShare).
	sweepPause = 20 * time.Millisecond
	// sweepHold is how long one batch (of the sweep, or of the archive
	// pass's deletes) should hold the write lock: a batch that took
	// longer halves the next one, down to minSweepBatch; one that took
	// under half of it doubles the next, up to storage.sweep_batch. A
	// batch of 1,000 token rows took about 70 ms under load, and every
	// request waited behind it; at 5 ms a request that came during a
	// batch still waited up to a sixth of its usual p99 (about 30 ms at
	// c=32).
	sweepHold     = 2 * time.Millisecond
	minSweepBatch = 16
)

// grace is how long a row outlives what it records: the leeway plus
// sweepMargin, at least minGrace.
func grace(leeway time.Duration) time.Duration {
	return max(minGrace, leeway+sweepMargin)
}

// sweeper deletes from the store, every Every, what can no longer be
// presented (store.Sweeper), so that storage stays bounded by the issuance
// rate times the longest lifetime instead of growing with uptime.
type sweeper struct {
	store  store.Sweeper
	every  time.Duration
	batch  int
	pace   pacer
	grace  time.Duration
	maxTTL time.Duration
	now    func() time.Time
	logger *slog.Logger

	rows     *prometheus.CounterVec
	failures prometheus.Counter
	duration prometheus.Gauge
}

// newSweeper is the sweeper of s, with its metrics registered in reg.
func newSweeper(s store.Sweeper, every time.Duration, batch int, leeway, maxTTL time.Duration,
	now func() time.Time, logger *slog.Logger, reg prometheus.Registerer) *sweeper {
	sw := &sweeper{
		store: s, every: every, batch: batch, pace: pacer{share: backgroundShare, least: sweepPause}, grace: grace(leeway), maxTTL: maxTTL, now: now, logger: logger,
		rows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mandate_store_swept_rows_total",
			Help: "Expired rows the background sweep deleted, by kind (tokens, nonces, revocations, signin).",
		}, []string{"kind"}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mandate_store_sweep_failures_total", Help: "Sweeps that failed (each is retried at the next tick).",
		}),
		duration: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mandate_store_sweep_duration_seconds", Help: "How long the last sweep took, its batches and pauses included.",
		}),
	}
	// Every kind is exported from the start, at zero.
	for _, kind := range []string{"tokens", "nonces", "revocations", "signin"} {
		sw.rows.WithLabelValues(kind)
	}
	reg.MustRegister(sw.rows, sw.failures, sw.duration)
	return sw
}

// cutoffs are what a sweep at now deletes.
func (s *sweeper) cutoffs(now time.Time) store.SweepCutoffs {
	past := now.Add(-s.grace)
	return store.SweepCutoffs{Tokens: past, Nonces: past, TokenRevocations: past, OtherRevocations: past.Add(-s.maxTTL),
		SignIn: past}
}

// run sweeps every s.every until ctx ends. A failed sweep is logged and
// counted; the next tick tries again.
func (s *sweeper) run(ctx context.Context) {
	t := time.NewTicker(s.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := s.sweep(ctx); err != nil && ctx.Err() == nil {
				s.logger.Warn("store sweep", slog.String("error", err.Error()))
			}
		}
	}
}

// sweep deletes what is due at the clock's now, one batch at a time with a
// pause between batches (s.pace), until a batch comes back short, and
// returns what it deleted, also when it fails part way. The batches are
// sized to hold the write lock for about sweepHold.
func (s *sweeper) sweep(ctx context.Context) (store.Swept, error) {
	start := time.Now()
	defer func() { s.duration.Set(time.Since(start).Seconds()) }()
	c := s.cutoffs(s.now())
	var total store.Swept
	batch := min(s.batch, minSweepBatch)
	for {
		t0 := time.Now()
		got, err := s.store.Sweep(ctx, c, batch)
		took := time.Since(t0)
		if err != nil {
			s.failures.Inc()
			return total, err
		}
		total.Tokens += got.Tokens
		total.Nonces += got.Nonces
		total.Revocations += got.Revocations
		total.SignIn += got.SignIn
		s.rows.WithLabelValues("tokens").Add(float64(got.Tokens))
		s.rows.WithLabelValues("nonces").Add(float64(got.Nonces))
		s.rows.WithLabelValues("revocations").Add(float64(got.Revocations))
		s.rows.WithLabelValues("signin").Add(float64(got.SignIn))
		if got.Total() < batch {
			return total, nil
		}
		batch = nextBatch(batch, took, s.batch)
		if err := s.pace.wait(ctx, took); err != nil {
			return total, err
		}
	}
}

// nextBatch is the size of the batch after one of n rows that took took:
// half when it held the write lock longer than sweepHold, double when under
// half of it, within minSweepBatch and most.
func nextBatch(n int, took time.Duration, most int) int {
	switch {
	case took > sweepHold:
		n /= 2
	case took < sweepHold/2:
		n *= 2
	}
	return max(min(n, most), min(minSweepBatch, most))
}

// Sweep runs one sweep of the store now, as the background loop does every
// storage.sweep_every, and returns what it deleted. Tests call it after
// moving the clock.
func (a *App) Sweep(ctx context.Context) (store.Swept, error) {
	return a.sweeper.sweep(ctx)
}
