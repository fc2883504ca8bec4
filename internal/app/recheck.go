package app

import (
	"context"
	"log/slog"
	"time"

	"github.com/mandate-dev/mandate/internal/signin"
	"github.com/mandate-dev/mandate/internal/upstream"
)

// RecheckEvery is how often the recheck loop looks for the grants due at
// the identity providers with a recheck_every: a person removed at a
// provider loses what they delegated at most recheck_every plus this
// after the removal (plus the time the round takes).
const RecheckEvery = time.Minute

// rechecker asks the identity providers again about the people who
// signed in through them (signin.Service.RecheckDue).
type rechecker struct {
	people    *signin.Service
	providers *upstream.Set
	logger    *slog.Logger
}

// run rechecks every RecheckEvery until ctx ends; it returns at once when
// no provider has a recheck_every.
func (r *rechecker) run(ctx context.Context) {
	if r.people == nil || r.providers == nil || len(r.providers.Rechecks()) == 0 {
		return
	}
	t := time.NewTicker(RecheckEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			r.round(ctx)
		}
	}
}

// round runs one round and logs what it did. A failure is logged: the
// grants that failed are asked again at the next round, and nothing is
// revoked for them.
func (r *rechecker) round(ctx context.Context) signin.RecheckRound {
	got, err := r.people.RecheckDue(ctx, r.providers, signin.DefaultRecheckBatch)
	if got.Checked > 0 || got.Failed > 0 {
		r.logger.Info("identity provider recheck", slog.Int("checked", got.Checked), slog.Int("removed", got.Removed),
			slog.Int("failed", got.Failed))
	}
	if err != nil && ctx.Err() == nil {
		r.logger.Warn("identity provider recheck", slog.String("error", err.Error()))
	}
	return got
}

// Recheck runs one round of rechecks at the identity providers now, as the
// background loop does every RecheckEvery, and returns what it did. Tests
// call it after moving the clock.
func (a *App) Recheck(ctx context.Context) signin.RecheckRound {
	return a.rechecker.round(ctx)
}
