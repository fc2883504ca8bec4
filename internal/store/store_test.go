package store_test

import (
	"context"
	"errors"
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
}
