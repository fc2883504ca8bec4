package postgres_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/mandate-dev/mandate/internal/auditchain"
	"github.com/mandate-dev/mandate/internal/store"
	"github.com/mandate-dev/mandate/internal/store/postgres"
	"github.com/mandate-dev/mandate/internal/store/storetest"
	"github.com/mandate-dev/mandate/revocation"
)

// Tests of several instances on one database: each instance is a Store with
// its own connection pool on the same schema.

// twoInstances opens two stores on one new schema.
func twoInstances(t *testing.T) (a, b *postgres.Store, schema string) {
	t.Helper()
	schema = newSchema(t)
	return openStore(t, config(t, schema)), openStore(t, config(t, schema)), schema
}

// TestNonceAcrossInstances: of 50 concurrent uses of one assertion jti,
// spread over two instances, exactly one succeeds (THREATS T63).
func TestNonceAcrossInstances(t *testing.T) {
	a, b, _ := twoInstances(t)
	const n = 50
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		s := a
		if i%2 == 1 {
			s = b
		}
		wg.Go(func() {
			<-start
			errs[i] = s.UseNonce(t.Context(), "client_assertion", "same-jti", time.Now().Add(time.Hour))
		})
	}
	close(start)
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, store.ErrReplay):
			t.Errorf("UseNonce: %v, want nil or ErrReplay", err)
		}
	}
	if ok != 1 {
		t.Errorf("%d of %d concurrent uses across two instances succeeded, want exactly 1", ok, n)
	}
}

// TestSeqAcrossInstances: two instances commit concurrently; every event
// gets its own Seq, the Seqs of one commit are consecutive in slice order,
// and a reader never sees a hole, which would mean a lower Seq could still
// appear after a higher one was read (one total order, in commit order).
func TestSeqAcrossInstances(t *testing.T) {
	a, b, _ := twoInstances(t)
	const writers, commits = 4, 20 // per instance
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()

	readerDone := make(chan error, 1)
	go func() {
		var err error
		reads := 0
		for ctx.Err() == nil && err == nil {
			var evs []store.Event
			evs, err = a.QueryEvents(ctx, store.EventFilter{Limit: 1000})
			if err != nil {
				break
			}
			reads++
			// Newest first: a prefix without holes is max, max-1, ..., 1.
			for i, e := range evs {
				if want := int64(len(evs) - i); e.Seq != want {
					err = fmt.Errorf("read %d: event %d of %d has Seq %d, want %d (a hole)", reads, i, len(evs), e.Seq, want)
					break
				}
			}
		}
		if ctx.Err() != nil {
			err = nil
		}
		readerDone <- err
	}()

	var wg sync.WaitGroup
	for _, s := range []*postgres.Store{a, b} {
		for w := range writers {
			wg.Go(func() {
				for c := range commits {
					id := fmt.Sprintf("%p-w%d-c%d", s, w, c)
					err := s.Commit(t.Context(), store.Batch{
						Tokens: []store.IssuedToken{{JTI: id, IssuedAt: time.Now()}},
						Events: []store.Event{{ID: id + "-0", Action: "token.issue"}, {ID: id + "-1", Action: "token.issue"}},
					})
					if err != nil {
						t.Errorf("Commit %s: %v", id, err)
						return
					}
				}
			})
		}
	}
	wg.Wait()
	cancel()
	if err := <-readerDone; err != nil {
		t.Error(err)
	}

	evs, err := b.QueryEvents(t.Context(), store.EventFilter{Limit: 1000})
	if err != nil {
		t.Fatalf("QueryEvents: %v", err)
	}
	const total = 2 * writers * commits * 2
	if len(evs) != total {
		t.Fatalf("%d events, want %d", len(evs), total)
	}
	seen := map[int64]string{}
	for i, e := range evs {
		if prev, dup := seen[e.Seq]; dup {
			t.Errorf("Seq %d is held by %s and %s", e.Seq, prev, e.ID)
		}
		seen[e.Seq] = e.ID
		if want := int64(total - i); e.Seq != want {
			t.Errorf("event %s has Seq %d, want %d", e.ID, e.Seq, want)
		}
		// Newest first: a commit's second event comes just before its first.
		if i%2 == 0 && (len(e.ID) < 2 || e.ID[len(e.ID)-2:] != "-1" || evs[i+1].ID != e.ID[:len(e.ID)-2]+"-0") {
			t.Errorf("events %s and %s are not one commit's pair in order", e.ID, evs[i+1].ID)
		}
	}
}

// TestChainAcrossInstances: two instances append concurrently through the
// group commit, updates, revocations and the not-before epoch (THREATS
// T72). A reader that follows the log forward while they write verifies
// every record it reads against the one before, so it would see a fork or
// a hole the moment one appeared; at the end the merged log verifies from
// Genesis on both instances.
func TestChainAcrossInstances(t *testing.T) {
	a, b, _ := twoInstances(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	for _, id := range []string{"user:a", "user:b"} {
		if err := a.CreateUser(ctx, store.User{ID: id}); err != nil {
			t.Fatalf("CreateUser: %v", err)
		}
	}

	readerDone := make(chan error, 1)
	go func() {
		prev, seen := auditchain.Genesis, int64(0)
		var err error
		for ctx.Err() == nil && err == nil {
			var evs []store.Event
			if evs, err = b.EventsAfter(ctx, seen, 0); err != nil {
				break
			}
			for _, e := range evs {
				want := auditchain.Next(prev, e)
				if e.Seq != seen+1 || !bytes.Equal(e.Hash, want[:]) {
					err = fmt.Errorf("after Seq %d the reader got %s with Seq %d that does not chain on", seen, e.ID, e.Seq)
					break
				}
				prev, seen = want, e.Seq
			}
		}
		if ctx.Err() != nil {
			err = nil
		}
		readerDone <- err
	}()

	const writers, each = 4, 12 // per instance
	var wg sync.WaitGroup
	for n, s := range []*postgres.Store{a, b} {
		for w := range writers {
			wg.Go(func() {
				for i := range each {
					id := fmt.Sprintf("i%d-w%d-%d", n, w, i)
					ev := func(k string) store.Event { return store.Event{ID: id + k, Action: "test", Time: time.Now()} }
					var err error
					switch i % 4 {
					case 0, 1:
						err = s.Commit(ctx, store.Batch{Tokens: []store.IssuedToken{{JTI: id, IssuedAt: time.Now()}},
							Events: []store.Event{ev("-0"), ev("-1")}})
					case 2:
						_, err = s.UpdateUser(ctx, []string{"user:a", "user:b"}[w%2], func(u store.User) (store.User, error) {
							u.Version++
							return u, nil
						}, ev("-0"), ev("-1"))
					case 3:
						if err = s.RevokeToken(ctx, fmt.Sprintf("i%d-w%d-%d", n, w, i-3), time.Now(), ev("-0")); err == nil {
							_, err = s.AdvanceNotBefore(ctx, time.Unix(1, 0), ev("-1"))
						}
					}
					if err != nil {
						t.Errorf("%s: %v", id, err)
						return
					}
				}
			})
		}
	}
	wg.Wait()
	cancel()
	if err := <-readerDone; err != nil {
		t.Error(err)
	}
	const total = 2 * writers * each * 2
	for name, s := range map[string]*postgres.Store{"a": a, "b": b} {
		if got := storetest.VerifyChain(t, s); len(got) != total {
			t.Errorf("%s reads %d records, want %d", name, len(got), total)
		}
	}
}

// TestRevocationSeqAcrossInstances: two instances revoke tokens and raise
// users' versions concurrently; the revocation feed numbers every entry
// once, from 1 without gaps, and a reader never sees a hole (which would
// mean a lower Seq could still appear after a higher one was read), and the
// subject entries' generations grow with their Seq.
func TestRevocationSeqAcrossInstances(t *testing.T) {
	a, b, _ := twoInstances(t)
	const writers, each = 4, 10 // per instance
	var batch store.Batch
	for _, s := range []string{"a", "b"} {
		for w := range writers {
			for i := range each {
				batch.Tokens = append(batch.Tokens, store.IssuedToken{JTI: fmt.Sprintf("%s-w%d-%d", s, w, i), IssuedAt: time.Now()})
			}
		}
	}
	if err := a.Commit(t.Context(), batch); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	for w := range 2 * writers {
		if err := a.CreateUser(t.Context(), store.User{ID: fmt.Sprintf("u%d", w)}); err != nil {
			t.Fatalf("CreateUser: %v", err)
		}
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()

	readerDone := make(chan error, 1)
	go func() {
		var err error
		for reads := 1; ctx.Err() == nil && err == nil; reads++ {
			var rs []store.Revocation
			if rs, err = b.ListRevocations(ctx, 0, store.MaxRevocationLimit); err != nil {
				break
			}
			for i, r := range rs {
				if r.Seq != int64(i+1) {
					err = fmt.Errorf("read %d: entry %d of %d has Seq %d, want %d (a hole)", reads, i, len(rs), r.Seq, i+1)
					break
				}
			}
		}
		if ctx.Err() != nil {
			err = nil
		}
		readerDone <- err
	}()

	var wg sync.WaitGroup
	for n, s := range []*postgres.Store{a, b} {
		name := []string{"a", "b"}[n]
		for w := range writers {
			user := fmt.Sprintf("u%d", n*writers+w)
			wg.Go(func() {
				for i := range each {
					jti := fmt.Sprintf("%s-w%d-%d", name, w, i)
					if err := s.RevokeToken(t.Context(), jti, time.Now(), store.Event{ID: jti, Action: "token.revoke"}); err != nil {
						t.Errorf("RevokeToken %s: %v", jti, err)
						return
					}
					if _, err := s.UpdateUser(t.Context(), user, func(u store.User) (store.User, error) { u.Version++; return u, nil }); err != nil {
						t.Errorf("UpdateUser %s: %v", user, err)
						return
					}
				}
			})
		}
	}
	wg.Wait()
	cancel()
	if err := <-readerDone; err != nil {
		t.Error(err)
	}

	rs, err := a.ListRevocations(t.Context(), 0, store.MaxRevocationLimit)
	if err != nil {
		t.Fatalf("ListRevocations: %v", err)
	}
	const total = 2 * writers * each * 2
	if len(rs) != total {
		t.Fatalf("%d entries, want %d", len(rs), total)
	}
	tokens, gens := map[string]bool{}, map[int64]bool{}
	var lastGen int64
	for i, r := range rs {
		if r.Seq != int64(i+1) {
			t.Errorf("entry %d has Seq %d, want %d", i, r.Seq, i+1)
		}
		switch r.Kind {
		case revocation.KindToken:
			if tokens[r.ID] {
				t.Errorf("token %s has two entries", r.ID)
			}
			tokens[r.ID] = true
		case revocation.KindSubject:
			// The generation row, like revocations_head, is locked until
			// commit: Gen grows with Seq.
			if r.Gen <= lastGen {
				t.Errorf("entry %d has Gen %d, not above the previous subject entry's %d", r.Seq, r.Gen, lastGen)
			}
			lastGen = r.Gen
			gens[r.Gen] = true
		}
	}
	if len(tokens) != total/2 || len(gens) != total/2 {
		t.Errorf("%d token and %d subject entries, want %d of each", len(tokens), len(gens), total/2)
	}
	if seq, err := b.RevocationSeq(t.Context()); err != nil || seq != total {
		t.Errorf("RevocationSeq on b = %d, %v; want %d", seq, err, total)
	}
}

// TestListen: a change made through one instance (the not-before epoch
// included) reaches another's Listen; tokens, revocations and nonces do not
// notify, and neither does a change in another schema. Listen returns nil when its context ends.
func TestListen(t *testing.T) {
	a, b, _ := twoInstances(t)
	other := openStore(t, config(t, newSchema(t)))
	ctx, cancel := context.WithCancel(t.Context())
	gens := make(chan int64, 16)
	done := make(chan error, 1)
	go func() { done <- a.Listen(ctx, func(g int64) { gens <- g }) }()

	next := func(what string) int64 {
		t.Helper()
		select {
		case g := <-gens:
			return g
		case err := <-done:
			t.Fatalf("%s: Listen returned %v", what, err)
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: no notification within 5s", what)
		}
		return 0
	}
	quiet := func(what string) {
		t.Helper()
		select {
		case g := <-gens:
			t.Errorf("%s: notified of generation %d, want no notification", what, g)
		case <-time.After(300 * time.Millisecond):
		}
	}

	if g := next("catch-up call"); g != 0 {
		t.Errorf("catch-up generation = %d, want 0 on a new schema", g)
	}
	if err := b.CreateUser(t.Context(), store.User{ID: "u"}); err != nil {
		t.Fatalf("CreateUser on b: %v", err)
	}
	want, err := b.Generation(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if g := next("CreateUser on b"); g != want {
		t.Errorf("notified generation = %d, want %d", g, want)
	}

	if err := b.Commit(t.Context(), store.Batch{Tokens: []store.IssuedToken{{JTI: "t"}}, Events: []store.Event{{ID: "e"}}}); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	if err := b.RevokeToken(t.Context(), "t", time.Now()); err != nil {
		t.Fatalf("RevokeToken: %v", err)
	}
	if err := b.UseNonce(t.Context(), "client_assertion", "n", time.Now().Add(time.Hour)); err != nil {
		t.Fatalf("UseNonce: %v", err)
	}
	if err := other.CreateUser(t.Context(), store.User{ID: "u"}); err != nil {
		t.Fatalf("CreateUser in another schema: %v", err)
	}
	quiet("tokens, nonces and another schema")
	if g, err := b.Generation(t.Context()); err != nil || g != want {
		t.Errorf("Generation after tokens and nonces = %d, %v; want %d", g, err, want)
	}

	if _, err := b.UpdateAgent(t.Context(), "missing", func(a store.Agent) (store.Agent, error) { return a, nil }); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("UpdateAgent missing: %v", err)
	}
	if _, err := b.UpdateUser(t.Context(), "u", func(u store.User) (store.User, error) { return u, errors.New("no") }); err == nil {
		t.Fatal("a failing update succeeded")
	}
	quiet("failed updates")

	if _, err := b.UpdateUser(t.Context(), "u", func(u store.User) (store.User, error) { u.Version++; return u, nil }); err != nil {
		t.Fatalf("UpdateUser: %v", err)
	}
	if g := next("UpdateUser on b"); g != want+1 {
		t.Errorf("notified generation = %d, want %d", g, want+1)
	}

	// THREATS T56: a restore's epoch reaches the other instances' caches at
	// once, like any other change.
	if _, err := b.AdvanceNotBefore(t.Context(), time.Now()); err != nil {
		t.Fatalf("AdvanceNotBefore: %v", err)
	}
	if g := next("AdvanceNotBefore on b"); g != want+2 {
		t.Errorf("notified generation = %d, want %d", g, want+2)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Listen after its context ended: %v, want nil", err)
		}
	case <-time.After(2 * time.Second):
		t.Error("Listen did not return within 2s of its context ending")
	}
}
