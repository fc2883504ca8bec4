package token

import (
	"context"
	"sync"
)

// genReader reads the store's generation for many callers at once. Each
// caller gets the result of a read that began after it asked, so what it
// learns is at least as new as every change committed before it asked. At
// most one read runs at a time; the callers that ask while it runs share
// the next one, so concurrent signatures cost one read per batch, not one
// each. Safe for concurrent use; the zero value needs read set.
type genReader struct {
	read func(context.Context) (int64, error)

	mu      sync.Mutex
	running bool
	next    *genRound // the round callers join now; it starts after they do
}

// genRound is one read and the callers waiting for it.
type genRound struct {
	done chan struct{}
	gen  int64
	err  error
}

// get returns the generation read by a round that began after the call. It
// returns ctx's error if ctx ends first; the round goes on for the others.
// When no read runs, the caller reads on its own goroutine, under its own
// ctx: one request in flight costs no goroutine and no handoff. The callers
// that come meanwhile share the next round, which a goroutine reads once
// this one is done.
func (r *genReader) get(ctx context.Context) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, context.Cause(ctx)
	}
	r.mu.Lock()
	if !r.running {
		r.running = true
		r.mu.Unlock()
		gen, err := r.read(ctx)
		r.mu.Lock()
		if r.next != nil {
			go r.run()
		} else {
			r.running = false
		}
		r.mu.Unlock()
		return gen, err
	}
	if r.next == nil {
		r.next = &genRound{done: make(chan struct{})}
	}
	round := r.next
	r.mu.Unlock()
	select {
	case <-round.done:
		return round.gen, round.err
	case <-ctx.Done():
		return 0, context.Cause(ctx)
	}
}

// run reads rounds until nobody waits. A round's read is bounded by
// storeTimeout, whatever its callers' contexts: they share it.
func (r *genReader) run() {
	for {
		r.mu.Lock()
		round := r.next
		r.next = nil
		if round == nil {
			r.running = false
			r.mu.Unlock()
			return
		}
		r.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
		round.gen, round.err = r.read(ctx)
		cancel()
		close(round.done)
	}
}
