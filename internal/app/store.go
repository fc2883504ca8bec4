package app

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/mandate-dev/mandate/internal/config"
	"github.com/mandate-dev/mandate/internal/store"
	"github.com/mandate-dev/mandate/internal/store/postgres"
	"github.com/mandate-dev/mandate/internal/store/sqlite"
)

// OpenStore opens the backend cfg selects: PostgreSQL for a postgres://
// store, else SQLite in the data directory, which it creates (0700) if
// needed. Either is migrated to the current schema on open. The caller
// closes the store.
func OpenStore(ctx context.Context, cfg *config.Config) (store.Store, error) {
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

// Migrate applies the schema migrations of the store cfg selects and
// returns: on PostgreSQL without opening a server's pool, on SQLite by
// opening and closing the file.
func Migrate(ctx context.Context, cfg *config.Config) error {
	if cfg.IsPostgres() {
		return postgres.Migrate(ctx, postgresConfig(cfg))
	}
	s, err := OpenStore(ctx, cfg)
	if err != nil {
		return err
	}
	_ = s.Close()
	return nil
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
