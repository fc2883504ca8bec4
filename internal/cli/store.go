package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/mandate-dev/mandate/internal/config"
	"github.com/mandate-dev/mandate/internal/store"
	"github.com/mandate-dev/mandate/internal/store/postgres"
	"github.com/mandate-dev/mandate/internal/store/sqlite"
)

// openStore opens the backend cfg selects.
func openStore(ctx context.Context, cfg *config.Config) (store.Store, error) {
	if cfg.IsPostgres() {
		s, err := postgres.Open(ctx, postgresConfig(cfg))
		if err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		return s, nil
	}
	path := cfg.SQLitePath()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	s, err := sqlite.Open(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	return s, nil
}

func postgresConfig(cfg *config.Config) postgres.Config {
	return postgres.Config{
		URL:              cfg.Store,
		PasswordFile:     cfg.StorePasswordFile,
		Schema:           cfg.StoreSchema,
		AllowAsyncCommit: cfg.AllowAsyncCommit,
		// Requests are bounded by the server's request deadline (1.8 s,
		// THREATS T60); the store's own call timeout bounds the rest
		// (provisioning, background refreshes, the CLI).
	}
}

// changeListener is a store that pushes its generation when another
// instance changes users, agents, delegations or keys (PostgreSQL
// LISTEN/NOTIFY).
type changeListener interface {
	Listen(ctx context.Context, fn func(generation int64)) error
}

// followChanges calls onChange for every change another instance makes, as
// long as ctx lives, reconnecting with back-off when the connection breaks.
// The cache's generation poll stays on as the fallback for lost
// notifications.
func followChanges(ctx context.Context, l changeListener, onChange func(), logger *slog.Logger) {
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

func newMigrateCmd(stdout io.Writer) *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Apply the store's schema migrations and exit",
		Long: `Apply the store's schema migrations and exit.

mandate serve migrates at start, under a lock, so several instances may start at
once. Operators who run schema changes themselves (with a role that has DDL rights)
run this first and give the servers a role without them.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(path)
			if err != nil {
				return err
			}
			if cfg.IsPostgres() {
				if err := postgres.Migrate(cmd.Context(), postgresConfig(cfg)); err != nil {
					return err
				}
			} else {
				s, err := openStore(cmd.Context(), cfg)
				if err != nil {
					return err
				}
				_ = s.Close()
			}
			fmt.Fprintln(stdout, "the store schema is up to date")
			return nil
		},
	}
	cmd.Flags().StringVar(&path, "config", "", "configuration file (YAML)")
	_ = cmd.MarkFlagRequired("config")
	return cmd
}
