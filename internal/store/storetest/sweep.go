package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/mandate-dev/mandate/internal/store"
)

// testSweep checks that Sweep deletes only the rows before their cutoff
// (exclusive), of each kind, and nothing of a kind whose cutoff is zero;
// that it leaves the audit log, the feed's Seq and every live row alone;
// and that its counts add up to what went.
func testSweep(t *testing.T, open func(t *testing.T) store.Store) {
	s, ctx := open(t), t.Context()
	early, late, live := newToken("t-early"), newToken("t-late"), newToken("t-live")
	early.ExpiresAt = base().Add(time.Minute)
	late.ExpiresAt = base().Add(time.Hour)
	live.ExpiresAt = base().Add(48 * time.Hour)
	if err := s.Commit(ctx, store.Batch{Tokens: []store.IssuedToken{early, late, live},
		Events: []store.Event{newEvent("issue", "token.issued")}}); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	if err := s.CreateUser(ctx, newUser("user:sam")); err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	// Feed entries: a token entry per token (by its expiry), and a
	// subject entry made now (by its time).
	for _, change := range []func(context.Context, store.Store) error{
		revokeToken("t-early"), revokeToken("t-late"), revokeToken("t-live"),
		updateUser(func(u store.User) store.User { u.Version++; return u }),
	} {
		if err := change(ctx, s); err != nil {
			t.Fatalf("change: %v", err)
		}
	}
	made := time.Now()
	// Nonces: expired two hours and one hour ago, and live. Stores keep
	// microseconds, and the exclusive cutoff is checked to the microsecond.
	now := time.Now().Truncate(time.Microsecond)
	nonces := map[string]time.Time{"n-2h": now.Add(-2 * time.Hour), "n-1h": now.Add(-time.Hour), "n-live": now.Add(time.Hour)}
	for id, exp := range nonces {
		if err := s.UseNonce(ctx, "client_assertion", id, exp); err != nil {
			t.Fatalf("UseNonce %s: %v", id, err)
		}
	}
	seq := mustRevocationSeq(t, s)

	// Sequential on purpose: each step sweeps what the ones before left.
	for _, tc := range []struct {
		name       string
		c          store.SweepCutoffs
		want       store.Swept
		tokens     []string
		revocation []string
	}{
		{
			name:       "ok/zero-cutoffs",
			tokens:     []string{"t-early", "t-late", "t-live"},
			revocation: []string{"token:t-early", "token:t-late", "token:t-live", "subject:user:sam"},
		},
		{
			name:       "ok/cutoff-is-exclusive",
			c:          store.SweepCutoffs{Tokens: early.ExpiresAt, TokenRevocations: early.ExpiresAt, Nonces: nonces["n-2h"]},
			tokens:     []string{"t-early", "t-late", "t-live"},
			revocation: []string{"token:t-early", "token:t-late", "token:t-live", "subject:user:sam"},
		},
		{
			name: "ok/expired-only",
			c: store.SweepCutoffs{Tokens: early.ExpiresAt.Add(time.Microsecond), Nonces: now.Add(-90 * time.Minute),
				TokenRevocations: early.ExpiresAt.Add(time.Microsecond), OtherRevocations: made.Add(-time.Hour)},
			want:       store.Swept{Tokens: 1, Nonces: 1, Revocations: 1},
			tokens:     []string{"t-late", "t-live"},
			revocation: []string{"token:t-late", "token:t-live", "subject:user:sam"},
		},
		{
			name:       "ok/tokens-only",
			c:          store.SweepCutoffs{Tokens: late.ExpiresAt.Add(time.Microsecond)},
			want:       store.Swept{Tokens: 1},
			tokens:     []string{"t-live"},
			revocation: []string{"token:t-late", "token:t-live", "subject:user:sam"},
		},
		{
			// Token entries go by their token's expiry, the others by when
			// they were made.
			name: "ok/feed-entries",
			c: store.SweepCutoffs{TokenRevocations: late.ExpiresAt.Add(time.Microsecond),
				OtherRevocations: made.Add(time.Second), Nonces: now},
			want:       store.Swept{Nonces: 1, Revocations: 2},
			tokens:     []string{"t-live"},
			revocation: []string{"token:t-live"},
		},
		{
			name:       "ok/nothing-left-before",
			c:          store.SweepCutoffs{Tokens: late.ExpiresAt, Nonces: now, TokenRevocations: late.ExpiresAt, OtherRevocations: made.Add(time.Second)},
			tokens:     []string{"t-live"},
			revocation: []string{"token:t-live"},
		},
	} {
		got, err := s.Sweep(ctx, tc.c, 0)
		if err != nil {
			t.Fatalf("%s: Sweep: %v", tc.name, err)
		}
		if got != tc.want {
			t.Errorf("%s: Sweep = %+v, want %+v", tc.name, got, tc.want)
		}
		for _, jti := range []string{"t-early", "t-late", "t-live"} {
			_, err := s.GetToken(ctx, jti)
			kept := slices.Contains(tc.tokens, jti)
			switch {
			case kept && err != nil:
				t.Errorf("%s: GetToken(%s) = %v, want the row", tc.name, jti, err)
			case !kept && !errors.Is(err, store.ErrNotFound):
				t.Errorf("%s: GetToken(%s) = %v, want ErrNotFound", tc.name, jti, err)
			}
		}
		if diff := cmp.Diff(tc.revocation, revocationIDs(mustRevocations(t, s)), cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("%s: feed entries left (-want +got):\n%s", tc.name, diff)
		}
	}
	// The live nonce is still recorded: its second use is a replay.
	if err := s.UseNonce(ctx, "client_assertion", "n-live", nonces["n-live"]); !errors.Is(err, store.ErrReplay) {
		t.Errorf("UseNonce of the live nonce after sweeps: err = %v, want ErrReplay", err)
	}
	// The feed's head does not fall, and the audit log is whole.
	if got := mustRevocationSeq(t, s); got != seq {
		t.Errorf("RevocationSeq after sweeps = %d, want %d", got, seq)
	}
	if evs := VerifyChain(t, s); len(evs) != 4 {
		t.Errorf("audit records after sweeps: %d, want 4 (the issue and three revocations)", len(evs))
	}
}

// testSweepBatches checks that Sweep deletes at most limit rows in all,
// tokens first, and that sweeping until a batch comes back short deletes
// every expired row and no live one.
func testSweepBatches(t *testing.T, open func(t *testing.T) store.Store) {
	s, ctx := open(t), t.Context()
	const expired, alive, limit = 25, 5, 10
	var batch store.Batch
	for i := range expired + alive {
		tok := newToken(fmt.Sprintf("t-%03d", i))
		tok.ExpiresAt = base().Add(time.Duration(i) * time.Second)
		if i >= expired {
			tok.ExpiresAt = base().Add(time.Hour)
		}
		batch.Tokens = append(batch.Tokens, tok)
	}
	if err := s.Commit(ctx, batch); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	now := time.Now()
	for i := range 4 {
		if err := s.UseNonce(ctx, "client_assertion", fmt.Sprintf("n-%d", i), now.Add(-time.Hour)); err != nil {
			t.Fatalf("UseNonce: %v", err)
		}
	}
	c := store.SweepCutoffs{Tokens: base().Add(time.Minute), Nonces: now}
	var got []store.Swept
	for {
		sw, err := s.Sweep(ctx, c, limit)
		if err != nil {
			t.Fatalf("Sweep: %v", err)
		}
		got = append(got, sw)
		if sw.Total() < limit {
			break
		}
		if len(got) > 10 {
			t.Fatalf("Sweep never came back short: %+v", got)
		}
	}
	// 25 tokens and 4 nonces: 10, 10, then the last 5 tokens and the 4
	// nonces (the batch's room after the tokens).
	want := []store.Swept{{Tokens: 10}, {Tokens: 10}, {Tokens: 5, Nonces: 4}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("batches (-want +got):\n%s", diff)
	}
	for i := range expired + alive {
		jti := fmt.Sprintf("t-%03d", i)
		_, err := s.GetToken(ctx, jti)
		if i < expired && !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetToken(%s) of an expired token = %v, want ErrNotFound", jti, err)
		}
		if i >= expired && err != nil {
			t.Errorf("GetToken(%s) of a live token = %v, want the row", jti, err)
		}
	}
	// A limit above the most is capped; zero is the default.
	if n := store.SweepLimit(0); n != store.DefaultSweepLimit {
		t.Errorf("SweepLimit(0) = %d, want %d", n, store.DefaultSweepLimit)
	}
	if n := store.SweepLimit(store.MaxSweepLimit + 1); n != store.MaxSweepLimit {
		t.Errorf("SweepLimit(max+1) = %d, want %d", n, store.MaxSweepLimit)
	}
}
