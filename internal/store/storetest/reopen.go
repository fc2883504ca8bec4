package storetest

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mandate-dev/mandate/internal/store"
)

// RunReopen runs the tests that need one database opened more than once:
// data survives Close and a new open (a restart), and two handles open at
// the same time (a server and a CLI command, or two instances) see each
// other's writes. newDB is called once per subtest to make a new, empty
// database and returns a function that opens a handle on it; the suite
// closes every handle it opens.
func RunReopen(t *testing.T, newDB func(t *testing.T) (open func() store.Store)) {
	t.Run("ok/reopen-keeps-everything", func(t *testing.T) { t.Parallel(); testReopen(t, newDB(t)) })
	t.Run("ok/two-handles", func(t *testing.T) { t.Parallel(); testTwoHandles(t, newDB(t)) })
	t.Run("ok/chain-across-reopen-and-handles", func(t *testing.T) { t.Parallel(); testChainHandles(t, newDB(t)) })
}

func closeStore(t *testing.T, s store.Store) {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

func testReopen(t *testing.T, open func() store.Store) {
	ctx := t.Context()
	s := open()
	revokedTok := newToken("t-revoked")
	user, agent, dlg, key := newUser("u"), newAgent("a"), newDelegation("d"), newKey("k")
	writes := []struct {
		name string
		do   func() error
	}{
		{"CreateUser", func() error { return s.CreateUser(ctx, user, newEvent("e-user", "user.create")) }},
		{"CreateAgent", func() error { return s.CreateAgent(ctx, agent) }},
		{"CreateDelegation", func() error { return s.CreateDelegation(ctx, dlg) }},
		{"CreateKey", func() error { return s.CreateKey(ctx, key) }},
		{"Commit", func() error {
			return s.Commit(ctx, store.Batch{
				Tokens: []store.IssuedToken{newToken("t-live"), revokedTok},
				Events: []store.Event{newEvent("e-issue", "token.issue")},
			})
		}},
		{"RevokeToken", func() error { return s.RevokeToken(ctx, revokedTok.JTI, base(), newEvent("e-revoke", "token.revoke")) }},
		{"UseNonce", func() error { return s.UseNonce(ctx, "client_assertion", "n1", time.Now().Add(time.Hour)) }},
		{"AdvanceNotBefore", func() error {
			_, err := s.AdvanceNotBefore(ctx, base().Add(time.Hour), newEvent("e-epoch", "store.epoch_advanced"))
			return err
		}},
	}
	for _, w := range writes {
		if err := w.do(); err != nil {
			t.Fatalf("%s: %v", w.name, err)
		}
	}
	gen := mustGeneration(t, s)
	events := mustEvents(t, s)
	closeStore(t, s)

	s = open()
	defer closeStore(t, s)
	if got, err := s.GetUser(ctx, user.ID); err != nil || !cmp.Equal(user, got, opts()) {
		t.Errorf("GetUser after reopen = %+v, %v; want %+v", got, err, user)
	}
	if got, err := s.GetAgent(ctx, agent.ID); err != nil || !cmp.Equal(agent, got, opts()) {
		t.Errorf("GetAgent after reopen = %+v, %v; want %+v", got, err, agent)
	}
	if got, err := s.GetDelegation(ctx, dlg.ID); err != nil || !cmp.Equal(dlg, got, opts()) {
		t.Errorf("GetDelegation after reopen = %+v, %v; want %+v", got, err, dlg)
	}
	if got, err := s.ListKeys(ctx); err != nil || !cmp.Equal([]store.Key{key}, got, opts()) {
		t.Errorf("ListKeys after reopen = %+v, %v; want [%+v]", got, err, key)
	}
	if got, err := s.GetToken(ctx, revokedTok.JTI); err != nil || !got.Revoked {
		t.Errorf("GetToken after reopen = %+v, %v; want it revoked", got, err)
	}
	if _, err := s.GetToken(ctx, "t-live"); err != nil {
		t.Errorf("GetToken t-live after reopen: %v", err)
	}
	if err := s.UseNonce(ctx, "client_assertion", "n1", time.Now().Add(time.Hour)); !errors.Is(err, store.ErrReplay) {
		t.Errorf("UseNonce after reopen: err = %v, want ErrReplay", err)
	}
	// THREATS T56: the epoch survives a restart, like a revocation.
	if nb := mustNotBefore(t, s); !nb.Equal(base().Add(time.Hour)) {
		t.Errorf("NotBefore after reopen = %v, want %v", nb, base().Add(time.Hour))
	}
	if g := mustGeneration(t, s); g != gen {
		t.Errorf("Generation after reopen = %d, want %d", g, gen)
	}
	if diff := cmp.Diff(events, mustEvents(t, s)); diff != "" {
		t.Errorf("events after reopen (-want +got):\n%s", diff)
	}
	// Seq carries on from where it was; it never restarts.
	if err := s.Commit(ctx, store.Batch{Events: []store.Event{newEvent("e-after", "token.issue")}}); err != nil {
		t.Fatalf("Commit after reopen: %v", err)
	}
	if got := mustEvents(t, s); len(got) == 0 || got[0].ID != "e-after" || got[0].Seq <= events[0].Seq {
		t.Errorf("the event written after reopen does not come first with a higher Seq: %+v", got)
	}
}

func testTwoHandles(t *testing.T, open func() store.Store) {
	ctx := t.Context()
	a, b := open(), open()
	defer closeStore(t, a)
	defer closeStore(t, b)

	genB := mustGeneration(t, b)
	u := newUser("user:sam")
	u.Version = 0
	if err := a.CreateUser(ctx, u); err != nil {
		t.Fatalf("CreateUser on a: %v", err)
	}
	if got, err := b.GetUser(ctx, u.ID); err != nil || !cmp.Equal(u, got, opts()) {
		t.Errorf("GetUser on b = %+v, %v; want %+v", got, err, u)
	}
	if g := mustGeneration(t, b); g <= genB {
		t.Errorf("b's generation stayed at %d after a wrote", g)
	}
	if err := a.UseNonce(ctx, "client_assertion", "n1", time.Now().Add(time.Hour)); err != nil {
		t.Fatalf("UseNonce on a: %v", err)
	}
	if err := b.UseNonce(ctx, "client_assertion", "n1", time.Now().Add(time.Hour)); !errors.Is(err, store.ErrReplay) {
		t.Errorf("UseNonce on b: err = %v, want ErrReplay", err)
	}
	if err := b.CreateUser(ctx, u); !errors.Is(err, store.ErrAlreadyExists) {
		t.Errorf("CreateUser on b: err = %v, want ErrAlreadyExists", err)
	}

	// Both handles increment the same user at once: no lost update.
	const each = 10
	var wg sync.WaitGroup
	for _, s := range []store.Store{a, b} {
		for range each {
			wg.Go(func() {
				_, err := s.UpdateUser(ctx, u.ID, func(u store.User) (store.User, error) {
					u.Version++
					return u, nil
				})
				if err != nil {
					t.Errorf("UpdateUser: %v", err)
				}
			})
		}
	}
	wg.Wait()
	for name, s := range map[string]store.Store{"a": a, "b": b} {
		got, err := s.GetUser(ctx, u.ID)
		if err != nil {
			t.Fatalf("GetUser on %s: %v", name, err)
		}
		if got.Version != 2*each {
			t.Errorf("Version seen by %s = %d, want %d", name, got.Version, 2*each)
		}
	}
	if ga, gb := mustGeneration(t, a), mustGeneration(t, b); ga != gb {
		t.Errorf("generations differ: a %d, b %d", ga, gb)
	}
}
