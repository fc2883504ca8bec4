package archive_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/mandate-dev/mandate/internal/archive"
	"github.com/mandate-dev/mandate/internal/auditlog"
	"github.com/mandate-dev/mandate/internal/store"
	"github.com/mandate-dev/mandate/internal/store/postgres/pgtest"
	"github.com/mandate-dev/mandate/internal/store/sqlite"
)

// TestT98RacingArchivers runs three archivers at once, many rounds, on one
// store and one archive directory, as three instances with a retention
// would: each with its own clock (so that, alone, each would cut its
// segments elsewhere), resting at random between its steps, and in every
// other round with a lease so short that it runs out in the middle of a
// pass and another archiver takes it over. Records keep arriving between
// the rounds. Afterwards the archives and the live log verify as one
// chain, no two segments overlap, and every record is in exactly one
// place. On SQLite, and on PostgreSQL when MANDATE_TEST_POSTGRES_URL is
// set.
func TestT98RacingArchivers(t *testing.T) {
	backends := []struct {
		name string
		open func(t *testing.T) store.Store
	}{
		{"sqlite", func(t *testing.T) store.Store {
			s, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "mandate.db"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		}},
		{"postgres", func(t *testing.T) store.Store {
			pgtest.URL(t) // skips without MANDATE_TEST_POSTGRES_URL
			return pgtest.Open(t)
		}},
	}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			raceArchivers(t, b.open(t))
		})
	}
}

func raceArchivers(t *testing.T, s store.Store) {
	ctx := t.Context()
	dir := filepath.Join(t.TempDir(), "archive")
	cp := &auditlog.Checkpointer{Store: s, Origin: "https://mandate.test", Now: func() time.Time { return now }}
	const (
		archivers = 3
		rounds    = 12
	)
	total := 0
	var errs sync.Map // error text → true, for the log
	for round := range rounds {
		// Records old enough to archive, checkpointed (the newest
		// always stays).
		appendEvents(t, s, 37, 37)
		total += 37
		if _, err := cp.Checkpoint(ctx); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for i := range archivers {
			a := &archive.Archiver{Store: s, Archive: archive.Dir{Path: dir}, Origin: "https://mandate.test",
				Retention: 90 * 24 * time.Hour, SegmentSize: 3 + i, DeleteBatch: 2,
				Holder: fmt.Sprintf("instance-%d", i),
				// Each its own clock: alone, each would cut elsewhere.
				Now: func() time.Time { return now.Add(time.Duration(i*7) * time.Second) },
				Rest: func(ctx context.Context, _ time.Duration) error {
					time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond)
					return ctx.Err()
				},
			}
			if round%2 == 1 {
				a.LeaseTTL = 2 * time.Millisecond
			}
			wg.Go(func() {
				// Passes again and again for a while, as the instances'
				// tickers would, so that an archiver finds the lease of
				// one that rests past it expired.
				for end := time.Now().Add(100 * time.Millisecond); time.Now().Before(end); {
					if _, err := a.Pass(ctx); err != nil {
						errs.Store(err.Error(), true)
						time.Sleep(time.Millisecond)
					}
				}
			})
		}
		wg.Wait()
	}
	errs.Range(func(k, _ any) bool { t.Logf("a racing pass stopped: %s", k); return true })

	// One pass alone finishes what the racers left.
	last := &archive.Archiver{Store: s, Archive: archive.Dir{Path: dir}, Origin: "https://mandate.test",
		Retention: 90 * 24 * time.Hour, Now: func() time.Time { return now }}
	if _, err := last.Pass(ctx); err != nil {
		t.Fatalf("a pass alone after the race: %v", err)
	}
	rep := verify(t, s, dir)
	if !rep.OK() || rep.Records != int64(total) {
		t.Fatalf("Verify = %+v, want OK with %d records", rep, total)
	}
	names, err := archive.Dir{Path: dir}.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	next := int64(1)
	for _, n := range names {
		first, last, err := archive.ParseName(n)
		if err != nil || first != next {
			t.Fatalf("segment %s does not follow record %d: %v (segments %v)", n, next-1, err, names)
		}
		next = last + 1
	}
	// Every record once: the archived ones from the segments, the rest
	// from the live log.
	seen := map[int64]bool{}
	archived, err := archive.ReadEvents(ctx, archive.Dir{Path: dir}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	live, err := s.EventsAfter(ctx, 0, store.MaxPageLimit)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range append(archived, live...) {
		if seen[ev.Seq] || ev.Seq < 1 || ev.Seq > int64(total) {
			t.Fatalf("record %d is twice in the archives and the live log, or out of 1 to %d", ev.Seq, total)
		}
		seen[ev.Seq] = true
	}
	if len(seen) != total || len(live) == 0 || live[0].Seq != next {
		t.Fatalf("%d records in %d segments and a live log of %d from %d; want %d, the live log from %d",
			len(seen), len(names), len(live), live[0].Seq, total, next)
	}
	if len(names) < 2*rounds {
		t.Fatalf("%d segments after %d rounds: the archivers archived too little", len(names), rounds)
	}
}
