package postgres

import (
	"context"

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
