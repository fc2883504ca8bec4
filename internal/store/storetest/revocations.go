package storetest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/mandate-dev/mandate/internal/store"
	"github.com/mandate-dev/mandate/revocation"
)

// genAfter in a wanted entry stands for the Generation read after the
// change: the generation the change's transaction bumped to.
const genAfter = -1

// errAny as a wanted error accepts any error.
var errAny = errors.New("storetest: any error")

// revocationOpts compares entries without At, the store's clock.
func revocationOpts() cmp.Options {
	return cmp.Options{cmpopts.IgnoreFields(store.Revocation{}, "At")}
}

// mustRevocations returns every entry, in Seq order.
func mustRevocations(t *testing.T, s store.Store) []store.Revocation {
	t.Helper()
	rs, err := s.ListRevocations(t.Context(), 0, store.MaxRevocationLimit)
	if err != nil {
		t.Fatalf("ListRevocations: %v", err)
	}
	return rs
}

func mustRevocationSeq(t *testing.T, s store.Store) int64 {
	t.Helper()
	seq, err := s.RevocationSeq(t.Context())
	if err != nil {
		t.Fatalf("RevocationSeq: %v", err)
	}
	return seq
}

// revocationIDs is the Kind:ID[:Scope] of each entry, in order.
func revocationIDs(rs []store.Revocation) []string {
	out := make([]string, 0, len(rs))
	for _, r := range rs {
		id := r.Kind + ":" + r.ID
		if r.Scope != "" {
			id += ":" + r.Scope
		}
		out = append(out, id)
	}
	return out
}

// activeDelegation is a delegation that is active now (the store judges
// activity by its own clock).
func activeDelegation(id string) store.Delegation {
	d := newDelegation(id)
	d.Scopes = []string{"deploy:create", "deploy:read"}
	d.Expires = time.Now().Add(24 * time.Hour).UTC().Truncate(time.Microsecond)
	return d
}

// seedRevocations fills s with a record of each kind for the derivation
// cases; it makes no revocation entry.
func seedRevocations(t *testing.T, s store.Store) {
	t.Helper()
	ctx := t.Context()
	disabled := newAgent("agent:off")
	disabled.Disabled = true
	anyAudience := activeDelegation("d-any")
	anyAudience.Audiences = nil
	revoked := activeDelegation("d-revoked")
	revoked.Revoked, revoked.RevokedAt = true, base()
	expired := activeDelegation("d-expired")
	expired.Expires = time.Now().Add(-time.Hour)
	noExpiry := activeDelegation("d-no-expiry")
	noExpiry.Expires = time.Time{}
	active, revokedKey := newKey("k1"), newKey("k-revoked")
	active.State, revokedKey.State = store.KeyActive, store.KeyRevoked
	for _, err := range []error{
		s.CreateUser(ctx, newUser("user:sam")),
		s.CreateAgent(ctx, newAgent("agent:argocd")),
		s.CreateAgent(ctx, disabled),
		s.CreateDelegation(ctx, activeDelegation("d1")),
		s.CreateDelegation(ctx, anyAudience),
		s.CreateDelegation(ctx, revoked),
		s.CreateDelegation(ctx, expired),
		s.CreateDelegation(ctx, noExpiry),
		s.CreateKey(ctx, active),
		s.CreateKey(ctx, revokedKey),
		s.Commit(ctx, store.Batch{Tokens: []store.IssuedToken{newToken("t1"), newToken("t2")}}),
	} {
		if err != nil {
			t.Fatalf("seed: %v", err)
		}
	}
	if rs := mustRevocations(t, s); len(rs) != 0 {
		t.Fatalf("creating records made revocation entries: %v", revocationIDs(rs))
	}
}

func updateUser(fn func(u store.User) store.User) func(context.Context, store.Store) error {
	return func(ctx context.Context, s store.Store) error {
		_, err := s.UpdateUser(ctx, "user:sam", func(u store.User) (store.User, error) { return fn(u), nil })
		return err
	}
}

func updateAgent(id string, fn func(a store.Agent) store.Agent) func(context.Context, store.Store) error {
	return func(ctx context.Context, s store.Store) error {
		_, err := s.UpdateAgent(ctx, id, func(a store.Agent) (store.Agent, error) { return fn(a), nil })
		return err
	}
}

func updateDelegation(id string, fn func(d store.Delegation) store.Delegation) func(context.Context, store.Store) error {
	return func(ctx context.Context, s store.Store) error {
		_, err := s.UpdateDelegation(ctx, id, func(d store.Delegation) (store.Delegation, error) { return fn(d), nil })
		return err
	}
}

func updateKey(kid string, fn func(k store.Key) store.Key) func(context.Context, store.Store) error {
	return func(ctx context.Context, s store.Store) error {
		_, err := s.UpdateKey(ctx, kid, func(k store.Key) (store.Key, error) { return fn(k), nil })
		return err
	}
}

func deleteUser(id string) func(context.Context, store.Store) error {
	return func(ctx context.Context, s store.Store) error {
		return s.DeleteUser(ctx, id, newEvent("del-"+id, "user.deleted"))
	}
}

func deleteAgent(id string) func(context.Context, store.Store) error {
	return func(ctx context.Context, s store.Store) error {
		return s.DeleteAgent(ctx, id, newEvent("del-"+id, "agent.deleted"))
	}
}

func revokeToken(jti string) func(context.Context, store.Store) error {
	return func(ctx context.Context, s store.Store) error {
		return s.RevokeToken(ctx, jti, base().Add(time.Minute), newEvent("rev-"+jti, "token.revoke"))
	}
}

// testRevocationDerivation checks that each change makes exactly the
// entries the store.Revocations rules say, in the change's transaction:
// numbered from 1 without gaps, with the generation the change bumped to.
func testRevocationDerivation(t *testing.T, open func(t *testing.T) store.Store) {
	subject := func(id string) store.Revocation {
		return store.Revocation{Kind: revocation.KindSubject, ID: id, Gen: genAfter}
	}
	scope := func(id, sc string) store.Revocation {
		return store.Revocation{Kind: revocation.KindScope, ID: id, Scope: sc, Gen: genAfter}
	}
	agent := func(id string) store.Revocation {
		return store.Revocation{Kind: revocation.KindAgent, ID: id, Gen: genAfter}
	}
	delegation := func(id string) store.Revocation {
		return store.Revocation{Kind: revocation.KindDelegation, ID: id, Gen: genAfter}
	}
	token := newToken("t1")
	for _, tc := range []struct {
		name string
		// changes run in order; each must succeed unless it is the last
		// and wantErr is set.
		changes []func(context.Context, store.Store) error
		wantErr error
		want    []store.Revocation
		// ignoreGen leaves Gen out of the comparison, for a case about
		// order (Gen is checked case by case).
		ignoreGen bool
	}{
		{
			name:    "ok/user-version-raised",
			changes: []func(context.Context, store.Store) error{updateUser(func(u store.User) store.User { u.Version++; return u })},
			want:    []store.Revocation{subject("user:sam")},
		},
		{
			name: "ok/user-permission-lost",
			changes: []func(context.Context, store.Store) error{updateUser(func(u store.User) store.User {
				u.Permissions = []string{"deploy:read", "deploy:delete"}
				return u
			})},
			want: []store.Revocation{scope("user:sam", "deploy:create")},
		},
		{
			name: "ok/user-version-and-every-permission",
			changes: []func(context.Context, store.Store) error{updateUser(func(u store.User) store.User {
				u.Version += 2
				u.Permissions = nil
				return u
			})},
			want: []store.Revocation{subject("user:sam"), scope("user:sam", "deploy:create"), scope("user:sam", "deploy:read")},
		},
		{
			name: "ok/user-permission-added",
			changes: []func(context.Context, store.Store) error{updateUser(func(u store.User) store.User {
				u.Permissions = append(u.Permissions, "deploy:delete")
				return u
			})},
		},
		{
			name: "ok/user-limits-and-time-changed",
			changes: []func(context.Context, store.Store) error{updateUser(func(u store.User) store.User {
				u.Limits = nil
				u.UpdatedAt = base().Add(time.Hour)
				return u
			})},
		},
		{
			name: "ok/user-permissions-reordered",
			changes: []func(context.Context, store.Store) error{updateUser(func(u store.User) store.User {
				u.Permissions = []string{"deploy:read", "deploy:create"}
				return u
			})},
		},
		{
			// Every token on the user's behalf ends, also for a user
			// created later with the same id (whose Version starts over).
			name:    "ok/user-deleted",
			changes: []func(context.Context, store.Store) error{deleteUser("user:sam")},
			want:    []store.Revocation{subject("user:sam"), scope("user:sam", "deploy:create"), scope("user:sam", "deploy:read")},
		},
		{
			name:    "fail/user-delete-unknown",
			changes: []func(context.Context, store.Store) error{deleteUser("user:nobody")},
			wantErr: store.ErrNotFound,
		},
		{
			name:    "ok/agent-deleted",
			changes: []func(context.Context, store.Store) error{deleteAgent("agent:argocd")},
			want:    []store.Revocation{agent("agent:argocd")},
		},
		{
			// Its entry was made when it was disabled; no token was
			// minted with it since.
			name:    "ok/agent-deleted-when-disabled",
			changes: []func(context.Context, store.Store) error{deleteAgent("agent:off")},
		},
		{
			name:    "ok/agent-disabled",
			changes: []func(context.Context, store.Store) error{updateAgent("agent:argocd", func(a store.Agent) store.Agent { a.Disabled = true; return a })},
			want:    []store.Revocation{agent("agent:argocd")},
		},
		{
			name:    "ok/agent-enabled",
			changes: []func(context.Context, store.Store) error{updateAgent("agent:off", func(a store.Agent) store.Agent { a.Disabled = false; return a })},
		},
		{
			name: "ok/agent-disabled-stays-disabled",
			changes: []func(context.Context, store.Store) error{updateAgent("agent:off", func(a store.Agent) store.Agent {
				a.Scopes = nil
				return a
			})},
		},
		{
			name: "ok/agent-scope-removed",
			changes: []func(context.Context, store.Store) error{updateAgent("agent:argocd", func(a store.Agent) store.Agent {
				a.Scopes = nil
				return a
			})},
		},
		{
			name: "ok/delegation-revoked",
			changes: []func(context.Context, store.Store) error{updateDelegation("d1", func(d store.Delegation) store.Delegation {
				d.Revoked, d.RevokedAt = true, time.Now()
				return d
			})},
			want: []store.Revocation{delegation("d1")},
		},
		{
			name: "ok/delegation-scope-removed",
			changes: []func(context.Context, store.Store) error{updateDelegation("d1", func(d store.Delegation) store.Delegation {
				d.Scopes = []string{"deploy:read"}
				return d
			})},
			want: []store.Revocation{delegation("d1")},
		},
		{
			name: "ok/delegation-audience-removed",
			changes: []func(context.Context, store.Store) error{updateDelegation("d1", func(d store.Delegation) store.Delegation {
				d.Audiences = []string{"https://other.example"}
				return d
			})},
			want: []store.Revocation{delegation("d1")},
		},
		{
			// No audiences allows any: the first one narrows it.
			name: "ok/delegation-any-audience-restricted",
			changes: []func(context.Context, store.Store) error{updateDelegation("d-any", func(d store.Delegation) store.Delegation {
				d.Audiences = []string{"https://deploy.example"}
				return d
			})},
			want: []store.Revocation{delegation("d-any")},
		},
		{
			name: "ok/delegation-expiry-brought-forward",
			changes: []func(context.Context, store.Store) error{updateDelegation("d1", func(d store.Delegation) store.Delegation {
				d.Expires = d.Expires.Add(-time.Hour)
				return d
			})},
			want: []store.Revocation{delegation("d1")},
		},
		{
			name: "ok/delegation-expiry-set",
			changes: []func(context.Context, store.Store) error{updateDelegation("d-no-expiry", func(d store.Delegation) store.Delegation {
				d.Expires = time.Now().Add(time.Hour)
				return d
			})},
			want: []store.Revocation{delegation("d-no-expiry")},
		},
		{
			name: "ok/delegation-revoked-and-narrowed-once",
			changes: []func(context.Context, store.Store) error{updateDelegation("d1", func(d store.Delegation) store.Delegation {
				d.Revoked, d.Scopes, d.Audiences, d.Expires = true, nil, []string{"https://other.example"}, time.Now()
				return d
			})},
			want: []store.Revocation{delegation("d1")},
		},
		{
			name: "ok/delegation-widened",
			changes: []func(context.Context, store.Store) error{updateDelegation("d1", func(d store.Delegation) store.Delegation {
				d.Scopes = append(d.Scopes, "deploy:delete")
				d.Audiences = append(d.Audiences, "https://other.example")
				d.Expires = d.Expires.Add(time.Hour)
				return d
			})},
		},
		{
			name: "ok/delegation-audience-widened-to-any",
			changes: []func(context.Context, store.Store) error{updateDelegation("d1", func(d store.Delegation) store.Delegation {
				d.Audiences = nil
				return d
			})},
		},
		{
			name: "ok/delegation-expiry-removed",
			changes: []func(context.Context, store.Store) error{updateDelegation("d1", func(d store.Delegation) store.Delegation {
				d.Expires = time.Time{}
				return d
			})},
		},
		{
			name: "ok/delegation-already-revoked",
			changes: []func(context.Context, store.Store) error{updateDelegation("d-revoked", func(d store.Delegation) store.Delegation {
				d.Scopes, d.Expires = nil, time.Now()
				return d
			})},
		},
		{
			name: "ok/delegation-expired-revoked",
			changes: []func(context.Context, store.Store) error{updateDelegation("d-expired", func(d store.Delegation) store.Delegation {
				d.Revoked, d.RevokedAt = true, time.Now()
				return d
			})},
		},
		{
			name: "ok/delegation-revoked-twice",
			changes: []func(context.Context, store.Store) error{
				updateDelegation("d1", func(d store.Delegation) store.Delegation { d.Revoked = true; return d }),
				updateDelegation("d1", func(d store.Delegation) store.Delegation { d.Scopes = nil; return d }),
			},
			// The entry is the first update's; the second bumped the
			// generation again.
			ignoreGen: true,
			want:      []store.Revocation{delegation("d1")},
		},
		{
			name:    "ok/key-revoked",
			changes: []func(context.Context, store.Store) error{updateKey("k1", func(k store.Key) store.Key { k.State = store.KeyRevoked; return k })},
			want:    []store.Revocation{{Kind: revocation.KindKey, ID: "k1"}},
		},
		{
			name: "ok/key-retired",
			changes: []func(context.Context, store.Store) error{updateKey("k1", func(k store.Key) store.Key {
				k.State, k.RetireAt = store.KeyRetired, base().Add(time.Hour)
				return k
			})},
		},
		{
			name:    "ok/key-already-revoked",
			changes: []func(context.Context, store.Store) error{updateKey("k-revoked", func(k store.Key) store.Key { k.RetireAt = base(); return k })},
		},
		{
			name:    "ok/token-revoked",
			changes: []func(context.Context, store.Store) error{revokeToken("t1")},
			want:    []store.Revocation{{Kind: revocation.KindToken, ID: "t1", Expires: token.ExpiresAt}},
		},
		{
			// RFC 7009 §2.2: a second revocation succeeds, and changes nothing.
			name:    "ok/token-revoked-twice",
			changes: []func(context.Context, store.Store) error{revokeToken("t1"), revokeToken("t1")},
			want:    []store.Revocation{{Kind: revocation.KindToken, ID: "t1", Expires: token.ExpiresAt}},
		},
		{
			name: "ok/in-commit-order",
			changes: []func(context.Context, store.Store) error{
				revokeToken("t2"),
				updateAgent("agent:argocd", func(a store.Agent) store.Agent { a.Disabled = true; return a }),
				revokeToken("t1"),
				updateUser(func(u store.User) store.User { u.Version++; return u }),
				updateKey("k1", func(k store.Key) store.Key { k.State = store.KeyRevoked; return k }),
			},
			ignoreGen: true,
			want: []store.Revocation{
				{Kind: revocation.KindToken, ID: "t2", Expires: token.ExpiresAt},
				{Kind: revocation.KindAgent, ID: "agent:argocd"},
				{Kind: revocation.KindToken, ID: "t1", Expires: token.ExpiresAt},
				{Kind: revocation.KindSubject, ID: "user:sam"},
				{Kind: revocation.KindKey, ID: "k1"},
			},
		},
		{
			name:    "fail/token-unknown",
			changes: []func(context.Context, store.Store) error{revokeToken("missing")},
			wantErr: store.ErrNotFound,
		},
		{
			name: "fail/update-fn-error",
			changes: []func(context.Context, store.Store) error{func(ctx context.Context, s store.Store) error {
				_, err := s.UpdateUser(ctx, "user:sam", func(u store.User) (store.User, error) {
					u.Version++
					u.Permissions = nil
					return u, errFn
				})
				return err
			}},
			wantErr: errFn,
		},
		{
			name: "fail/user-version-decreases",
			changes: []func(context.Context, store.Store) error{updateUser(func(u store.User) store.User {
				u.Version--
				u.Permissions = nil
				return u
			})},
			wantErr: errAny,
		},
		{
			name: "fail/update-changes-id",
			changes: []func(context.Context, store.Store) error{updateAgent("agent:argocd", func(a store.Agent) store.Agent {
				a.ID, a.Disabled = "agent:other", true
				return a
			})},
			wantErr: errAny,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, ctx := open(t), t.Context()
			seedRevocations(t, s)
			start := time.Now()
			var err error
			for i, change := range tc.changes {
				if err = change(ctx, s); err != nil && (tc.wantErr == nil || i < len(tc.changes)-1) {
					t.Fatalf("change %d: %v", i, err)
				}
			}
			end := time.Now()
			switch {
			case tc.wantErr != nil && err == nil:
				t.Fatalf("last change succeeded, want an error")
			case tc.wantErr != nil && tc.wantErr != errAny && !errors.Is(err, tc.wantErr):
				t.Fatalf("last change: err = %v, want %v", err, tc.wantErr)
			}
			gen := mustGeneration(t, s)
			want := make([]store.Revocation, len(tc.want))
			for i, r := range tc.want {
				r.Seq = int64(i + 1)
				if r.Gen == genAfter {
					r.Gen = gen
				}
				want[i] = r
			}
			got := mustRevocations(t, s)
			opts := cmp.Options{revocationOpts(), cmpopts.EquateEmpty()}
			if tc.ignoreGen {
				opts = append(opts, cmpopts.IgnoreFields(store.Revocation{}, "Gen"))
			}
			if diff := cmp.Diff(want, got, opts); diff != "" {
				t.Errorf("entries (-want +got):\n%s", diff)
			}
			for _, r := range got {
				switch {
				case r.Kind == revocation.KindToken:
					if at := base().Add(time.Minute); !r.At.Equal(at) {
						t.Errorf("token entry %s: At = %v, want the revocation time %v", r.ID, r.At, at)
					}
				case r.At.Before(start.Truncate(time.Microsecond)) || r.At.After(end):
					t.Errorf("%s entry %s: At = %v, want the time of the change, in [%v, %v]", r.Kind, r.ID, r.At, start, end)
				}
				if r.At.Location() != time.UTC {
					t.Errorf("%s entry %s: At = %v, want UTC", r.Kind, r.ID, r.At)
				}
			}
			if seq := mustRevocationSeq(t, s); seq != int64(len(want)) {
				t.Errorf("RevocationSeq = %d, want %d", seq, len(want))
			}
		})
	}
}

// testRevocationGenMatchesGeneration checks, over a run of changes, that
// each entry with a Gen carries the generation its change bumped to, which
// is above every token minted before the change (IssuedToken.Gen) and at or
// below every token minted after it.
func testRevocationGenMatchesGeneration(t *testing.T, open func(t *testing.T) store.Store) {
	s, ctx := open(t), t.Context()
	seedRevocations(t, s)
	for i, change := range []func(context.Context, store.Store) error{
		updateUser(func(u store.User) store.User { u.Version++; return u }),
		updateAgent("agent:argocd", func(a store.Agent) store.Agent { a.Disabled = true; return a }),
		updateUser(func(u store.User) store.User { u.Permissions = nil; return u }),
		updateDelegation("d1", func(d store.Delegation) store.Delegation { d.Revoked = true; return d }),
	} {
		minted, seq := mustGeneration(t, s), mustRevocationSeq(t, s)
		if err := change(ctx, s); err != nil {
			t.Fatalf("change %d: %v", i, err)
		}
		gen := mustGeneration(t, s)
		rs, err := s.ListRevocations(ctx, seq, 0)
		if err != nil {
			t.Fatalf("ListRevocations: %v", err)
		}
		if len(rs) == 0 {
			t.Fatalf("change %d made no entry", i)
		}
		for _, r := range rs {
			if r.Gen != gen || r.Gen <= minted {
				t.Errorf("change %d: %s entry has Gen %d, want the generation after the change, %d (above %d)", i, r.Kind, r.Gen, gen, minted)
			}
		}
	}
}

// testTokenGen checks that IssuedToken.Gen round-trips through Commit and
// GetToken, zero included.
func testTokenGen(t *testing.T, open func(t *testing.T) store.Store) {
	s, ctx := open(t), t.Context()
	var b store.Batch
	for _, gen := range []int64{0, 1, 42, 1 << 40} {
		tok := newToken(fmt.Sprintf("t-%d", gen))
		tok.Gen = gen
		b.Tokens = append(b.Tokens, tok)
	}
	if err := s.Commit(ctx, b); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	for _, want := range b.Tokens {
		got, err := s.GetToken(ctx, want.JTI)
		if err != nil {
			t.Fatalf("GetToken %s: %v", want.JTI, err)
		}
		if got.Gen != want.Gen {
			t.Errorf("GetToken %s: Gen = %d, want %d", want.JTI, got.Gen, want.Gen)
		}
	}
}

// revokeTokens commits n tokens r-000 ... and revokes each, in order, so
// that entry i+1 is token r-i.
func revokeTokens(t *testing.T, s store.Store, n int) []string {
	t.Helper()
	ctx := t.Context()
	var (
		b   store.Batch
		ids []string
	)
	for i := range n {
		b.Tokens = append(b.Tokens, newToken(fmt.Sprintf("r-%03d", i)))
		ids = append(ids, revocation.KindToken+":"+b.Tokens[i].JTI)
	}
	if err := s.Commit(ctx, b); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	for _, tok := range b.Tokens {
		if err := s.RevokeToken(ctx, tok.JTI, base()); err != nil {
			t.Fatalf("RevokeToken %s: %v", tok.JTI, err)
		}
	}
	return ids
}

func testListRevocations(t *testing.T, open func(t *testing.T) store.Store) {
	s, ctx := open(t), t.Context()
	if seq := mustRevocationSeq(t, s); seq != 0 {
		t.Errorf("RevocationSeq of a new store = %d, want 0", seq)
	}
	if rs := mustRevocations(t, s); len(rs) != 0 {
		t.Errorf("entries in a new store: %v", revocationIDs(rs))
	}
	ids := revokeTokens(t, s, 7)
	for _, tc := range []struct {
		name  string
		after int64
		limit int
		want  []string
	}{
		{name: "ok/all", want: ids},
		{name: "ok/after", after: 5, want: ids[5:]},
		{name: "ok/limit", limit: 3, want: ids[:3]},
		{name: "ok/after-and-limit", after: 2, limit: 2, want: ids[2:4]},
		{name: "ok/negative-limit-is-default", limit: -1, want: ids},
		{name: "ok/after-the-last", after: 7},
		{name: "ok/far-after", after: 1 << 40},
		{name: "ok/negative-after", after: -5, want: ids},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.ListRevocations(ctx, tc.after, tc.limit)
			if err != nil {
				t.Fatalf("ListRevocations: %v", err)
			}
			if diff := cmp.Diff(tc.want, revocationIDs(got), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("entries (-want +got):\n%s", diff)
			}
			for i, r := range got {
				if want := tc.after + int64(i) + 1; tc.after >= 0 && r.Seq != want {
					t.Errorf("entry %d has Seq %d, want %d", i, r.Seq, want)
				}
			}
		})
	}
	t.Run("ok/paginate", func(t *testing.T) {
		var (
			got   []string
			after int64
			pages int
		)
		for range 10 {
			page, err := s.ListRevocations(ctx, after, 3)
			if err != nil {
				t.Fatalf("ListRevocations: %v", err)
			}
			if len(page) == 0 {
				break
			}
			pages++
			got = append(got, revocationIDs(page)...)
			after = page[len(page)-1].Seq
		}
		if diff := cmp.Diff(ids, got); diff != "" {
			t.Errorf("pages (-want +got):\n%s", diff)
		}
		if pages != 3 {
			t.Errorf("%d pages of 3 for 7 entries, want 3", pages)
		}
	})
}

// testListRevocationsLimit makes more entries than the cap in one change: a
// user who loses 10001 permissions.
func testListRevocationsLimit(t *testing.T, open func(t *testing.T) store.Store) {
	s, ctx := open(t), t.Context()
	const n = store.MaxRevocationLimit + 1
	u := newUser("user:many")
	u.Permissions = make([]string, n)
	for i := range u.Permissions {
		u.Permissions[i] = fmt.Sprintf("p:%05d", i)
	}
	if err := s.CreateUser(ctx, u); err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	if _, err := s.UpdateUser(ctx, u.ID, func(u store.User) (store.User, error) { u.Permissions = nil; return u, nil }); err != nil {
		t.Fatalf("UpdateUser: %v", err)
	}
	if seq := mustRevocationSeq(t, s); seq != n {
		t.Fatalf("RevocationSeq = %d, want %d", seq, n)
	}
	for _, tc := range []struct {
		name  string
		after int64
		limit int
		want  int
	}{
		{name: "ok/zero-means-1000", want: store.DefaultRevocationLimit},
		{name: "ok/explicit", limit: 17, want: 17},
		{name: "ok/capped-at-10000", limit: 50000, want: store.MaxRevocationLimit},
		{name: "ok/rest-after-cap", after: store.MaxRevocationLimit, limit: 50000, want: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.ListRevocations(ctx, tc.after, tc.limit)
			if err != nil {
				t.Fatalf("ListRevocations: %v", err)
			}
			if len(got) != tc.want {
				t.Fatalf("got %d entries, want %d", len(got), tc.want)
			}
			if got[0].Seq != tc.after+1 || got[len(got)-1].Seq != tc.after+int64(tc.want) {
				t.Errorf("Seqs run from %d to %d, want %d to %d", got[0].Seq, got[len(got)-1].Seq, tc.after+1, tc.after+int64(tc.want))
			}
			if want := fmt.Sprintf("p:%05d", tc.after); got[0].Scope != want {
				t.Errorf("first entry is for %s, want %s (the permissions' order)", got[0].Scope, want)
			}
		})
	}
}

// testCollectRevocations checks the two cutoffs (both exclusive), that a
// zero cutoff collects nothing of its kind, and that RevocationSeq does not
// fall, nor a Seq come back, after a collection.
func testCollectRevocations(t *testing.T, open func(t *testing.T) store.Store) {
	s, ctx := open(t), t.Context()
	early, late := newToken("t-early"), newToken("t-late")
	early.ExpiresAt, late.ExpiresAt = base().Add(time.Minute), base().Add(time.Hour)
	if err := s.Commit(ctx, store.Batch{Tokens: []store.IssuedToken{early, late}}); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	if err := s.CreateUser(ctx, newUser("user:sam")); err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	before := time.Now().Add(-time.Second)
	for _, change := range []func(context.Context, store.Store) error{
		revokeToken("t-early"),
		updateUser(func(u store.User) store.User { u.Version++; return u }),
		revokeToken("t-late"),
	} {
		if err := change(ctx, s); err != nil {
			t.Fatalf("change: %v", err)
		}
	}
	after := time.Now().Add(time.Second)
	// Sequential on purpose: each step collects from what the ones before
	// left.
	for _, tc := range []struct {
		name                       string
		tokensBefore, othersBefore time.Time
		deleted                    int
		left                       []string
	}{
		{name: "ok/zero-cutoffs", left: []string{"token:t-early", "subject:user:sam", "token:t-late"}},
		{name: "ok/before-everything", tokensBefore: base(), othersBefore: before,
			left: []string{"token:t-early", "subject:user:sam", "token:t-late"}},
		{name: "ok/token-cutoff-is-exclusive", tokensBefore: early.ExpiresAt,
			left: []string{"token:t-early", "subject:user:sam", "token:t-late"}},
		{name: "ok/token-expired", tokensBefore: early.ExpiresAt.Add(time.Microsecond), deleted: 1,
			left: []string{"subject:user:sam", "token:t-late"}},
		// Token entries go by expiry only, however old they are.
		{name: "ok/others-by-time", othersBefore: after, deleted: 1, left: []string{"token:t-late"}},
		{name: "ok/all", tokensBefore: late.ExpiresAt.Add(time.Microsecond), othersBefore: after, deleted: 1},
		{name: "ok/nothing-left", tokensBefore: after, othersBefore: after},
	} {
		n, err := s.CollectRevocations(ctx, tc.tokensBefore, tc.othersBefore)
		if err != nil {
			t.Fatalf("%s: CollectRevocations: %v", tc.name, err)
		}
		if n != tc.deleted {
			t.Errorf("%s: CollectRevocations deleted %d, want %d", tc.name, n, tc.deleted)
		}
		if diff := cmp.Diff(tc.left, revocationIDs(mustRevocations(t, s)), cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("%s: entries left (-want +got):\n%s", tc.name, diff)
		}
	}
	if seq := mustRevocationSeq(t, s); seq != 3 {
		t.Errorf("RevocationSeq after collecting every entry = %d, want 3", seq)
	}
	if _, err := s.UpdateUser(ctx, "user:sam", func(u store.User) (store.User, error) { u.Version++; return u, nil }); err != nil {
		t.Fatalf("UpdateUser: %v", err)
	}
	if rs := mustRevocations(t, s); len(rs) != 1 || rs[0].Seq != 4 {
		t.Errorf("entries after a collection and a new change = %+v, want one with Seq 4", rs)
	}
	if seq := mustRevocationSeq(t, s); seq != 4 {
		t.Errorf("RevocationSeq = %d, want 4", seq)
	}
}
