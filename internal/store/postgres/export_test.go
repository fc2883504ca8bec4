package postgres

import "context"

// WithPartitionSize returns cfg laying out the audit log's partitions with
// size records each.
func WithPartitionSize(cfg Config, size int64) Config {
	cfg.partitionSize = size
	return cfg
}

// Upkeep runs a round of the partitions' upkeep now, waiting for one in
// progress first.
func (s *Store) Upkeep(ctx context.Context) error {
	s.part.wg.Wait()
	return s.upkeep(ctx)
}
