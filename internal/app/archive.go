package app

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"time"

	"github.com/mandate-dev/mandate/internal/archive"
	"github.com/mandate-dev/mandate/internal/config"
	"github.com/mandate-dev/mandate/internal/store"
)

// archivePauseEnv names a stage of the archive pass (archive.StageWritten
// or archive.StageMarked) at which a server started with it set logs
// "archive pass paused" and waits until it is stopped. Only the tests that
// kill a server in the middle of a pass set it.
const archivePauseEnv = "MANDATE_TEST_ARCHIVE_PAUSE"

// newArchiver is the retention of the audit log: records older than
// audit.retention move to segments in audit.archive_dir.
// On SQLite the deletes are sized to hold the write lock about sweepHold,
// since every append waits for it; PostgreSQL locks rows, so its deletes
// keep whole batches (a transaction of 16 rows already took longer than
// sweepHold there, and the sized batches never grew: a pass deleted a few
// records a second).
func newArchiver(cfg *config.Config, raw store.Store, env Env, now func() time.Time, logger *slog.Logger) *archive.Archiver {
	hold := sweepHold
	if cfg.IsPostgres() {
		hold = 0
	}
	return &archive.Archiver{
		Store: raw, Archive: archive.Dir{Path: cfg.ArchivePath()}, Origin: cfg.Issuer,
		Retention: cfg.Audit.Retention.Std(), Now: now, Logger: logger, Pause: env.ArchivePause,
		Rest: pacer{share: backgroundShare}.wait, DeleteHold: hold,
	}
}

// pauseFromEnv is the Env.ArchivePause of archivePauseEnv, nil when unset.
func pauseFromEnv(logger *slog.Logger) func(context.Context, string) {
	stage := os.Getenv(archivePauseEnv)
	if stage == "" {
		return nil
	}
	return func(ctx context.Context, at string) {
		if at != stage {
			return
		}
		logger.Warn("archive pass paused", slog.String("stage", at))
		<-ctx.Done()
	}
}

// ArchivePass moves the audit records older than audit.retention to the
// archive directory now, as the background pass does (archive.Archiver).
func (a *App) ArchivePass(ctx context.Context) (archive.PassResult, error) {
	return a.archiver.Pass(ctx)
}

// archiveEvery is how often the archive pass runs for a retention: a
// quarter of it, from 1 s to 1 h.
func archiveEvery(retention time.Duration) time.Duration {
	return min(max(retention/4, time.Second), time.Hour)
}

// runArchive runs the archive pass every archiveEvery of the retention
// until ctx ends; with no retention it does nothing. A pass that finds
// another instance's pass running (archive.ErrBusy) is skipped quietly.
func runArchive(ctx context.Context, a *archive.Archiver, logger *slog.Logger) {
	if a.Retention <= 0 {
		return
	}
	t := time.NewTicker(archiveEvery(a.Retention))
	defer t.Stop()
	for {
		switch _, err := a.Pass(ctx); {
		case errors.Is(err, archive.ErrBusy):
			// Another instance archives: this one's pass waits its turn.
			logger.Debug("audit archive pass skipped", slog.String("reason", err.Error()))
		case err != nil && ctx.Err() == nil:
			logger.Error("audit archive pass", slog.String("error", err.Error()))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
