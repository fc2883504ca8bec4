package cache_test

import (
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/mandate-dev/mandate/internal/store"
	"github.com/mandate-dev/mandate/internal/store/cache"
	"github.com/mandate-dev/mandate/internal/store/sqlite"
	"github.com/mandate-dev/mandate/internal/store/storetest"
)

// openTwo opens two handles on one SQLite file: a server's and, for
// example, a CLI command's.
func openTwo(t *testing.T) (store.Store, store.Store) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "mandate.db")
	var out [2]store.Store
	for i := range out {
		s, err := sqlite.Open(t.Context(), path)
		if err != nil {
			t.Fatalf("sqlite.Open: %v", err)
		}
		t.Cleanup(func() { _ = s.Close() })
		out[i] = s
	}
	return out[0], out[1]
}

func mustNotBefore(t *testing.T, s store.Store) time.Time {
	t.Helper()
	nb, err := s.NotBefore(t.Context())
	if err != nil {
		t.Fatalf("NotBefore: %v", err)
	}
	return nb
}

func TestNotBefore(t *testing.T) {
	at := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	t.Run("ok/read-once", func(t *testing.T) {
		raw, _ := openTwo(t)
		f := storetest.NewFaulty(raw)
		c := cache.New(f)
		for range 3 {
			if nb := mustNotBefore(t, c); !nb.IsZero() {
				t.Fatalf("NotBefore = %v, want the zero time", nb)
			}
		}
		if n := f.Calls("NotBefore"); n != 1 {
			t.Errorf("the store was asked %d times, want once", n)
		}
	})
	t.Run("ok/advance-invalidates", func(t *testing.T) {
		raw, _ := openTwo(t)
		c := cache.New(raw)
		_ = mustNotBefore(t, c)
		if _, err := c.AdvanceNotBefore(t.Context(), at); err != nil {
			t.Fatalf("AdvanceNotBefore: %v", err)
		}
		if nb := mustNotBefore(t, c); !nb.Equal(at) {
			t.Errorf("NotBefore after an advance through the cache = %v, want %v", nb, at)
		}
	})
	t.Run("ok/other-process-seen-at-sync", func(t *testing.T) {
		server, cli := openTwo(t)
		c := cache.New(server)
		c.Sync(t.Context())
		_ = mustNotBefore(t, c)
		if _, err := cli.AdvanceNotBefore(t.Context(), at); err != nil {
			t.Fatalf("AdvanceNotBefore: %v", err)
		}
		c.Sync(t.Context())
		if nb := mustNotBefore(t, c); !nb.Equal(at) {
			t.Errorf("NotBefore after Sync = %v, want %v", nb, at)
		}
	})
	t.Run("fail/store-error-not-cached", func(t *testing.T) {
		raw, _ := openTwo(t)
		f := storetest.NewFaulty(raw)
		c := cache.New(f)
		f.Fail("NotBefore", nil)
		if _, err := c.NotBefore(t.Context()); err == nil {
			t.Fatal("NotBefore succeeded on a failing store")
		}
		f.Heal()
		if _, err := raw.AdvanceNotBefore(t.Context(), at); err != nil {
			t.Fatalf("AdvanceNotBefore: %v", err)
		}
		if nb := mustNotBefore(t, c); !nb.Equal(at) {
			t.Errorf("NotBefore after the store healed = %v, want %v", nb, at)
		}
	})
}

// TestAbsent: a lookup that finds nothing is cached like one that finds
// something (the subject of an agent's own token is looked up as a user on
// every exchange that presents it), it is forgotten when the record is
// created, here or by another process, and a flood of made-up ids cannot
// grow the cache without bound.
func TestAbsent(t *testing.T) {
	ctx := t.Context()
	lookup := func(t *testing.T, s store.Store, id string) error {
		t.Helper()
		_, err := s.GetUser(ctx, id)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("GetUser(%q): %v", id, err)
		}
		return err
	}
	t.Run("ok/asked-once", func(t *testing.T) {
		raw, _ := openTwo(t)
		f := storetest.NewFaulty(raw)
		c := cache.New(f)
		for range 3 {
			if err := lookup(t, c, "agent:bot"); err == nil {
				t.Fatal("GetUser found a user that does not exist")
			}
		}
		if n := f.Calls("GetUser"); n != 1 {
			t.Errorf("the store was asked %d times, want once", n)
		}
	})
	t.Run("ok/created-through-the-cache", func(t *testing.T) {
		raw, _ := openTwo(t)
		c := cache.New(raw)
		_ = lookup(t, c, "user:ann")
		if err := c.CreateUser(ctx, store.User{ID: "user:ann", Permissions: []string{"a"}}); err != nil {
			t.Fatal(err)
		}
		if err := lookup(t, c, "user:ann"); err != nil {
			t.Errorf("a user created through the cache is still absent: %v", err)
		}
	})
	t.Run("ok/created-by-another-process", func(t *testing.T) {
		server, cli := openTwo(t)
		c := cache.New(server)
		c.Sync(ctx)
		_ = lookup(t, c, "user:ann")
		if err := cli.CreateUser(ctx, store.User{ID: "user:ann", Permissions: []string{"a"}}); err != nil {
			t.Fatal(err)
		}
		c.Sync(ctx)
		if err := lookup(t, c, "user:ann"); err != nil {
			t.Errorf("a user created by another process is still absent after Sync: %v", err)
		}
	})
	t.Run("ok/bounded", func(t *testing.T) {
		raw, _ := openTwo(t)
		f := storetest.NewFaulty(raw)
		c := cache.New(f)
		_ = lookup(t, c, "user:first")
		for i := range 5000 {
			_ = lookup(t, c, fmt.Sprintf("user:flood-%d", i))
		}
		before := f.Calls("GetUser")
		_ = lookup(t, c, "user:first")
		if f.Calls("GetUser") != before+1 {
			t.Error("the first absent id outlived a flood larger than the bound: the set grew past it")
		}
	})
	t.Run("fail/store-error-not-cached", func(t *testing.T) {
		raw, _ := openTwo(t)
		f := storetest.NewFaulty(raw)
		c := cache.New(f)
		f.Fail("GetUser", nil)
		if _, err := c.GetUser(ctx, "user:ann"); err == nil || errors.Is(err, store.ErrNotFound) {
			t.Fatalf("GetUser on a failing store: %v, want the failure", err)
		}
		f.Heal()
		if err := raw.CreateUser(ctx, store.User{ID: "user:ann", Permissions: []string{"a"}}); err != nil {
			t.Fatal(err)
		}
		if err := lookup(t, c, "user:ann"); err != nil {
			t.Errorf("after the store healed: %v", err)
		}
	})
}

// TestSignInPassesThrough: sign-in's records are never cached: a session
// deleted by another process is gone for the cache at once, and a code
// redeemed through one handle is a replay through the other.
func TestSignInPassesThrough(t *testing.T) {
	ctx := t.Context()
	raw, cli := openTwo(t)
	c := cache.New(raw)
	at := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	hash := []byte("0123456789abcdef0123456789abcdef")
	if err := c.CreateSession(ctx, store.Session{Hash: hash, Subject: "user:sam", ExpiresAt: at.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetSession(ctx, hash); err != nil {
		t.Fatalf("GetSession: %v", err)
	}
	if n, err := cli.DeleteSessionsOf(ctx, "user:sam"); err != nil || n != 1 {
		t.Fatalf("DeleteSessionsOf = %d, %v", n, err)
	}
	if _, err := c.GetSession(ctx, hash); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetSession through the cache after another process deleted it: err = %v, want ErrNotFound", err)
	}
	if err := c.CreateCode(ctx, store.AuthCode{Hash: hash, ClientID: "agent:a", ExpiresAt: at.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.RedeemCode(ctx, hash, at); err != nil {
		t.Fatalf("RedeemCode: %v", err)
	}
	if _, err := c.RedeemCode(ctx, hash, at); !errors.Is(err, store.ErrReplay) {
		t.Errorf("RedeemCode through the cache after another process redeemed it: err = %v, want ErrReplay", err)
	}
}
