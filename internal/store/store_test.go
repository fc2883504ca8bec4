package store_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/mandate-dev/mandate/internal/store"
)

// pagedLog is an EventReader over n events with Seq 1..n that records the
// limits it was asked for.
type pagedLog struct {
	n      int64
	limits []int
}

func (l *pagedLog) EventsAfter(_ context.Context, after int64, limit int) ([]store.Event, error) {
	l.limits = append(l.limits, limit)
	var out []store.Event
	for seq := after + 1; seq <= l.n && len(out) < limit; seq++ {
		out = append(out, store.Event{Seq: seq})
	}
	return out, nil
}

// TestEachEvent: every event after the start, in order, read in pages of
// at most EachEventPage (so that a long log is never held in memory at
// once), across page boundaries and exact multiples of the page.
func TestEachEvent(t *testing.T) {
	for _, tc := range []struct {
		name        string
		n, after    int64
		wantVisited int64
	}{
		{"ok/empty", 0, 0, 0},
		{"ok/one-page", 10, 0, 10},
		{"ok/exact-page", store.EachEventPage, 0, store.EachEventPage},
		{"ok/pages", 2*store.EachEventPage + 500, 0, 2*store.EachEventPage + 500},
		{"ok/from-the-middle", 2*store.EachEventPage + 500, 1700, 2*store.EachEventPage + 500 - 1700},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := &pagedLog{n: tc.n}
			next := tc.after + 1
			err := store.EachEvent(t.Context(), l, tc.after, func(ev store.Event) error {
				if ev.Seq != next {
					return errors.New("out of order")
				}
				next++
				return nil
			})
			if err != nil || next-1-tc.after != tc.wantVisited {
				t.Errorf("visited %d events (%v), want %d", next-1-tc.after, err, tc.wantVisited)
			}
			for _, lim := range l.limits {
				if lim > store.EachEventPage {
					t.Errorf("asked for a page of %d events, want at most %d", lim, store.EachEventPage)
				}
			}
		})
	}
	t.Run("fail/stops-at-the-first-error", func(t *testing.T) {
		boom := errors.New("boom")
		calls := 0
		err := store.EachEvent(t.Context(), &pagedLog{n: 50}, 0, func(store.Event) error {
			calls++
			if calls == 3 {
				return boom
			}
			return nil
		})
		if !errors.Is(err, boom) || calls != 3 {
			t.Errorf("err %v after %d calls, want boom after 3", err, calls)
		}
	})
	t.Run("fail/stops-reading-ahead", func(t *testing.T) {
		// fn fails on the first page while the second is being read: the
		// read is cancelled and over when EachEvent returns.
		boom := errors.New("boom")
		l := &blockingLog{pagedLog: pagedLog{n: 3 * store.EachEventPage}, started: make(chan struct{}, 3)}
		err := store.EachEvent(t.Context(), l, 0, func(ev store.Event) error {
			if ev.Seq == 1 {
				<-l.started // the first page's read
				<-l.started // the second's, now waiting for the context
				return boom
			}
			return nil
		})
		if !errors.Is(err, boom) {
			t.Errorf("err %v, want boom", err)
		}
		if l.running.Load() != 0 || l.reads.Load() != 2 {
			t.Errorf("%d reads still running, %d made; want 0 running, 2 made", l.running.Load(), l.reads.Load())
		}
	})
	t.Run("fail/read-error", func(t *testing.T) {
		boom := errors.New("boom")
		l := &failingLog{pagedLog: pagedLog{n: 3 * store.EachEventPage}, failAfter: store.EachEventPage, err: boom}
		n := 0
		err := store.EachEvent(t.Context(), l, 0, func(store.Event) error { n++; return nil })
		if !errors.Is(err, boom) || n != store.EachEventPage {
			t.Errorf("err %v after %d events, want boom after the first page", err, n)
		}
	})
}

// blockingLog is a pagedLog whose reads after the first wait for their
// context to end.
type blockingLog struct {
	pagedLog
	started        chan struct{}
	running, reads atomic.Int32
}

func (l *blockingLog) EventsAfter(ctx context.Context, after int64, limit int) ([]store.Event, error) {
	l.reads.Add(1)
	l.running.Add(1)
	defer l.running.Add(-1)
	l.started <- struct{}{}
	if after > 0 {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return l.pagedLog.EventsAfter(ctx, after, limit)
}

// failingLog is a pagedLog that fails every read after failAfter.
type failingLog struct {
	pagedLog
	failAfter int64
	err       error
}

func (l *failingLog) EventsAfter(ctx context.Context, after int64, limit int) ([]store.Event, error) {
	if after >= l.failAfter {
		return nil, l.err
	}
	return l.pagedLog.EventsAfter(ctx, after, limit)
}
