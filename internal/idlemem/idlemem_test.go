package idlemem

import (
	"context"
	"net/http"
	"net/http/httptest"
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

// TestIdleDue walks the release decision through busy and idle ticks: a
// release once the server is idle after requests, and at idle only when the
// heap grew by the threshold since the last release.
func TestIdleDue(t *testing.T) {
	s := idle{grow: 100, released: 1000}
	for i, tick := range []struct {
		name           string
		requests, heap uint64
		want           bool
	}{
		{"idle after start", 0, 1000, false},
		{"idle, heap grew less than the threshold", 0, 1099, false},
		{"requests came", 2, 1099, false},
		{"more requests", 5, 1200, false},
		{"idle after requests", 5, 1200, true},
		{"idle again", 5, 1200, false},
		{"idle, heap grew less than the threshold since", 5, 1299, false},
		{"idle, heap grew by the threshold since", 5, 1300, true},
	} {
		if got := s.due(tick.requests, tick.heap); got != tick.want {
			t.Fatalf("tick %d (%s): due = %v, want %v", i, tick.name, got, tick.want)
		}
		if tick.want {
			s.released = tick.heap // as if the release found nothing to free
		}
	}
}

// TestHandlerCountsRequests: every request through Handler is counted, and
// a Run whose ticks find them releases once they stop.
func TestHandlerCountsRequests(t *testing.T) {
	var r Releaser
	h := r.Handler(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTeapot) }))
	for range 3 {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
		if rec.Code != http.StatusTeapot {
			t.Fatalf("wrapped handler answered %d", rec.Code)
		}
	}
	if n := r.requests.Load(); n != 3 {
		t.Fatalf("counted %d requests, want 3", n)
	}
	releases := make(chan struct{}, 4)
	tick := make(chan time.Time)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.loop(ctx, tick, func() { releases <- struct{}{} }, func() uint64 { return 0 })
	}()
	<-releases // at start
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
	tick <- time.Time{} // sees the request
	tick <- time.Time{} // idle after it: releases
	<-releases
	cancel()
	<-done
}

// TestRunReturnsGarbage: with the real runtime, Run's first release
// collects the garbage the heap holds and gives pages back.
func TestRunReturnsGarbage(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	runtime.GC()
	for range 64 {
		sink = make([]byte, 128<<10)
	}
	sink = nil
	before := heapObjectBytes()
	if before < 8<<20 {
		t.Fatalf("heap objects after 8 MiB of garbage = %d bytes", before)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := Releaser{Release: func() { debug.FreeOSMemory(); cancel() }}
	r.Run(ctx)
	if after := heapObjectBytes(); after > before-6<<20 {
		t.Errorf("heap objects: %d bytes before the release, %d after; want 8 MiB less", before, after)
	}
}

// sink keeps the compiler from dropping the garbage.
var sink []byte
