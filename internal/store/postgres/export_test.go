package postgres

import (
	"context"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mandate-dev/mandate/internal/store"
)

// WithAuditLayout returns cfg laying out the audit log's partitions with
// size records each, and marking its times every markEvery records.
func WithAuditLayout(cfg Config, size, markEvery int64) Config {
	cfg.partitionSize, cfg.markEvery = size, markEvery
	return cfg
}

// WithoutUpkeep returns cfg with no upkeep of the partitions after appends
// (only at Open and by Upkeep).
func WithoutUpkeep(cfg Config) Config {
	cfg.noUpkeep = true
	return cfg
}

// Upkeep runs a round of the partitions' upkeep now, after the one in
// progress.
func (s *Store) Upkeep(ctx context.Context) error {
	s.part.wg.Wait()
	return s.upkeep(ctx)
}

// EventQuery is the statement and parameters of QueryEvents for f.
func EventQuery(f store.EventFilter) (string, []any) {
	q, args, _ := eventQuery(f, f.IDs)
	return q, args
}

// MigrateTo applies the migrations up to version only, as the build that
// ended with it would.
func MigrateTo(ctx context.Context, cfg Config, version int) error {
	pc, schema, err := cfg.connConfig()
	if err != nil {
		return err
	}
	conn, err := pgx.ConnectConfig(ctx, pc.ConnConfig)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	ms, err := migrations()
	if err != nil {
		return err
	}
	ms = slices.DeleteFunc(ms, func(m store.Migration) bool { return m.Version > version })
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		return migrateTx(ctx, tx, schema, ms, time.Now, cfg.partitions())
	})
}
