package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/mandate-dev/mandate/internal/store"
)

// TestReadParts: a page read in parts is the page one query reads, for
// every start and size, whole, short at the end of the log, and where the
// seqs have a gap (a row deleted behind the store's back) or the log
// starts later than a part expects.
func TestReadParts(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "mandate.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const n = 2600
	evs := make([]store.Event, n)
	base := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	for i := range evs {
		evs[i] = store.Event{ID: fmt.Sprintf("evt_%d", i), Time: base.Add(time.Duration(i) * time.Millisecond),
			Action: "token.exchange", Result: "granted", Performer: "agent:a", Chain: []string{"agent:a", fmt.Sprintf("agent:%d", i%7)},
			Scopes: []string{"s:1"}, Context: []byte(fmt.Sprintf(`{"i":%d}`, i))}
	}
	if err := s.Commit(ctx, store.Batch{Events: evs}); err != nil {
		t.Fatal(err)
	}
	check := func(t *testing.T) {
		t.Helper()
		for _, after := range []int64{0, 1, 250, 499, 500, 700, 1000, 1599, 1600, 1601, 2000, 2100, 2599, 2600, 3000} {
			for _, limit := range []int{1000, 999, 600, 501, 500} {
				want, err := s.appendAfter(ctx, nil, after, limit)
				if err != nil {
					t.Fatal(err)
				}
				for parts := 2; parts <= maxReadParts && parts <= limit/minReadPart; parts++ {
					got, err := s.readParts(ctx, after, limit, parts)
					if err != nil {
						t.Fatal(err)
					}
					if !samePage(want, got) {
						t.Fatalf("readParts(after %d, limit %d, %d parts) differs from one query (-want +got):\n%s",
							after, limit, parts, cmp.Diff(want, got, cmpopts.EquateEmpty()))
					}
				}
				if got, err := s.EventsAfter(ctx, after, limit); err != nil || !samePage(want, got) {
					t.Fatalf("EventsAfter(%d, %d) differs from one query (%v)", after, limit, err)
				}
			}
		}
	}
	t.Run("ok/gapless", check)
	// Rows missing behind the store's back: the parts after the gap start
	// in the wrong place, and the rest of the page is read again.
	if _, err := s.w.ExecContext(ctx, "DELETE FROM events WHERE seq IN (1, 2, 3, 400, 1250, 1500, 2001)"); err != nil {
		t.Fatal(err)
	}
	t.Run("ok/with-gaps", check)
}

// samePage reports whether two pages hold the same events (cmp.Diff is
// slow on thousands of them).
func samePage(a, b []store.Event) bool {
	return len(a) == len(b) && (len(a) == 0 || reflect.DeepEqual(a, b))
}
