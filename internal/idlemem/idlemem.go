package idlemem

import (
	"cmp"
	"context"
	"net/http"
	"runtime/debug"
	"runtime/metrics"
	"sync/atomic"
	"time"
)

// Releaser watches the requests a handler serves and, when none came for
// Quiet, returns the heap's free memory to the operating system. Its zero
// value is ready to use; Handler counts requests and Run releases.
type Releaser struct {
	// Quiet is how long without a request counts as idle; default 5 s.
	Quiet time.Duration
	// Grow is how much the heap must grow after a release, at idle, for
	// another one; default 1 MiB.
	Grow uint64
	// Release returns the memory; default debug.FreeOSMemory (a full
	// collection, then every free page goes back).
	Release func()
	// HeapBytes returns the bytes held by heap objects, live or not yet
	// collected; default runtime/metrics' /memory/classes/heap/objects:bytes.
	HeapBytes func() uint64

	requests atomic.Uint64
}

// Handler returns h counting its requests for r.
func (r *Releaser) Handler(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.requests.Add(1)
		h.ServeHTTP(w, req)
	})
}

// Run releases at once (what start-up left behind), then every Quiet when
// no request came during it and either requests came before it or the heap
// grew by Grow since the last release; it returns when ctx ends.
func (r *Releaser) Run(ctx context.Context) {
	release := r.Release
	if release == nil {
		release = debug.FreeOSMemory
	}
	heap := r.HeapBytes
	if heap == nil {
		heap = heapObjectBytes
	}
	t := time.NewTicker(cmp.Or(r.Quiet, 5*time.Second))
	defer t.Stop()
	r.loop(ctx, t.C, release, heap)
}

// loop is Run's work: a release at start, then one at every tick that
// idle says is due.
func (r *Releaser) loop(ctx context.Context, tick <-chan time.Time, release func(), heap func() uint64) {
	st := idle{grow: cmp.Or(r.Grow, 1<<20), seen: r.requests.Load()}
	release()
	st.released = heap()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick:
		}
		if st.due(r.requests.Load(), heap()) {
			release()
			st.released = heap()
		}
	}
}

// idle decides, tick by tick, when a release is due.
type idle struct {
	grow     uint64 // heap growth at idle that calls for a release
	released uint64 // heap bytes after the last release
	seen     uint64 // requests counted at the last tick
	busy     bool   // requests came since the last release
}

// due reports whether a release is due at a tick that counts requests in
// all and finds heap bytes in heap objects: no request since the last tick,
// and either some before it since the last release, or heap grew by grow.
func (s *idle) due(requests, heap uint64) bool {
	if requests != s.seen {
		s.seen, s.busy = requests, true
		return false
	}
	if s.busy || heap >= s.released+s.grow {
		s.busy = false
		return true
	}
	return false
}

const heapObjects = "/memory/classes/heap/objects:bytes"

// heapObjectBytes reads heapObjects from runtime/metrics.
func heapObjectBytes() uint64 {
	s := []metrics.Sample{{Name: heapObjects}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}
