package storetest

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mandate-dev/mandate/internal/store"
)

// hashOf is SHA-256 of v, as the server stores a value it handed out.
func hashOf(v string) []byte {
	h := sha256.Sum256([]byte(v))
	return h[:]
}

func newCode(v string) store.AuthCode {
	return store.AuthCode{
		Hash:         hashOf(v),
		ClientID:     "agent:argocd",
		Subject:      "user:sam",
		Actor:        "agent:infrabot",
		RedirectURI:  "https://argocd.example/callback?x=1",
		Challenge:    "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
		DelegationID: "dlg_1",
		Scopes:       []string{"deploy:create", "deploy:read"},
		Resource:     "https://deploy.example",
		CreatedAt:    base(),
		ExpiresAt:    base().Add(time.Minute),
	}
}

func newRefresh(v string) store.RefreshToken {
	return store.RefreshToken{
		Hash:           hashOf(v),
		DelegationID:   "dlg_1",
		ClientID:       "agent:argocd",
		Subject:        "user:sam",
		Actor:          "agent:infrabot",
		Scopes:         []string{"deploy:create"},
		Resource:       "https://deploy.example",
		SubjectVersion: 4,
		CreatedAt:      base(),
		ExpiresAt:      base().Add(30 * 24 * time.Hour),
	}
}

func newSession(v, subject string) store.Session {
	return store.Session{
		Hash:      hashOf(v),
		Subject:   subject,
		Provider:  "https://login.acme.example",
		CSRF:      "csrf-" + v,
		CreatedAt: base(),
		SeenAt:    base().Add(time.Second),
		ExpiresAt: base().Add(12 * time.Hour),
	}
}

func newPending(kind, v string) store.Pending {
	return store.Pending{
		Kind:      kind,
		Hash:      hashOf(v),
		Data:      json.RawMessage(`{"client_id":"agent:argocd","state":"é<&>","n":[1,2]}`),
		CreatedAt: base(),
		ExpiresAt: base().Add(10 * time.Minute),
	}
}

// race runs fn from n goroutines released at once and returns their errors.
func race(n int, fn func(i int) error) []error {
	errs := make([]error, n)
	var ready, done sync.WaitGroup
	start := make(chan struct{})
	ready.Add(n)
	done.Add(n)
	for i := range n {
		go func() {
			defer done.Done()
			ready.Done()
			<-start
			errs[i] = fn(i)
		}()
	}
	ready.Wait()
	close(start)
	done.Wait()
	return errs
}

// oneWinner checks that exactly one of errs is nil and every other wraps
// lose, and returns the winner's index.
func oneWinner(t *testing.T, errs []error, lose error) int {
	t.Helper()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Errorf("calls %d and %d both won", winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, lose):
			t.Errorf("call %d: err = %v, want %v", i, err, lose)
		}
	}
	if winner < 0 {
		t.Errorf("no call won: %v", errs)
	}
	return winner
}

// badRecord checks that err refuses a record (not found, taken or
// unavailable it is not) and that nothing was appended to the log.
func badRecord(t *testing.T, s store.Store, what string, err error) {
	t.Helper()
	if err == nil || errors.Is(err, store.ErrUnavailable) || errors.Is(err, store.ErrNotFound) {
		t.Errorf("%s: err = %v, want a refusal of the record", what, err)
	}
	if evs := mustEvents(t, s); len(evs) != 0 {
		t.Errorf("%s: a refused write appended %v", what, eventIDs(evs))
	}
}

// testCodes covers CreateCode and RedeemCode.
func testCodes(t *testing.T, open func(t *testing.T) store.Store) {
	at := base().Add(30 * time.Second)
	t.Run("ok/round-trip-and-single-use", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		c := newCode("code-1")
		if err := s.CreateCode(ctx, c, newEvent("ev-consent", "consent.approve"), newEvent("ev-code", "code.issue")); err != nil {
			t.Fatalf("CreateCode: %v", err)
		}
		if diff := cmp.Diff([]string{"ev-code", "ev-consent"}, eventIDs(mustEvents(t, s))); diff != "" {
			t.Errorf("events (-want +got):\n%s", diff)
		}
		want := c
		want.UsedAt = at
		got, err := s.RedeemCode(ctx, hashOf("code-1"), at.Add(123*time.Nanosecond))
		if err != nil {
			t.Fatalf("RedeemCode: %v", err)
		}
		if diff := cmp.Diff(want, got, opts()); diff != "" {
			t.Errorf("RedeemCode (-want +got):\n%s", diff)
		}
		// The second use is a replay, and returns the code as its first use
		// left it, so that the caller can revoke what that use issued.
		again, err := s.RedeemCode(ctx, hashOf("code-1"), at.Add(time.Second))
		if !errors.Is(err, store.ErrReplay) {
			t.Fatalf("second RedeemCode: err = %v, want ErrReplay", err)
		}
		if diff := cmp.Diff(want, again, opts()); diff != "" {
			t.Errorf("second RedeemCode returned (-want +got):\n%s", diff)
		}
	})
	t.Run("fail/unknown", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		if err := s.CreateCode(ctx, newCode("code-1")); err != nil {
			t.Fatalf("CreateCode: %v", err)
		}
		for _, h := range [][]byte{hashOf("code-2"), nil, hashOf("code-1")[:16]} {
			if _, err := s.RedeemCode(ctx, h, at); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("RedeemCode(%x): err = %v, want ErrNotFound", h, err)
			}
		}
		if _, err := s.RedeemCode(ctx, hashOf("code-1"), at); err != nil {
			t.Errorf("RedeemCode after unknown ones: %v", err)
		}
	})
	t.Run("fail/zero-time", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		if err := s.CreateCode(ctx, newCode("code-1")); err != nil {
			t.Fatalf("CreateCode: %v", err)
		}
		if _, err := s.RedeemCode(ctx, hashOf("code-1"), time.Time{}); err == nil {
			t.Error("RedeemCode at the zero time succeeded")
		}
		if _, err := s.RedeemCode(ctx, hashOf("code-1"), at); err != nil {
			t.Errorf("RedeemCode after a refused one: %v", err)
		}
	})
	t.Run("fail/duplicate", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		if err := s.CreateCode(ctx, newCode("code-1")); err != nil {
			t.Fatalf("CreateCode: %v", err)
		}
		other := newCode("code-1")
		other.Subject = "user:eve"
		if err := s.CreateCode(ctx, other, newEvent("ev-dup", "code.issue")); !errors.Is(err, store.ErrAlreadyExists) {
			t.Errorf("CreateCode of a stored hash: err = %v, want ErrAlreadyExists", err)
		}
		if evs := mustEvents(t, s); len(evs) != 0 {
			t.Errorf("a refused create appended %v", eventIDs(evs))
		}
		got, err := s.RedeemCode(ctx, hashOf("code-1"), at)
		if err != nil || got.Subject != "user:sam" {
			t.Errorf("RedeemCode = %q, %v; want the first code", got.Subject, err)
		}
	})
	t.Run("fail/bad-record", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		noHash, noExpiry := newCode("x"), newCode("y")
		noHash.Hash, noExpiry.ExpiresAt = nil, time.Time{}
		badRecord(t, s, "CreateCode without a hash", s.CreateCode(ctx, noHash, newEvent("ev", "code.issue")))
		badRecord(t, s, "CreateCode without an expiry", s.CreateCode(ctx, noExpiry, newEvent("ev", "code.issue")))
	})
	t.Run("ok/concurrent-redeem-one-wins", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		if err := s.CreateCode(ctx, newCode("code-1")); err != nil {
			t.Fatalf("CreateCode: %v", err)
		}
		errs := race(20, func(i int) error {
			_, err := s.RedeemCode(ctx, hashOf("code-1"), at.Add(time.Duration(i)*time.Second))
			return err
		})
		w := oneWinner(t, errs, store.ErrReplay)
		got, err := s.RedeemCode(ctx, hashOf("code-1"), at.Add(time.Hour))
		if !errors.Is(err, store.ErrReplay) || (w >= 0 && !got.UsedAt.Equal(at.Add(time.Duration(w)*time.Second))) {
			t.Errorf("after the race: UsedAt %v, %v; want the winner's time, ErrReplay", got.UsedAt, err)
		}
	})
}

// testRefresh covers CreateRefresh and RotateRefresh.
func testRefresh(t *testing.T, open func(t *testing.T) store.Store) {
	at := base().Add(time.Hour)
	// next is the successor of a token, rotated at at.
	next := func(v string) store.RefreshToken {
		rt := newRefresh(v)
		rt.CreatedAt = at
		return rt
	}
	t.Run("ok/rotate-a-family", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		first := newRefresh("rt-1")
		if err := s.CreateRefresh(ctx, first, newEvent("ev-rt", "refresh.issue")); err != nil {
			t.Fatalf("CreateRefresh: %v", err)
		}
		if diff := cmp.Diff([]string{"ev-rt"}, eventIDs(mustEvents(t, s))); diff != "" {
			t.Errorf("events (-want +got):\n%s", diff)
		}
		want := first
		want.UsedAt = at
		got, err := s.RotateRefresh(ctx, hashOf("rt-1"), at, next("rt-2"))
		if err != nil {
			t.Fatalf("RotateRefresh: %v", err)
		}
		if diff := cmp.Diff(want, got, opts()); diff != "" {
			t.Errorf("RotateRefresh (-want +got):\n%s", diff)
		}
		// GetRefresh reads a token, used or not, and knows no other.
		if read, err := s.GetRefresh(ctx, hashOf("rt-1")); err != nil {
			t.Errorf("GetRefresh: %v", err)
		} else if diff := cmp.Diff(want, read, opts()); diff != "" {
			t.Errorf("GetRefresh (-want +got):\n%s", diff)
		}
		if _, err := s.GetRefresh(ctx, hashOf("rt-unknown")); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetRefresh of an unknown token: err = %v, want ErrNotFound", err)
		}
		// The successor was stored whole: rotating it returns it.
		want2 := next("rt-2")
		want2.UsedAt = at.Add(time.Minute)
		got2, err := s.RotateRefresh(ctx, hashOf("rt-2"), at.Add(time.Minute), next("rt-3"))
		if err != nil {
			t.Fatalf("RotateRefresh of the successor: %v", err)
		}
		if diff := cmp.Diff(want2, got2, opts()); diff != "" {
			t.Errorf("RotateRefresh of the successor (-want +got):\n%s", diff)
		}
		// A replay of a used token is refused, returns it as used and
		// stores nothing.
		again, err := s.RotateRefresh(ctx, hashOf("rt-1"), at.Add(2*time.Minute), next("rt-x"))
		if !errors.Is(err, store.ErrReplay) {
			t.Fatalf("RotateRefresh of a used token: err = %v, want ErrReplay", err)
		}
		if diff := cmp.Diff(want, again, opts()); diff != "" {
			t.Errorf("RotateRefresh of a used token returned (-want +got):\n%s", diff)
		}
		if _, err := s.RotateRefresh(ctx, hashOf("rt-x"), at.Add(3*time.Minute), next("rt-y")); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("the successor given with a replay: err = %v, want ErrNotFound (not stored)", err)
		}
		if _, err := s.RotateRefresh(ctx, hashOf("rt-3"), at.Add(3*time.Minute), next("rt-4")); err != nil {
			t.Errorf("RotateRefresh of the family's current token: %v", err)
		}
	})
	t.Run("fail/unknown", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		for _, h := range [][]byte{hashOf("rt-0"), nil} {
			if _, err := s.RotateRefresh(ctx, h, at, next("rt-2")); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("RotateRefresh(%x): err = %v, want ErrNotFound", h, err)
			}
		}
		if _, err := s.RotateRefresh(ctx, hashOf("rt-2"), at, next("rt-3")); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("a successor given with an unknown token: err = %v, want ErrNotFound (not stored)", err)
		}
	})
	t.Run("fail/zero-time", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		if err := s.CreateRefresh(ctx, newRefresh("rt-1")); err != nil {
			t.Fatalf("CreateRefresh: %v", err)
		}
		if _, err := s.RotateRefresh(ctx, hashOf("rt-1"), time.Time{}, next("rt-2")); err == nil {
			t.Error("RotateRefresh at the zero time succeeded")
		}
		if _, err := s.RotateRefresh(ctx, hashOf("rt-1"), at, next("rt-2")); err != nil {
			t.Errorf("RotateRefresh after a refused one: %v", err)
		}
	})
	t.Run("fail/successor-refused-rolls-back", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		for _, v := range []string{"rt-1", "rt-other"} {
			if err := s.CreateRefresh(ctx, newRefresh(v)); err != nil {
				t.Fatalf("CreateRefresh: %v", err)
			}
		}
		// A successor whose hash is stored, or that has none: the
		// rotation fails whole and the token stays current.
		noHash := next("rt-2")
		noHash.Hash = nil
		for _, n := range []store.RefreshToken{next("rt-other"), noHash} {
			if _, err := s.RotateRefresh(ctx, hashOf("rt-1"), at, n); err == nil || errors.Is(err, store.ErrReplay) {
				t.Errorf("RotateRefresh with a refused successor: err = %v, want a refusal", err)
			}
		}
		if _, err := s.RotateRefresh(ctx, hashOf("rt-1"), at, next("rt-2")); err != nil {
			t.Errorf("RotateRefresh after a failed one: %v", err)
		}
	})
	t.Run("fail/duplicate-and-bad-record", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		noHash, noExpiry := newRefresh("x"), newRefresh("y")
		noHash.Hash, noExpiry.ExpiresAt = nil, time.Time{}
		badRecord(t, s, "CreateRefresh without a hash", s.CreateRefresh(ctx, noHash, newEvent("ev", "refresh.issue")))
		badRecord(t, s, "CreateRefresh without an expiry", s.CreateRefresh(ctx, noExpiry, newEvent("ev", "refresh.issue")))
		if err := s.CreateRefresh(ctx, newRefresh("rt-1")); err != nil {
			t.Fatalf("CreateRefresh: %v", err)
		}
		if err := s.CreateRefresh(ctx, newRefresh("rt-1"), newEvent("ev-dup", "refresh.issue")); !errors.Is(err, store.ErrAlreadyExists) {
			t.Errorf("CreateRefresh of a stored hash: err = %v, want ErrAlreadyExists", err)
		}
		if evs := mustEvents(t, s); len(evs) != 0 {
			t.Errorf("a refused create appended %v", eventIDs(evs))
		}
	})
	t.Run("ok/concurrent-rotate-one-wins", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		if err := s.CreateRefresh(ctx, newRefresh("rt-1")); err != nil {
			t.Fatalf("CreateRefresh: %v", err)
		}
		const n = 20
		errs := race(n, func(i int) error {
			_, err := s.RotateRefresh(ctx, hashOf("rt-1"), at, next(fmt.Sprintf("rt-next-%d", i)))
			return err
		})
		w := oneWinner(t, errs, store.ErrReplay)
		// Only the winner's successor was stored.
		for i := range n {
			_, err := s.RotateRefresh(ctx, hashOf(fmt.Sprintf("rt-next-%d", i)), at.Add(time.Minute), next(fmt.Sprintf("rt-after-%d", i)))
			if i == w && err != nil {
				t.Errorf("the winner's successor: %v", err)
			}
			if i != w && !errors.Is(err, store.ErrNotFound) {
				t.Errorf("a loser's successor %d: err = %v, want ErrNotFound", i, err)
			}
		}
	})
}

// testSessions covers the session methods.
func testSessions(t *testing.T, open func(t *testing.T) store.Store) {
	t.Run("ok/round-trip-touch-delete", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		se := newSession("s-1", "user:sam")
		if err := s.CreateSession(ctx, se, newEvent("ev-in", "signin")); err != nil {
			t.Fatalf("CreateSession: %v", err)
		}
		got, err := s.GetSession(ctx, hashOf("s-1"))
		if err != nil {
			t.Fatalf("GetSession: %v", err)
		}
		if diff := cmp.Diff(se, got, opts()); diff != "" {
			t.Errorf("GetSession (-want +got):\n%s", diff)
		}
		seen := base().Add(time.Hour)
		if err := s.TouchSession(ctx, hashOf("s-1"), seen.Add(999*time.Nanosecond)); err != nil {
			t.Fatalf("TouchSession: %v", err)
		}
		se.SeenAt = seen
		if got, err := s.GetSession(ctx, hashOf("s-1")); err != nil || !cmp.Equal(se, got, opts()) {
			t.Errorf("GetSession after a touch = %+v, %v; want %+v", got, err, se)
		}
		if err := s.TouchSession(ctx, hashOf("s-1"), time.Time{}); err == nil {
			t.Error("TouchSession at the zero time succeeded")
		}
		if err := s.DeleteSession(ctx, hashOf("s-1"), newEvent("ev-out", "signout")); err != nil {
			t.Fatalf("DeleteSession: %v", err)
		}
		if _, err := s.GetSession(ctx, hashOf("s-1")); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetSession after a delete: err = %v, want ErrNotFound", err)
		}
		if err := s.TouchSession(ctx, hashOf("s-1"), seen); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("TouchSession after a delete: err = %v, want ErrNotFound", err)
		}
		// Deleting a session that is gone succeeds and records all the same.
		if err := s.DeleteSession(ctx, hashOf("s-1"), newEvent("ev-out-again", "signout")); err != nil {
			t.Errorf("DeleteSession of a gone session: %v", err)
		}
		if diff := cmp.Diff([]string{"ev-out-again", "ev-out", "ev-in"}, eventIDs(mustEvents(t, s))); diff != "" {
			t.Errorf("events (-want +got):\n%s", diff)
		}
	})
	t.Run("fail/unknown", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		if _, err := s.GetSession(ctx, hashOf("nope")); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetSession: err = %v, want ErrNotFound", err)
		}
		if _, err := s.GetSession(ctx, nil); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetSession(nil): err = %v, want ErrNotFound", err)
		}
		if err := s.TouchSession(ctx, hashOf("nope"), base()); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("TouchSession: err = %v, want ErrNotFound", err)
		}
	})
	t.Run("fail/duplicate-and-bad-record", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		noHash, noExpiry := newSession("x", "user:sam"), newSession("y", "user:sam")
		noHash.Hash, noExpiry.ExpiresAt = nil, time.Time{}
		badRecord(t, s, "CreateSession without a hash", s.CreateSession(ctx, noHash, newEvent("ev", "signin")))
		badRecord(t, s, "CreateSession without an expiry", s.CreateSession(ctx, noExpiry, newEvent("ev", "signin")))
		if err := s.CreateSession(ctx, newSession("s-1", "user:sam")); err != nil {
			t.Fatalf("CreateSession: %v", err)
		}
		if err := s.CreateSession(ctx, newSession("s-1", "user:eve"), newEvent("ev-dup", "signin")); !errors.Is(err, store.ErrAlreadyExists) {
			t.Errorf("CreateSession of a stored hash: err = %v, want ErrAlreadyExists", err)
		}
		if got, err := s.GetSession(ctx, hashOf("s-1")); err != nil || got.Subject != "user:sam" {
			t.Errorf("GetSession = %q, %v; want the first session", got.Subject, err)
		}
		if evs := mustEvents(t, s); len(evs) != 0 {
			t.Errorf("a refused create appended %v", eventIDs(evs))
		}
	})
	t.Run("ok/delete-sessions-of", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		for i, who := range []string{"user:sam", "user:sam", "user:lee", "user:sam", "user:samuel"} {
			if err := s.CreateSession(ctx, newSession(fmt.Sprintf("s-%d", i), who)); err != nil {
				t.Fatalf("CreateSession: %v", err)
			}
		}
		n, err := s.DeleteSessionsOf(ctx, "user:sam", newEvent("ev-all", "signout.all"))
		if err != nil || n != 3 {
			t.Errorf("DeleteSessionsOf(user:sam) = %d, %v; want 3", n, err)
		}
		for i, kept := range []bool{false, false, true, false, true} {
			_, err := s.GetSession(ctx, hashOf(fmt.Sprintf("s-%d", i)))
			if kept != (err == nil) {
				t.Errorf("session %d after DeleteSessionsOf: err = %v, kept %v", i, err, kept)
			}
		}
		n, err = s.DeleteSessionsOf(ctx, "user:sam", newEvent("ev-none", "signout.all"))
		if err != nil || n != 0 {
			t.Errorf("DeleteSessionsOf again = %d, %v; want 0", n, err)
		}
		if n, err := s.DeleteSessionsOf(ctx, "user:\xff\x00"); err != nil || n != 0 {
			t.Errorf("DeleteSessionsOf of a subject no session can have = %d, %v; want 0", n, err)
		}
		if diff := cmp.Diff([]string{"ev-none", "ev-all"}, eventIDs(mustEvents(t, s))); diff != "" {
			t.Errorf("events (-want +got):\n%s", diff)
		}
	})
}

// testPending covers the pending steps.
func testPending(t *testing.T, open func(t *testing.T) store.Store) {
	t.Run("ok/put-get-take", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		p := newPending("authorize", "req-1")
		if err := s.PutPending(ctx, p); err != nil {
			t.Fatalf("PutPending: %v", err)
		}
		// The same hash in another kind is another step.
		other := newPending("upstream", "req-1")
		other.Data = nil
		if err := s.PutPending(ctx, other); err != nil {
			t.Fatalf("PutPending of another kind: %v", err)
		}
		got, err := s.GetPending(ctx, "authorize", hashOf("req-1"))
		if err != nil {
			t.Fatalf("GetPending: %v", err)
		}
		if diff := cmp.Diff(p, got, opts()); diff != "" {
			t.Errorf("GetPending (-want +got):\n%s", diff)
		}
		took, err := s.TakePending(ctx, "authorize", hashOf("req-1"))
		if err != nil {
			t.Fatalf("TakePending: %v", err)
		}
		if diff := cmp.Diff(p, took, opts()); diff != "" {
			t.Errorf("TakePending (-want +got):\n%s", diff)
		}
		for _, get := range []func(context.Context, string, []byte) (store.Pending, error){s.GetPending, s.TakePending} {
			if _, err := get(ctx, "authorize", hashOf("req-1")); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("after TakePending: err = %v, want ErrNotFound", err)
			}
		}
		if got, err := s.GetPending(ctx, "upstream", hashOf("req-1")); err != nil || !cmp.Equal(other, got, opts()) {
			t.Errorf("the other kind's step = %+v, %v; want it kept", got, err)
		}
	})
	t.Run("fail/unknown", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		if err := s.PutPending(ctx, newPending("authorize", "req-1")); err != nil {
			t.Fatalf("PutPending: %v", err)
		}
		for _, tc := range []struct {
			kind string
			hash []byte
		}{
			{"authorize", hashOf("req-2")},
			{"upstream", hashOf("req-1")},
			{"authorize", nil},
			{"authorize\xff\x00", hashOf("req-1")},
		} {
			if _, err := s.GetPending(ctx, tc.kind, tc.hash); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("GetPending(%q, %x): err = %v, want ErrNotFound", tc.kind, tc.hash, err)
			}
			if _, err := s.TakePending(ctx, tc.kind, tc.hash); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("TakePending(%q, %x): err = %v, want ErrNotFound", tc.kind, tc.hash, err)
			}
		}
	})
	t.Run("fail/put-twice-is-conflict", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		p := newPending("authorize", "req-1")
		if err := s.PutPending(ctx, p); err != nil {
			t.Fatalf("PutPending: %v", err)
		}
		again := p
		again.Data = json.RawMessage(`{"other":true}`)
		if err := s.PutPending(ctx, again); !errors.Is(err, store.ErrConflict) {
			t.Errorf("PutPending of a stored step: err = %v, want ErrConflict", err)
		}
		if got, err := s.GetPending(ctx, "authorize", hashOf("req-1")); err != nil || !cmp.Equal(p, got, opts()) {
			t.Errorf("GetPending after a refused put = %+v, %v; want the first", got, err)
		}
	})
	t.Run("fail/bad-record", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		noHash, noExpiry := newPending("authorize", "x"), newPending("authorize", "y")
		noHash.Hash, noExpiry.ExpiresAt = nil, time.Time{}
		badRecord(t, s, "PutPending without a hash", s.PutPending(ctx, noHash))
		badRecord(t, s, "PutPending without an expiry", s.PutPending(ctx, noExpiry))
	})
	t.Run("ok/concurrent-take-one-wins", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		if err := s.PutPending(ctx, newPending("authorize", "req-1")); err != nil {
			t.Fatalf("PutPending: %v", err)
		}
		errs := race(20, func(int) error {
			_, err := s.TakePending(ctx, "authorize", hashOf("req-1"))
			return err
		})
		oneWinner(t, errs, store.ErrNotFound)
	})
}

// testSignInUnversioned checks that no sign-in write moves the
// generation: none of it is cached.
func testSignInUnversioned(t *testing.T, open func(t *testing.T) store.Store) {
	s, ctx := open(t), t.Context()
	gen := mustGeneration(t, s)
	at := base().Add(time.Minute)
	for _, step := range []struct {
		name string
		do   func() error
	}{
		{"CreateCode", func() error { return s.CreateCode(ctx, newCode("c")) }},
		{"RedeemCode", func() error { _, err := s.RedeemCode(ctx, hashOf("c"), at); return err }},
		{"CreateRefresh", func() error { return s.CreateRefresh(ctx, newRefresh("r")) }},
		{"RotateRefresh", func() error { _, err := s.RotateRefresh(ctx, hashOf("r"), at, newRefresh("r2")); return err }},
		{"CreateSession", func() error { return s.CreateSession(ctx, newSession("s", "user:sam")) }},
		{"TouchSession", func() error { return s.TouchSession(ctx, hashOf("s"), at) }},
		{"DeleteSession", func() error { return s.DeleteSession(ctx, hashOf("s")) }},
		{"DeleteSessionsOf", func() error { _, err := s.DeleteSessionsOf(ctx, "user:sam"); return err }},
		{"PutPending", func() error { return s.PutPending(ctx, newPending("authorize", "p")) }},
		{"TakePending", func() error { _, err := s.TakePending(ctx, "authorize", hashOf("p")); return err }},
	} {
		if err := step.do(); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		if g := mustGeneration(t, s); g != gen {
			t.Errorf("%s moved the generation from %d to %d", step.name, gen, g)
		}
	}
}

// testSweepSignIn checks that Sweep deletes the sign-in rows whose own
// expiry is before the SignIn cutoff, used or not, and only those: a used
// refresh token of a live family stays until it expires, so that its
// replay is still recognised.
func testSweepSignIn(t *testing.T, open func(t *testing.T) store.Store) {
	s, ctx := open(t), t.Context()
	soon, later := base().Add(time.Minute), base().Add(time.Hour)
	codeOld, codeLive := newCode("c-old"), newCode("c-live")
	codeOld.ExpiresAt, codeLive.ExpiresAt = soon, later
	rtOld, rtUsed, rtNext := newRefresh("r-old"), newRefresh("r-used"), newRefresh("r-next")
	rtOld.ExpiresAt, rtUsed.ExpiresAt, rtNext.ExpiresAt = soon, later, later
	seOld, seLive := newSession("s-old", "user:sam"), newSession("s-live", "user:sam")
	seOld.ExpiresAt, seLive.ExpiresAt = soon, later
	pOld, pLive := newPending("authorize", "p-old"), newPending("authorize", "p-live")
	pOld.ExpiresAt, pLive.ExpiresAt = soon, later
	for _, err := range []error{
		s.CreateCode(ctx, codeOld), s.CreateCode(ctx, codeLive),
		s.CreateRefresh(ctx, rtOld), s.CreateRefresh(ctx, rtUsed),
		s.CreateSession(ctx, seOld), s.CreateSession(ctx, seLive),
		s.PutPending(ctx, pOld), s.PutPending(ctx, pLive),
	} {
		if err != nil {
			t.Fatalf("seed: %v", err)
		}
	}
	// Used rows: an old code, and a live family's rotated token.
	if _, err := s.RedeemCode(ctx, hashOf("c-old"), base()); err != nil {
		t.Fatalf("RedeemCode: %v", err)
	}
	if _, err := s.RotateRefresh(ctx, hashOf("r-used"), base(), rtNext); err != nil {
		t.Fatalf("RotateRefresh: %v", err)
	}

	// A zero cutoff, or one at the expiry (exclusive), deletes nothing.
	for _, c := range []store.SweepCutoffs{{Tokens: later, Nonces: later}, {SignIn: soon}} {
		if got, err := s.Sweep(ctx, c, 0); err != nil || got != (store.Swept{}) {
			t.Errorf("Sweep(%+v) = %+v, %v; want nothing", c, got, err)
		}
	}
	got, err := s.Sweep(ctx, store.SweepCutoffs{SignIn: soon.Add(time.Microsecond)}, 0)
	if err != nil {
		t.Fatalf("Sweep: %v", err)
	}
	if want := (store.Swept{SignIn: 4}); got != want {
		t.Errorf("Sweep = %+v, want %+v", got, want)
	}
	if _, err := s.RedeemCode(ctx, hashOf("c-old"), later); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the expired code: err = %v, want ErrNotFound (swept)", err)
	}
	if _, err := s.RotateRefresh(ctx, hashOf("r-old"), later, newRefresh("r-x")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the expired refresh token: err = %v, want ErrNotFound (swept)", err)
	}
	if _, err := s.GetSession(ctx, hashOf("s-old")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the expired session: err = %v, want ErrNotFound (swept)", err)
	}
	if _, err := s.GetPending(ctx, "authorize", hashOf("p-old")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the expired pending step: err = %v, want ErrNotFound (swept)", err)
	}
	// What has not expired stays, used or not.
	if _, err := s.RotateRefresh(ctx, hashOf("r-used"), later, newRefresh("r-y")); !errors.Is(err, store.ErrReplay) {
		t.Errorf("the used token of a live family: err = %v, want ErrReplay (kept)", err)
	}
	if _, err := s.GetSession(ctx, hashOf("s-live")); err != nil {
		t.Errorf("the live session: %v", err)
	}
	if _, err := s.GetPending(ctx, "authorize", hashOf("p-live")); err != nil {
		t.Errorf("the live pending step: %v", err)
	}
	if _, err := s.RedeemCode(ctx, hashOf("c-live"), later); err != nil {
		t.Errorf("the live code: %v", err)
	}
	// Sign-in rows share the batch's limit, after tokens and nonces.
	for i := range 5 {
		p := newPending("authorize", fmt.Sprintf("p-%d", i))
		p.ExpiresAt = soon
		if err := s.PutPending(ctx, p); err != nil {
			t.Fatalf("PutPending: %v", err)
		}
	}
	c := store.SweepCutoffs{SignIn: soon.Add(time.Microsecond)}
	if got, err := s.Sweep(ctx, c, 3); err != nil || got != (store.Swept{SignIn: 3}) {
		t.Errorf("Sweep(limit 3) = %+v, %v; want 3 sign-in rows", got, err)
	}
	if got, err := s.Sweep(ctx, c, 3); err != nil || got != (store.Swept{SignIn: 2}) {
		t.Errorf("second Sweep(limit 3) = %+v, %v; want the last 2", got, err)
	}
}

// RunRefusedEvents proves that the sign-in writes that take events append
// them atomically with their change: open returns a new, empty store and a
// function that makes every later append of an audit record fail in the
// database (a trigger, say); then each write fails and leaves no row.
func RunRefusedEvents(t *testing.T, open func(t *testing.T) (s store.Store, refuseEvents func())) {
	s, refuse := open(t)
	ctx := t.Context()
	at := base().Add(time.Second)
	if err := s.CreateSession(ctx, newSession("s-kept", "user:sam")); err != nil {
		t.Fatalf("CreateSession: %v", err)
	}
	refuse()
	ev := newEvent("ev", "signin")
	for _, tc := range []struct {
		name  string
		write func() error
		// left checks that the write changed nothing: ErrNotFound when so.
		left func() error
	}{
		{
			name:  "fail/create-code",
			write: func() error { return s.CreateCode(ctx, newCode("c"), ev) },
			left:  func() error { _, err := s.RedeemCode(ctx, hashOf("c"), at); return err },
		},
		{
			name:  "fail/create-refresh",
			write: func() error { return s.CreateRefresh(ctx, newRefresh("r"), ev) },
			left: func() error {
				_, err := s.RotateRefresh(ctx, hashOf("r"), at, newRefresh("r2"))
				return err
			},
		},
		{
			name:  "fail/create-session",
			write: func() error { return s.CreateSession(ctx, newSession("s", "user:lee"), ev) },
			left:  func() error { _, err := s.GetSession(ctx, hashOf("s")); return err },
		},
		{
			name:  "fail/delete-session",
			write: func() error { return s.DeleteSession(ctx, hashOf("s-kept"), ev) },
			left:  func() error { _, err := s.GetSession(ctx, hashOf("s-kept")); return notFoundIfFound(err) },
		},
		{
			name:  "fail/delete-sessions-of",
			write: func() error { _, err := s.DeleteSessionsOf(ctx, "user:sam", ev); return err },
			left:  func() error { _, err := s.GetSession(ctx, hashOf("s-kept")); return notFoundIfFound(err) },
		},
	} {
		if err := tc.write(); err == nil {
			t.Errorf("%s: the write succeeded with its audit record refused", tc.name)
		}
		if err := tc.left(); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s: the write's change is stored (err = %v)", tc.name, err)
		}
	}
}

// notFoundIfFound turns a found row (nil) into ErrNotFound, for the checks
// of RunRefusedEvents that a deletion did not happen.
func notFoundIfFound(err error) error {
	if err == nil {
		return store.ErrNotFound
	}
	return fmt.Errorf("the row is gone (%v)", err)
}
