package app

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/mandate-dev/mandate/internal/archive"
	"github.com/mandate-dev/mandate/internal/auditlog"
	"github.com/mandate-dev/mandate/internal/feed"
	"github.com/mandate-dev/mandate/internal/store"
	"github.com/mandate-dev/mandate/internal/store/cache"
	"github.com/mandate-dev/mandate/internal/token"
)

// loops are what a wired Mandate keeps current in the background.
type loops struct {
	raw         store.Store
	cached      *cache.Store
	checkpoints *auditlog.Checkpointer
	hub         *feed.Hub
	keys        *token.Keyring
	sweeper     *sweeper
	logger      *slog.Logger
	archiver    *archive.Archiver
	rechecker   *rechecker
}

// start runs the loops until ctx ends (App.Close cancels it and waits for
// them): the cache's generation poll, the audit checkpointer, the
// revocation feed, key rotation, the sweep of expired rows, the audit archive
// pass, the rechecks at identity providers and, on a store shared by several
// instances, the changes the others make.
func (a *App) start(ctx context.Context, l loops) {
	a.wg.Add(5)
	go func() { defer a.wg.Done(); l.cached.Run(ctx, time.Second) }()
	go func() { defer a.wg.Done(); l.checkpoints.Run(ctx) }()
	go func() { defer a.wg.Done(); l.hub.Run(ctx) }()
	go func() { defer a.wg.Done(); refreshKeys(ctx, l.keys, l.logger) }()
	go func() { defer a.wg.Done(); l.sweeper.run(ctx) }()
	a.wg.Add(1)
	go func() { defer a.wg.Done(); runArchive(ctx, l.archiver, l.logger) }()
	a.wg.Add(1)
	go func() { defer a.wg.Done(); l.rechecker.run(ctx) }()
	// A store that pushes changes made by other instances (PostgreSQL) is
	// followed; the cache's generation poll stays on for lost notifications.
	if listener, ok := l.raw.(store.Listener); ok {
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			followChanges(ctx, listener, func() {
				l.cached.Invalidate()
				l.cached.Sync(ctx)
				l.hub.Poke()
				if err := l.keys.Refresh(ctx); err != nil && ctx.Err() == nil {
					l.logger.Warn("refreshing signing keys", slog.String("error", err.Error()))
				}
			}, l.logger)
		}()
	}
}

// refreshKeys advances key rotation and picks up keys rotated by another
// process (`mandate keys rotate`).
func refreshKeys(ctx context.Context, keys *token.Keyring, logger *slog.Logger) {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := keys.Refresh(ctx); err != nil {
				logger.Warn("refreshing signing keys", slog.String("error", err.Error()))
			}
		}
	}
}

// followChanges calls onChange for every change another instance makes, as
// long as ctx lives, reconnecting with back-off when the connection breaks.
// The cache's generation poll stays on as the fallback for lost
// notifications.
func followChanges(ctx context.Context, l store.Listener, onChange func(), logger *slog.Logger) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		start := time.Now()
		err := l.Listen(ctx, func(int64) { onChange() })
		if ctx.Err() != nil {
			return
		}
		// Whatever happened while we were not listening is caught up now.
		onChange()
		if time.Since(start) > time.Minute {
			backoff = 100 * time.Millisecond
		}
		logger.Warn("store change feed interrupted; reconnecting", slog.String("error", fmt.Sprint(err)), slog.Duration("retry_in", backoff))
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}
