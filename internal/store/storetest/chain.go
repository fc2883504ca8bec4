package storetest

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mandate-dev/mandate/internal/auditchain"
	"github.com/mandate-dev/mandate/internal/store"
)

// VerifyChain reads the whole audit log forward with EventsAfter and checks
// that the Seqs run 1, 2, ... without a gap and that every record's Hash is
// auditchain.Next of the one before (THREATS T67, T72), as an offline
// verifier would. It returns the records, oldest first.
func VerifyChain(t testing.TB, s store.Store) []store.Event {
	t.Helper()
	var (
		all  []store.Event
		prev = auditchain.Genesis
	)
	for {
		page, err := s.EventsAfter(context.Background(), int64(len(all)), 0)
		if err != nil {
			t.Fatalf("EventsAfter(%d): %v", len(all), err)
		}
		if len(page) == 0 {
			return all
		}
		for _, e := range page {
			if want := int64(len(all) + 1); e.Seq != want {
				t.Fatalf("record %s has Seq %d, want %d (a gap or a reorder)", e.ID, e.Seq, want)
			}
			want := auditchain.Next(prev, e)
			if !bytes.Equal(e.Hash, want[:]) {
				t.Fatalf("record %d (%s) has hash %x, want %x: the chain breaks there", e.Seq, e.ID, e.Hash, want[:])
			}
			prev = want
			all = append(all, e)
		}
	}
}

// testChain checks that every write that appends events chains them.
func testChain(t *testing.T, open func(t *testing.T) store.Store) {
	t.Run("ok/every-path-chains", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		ev := func(id string) store.Event { return newEvent(id, "test."+id) }
		steps := []struct {
			name string
			do   func() error
			// events is how many events the step appends.
			events int
		}{
			{"CreateUser", func() error { return s.CreateUser(ctx, newUser("u"), ev("u-create")) }, 1},
			{"UpdateUser", func() error {
				_, err := s.UpdateUser(ctx, "u", func(u store.User) (store.User, error) { u.Version++; return u, nil },
					ev("u-update-1"), ev("u-update-2"))
				return err
			}, 2},
			{"CreateAgent", func() error { return s.CreateAgent(ctx, newAgent("a"), ev("a-create")) }, 1},
			{"UpdateAgent", func() error {
				_, err := s.UpdateAgent(ctx, "a", func(a store.Agent) (store.Agent, error) { a.Disabled = true; return a, nil },
					ev("a-update"))
				return err
			}, 1},
			{"CreateDelegation", func() error { return s.CreateDelegation(ctx, newDelegation("d"), ev("d-create")) }, 1},
			{"UpdateDelegation", func() error {
				_, err := s.UpdateDelegation(ctx, "d", func(d store.Delegation) (store.Delegation, error) {
					d.Revoked, d.RevokedAt = true, base()
					return d, nil
				}, ev("d-update"))
				return err
			}, 1},
			{"CreateKey", func() error { return s.CreateKey(ctx, newKey("k"), ev("k-create")) }, 1},
			{"UpdateKey", func() error {
				_, err := s.UpdateKey(ctx, "k", func(k store.Key) (store.Key, error) { k.State = store.KeyRevoked; return k, nil },
					ev("k-update"))
				return err
			}, 1},
			{"Commit", func() error {
				return s.Commit(ctx, store.Batch{Tokens: []store.IssuedToken{newToken("t1"), newToken("t2")},
					Events: []store.Event{ev("c-1"), ev("c-2"), ev("c-3")}})
			}, 3},
			{"Commit/events-only", func() error { return s.Commit(ctx, store.Batch{Events: []store.Event{ev("c-4")}}) }, 1},
			{"RevokeToken", func() error { return s.RevokeToken(ctx, "t1", base(), ev("t1-revoke")) }, 1},
			{"RevokeToken/again", func() error { return s.RevokeToken(ctx, "t1", base(), ev("t1-revoke-again")) }, 1},
			{"AdvanceNotBefore", func() error { _, err := s.AdvanceNotBefore(ctx, base(), ev("epoch")); return err }, 1},
			{"AdvanceNotBefore/not-later", func() error {
				_, err := s.AdvanceNotBefore(ctx, base().Add(-time.Hour), ev("epoch-again"))
				return err
			}, 1},
			{"CreateUser/no-events", func() error { return s.CreateUser(ctx, newUser("quiet")) }, 0},
			{"CollectRevocations", func() error {
				_, err := s.CollectRevocations(ctx, base().Add(time.Hour), base().Add(time.Hour))
				return err
			}, 0},
			// Sweeping every token, nonce and feed entry leaves the log
			// whole: the records of the swept tokens stay.
			{"Sweep", func() error {
				far := base().Add(24 * time.Hour)
				_, err := s.Sweep(ctx, store.SweepCutoffs{Tokens: far, Nonces: far, TokenRevocations: far, OtherRevocations: far}, 0)
				return err
			}, 0},
		}
		want := 0
		for _, st := range steps {
			if err := st.do(); err != nil {
				t.Fatalf("%s: %v", st.name, err)
			}
			want += st.events
			if got := VerifyChain(t, s); len(got) != want {
				t.Fatalf("after %s: %d records, want %d", st.name, len(got), want)
			}
		}
		// QueryEvents returns the same hashes, newest first.
		chain := VerifyChain(t, s)
		queried := mustEvents(t, s)
		if len(queried) != len(chain) {
			t.Fatalf("QueryEvents returned %d records, EventsAfter %d", len(queried), len(chain))
		}
		for i, e := range queried {
			if c := chain[len(chain)-1-i]; e.Seq != c.Seq || !bytes.Equal(e.Hash, c.Hash) {
				t.Errorf("QueryEvents record %d: Seq %d hash %x, EventsAfter has Seq %d hash %x", i, e.Seq, e.Hash, c.Seq, c.Hash)
			}
		}
	})
	// What the caller puts in Seq and Hash is not what is stored.
	t.Run("ok/caller-seq-and-hash-ignored", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		e := newEvent("e", "token.issue")
		e.Seq, e.Hash = 42, bytes.Repeat([]byte{7}, 32)
		if err := s.Commit(ctx, store.Batch{Events: []store.Event{e, e}}); err != nil {
			t.Fatalf("Commit: %v", err)
		}
		if got := VerifyChain(t, s); len(got) != 2 {
			t.Errorf("%d records, want 2", len(got))
		}
	})
	// A write that fails leaves no link behind: the next one chains on
	// from the last record that was committed.
	t.Run("ok/failed-writes-leave-no-link", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		commit := func(jti string) error {
			return s.Commit(ctx, store.Batch{Tokens: []store.IssuedToken{newToken(jti)},
				Events: []store.Event{newEvent("issue-"+jti, "token.issue")}})
		}
		if err := commit("t1"); err != nil {
			t.Fatalf("Commit: %v", err)
		}
		if err := commit("t1"); !errors.Is(err, store.ErrAlreadyExists) {
			t.Fatalf("Commit of a duplicate jti: err = %v, want ErrAlreadyExists", err)
		}
		if err := s.CreateUser(ctx, newUser("u")); err != nil {
			t.Fatalf("CreateUser: %v", err)
		}
		if _, err := s.UpdateUser(ctx, "u", func(u store.User) (store.User, error) { return u, errFn },
			newEvent("update", "user.update")); !errors.Is(err, errFn) {
			t.Fatalf("UpdateUser: err = %v, want errFn", err)
		}
		if err := s.RevokeToken(ctx, "missing", base(), newEvent("revoke", "token.revoke")); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("RevokeToken missing: err = %v, want ErrNotFound", err)
		}
		if err := commit("t2"); err != nil {
			t.Fatalf("Commit: %v", err)
		}
		if diff := cmp.Diff([]string{"issue-t1", "issue-t2"}, eventIDs(VerifyChain(t, s))); diff != "" {
			t.Errorf("records (-want +got):\n%s", diff)
		}
	})
	// A verifier's record keeps its own id, and a resent one is refused
	// whole (ErrAlreadyExists) with nothing of its batch written, so that
	// POST /audit/ingest stores each once; the server's own records are not
	// held to it.
	t.Run("ok/request-ids-are-unique", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		req := func(id string) store.Event {
			ev := newEvent(id, "request")
			ev.ReportedBy = "rs:api"
			return ev
		}
		if err := s.Commit(ctx, store.Batch{Events: []store.Event{req("req_1"), req("req_2")}}); err != nil {
			t.Fatalf("Commit: %v", err)
		}
		if err := s.Commit(ctx, store.Batch{Events: []store.Event{req("req_3"), req("req_2")}}); !errors.Is(err, store.ErrAlreadyExists) {
			t.Fatalf("Commit of a resent request id: err = %v, want ErrAlreadyExists", err)
		}
		if err := s.Commit(ctx, store.Batch{Events: []store.Event{newEvent("evt_same", "token.issue"), newEvent("evt_same", "token.issue")}}); err != nil {
			t.Fatalf("Commit of two server records with one id: %v", err)
		}
		if diff := cmp.Diff([]string{"req_1", "req_2", "evt_same", "evt_same"}, eventIDs(VerifyChain(t, s))); diff != "" {
			t.Errorf("records (-want +got):\n%s", diff)
		}
	})
	// Values at the edges of what a record holds read back so that the
	// chain verifies, or are refused whole (PostgreSQL stores no NUL and
	// no invalid UTF-8 in text).
	t.Run("ok/odd-values-verify-or-are-refused", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		odd := []struct {
			name string
			edit func(*store.Event)
		}{
			{"unicode", func(e *store.Event) {
				e.Detail, e.Chain = "déploiement 🚀 ∀", []string{"agent:é", "agent:日本"}
			}},
			{"empty-list-items", func(e *store.Event) { e.Scopes = []string{"", "a", ""}; e.Requested = []string{} }},
			{"zero-time", func(e *store.Event) { e.Time = time.Time{} }},
			{"nanoseconds", func(e *store.Event) { e.Time = base().Add(123 * time.Nanosecond) }},
			// THREATS T99: within a microsecond after the zero time reads
			// back as no time; the edges of the years a JSON time can name.
			{"half-a-microsecond-after-zero", func(e *store.Event) { e.Time = time.Time{}.Add(500 * time.Nanosecond) }},
			{"year-1-zoned", func(e *store.Event) {
				e.Time = time.Date(1, 1, 1, 5, 0, 0, 999, time.FixedZone("X", 5*3600))
			}},
			{"year-9999-nanoseconds", func(e *store.Event) { e.Time = time.Date(9999, 12, 31, 23, 59, 59, 999_999_999, time.UTC) }},
			{"before-1970-nanoseconds", func(e *store.Event) { e.Time = time.Date(1969, 12, 31, 23, 59, 59, 999_999_500, time.UTC) }},
			{"zoned-time", func(e *store.Event) { e.Time = base().In(time.FixedZone("X", -7*3600)) }},
			{"long", func(e *store.Event) { e.Detail = string(bytes.Repeat([]byte("x"), 100_000)) }},
			{"json-context", func(e *store.Event) { e.Context = []byte(`{"a":[1,2,{"b":"<&>"}],"c":null}`) }},
			{"delimiter-like", func(e *store.Event) { e.Performer, e.OnBehalf = "a\x01b|c", "\"d\",e" }},
			{"invalid-utf8-string", func(e *store.Event) { e.Reason = "bad\xff\xfe" }},
			{"invalid-utf8-list-item", func(e *store.Event) { e.Chain = []string{"ok", "bad\xc3(", "\xff"} }},
			{"nul", func(e *store.Event) { e.Detail = "a\x00b" }},
			{"v2-json-spacing-unicode", func(e *store.Event) {
				e.Attributes, e.AuthorizationDetails = []byte(`{ "b":1 ,"a" :"é🚀" }`), []byte("[\n\t{}\n]")
			}},
			{"v2-invalid-utf8-json", func(e *store.Event) { e.Attributes = []byte(`{"a":"\xff"}`) }},
			{"v2-nul", func(e *store.Event) { e.Operation, e.ReportedBy = "a\x00b", "agent:\x00" }},
		}
		stored := 0
		for _, o := range odd {
			e := newEvent(o.name, "odd")
			o.edit(&e)
			err := s.Commit(ctx, store.Batch{Events: []store.Event{e}})
			if err == nil {
				stored++
			} else if errors.Is(err, store.ErrUnavailable) {
				t.Errorf("%s: Commit: %v, want success or a refusal of the record", o.name, err)
			}
			if got := VerifyChain(t, s); len(got) != stored {
				t.Fatalf("%s: %d records, want %d", o.name, len(got), stored)
			}
		}
		t.Logf("%d of %d odd records stored", stored, len(odd))
	})
}

// testEventsAfter checks EventsAfter's order, cursor and limits, with more
// records than the cap appended in one commit.
func testEventsAfter(t *testing.T, open func(t *testing.T) store.Store) {
	s, ctx := open(t), t.Context()
	if got, err := s.EventsAfter(ctx, 0, 0); err != nil || len(got) != 0 {
		t.Fatalf("EventsAfter on an empty log = %v, %v; want none", got, err)
	}
	const n = store.MaxPageLimit + 1
	evs := make([]store.Event, n)
	for i := range evs {
		evs[i] = store.Event{ID: fmt.Sprintf("e%05d", i+1), Action: "token.issue", Performer: "agent:a"}
	}
	if err := s.Commit(ctx, store.Batch{Events: evs}); err != nil {
		t.Fatalf("Commit of %d events: %v", n, err)
	}
	for _, tc := range []struct {
		name  string
		after int64
		limit int
		want  int
	}{
		{name: "ok/zero-means-1000", want: store.DefaultPageLimit},
		{name: "ok/explicit", after: 5, limit: 17, want: 17},
		{name: "ok/capped-at-10000", limit: 50000, want: store.MaxPageLimit},
		{name: "ok/rest-after-cap", after: store.MaxPageLimit, limit: 50000, want: 1},
		{name: "ok/after-the-end", after: n, want: 0},
		{name: "ok/negative-after", after: -3, limit: 2, want: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.EventsAfter(ctx, tc.after, tc.limit)
			if err != nil {
				t.Fatalf("EventsAfter: %v", err)
			}
			if len(got) != tc.want {
				t.Fatalf("got %d events, want %d", len(got), tc.want)
			}
			first := max(tc.after, 0) + 1
			for i, e := range got {
				if want := first + int64(i); e.Seq != want || e.ID != fmt.Sprintf("e%05d", want) {
					t.Fatalf("event %d is %s with Seq %d, want Seq %d, oldest first", i, e.ID, e.Seq, want)
				}
			}
		})
	}
	if got := VerifyChain(t, s); len(got) != n {
		t.Errorf("%d records in the chain, want %d", len(got), n)
	}
}

// testChainConcurrency: writers appending at once through every path get
// one chain, without a fork or a duplicate Seq (THREATS T72).
func testChainConcurrency(t *testing.T, open func(t *testing.T) store.Store) {
	s, ctx := open(t), t.Context()
	if err := s.CreateUser(ctx, newUser("u")); err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	const writers, each = 8, 10
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				id := fmt.Sprintf("w%d-%d", w, i)
				var err error
				switch i % 3 {
				case 0, 1:
					err = s.Commit(ctx, store.Batch{Tokens: []store.IssuedToken{newToken(id)},
						Events: []store.Event{newEvent(id+"-a", "token.issue"), newEvent(id+"-b", "token.exchange")}})
				case 2:
					_, err = s.UpdateUser(ctx, "u", func(u store.User) (store.User, error) { u.Version++; return u, nil },
						newEvent(id+"-a", "user.update"), newEvent(id+"-b", "user.update"))
				}
				if err != nil {
					t.Errorf("%s: %v", id, err)
				}
			}
		})
	}
	wg.Wait()
	got := VerifyChain(t, s)
	if len(got) != 2*writers*each {
		t.Fatalf("%d records, want %d", len(got), 2*writers*each)
	}
	// The two events of one write are consecutive, in slice order.
	for i := 0; i < len(got); i += 2 {
		a, b := got[i].ID, got[i+1].ID
		if len(a) < 2 || a[:len(a)-2] != b[:len(b)-2] || a[len(a)-1] != 'a' || b[len(b)-1] != 'b' {
			t.Errorf("records %d and %d are %s and %s, want the two events of one write", i+1, i+2, a, b)
		}
	}
}

func newCheckpoint(size int64, root string) store.Checkpoint {
	return store.Checkpoint{
		Size:      size,
		Root:      bytes.Repeat([]byte(root), 32/len(root)),
		Head:      bytes.Repeat([]byte{byte(size)}, 32),
		Tree:      []byte(fmt.Sprintf(`{"n":%d,"edge":[]}`, size)),
		Note:      fmt.Sprintf("mandate audit log\n%d\n%s\n\n— key sig\n", size, hex.EncodeToString([]byte(root))),
		CreatedAt: base().Add(time.Duration(size) * time.Minute),
	}
}

func testCheckpoints(t *testing.T, open func(t *testing.T) store.Store) {
	t.Run("ok/add-list-latest", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		if _, err := s.LatestCheckpoint(ctx); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("LatestCheckpoint on an empty store: err = %v, want ErrNotFound", err)
		}
		if got, err := s.Checkpoints(ctx, 0, 0); err != nil || len(got) != 0 {
			t.Errorf("Checkpoints on an empty store = %v, %v; want none", got, err)
		}
		want := []store.Checkpoint{newCheckpoint(3, "a"), newCheckpoint(10, "b"), newCheckpoint(11, "c")}
		want[2].Tree = nil
		for _, c := range want {
			if err := s.AddCheckpoint(ctx, c); err != nil {
				t.Fatalf("AddCheckpoint %d: %v", c.Size, err)
			}
		}
		latest, err := s.LatestCheckpoint(ctx)
		if err != nil {
			t.Fatalf("LatestCheckpoint: %v", err)
		}
		if diff := cmp.Diff(want[2], latest, opts()); diff != "" {
			t.Errorf("LatestCheckpoint (-want +got):\n%s", diff)
		}
		for _, tc := range []struct {
			after int64
			limit int
			want  []store.Checkpoint
		}{
			{after: 0, want: want},
			{after: 3, want: want[1:]},
			{after: 4, limit: 1, want: want[1:2]},
			{after: 11, want: nil},
		} {
			got, err := s.Checkpoints(ctx, tc.after, tc.limit)
			if err != nil {
				t.Fatalf("Checkpoints(%d, %d): %v", tc.after, tc.limit, err)
			}
			if diff := cmp.Diff(tc.want, got, opts()); diff != "" {
				t.Errorf("Checkpoints(%d, %d) (-want +got):\n%s", tc.after, tc.limit, diff)
			}
		}
	})
	t.Run("ok/created-at-defaults-to-now", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		c := newCheckpoint(1, "a")
		c.CreatedAt = time.Time{}
		before := time.Now().Add(-time.Minute)
		if err := s.AddCheckpoint(ctx, c); err != nil {
			t.Fatalf("AddCheckpoint: %v", err)
		}
		got, err := s.LatestCheckpoint(ctx)
		if err != nil {
			t.Fatalf("LatestCheckpoint: %v", err)
		}
		if got.CreatedAt.Before(before) || got.CreatedAt.After(time.Now().Add(time.Minute)) || got.CreatedAt.Location() != time.UTC {
			t.Errorf("CreatedAt = %v, want about now, in UTC", got.CreatedAt)
		}
	})
	for _, tc := range []struct {
		name    string
		c       func() store.Checkpoint
		wantErr error // nil: success
		// refused: an error that is neither sentinel (a bad checkpoint).
		refused bool
	}{
		{name: "ok/same-size-root-head-is-idempotent", c: func() store.Checkpoint {
			c := newCheckpoint(10, "b")
			c.Note, c.CreatedAt = "another signature of the same state", base()
			return c
		}},
		{name: "ok/later", c: func() store.Checkpoint { return newCheckpoint(12, "d") }},
		{name: "fail/same-size-other-root", c: func() store.Checkpoint { return newCheckpoint(10, "x") }, wantErr: store.ErrConflict},
		{name: "fail/same-size-other-head", c: func() store.Checkpoint {
			c := newCheckpoint(10, "b")
			c.Head = bytes.Repeat([]byte{0xee}, 32)
			return c
		}, wantErr: store.ErrConflict},
		{name: "fail/earlier-than-latest", c: func() store.Checkpoint { return newCheckpoint(5, "e") }, wantErr: store.ErrAlreadyExists},
		{name: "fail/size-zero", c: func() store.Checkpoint { return newCheckpoint(0, "e") }, refused: true},
		{name: "fail/empty-root", c: func() store.Checkpoint { c := newCheckpoint(20, "e"); c.Root = nil; return c }, refused: true},
		{name: "fail/empty-head", c: func() store.Checkpoint { c := newCheckpoint(20, "e"); c.Head = nil; return c }, refused: true},
		{name: "fail/empty-note", c: func() store.Checkpoint { c := newCheckpoint(20, "e"); c.Note = ""; return c }, refused: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, ctx := open(t), t.Context()
			stored := []store.Checkpoint{newCheckpoint(3, "a"), newCheckpoint(10, "b")}
			for _, c := range stored {
				if err := s.AddCheckpoint(ctx, c); err != nil {
					t.Fatalf("AddCheckpoint %d: %v", c.Size, err)
				}
			}
			c := tc.c()
			err := s.AddCheckpoint(ctx, c)
			switch {
			case tc.refused:
				if err == nil || errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrAlreadyExists) || errors.Is(err, store.ErrUnavailable) {
					t.Fatalf("AddCheckpoint: err = %v, want a refusal of the checkpoint", err)
				}
			case tc.wantErr != nil:
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("AddCheckpoint: err = %v, want %v", err, tc.wantErr)
				}
			case err != nil:
				t.Fatalf("AddCheckpoint: %v", err)
			}
			want := stored
			if err == nil && c.Size > 10 {
				want = append(want, c)
			}
			got, err := s.Checkpoints(ctx, 0, 0)
			if err != nil {
				t.Fatalf("Checkpoints: %v", err)
			}
			if diff := cmp.Diff(want, got, opts()); diff != "" {
				t.Errorf("stored checkpoints (-want +got):\n%s", diff)
			}
		})
	}
	// Instances checkpointing at once: each size is stored once, with the
	// root of the first, and the others get nil (same root) or
	// ErrConflict.
	t.Run("ok/concurrent-adds", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		const n = 10
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() { errs[i] = s.AddCheckpoint(ctx, newCheckpoint(7, "r")) })
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("AddCheckpoint %d: %v", i, err)
			}
		}
		if got, err := s.Checkpoints(ctx, 0, 0); err != nil || len(got) != 1 {
			t.Errorf("Checkpoints = %d, %v; want one", len(got), err)
		}
	})
}

func testCheckpointKey(t *testing.T, open func(t *testing.T) store.Store) {
	t.Run("ok/created-once", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		calls := 0
		create := func() (string, error) { calls++; return fmt.Sprintf("key-%d", calls), nil }
		for range 3 {
			key, err := s.CheckpointKey(ctx, create)
			if err != nil || key != "key-1" {
				t.Fatalf("CheckpointKey = %q, %v; want key-1", key, err)
			}
		}
		if calls != 1 {
			t.Errorf("create called %d times, want 1", calls)
		}
	})
	t.Run("fail/create-error-stores-nothing", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		if _, err := s.CheckpointKey(ctx, func() (string, error) { return "", errFn }); !errors.Is(err, errFn) {
			t.Errorf("CheckpointKey: err = %v, want errFn", err)
		}
		if _, err := s.CheckpointKey(ctx, func() (string, error) { return "", nil }); err == nil {
			t.Error("CheckpointKey accepted an empty key")
		}
		if key, err := s.CheckpointKey(ctx, func() (string, error) { return "k", nil }); err != nil || key != "k" {
			t.Errorf("CheckpointKey after the failures = %q, %v; want k", key, err)
		}
	})
	// T72's counterpart for the key: one key wins a race, and everyone
	// signs with it.
	t.Run("ok/race-one-wins", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		const n = 16
		keys, errs := make([]string, n), make([]error, n)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				<-start
				keys[i], errs[i] = s.CheckpointKey(ctx, func() (string, error) { return fmt.Sprintf("key-%d", i), nil })
			})
		}
		close(start)
		wg.Wait()
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("CheckpointKey %d: %v", i, errs[i])
			}
			if keys[i] != keys[0] {
				t.Errorf("caller %d got %q, caller 0 %q: two keys", i, keys[i], keys[0])
			}
		}
		if key, err := s.CheckpointKey(ctx, func() (string, error) { return "late", nil }); err != nil || key != keys[0] {
			t.Errorf("CheckpointKey afterwards = %q, %v; want %q", key, err, keys[0])
		}
	})
}

// testChainHandles: the chain carries on across a reopen, and two handles
// on one database (two processes, or two instances) appending at once make
// one chain.
func testChainHandles(t *testing.T, open func() store.Store) {
	ctx := t.Context()
	s := open()
	if err := s.Commit(ctx, store.Batch{Events: []store.Event{newEvent("before", "token.issue")}}); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	closeStore(t, s)
	a, b := open(), open()
	defer closeStore(t, a)
	defer closeStore(t, b)
	const writers, each = 4, 10
	var wg sync.WaitGroup
	for h, s := range []store.Store{a, b} {
		for w := range writers {
			wg.Go(func() {
				for i := range each {
					id := fmt.Sprintf("h%d-w%d-%d", h, w, i)
					err := s.Commit(ctx, store.Batch{Tokens: []store.IssuedToken{newToken(id)},
						Events: []store.Event{newEvent(id, "token.issue")}})
					if err != nil {
						t.Errorf("Commit %s: %v", id, err)
					}
				}
			})
		}
	}
	wg.Wait()
	for name, s := range map[string]store.Store{"a": a, "b": b} {
		if got := VerifyChain(t, s); len(got) != 1+2*writers*each || got[0].ID != "before" {
			t.Errorf("%s reads %d records, want %d, the first written before the reopen", name, len(got), 1+2*writers*each)
		}
	}
}
