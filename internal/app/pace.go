package app

import (
	"context"
	"time"
)

// pacer spaces out the batches of a background job that takes the store's
// write lock or the CPU for a while (the sweep's deletes, the archive
// pass's segments and deletes), so that requests keep most of both: after
// a step that took d, the job waits d × (1/share − 1), at least least.
// A step's time includes its wait for the write lock, so the job yields
// more when requests hold the lock more.
type pacer struct {
	share float64
	least time.Duration
}

// backgroundShare is the most of the time the sweep and the archive pass
// each take when they have a backlog: at c=32 on one core, a sweep of
// batches of 1,000 rows 20 ms apart held the write lock most of the time
// and cut the throughput to a fifth.
const backgroundShare = 0.1

// wait returns once the pause after a step that took took has passed, or
// ctx's error when ctx ends first.
func (p pacer) wait(ctx context.Context, took time.Duration) error {
	d := p.least
	if p.share > 0 && p.share < 1 {
		d = max(d, time.Duration(float64(took)*(1/p.share-1)))
	}
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
