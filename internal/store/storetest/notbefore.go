package storetest

import (
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mandate-dev/mandate/internal/store"
)

// testNotBefore checks the global not-before epoch (THREATS T56): zero until
// set, advanced with its events and a generation bump in one call, never
// moved back, and truncated to the microsecond like every stored time.
func testNotBefore(t *testing.T, open func(t *testing.T) store.Store) {
	t.Run("ok/zero-at-first", func(t *testing.T) {
		s := open(t)
		if got := mustNotBefore(t, s); !got.IsZero() {
			t.Errorf("NotBefore of a new store = %v, want the zero time", got)
		}
	})
	t.Run("ok/advances-with-events-and-generation", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		gen := mustGeneration(t, s)
		at := base().Add(time.Hour)
		got, err := s.AdvanceNotBefore(ctx, at, newEvent("e-epoch", "store.epoch_advanced"))
		if err != nil {
			t.Fatalf("AdvanceNotBefore: %v", err)
		}
		if !got.Equal(at) || got.Location() != time.UTC {
			t.Errorf("AdvanceNotBefore = %v, want %v in UTC", got, at)
		}
		if nb := mustNotBefore(t, s); !nb.Equal(at) || nb.Location() != time.UTC {
			t.Errorf("NotBefore = %v, want %v in UTC", nb, at)
		}
		if g := mustGeneration(t, s); g <= gen {
			t.Errorf("generation went from %d to %d, want growth", gen, g)
		}
		if diff := cmp.Diff([]string{"e-epoch"}, eventIDs(mustEvents(t, s))); diff != "" {
			t.Errorf("events (-want +got):\n%s", diff)
		}
	})
	t.Run("ok/never-goes-back", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		later := base().Add(time.Hour)
		if _, err := s.AdvanceNotBefore(ctx, later); err != nil {
			t.Fatalf("AdvanceNotBefore: %v", err)
		}
		for _, at := range []time.Time{base(), later.Add(-time.Microsecond), later} {
			got, err := s.AdvanceNotBefore(ctx, at, newEvent("e-"+at.Format(time.RFC3339Nano), "store.epoch_advanced"))
			if err != nil {
				t.Fatalf("AdvanceNotBefore(%v): %v", at, err)
			}
			if !got.Equal(later) {
				t.Errorf("AdvanceNotBefore(%v) = %v, want it kept at %v", at, got, later)
			}
		}
		if nb := mustNotBefore(t, s); !nb.Equal(later) {
			t.Errorf("NotBefore = %v, want %v", nb, later)
		}
		// The events of an advance that did not move the epoch are kept:
		// the attempt is part of the audit trail.
		if n := len(mustEvents(t, s)); n != 3 {
			t.Errorf("%d events, want 3", n)
		}
	})
	t.Run("ok/truncated-to-microsecond", func(t *testing.T) {
		s := open(t)
		at := base().Add(999 * time.Nanosecond)
		want := at.Truncate(time.Microsecond)
		got, err := s.AdvanceNotBefore(t.Context(), at)
		if err != nil {
			t.Fatalf("AdvanceNotBefore: %v", err)
		}
		if !got.Equal(want) {
			t.Errorf("AdvanceNotBefore = %v, want %v", got, want)
		}
		if nb := mustNotBefore(t, s); !nb.Equal(want) {
			t.Errorf("NotBefore = %v, want %v", nb, want)
		}
	})
	t.Run("ok/concurrent-advances-keep-the-latest", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		const n = 8
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				if _, err := s.AdvanceNotBefore(ctx, base().Add(time.Duration(i)*time.Minute)); err != nil {
					t.Errorf("AdvanceNotBefore: %v", err)
				}
			})
		}
		wg.Wait()
		if got, want := mustNotBefore(t, s), base().Add((n-1)*time.Minute); !got.Equal(want) {
			t.Errorf("NotBefore = %v, want %v", got, want)
		}
	})
	t.Run("fail/zero-time", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		gen := mustGeneration(t, s)
		if _, err := s.AdvanceNotBefore(ctx, time.Time{}, newEvent("e-zero", "store.epoch_advanced")); err == nil {
			t.Fatal("AdvanceNotBefore(zero time) succeeded")
		}
		if nb := mustNotBefore(t, s); !nb.IsZero() {
			t.Errorf("NotBefore = %v after a refused advance, want the zero time", nb)
		}
		if g := mustGeneration(t, s); g != gen {
			t.Errorf("generation went from %d to %d on a refused advance", gen, g)
		}
		if evs := mustEvents(t, s); len(evs) != 0 {
			t.Errorf("a refused advance wrote events: %v", eventIDs(evs))
		}
	})
}

func mustNotBefore(t *testing.T, s store.Store) time.Time {
	t.Helper()
	nb, err := s.NotBefore(t.Context())
	if err != nil {
		t.Fatalf("NotBefore: %v", err)
	}
	return nb
}
