package feed_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mandate-dev/mandate/internal/feed"
	"github.com/mandate-dev/mandate/internal/store"
	"github.com/mandate-dev/mandate/internal/store/sqlite"
	"github.com/mandate-dev/mandate/internal/store/storetest"
	"github.com/mandate-dev/mandate/revocation"
)

// clock is a settable test clock.
type clock struct{ t atomic.Int64 }

func (c *clock) now() time.Time      { return time.Unix(0, c.t.Load()) }
func (c *clock) set(t time.Time)     { c.t.Store(t.UnixNano()) }
func (c *clock) add(d time.Duration) { c.t.Add(int64(d)) }
func newClock(t time.Time) *clock    { c := &clock{}; c.set(t); return c }
func revokeToken(t *testing.T, s store.Store, jti string, exp time.Time) {
	t.Helper()
	ctx := context.Background()
	if err := s.Commit(ctx, store.Batch{Tokens: []store.IssuedToken{{JTI: jti, GrantType: "t", Subject: "user:sam", ClientID: "agent:a", IssuedAt: exp.Add(-10 * time.Minute), ExpiresAt: exp}}}); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeToken(ctx, jti, time.Now()); err != nil {
		t.Fatal(err)
	}
}

func open(t *testing.T) (*storetest.Faulty, *clock, *feed.Hub) {
	t.Helper()
	raw, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "m.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	f := storetest.NewFaulty(raw)
	c := newClock(time.Now())
	h, err := feed.New(feed.Config{Source: f, MaxTTL: 15 * time.Minute, Slack: 2 * time.Minute, StaleAfter: 5 * time.Second, Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	return f, c, h
}

func TestHubFollowsTheStore(t *testing.T) {
	s, c, h := open(t)
	ctx := context.Background()
	if _, err := h.Check(&revocation.Token{JTI: "a"}); !errors.Is(err, feed.ErrStale) {
		t.Fatalf("Check before the first load = %v, want ErrStale", err)
	}
	if err := h.Load(ctx); err != nil {
		t.Fatal(err)
	}
	pos, err := h.Position()
	if err != nil {
		t.Fatal(err)
	}
	revokeToken(t, s, "jti-1", c.now().Add(10*time.Minute))
	revokeToken(t, s, "jti-2", c.now().Add(10*time.Minute))
	if err := h.Load(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-pos.Changed:
	default:
		t.Error("Changed was not closed by new entries")
	}
	if kind, err := h.Check(&revocation.Token{JTI: "x", ExchangedFrom: []string{"jti-2"}}); kind != revocation.KindToken || err != nil {
		t.Errorf("Check of a child of jti-2 = %q, %v", kind, err)
	}
	entries, ok := h.Since(pos.Stream, 1)
	if !ok || len(entries) != 1 || entries[0].ID != "jti-2" {
		t.Errorf("Since(1) = %v, %v; want jti-2", entries, ok)
	}
	for _, bad := range []struct {
		stream string
		seq    int64
	}{{"other", 0}, {pos.Stream, 3}, {pos.Stream, -1}} {
		if _, ok := h.Since(bad.stream, bad.seq); ok {
			t.Errorf("Since(%q, %d) resumed; want a snapshot instead", bad.stream, bad.seq)
		}
	}
	snap, err := h.Snapshot()
	if err != nil || snap.Seq != 2 || len(snap.Entries) != 2 {
		t.Errorf("Snapshot = %+v, %v", snap, err)
	}
}

// TestHubFailsClosed: when the store cannot be read, the hub answers from
// what it holds until StaleAfter, then refuses (THREATS T54, T60).
func TestHubFailsClosed(t *testing.T) {
	s, c, h := open(t)
	ctx := context.Background()
	if err := h.Load(ctx); err != nil {
		t.Fatal(err)
	}
	s.Fail("ListRevocations", nil)
	if err := h.Load(ctx); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Load with the store down = %v", err)
	}
	c.add(4 * time.Second)
	if _, err := h.Check(&revocation.Token{JTI: "a"}); err != nil {
		t.Errorf("Check within the bound = %v", err)
	}
	c.add(2 * time.Second)
	for name, err := range map[string]error{
		"Check":    func() error { _, err := h.Check(&revocation.Token{JTI: "a"}); return err }(),
		"Position": func() error { _, err := h.Position(); return err }(),
		"Snapshot": func() error { _, err := h.Snapshot(); return err }(),
	} {
		if !errors.Is(err, feed.ErrStale) {
			t.Errorf("%s beyond the bound = %v, want ErrStale", name, err)
		}
	}
	s.Fail("ListRevocations", nil) // still failing
	s.Heal()
	if err := h.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Check(&revocation.Token{JTI: "a"}); err != nil {
		t.Errorf("Check after the store came back = %v", err)
	}
}

// TestHubEntryLifetime: an entry lives at least max_ttl plus slack from when
// the hub read it, by the hub's clock, whatever the clock that made it
// said: a revocation stamped by a clock an hour behind is not dropped an
// hour early (THREATS T56 c).
func TestHubEntryLifetime(t *testing.T) {
	s, c, h := open(t)
	ctx := context.Background()
	made := time.Now()
	if err := s.CreateAgent(ctx, store.Agent{ID: "agent:a", Scopes: []string{"x"}, CreatedAt: made, UpdatedAt: made}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateAgent(ctx, "agent:a", func(a store.Agent) (store.Agent, error) { a.Disabled = true; return a, nil }); err != nil {
		t.Fatal(err)
	}
	c.set(made.Add(time.Hour)) // the store's clock was an hour behind the hub's
	if err := h.Load(ctx); err != nil {
		t.Fatal(err)
	}
	snap, err := h.Snapshot()
	if err != nil || len(snap.Entries) != 1 {
		t.Fatalf("Snapshot = %+v, %v", snap, err)
	}
	if got, want := snap.Entries[0].Until, made.Add(time.Hour+17*time.Minute).Unix(); got < want {
		t.Errorf("until = %d, want at least %d (read time + max_ttl + slack)", got, want)
	}
}
