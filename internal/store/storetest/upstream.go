package storetest

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mandate-dev/mandate/internal/store"
)

func newUpstreamGrant(subject, provider string, checked time.Time) store.UpstreamGrant {
	return store.UpstreamGrant{
		Subject: subject, Provider: provider, Sealed: []byte("sealed:" + subject + "@" + provider),
		CheckedAt: checked, CreatedAt: base(),
	}
}

// testUpstreamGrants covers store.UpstreamGrants.
func testUpstreamGrants(t *testing.T, open func(t *testing.T) store.Store) {
	const idp, other = "https://idp.example", "https://other.example"
	t.Run("ok/put-due-touch-delete", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		a := newUpstreamGrant("user:sam", idp, base().Add(time.Minute))
		b := newUpstreamGrant("user:ana", idp, base())
		c := newUpstreamGrant("user:sam", other, base().Add(time.Hour))
		for _, g := range []store.UpstreamGrant{a, b, c} {
			if err := s.PutUpstreamGrant(ctx, g); err != nil {
				t.Fatalf("PutUpstreamGrant(%s, %s): %v", g.Subject, g.Provider, err)
			}
		}
		due, err := s.DueUpstreamGrants(ctx, idp, base().Add(2*time.Minute), 10)
		if err != nil {
			t.Fatalf("DueUpstreamGrants: %v", err)
		}
		if diff := cmp.Diff([]store.UpstreamGrant{b, a}, due); diff != "" {
			t.Errorf("due, oldest first (-want +got):\n%s", diff)
		}
		if due, _ := s.DueUpstreamGrants(ctx, idp, base().Add(2*time.Hour), 1); len(due) != 1 || due[0].Subject != "user:ana" {
			t.Errorf("due with limit 1 = %v, want user:ana's", due)
		}
		// A recheck: the new token and the time it was asked.
		at := base().Add(3 * time.Minute)
		if err := s.TouchUpstreamGrant(ctx, a.Subject, a.Provider, a.CheckedAt, []byte("rotated"), at); err != nil {
			t.Fatalf("TouchUpstreamGrant: %v", err)
		}
		// A touch without a token keeps it.
		if err := s.TouchUpstreamGrant(ctx, b.Subject, b.Provider, b.CheckedAt, nil, at); err != nil {
			t.Fatalf("TouchUpstreamGrant(nil): %v", err)
		}
		due, err = s.DueUpstreamGrants(ctx, idp, at.Add(time.Microsecond), 10)
		if err != nil {
			t.Fatalf("DueUpstreamGrants: %v", err)
		}
		want := []store.UpstreamGrant{b, a}
		want[0].CheckedAt = at
		want[1].CheckedAt, want[1].Sealed = at, []byte("rotated")
		if diff := cmp.Diff(want, due); diff != "" {
			t.Errorf("after the touches (-want +got):\n%s", diff)
		}
		if err := s.DeleteUpstreamGrant(ctx, a.Subject, a.Provider, newEvent("e-del", "user.revoked")); err != nil {
			t.Fatalf("DeleteUpstreamGrant: %v", err)
		}
		if evs := mustEvents(t, s); len(evs) != 1 || evs[0].ID != "e-del" {
			t.Errorf("events = %v, want e-del", eventIDs(evs))
		}
		// Deleting one that is gone succeeds.
		if err := s.DeleteUpstreamGrant(ctx, a.Subject, a.Provider); err != nil {
			t.Errorf("DeleteUpstreamGrant again: %v", err)
		}
		if err := s.TouchUpstreamGrant(ctx, a.Subject, a.Provider, at, nil, at); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("TouchUpstreamGrant of a deleted grant: err = %v, want ErrNotFound", err)
		}
		due, _ = s.DueUpstreamGrants(ctx, idp, base().Add(2*time.Hour), 10)
		if len(due) != 1 || due[0].Subject != "user:ana" {
			t.Errorf("due after the delete = %v, want ana's", due)
		}
		due, _ = s.DueUpstreamGrants(ctx, other, base().Add(2*time.Hour), 10)
		if diff := cmp.Diff([]store.UpstreamGrant{c}, due); diff != "" {
			t.Errorf("due at the other provider (-want +got):\n%s", diff)
		}
	})
	t.Run("ok/put-replaces", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		g := newUpstreamGrant("user:sam", idp, base())
		if err := s.PutUpstreamGrant(ctx, g); err != nil {
			t.Fatal(err)
		}
		g2 := g
		g2.Sealed, g2.CheckedAt, g2.CreatedAt = []byte("second"), base().Add(time.Hour), base().Add(time.Hour)
		if err := s.PutUpstreamGrant(ctx, g2); err != nil {
			t.Fatalf("PutUpstreamGrant again: %v", err)
		}
		due, err := s.DueUpstreamGrants(ctx, idp, base().Add(2*time.Hour), 10)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]store.UpstreamGrant{g2}, due); diff != "" {
			t.Errorf("after the second put (-want +got):\n%s", diff)
		}
		// A touch begun from the replaced grant's time changes nothing.
		if err := s.TouchUpstreamGrant(ctx, g.Subject, g.Provider, g.CheckedAt, []byte("stale"), base().Add(3*time.Hour)); !errors.Is(err, store.ErrConflict) {
			t.Errorf("touch from a replaced grant: err = %v, want ErrConflict", err)
		}
	})
	t.Run("ok/concurrent-touch-one-wins", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		g := newUpstreamGrant("user:sam", idp, base())
		if err := s.PutUpstreamGrant(ctx, g); err != nil {
			t.Fatal(err)
		}
		errs := race(8, func(i int) error {
			return s.TouchUpstreamGrant(ctx, g.Subject, g.Provider, g.CheckedAt, nil, base().Add(time.Duration(i+1)*time.Second))
		})
		oneWinner(t, errs, store.ErrConflict)
	})
	t.Run("fail/bad-record", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		for name, change := range map[string]func(*store.UpstreamGrant){
			"no-subject":  func(g *store.UpstreamGrant) { g.Subject = "" },
			"no-provider": func(g *store.UpstreamGrant) { g.Provider = "" },
			"no-sealed":   func(g *store.UpstreamGrant) { g.Sealed = nil },
			"no-checked":  func(g *store.UpstreamGrant) { g.CheckedAt = time.Time{} },
		} {
			g := newUpstreamGrant("user:sam", idp, base())
			change(&g)
			badRecord(t, s, name, s.PutUpstreamGrant(ctx, g))
		}
		if err := s.TouchUpstreamGrant(ctx, "user:sam", idp, base(), nil, time.Time{}); err == nil {
			t.Error("a touch at the zero time succeeded")
		}
	})
	t.Run("ok/delete-user-deletes-grants", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		if err := s.CreateUser(ctx, newUser("user:sam")); err != nil {
			t.Fatal(err)
		}
		for _, g := range []store.UpstreamGrant{
			newUpstreamGrant("user:sam", idp, base()), newUpstreamGrant("user:sam", other, base()),
			newUpstreamGrant("user:ana", idp, base()),
		} {
			if err := s.PutUpstreamGrant(ctx, g); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.DeleteUser(ctx, "user:sam"); err != nil {
			t.Fatalf("DeleteUser: %v", err)
		}
		due, err := s.DueUpstreamGrants(ctx, idp, base().Add(time.Hour), 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(due) != 1 || due[0].Subject != "user:ana" {
			t.Errorf("grants after DeleteUser = %v, want only user:ana's", due)
		}
		if due, err := s.DueUpstreamGrants(ctx, other, base().Add(time.Hour), 10); err != nil || len(due) != 0 {
			t.Errorf("grants at the other provider after DeleteUser = %v, %v, want none", due, err)
		}
	})
	t.Run("ok/key-created-once", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		first, err := s.UpstreamGrantKey(ctx, func() ([]byte, error) { return bytes.Repeat([]byte{1}, 32), nil })
		if err != nil {
			t.Fatalf("UpstreamGrantKey: %v", err)
		}
		again, err := s.UpstreamGrantKey(ctx, func() ([]byte, error) { return nil, errors.New("must not be called") })
		if err != nil {
			t.Fatalf("UpstreamGrantKey again: %v", err)
		}
		if !bytes.Equal(first, again) || !bytes.Equal(first, bytes.Repeat([]byte{1}, 32)) {
			t.Errorf("keys = %x, %x, want the first one twice", first, again)
		}
	})
	t.Run("ok/key-race-one-wins", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		keys := make([][]byte, 6)
		race(len(keys), func(i int) error {
			k, err := s.UpstreamGrantKey(ctx, func() ([]byte, error) { return bytes.Repeat([]byte{byte(i + 1)}, 32), nil })
			keys[i] = k
			return err
		})
		for i, k := range keys {
			if len(k) != 32 || !bytes.Equal(k, keys[0]) {
				t.Errorf("caller %d got key %x, caller 0 %x", i, k, keys[0])
			}
		}
	})
}
