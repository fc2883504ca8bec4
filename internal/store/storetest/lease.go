package storetest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/mandate-dev/mandate/internal/store"
)

// testArchiveLease checks the archive lease: one holder at a time, renewed
// by its holder, released only by it, and taken over once it expires;
// a holder whose lease was taken or released renews nothing; holders
// racing for a free lease get it once.
func testArchiveLease(t *testing.T, open func(t *testing.T) store.Store) {
	s, ctx := open(t), t.Context()
	lease := func(name, holder string, ttl time.Duration, want bool) {
		t.Helper()
		got, err := s.LeaseArchive(ctx, holder, ttl)
		if err != nil || got != want {
			t.Fatalf("%s: LeaseArchive(%s) = %v, %v; want %v", name, holder, got, err, want)
		}
	}
	release := func(holder string) {
		t.Helper()
		if err := s.ReleaseArchive(ctx, holder); err != nil {
			t.Fatalf("ReleaseArchive(%s): %v", holder, err)
		}
	}
	renew := func(name, holder string, want bool) {
		t.Helper()
		got, err := s.RenewArchive(ctx, holder, time.Minute)
		if err != nil || got != want {
			t.Fatalf("%s: RenewArchive(%s) = %v, %v; want %v", name, holder, got, err, want)
		}
	}
	release("a") // a lease no one holds
	renew("fail/renew-free", "a", false)
	lease("ok/free", "a", time.Minute, true)
	lease("fail/held", "b", time.Minute, false)
	lease("ok/renewed", "a", time.Minute, true)
	release("b") // not b's: a keeps it
	lease("fail/still-held", "b", time.Minute, false)
	renew("ok/renew", "a", true)
	renew("fail/renew-others", "b", false)
	release("a")
	renew("fail/renew-released", "a", false)
	lease("ok/released", "b", time.Minute, true)
	lease("fail/held-by-b", "a", time.Minute, false)
	release("b")

	// A holder that stopped without releasing is replaced once its lease
	// has expired; one whose lease expired while no one took it renews
	// it. (Only expiries are timed with short leases, so that a slow
	// machine cannot make one run out before it is looked at.)
	lease("ok/short", "a", time.Millisecond, true)
	time.Sleep(50 * time.Millisecond)
	renew("ok/renew-expired-not-taken", "a", true)
	lease("fail/renewed", "b", time.Minute, false)
	release("a")
	lease("ok/short-again", "a", time.Millisecond, true)
	time.Sleep(50 * time.Millisecond)
	lease("ok/expired", "b", time.Minute, true)
	lease("fail/taken-over", "a", time.Minute, false)
	renew("fail/renew-taken-over", "a", false)
	release("b")

	const racers = 8
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		got   []string
		fails []error
	)
	for i := range racers {
		wg.Go(func() {
			holder := fmt.Sprintf("racer-%d", i)
			ok, err := s.LeaseArchive(ctx, holder, time.Minute)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				fails = append(fails, err)
			}
			if ok {
				got = append(got, holder)
			}
		})
	}
	wg.Wait()
	if len(fails) > 0 || len(got) != 1 {
		t.Fatalf("fail/race: %d holders racing for a free lease: %v took it, errors %v; want one", racers, got, fails)
	}
}
