package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/mandate-dev/mandate/internal/store"
)

func testNonces(t *testing.T, open func(t *testing.T) store.Store) {
	s, ctx := open(t), t.Context()
	live := time.Now().Add(time.Hour)
	past := time.Now().Add(-time.Hour)
	for _, tc := range []struct {
		name      string
		namespace string
		id        string
		expires   time.Time
		wantErr   error
	}{
		{name: "ok/first-use", namespace: "client_assertion", id: "n1", expires: live},
		{name: "fail/replay", namespace: "client_assertion", id: "n1", expires: live, wantErr: store.ErrReplay},
		{name: "fail/replay-with-other-expiry", namespace: "client_assertion", id: "n1", expires: live.Add(time.Hour), wantErr: store.ErrReplay},
		// T63: a value in one namespace does not collide with another.
		{name: "ok/other-namespace", namespace: "dpop", id: "n1", expires: live},
		{name: "ok/other-id", namespace: "client_assertion", id: "n2", expires: live},
		{name: "ok/already-expired", namespace: "client_assertion", id: "old", expires: past},
		{name: "ok/expired-is-replaced", namespace: "client_assertion", id: "old", expires: live},
		{name: "fail/replaced-is-live", namespace: "client_assertion", id: "old", expires: live, wantErr: store.ErrReplay},
	} {
		// Sequential on purpose: each case builds on the ones before.
		err := s.UseNonce(ctx, tc.namespace, tc.id, tc.expires)
		if tc.wantErr == nil && err != nil {
			t.Errorf("%s: UseNonce: %v", tc.name, err)
		}
		if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
			t.Errorf("%s: UseNonce: err = %v, want %v", tc.name, err, tc.wantErr)
		}
	}
}

// testGeneration checks that every change to users, agents, delegations,
// keys or the not-before epoch moves the counter, and that a failed change does not.
func testGeneration(t *testing.T, open func(t *testing.T) store.Store) {
	s, ctx := open(t), t.Context()
	for _, tc := range []struct {
		name   string
		change func() error
		grows  bool
	}{
		{name: "ok/create-user", change: func() error { return s.CreateUser(ctx, newUser("u")) }, grows: true},
		{name: "ok/update-user", grows: true, change: func() error {
			_, err := s.UpdateUser(ctx, "u", func(u store.User) (store.User, error) { u.Version++; return u, nil })
			return err
		}},
		{name: "ok/create-agent", change: func() error { return s.CreateAgent(ctx, newAgent("a")) }, grows: true},
		{name: "ok/update-agent", grows: true, change: func() error {
			_, err := s.UpdateAgent(ctx, "a", func(a store.Agent) (store.Agent, error) { a.Disabled = true; return a, nil })
			return err
		}},
		{name: "ok/create-delegation", change: func() error { return s.CreateDelegation(ctx, newDelegation("d")) }, grows: true},
		{name: "ok/update-delegation", grows: true, change: func() error {
			_, err := s.UpdateDelegation(ctx, "d", func(d store.Delegation) (store.Delegation, error) { d.Revoked = true; return d, nil })
			return err
		}},
		{name: "ok/create-key", change: func() error { return s.CreateKey(ctx, newKey("k")) }, grows: true},
		{name: "ok/update-key", grows: true, change: func() error {
			_, err := s.UpdateKey(ctx, "k", func(k store.Key) (store.Key, error) { k.State = store.KeyActive; return k, nil })
			return err
		}},
		{name: "ok/advance-not-before", grows: true, change: func() error {
			_, err := s.AdvanceNotBefore(ctx, base())
			return err
		}},
		{name: "fail/update-user-fn-error", change: func() error {
			_, err := s.UpdateUser(ctx, "u", func(u store.User) (store.User, error) { return u, errFn })
			if errors.Is(err, errFn) {
				return nil
			}
			return fmt.Errorf("err = %v, want errFn", err)
		}},
		{name: "fail/create-user-duplicate", change: func() error {
			if err := s.CreateUser(ctx, newUser("u")); !errors.Is(err, store.ErrAlreadyExists) {
				return fmt.Errorf("err = %v, want ErrAlreadyExists", err)
			}
			return nil
		}},
	} {
		before := mustGeneration(t, s)
		if err := tc.change(); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		after := mustGeneration(t, s)
		if tc.grows && after <= before {
			t.Errorf("%s: generation went from %d to %d, want growth", tc.name, before, after)
		}
		if !tc.grows && after != before {
			t.Errorf("%s: generation went from %d to %d, want no change", tc.name, before, after)
		}
	}
}

func testConcurrency(t *testing.T, open func(t *testing.T) store.Store) {
	t.Run("ok/nonce-used-once", func(t *testing.T) {
		const n = 50
		s, ctx := open(t), t.Context()
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() { errs[i] = s.UseNonce(ctx, "client_assertion", "same-jti", time.Now().Add(time.Hour)) })
		}
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
			t.Errorf("%d of %d concurrent uses succeeded, want exactly 1", ok, n)
		}
	})
	t.Run("ok/update-increments", func(t *testing.T) {
		const n = 20
		s, ctx := open(t), t.Context()
		u := newUser("user:sam")
		u.Version = 0
		if err := s.CreateUser(ctx, u); err != nil {
			t.Fatalf("CreateUser: %v", err)
		}
		gen := mustGeneration(t, s)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				_, err := s.UpdateUser(ctx, u.ID, func(u store.User) (store.User, error) {
					u.Version++
					return u, nil
				}, newEvent(fmt.Sprintf("bump-%d", i), "user.bump"))
				if err != nil {
					t.Errorf("UpdateUser: %v", err)
				}
			})
		}
		wg.Wait()
		got, err := s.GetUser(ctx, u.ID)
		if err != nil {
			t.Fatalf("GetUser: %v", err)
		}
		if got.Version != n {
			t.Errorf("Version = %d after %d concurrent increments, want %d", got.Version, n, n)
		}
		if g := mustGeneration(t, s); g < gen+n {
			t.Errorf("generation went from %d to %d after %d updates", gen, g, n)
		}
		if evs := mustEvents(t, s); len(evs) != n {
			t.Errorf("%d events after %d updates, want %d", len(evs), n, n)
		}
	})
	// The revocation feed: concurrent revocations of different tokens get
	// the Seqs 1..n, each once, and lose none.
	t.Run("ok/revocation-seq-gapless", func(t *testing.T) {
		const n = 30
		s, ctx := open(t), t.Context()
		var b store.Batch
		for i := range n {
			b.Tokens = append(b.Tokens, newToken(fmt.Sprintf("t-%02d", i)))
		}
		if err := s.Commit(ctx, b); err != nil {
			t.Fatalf("Commit: %v", err)
		}
		start := make(chan struct{})
		var wg sync.WaitGroup
		for _, tok := range b.Tokens {
			wg.Go(func() {
				<-start
				if err := s.RevokeToken(ctx, tok.JTI, base(), newEvent("rev-"+tok.JTI, "token.revoke")); err != nil {
					t.Errorf("RevokeToken %s: %v", tok.JTI, err)
				}
			})
		}
		close(start)
		wg.Wait()
		rs := mustRevocations(t, s)
		if len(rs) != n {
			t.Fatalf("%d entries after %d revocations, want %d", len(rs), n, n)
		}
		seen := map[string]bool{}
		for i, r := range rs {
			if r.Seq != int64(i+1) {
				t.Errorf("entry %d (%s) has Seq %d, want %d", i, r.ID, r.Seq, i+1)
			}
			if seen[r.ID] {
				t.Errorf("token %s has two entries", r.ID)
			}
			seen[r.ID] = true
		}
		if seq := mustRevocationSeq(t, s); seq != n {
			t.Errorf("RevocationSeq = %d, want %d", seq, n)
		}
	})
	// Of concurrent revocations of one token, only the first makes an entry.
	t.Run("ok/revoke-same-token-once", func(t *testing.T) {
		const n = 20
		s, ctx := open(t), t.Context()
		if err := s.Commit(ctx, store.Batch{Tokens: []store.IssuedToken{newToken("t")}}); err != nil {
			t.Fatalf("Commit: %v", err)
		}
		start := make(chan struct{})
		var wg sync.WaitGroup
		for range n {
			wg.Go(func() {
				<-start
				if err := s.RevokeToken(ctx, "t", base()); err != nil {
					t.Errorf("RevokeToken: %v", err)
				}
			})
		}
		close(start)
		wg.Wait()
		if rs := mustRevocations(t, s); len(rs) != 1 || rs[0].Seq != 1 || rs[0].ID != "t" {
			t.Errorf("entries after %d concurrent revocations of one token = %+v, want one, with Seq 1", n, rs)
		}
	})
	t.Run("ok/chain-without-fork", func(t *testing.T) { testChainConcurrency(t, open) })
	// T72: concurrent commits get distinct Seqs and lose nothing.
	t.Run("ok/commit-seq-unique", func(t *testing.T) {
		const writers, each = 10, 5
		s, ctx := open(t), t.Context()
		var wg sync.WaitGroup
		for w := range writers {
			wg.Go(func() {
				for i := range each {
					id := fmt.Sprintf("w%d-%d", w, i)
					b := store.Batch{
						Tokens: []store.IssuedToken{newToken(id)},
						Events: []store.Event{newEvent(id, "token.issue")},
					}
					if err := s.Commit(ctx, b); err != nil {
						t.Errorf("Commit %s: %v", id, err)
					}
				}
			})
		}
		wg.Wait()
		evs := mustEvents(t, s)
		if len(evs) != writers*each {
			t.Fatalf("%d events, want %d", len(evs), writers*each)
		}
		for i := 1; i < len(evs); i++ {
			if evs[i].Seq >= evs[i-1].Seq {
				t.Errorf("Seq %d of %s is not below %d of %s", evs[i].Seq, evs[i].ID, evs[i-1].Seq, evs[i-1].ID)
			}
		}
	})
}
