package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/mandate-dev/mandate/internal/store"
)

// Run runs the conformance suite against the backend that open returns.
// Each call of open must return a new, empty store and arrange (with
// t.Cleanup) for it to be closed when t ends; subtests run in parallel,
// each on its own store. Backends must keep times to the microsecond (the
// precision PostgreSQL keeps) and return them in UTC.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	t.Run("Users", func(t *testing.T) { t.Parallel(); testAggregate(t, open, users()) })
	t.Run("UserVersion", func(t *testing.T) { t.Parallel(); testUserVersion(t, open) })
	t.Run("Agents", func(t *testing.T) { t.Parallel(); testAggregate(t, open, agents()) })
	t.Run("Delegations", func(t *testing.T) { t.Parallel(); testAggregate(t, open, delegations()) })
	t.Run("DelegationFilter", func(t *testing.T) { t.Parallel(); testDelegationFilter(t, open) })
	t.Run("Keys", func(t *testing.T) { t.Parallel(); testAggregate(t, open, keys()) })
	t.Run("Tokens", func(t *testing.T) { t.Parallel(); testTokens(t, open) })
	t.Run("RevokeToken", func(t *testing.T) { t.Parallel(); testRevokeToken(t, open) })
	t.Run("Commit", func(t *testing.T) { t.Parallel(); testCommit(t, open) })
	t.Run("EventRoundTrip", func(t *testing.T) { t.Parallel(); testEventRoundTrip(t, open) })
	t.Run("EventSeq", func(t *testing.T) { t.Parallel(); testEventSeq(t, open) })
	t.Run("QueryEvents", func(t *testing.T) { t.Parallel(); testQueryEvents(t, open) })
	t.Run("QueryEventsLimit", func(t *testing.T) { t.Parallel(); testQueryEventsLimit(t, open) })
	t.Run("QueryRightAfterCommit", func(t *testing.T) { t.Parallel(); testQueryRightAfterCommit(t, open) })
	t.Run("TimeWindows", func(t *testing.T) { t.Parallel(); testTimeWindows(t, open) })
	t.Run("TallyEvents", func(t *testing.T) { t.Parallel(); testTallyEvents(t, open) })
	t.Run("Chain", func(t *testing.T) { t.Parallel(); testChain(t, open) })
	t.Run("EventsAfter", func(t *testing.T) { t.Parallel(); testEventsAfter(t, open) })
	t.Run("AuditArchive", func(t *testing.T) { t.Parallel(); testAuditArchive(t, open) })
	t.Run("ArchiveLease", func(t *testing.T) { t.Parallel(); testArchiveLease(t, open) })
	t.Run("Checkpoints", func(t *testing.T) { t.Parallel(); testCheckpoints(t, open) })
	t.Run("CheckpointKey", func(t *testing.T) { t.Parallel(); testCheckpointKey(t, open) })
	t.Run("Nonces", func(t *testing.T) { t.Parallel(); testNonces(t, open) })
	t.Run("Generation", func(t *testing.T) { t.Parallel(); testGeneration(t, open) })
	t.Run("NotBefore", func(t *testing.T) { t.Parallel(); testNotBefore(t, open) })
	t.Run("RevocationDerivation", func(t *testing.T) { t.Parallel(); testRevocationDerivation(t, open) })
	t.Run("RevocationGen", func(t *testing.T) { t.Parallel(); testRevocationGenMatchesGeneration(t, open) })
	t.Run("TokenGen", func(t *testing.T) { t.Parallel(); testTokenGen(t, open) })
	t.Run("ListRevocations", func(t *testing.T) { t.Parallel(); testListRevocations(t, open) })
	t.Run("ListRevocationsLimit", func(t *testing.T) { t.Parallel(); testListRevocationsLimit(t, open) })
	t.Run("CollectRevocations", func(t *testing.T) { t.Parallel(); testCollectRevocations(t, open) })
	t.Run("Sweep", func(t *testing.T) { t.Parallel(); testSweep(t, open) })
	t.Run("SweepBatches", func(t *testing.T) { t.Parallel(); testSweepBatches(t, open) })
	t.Run("Times", func(t *testing.T) { t.Parallel(); testTimes(t, open) })
	t.Run("Ping", func(t *testing.T) { t.Parallel(); testPing(t, open) })
	t.Run("Concurrency", func(t *testing.T) { t.Parallel(); testConcurrency(t, open) })
	t.Run("Codes", func(t *testing.T) { t.Parallel(); testCodes(t, open) })
	t.Run("Refresh", func(t *testing.T) { t.Parallel(); testRefresh(t, open) })
	t.Run("Sessions", func(t *testing.T) { t.Parallel(); testSessions(t, open) })
	t.Run("Pending", func(t *testing.T) { t.Parallel(); testPending(t, open) })
	t.Run("SignInUnversioned", func(t *testing.T) { t.Parallel(); testSignInUnversioned(t, open) })
	t.Run("SweepSignIn", func(t *testing.T) { t.Parallel(); testSweepSignIn(t, open) })
	t.Run("UpstreamGrants", func(t *testing.T) { t.Parallel(); testUpstreamGrants(t, open) })
}

// base is the suite's reference time, to the microsecond.
func base() time.Time {
	return time.Date(2026, 3, 4, 5, 6, 7, 891011000, time.UTC)
}

// opts compares records: nil and empty lists are the same, and Seq and
// Hash are the store's to assign (the chain tests check them).
func opts() cmp.Options {
	return cmp.Options{
		cmpopts.EquateEmpty(),
		cmpopts.IgnoreFields(store.Event{}, "Seq", "Hash"),
	}
}

// errFn is what a failing update function returns.
var errFn = errors.New("storetest: update function failed")

func newUser(id string) store.User {
	return store.User{
		ID:           id,
		Permissions:  []string{"deploy:create", "deploy:read"},
		Limits:       json.RawMessage(`[{"type":"expense_approval","max_amount":1000,"currency":"USD"}]`),
		Version:      1,
		PasswordHash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g",
		Roles:        []string{"admin", "auditor"},
		CreatedAt:    base(),
		UpdatedAt:    base().Add(time.Minute),
	}
}

func newAgent(id string) store.Agent {
	return store.Agent{
		ID:           id,
		SecretHash:   []byte{0x01, 0x02, 0xfe, 0xff},
		JWKS:         json.RawMessage(`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}`),
		JWKSURI:      "https://agent.example/jwks",
		Scopes:       []string{"deploy:create"},
		DelegateTo:   []string{"agent:next"},
		MaxDepth:     3,
		Resources:    []string{"https://deploy.example", "rs:deploy"},
		RedirectURIs: []string{"https://agent.example/cb", "http://127.0.0.1:8400/cb"},
		Name:         "Argo CD ✓",
		Registration: store.RegistrationConfig,
		CreatedAt:    base(),
		UpdatedAt:    base(),
	}
}

func newDelegation(id string) store.Delegation {
	return store.Delegation{
		ID:         id,
		Subject:    "user:sam",
		Actor:      "agent:argocd",
		Scopes:     []string{"deploy:create"},
		Audiences:  []string{"https://deploy.example"},
		DelegateTo: []string{"agent:deploy_tools"},
		HandOn:     []string{"https://registry.example"},
		MaxDepth:   2,
		Expires:    base().Add(24 * time.Hour),
		Source:     "consent",
		CreatedAt:  base(),
	}
}

func newKey(kid string) store.Key {
	return store.Key{
		KID:        kid,
		Alg:        "EdDSA",
		Private:    []byte("pkcs8-der-bytes-" + kid),
		State:      store.KeyNext,
		ActivateAt: base().Add(time.Hour),
		CreatedAt:  base(),
	}
}

func newToken(jti string) store.IssuedToken {
	return store.IssuedToken{
		JTI:            jti,
		ParentJTI:      "parent-" + jti,
		GrantType:      "urn:ietf:params:oauth:grant-type:token-exchange",
		Subject:        "user:sam",
		ClientID:       "agent:argocd",
		Chain:          []string{"agent:argocd", "agent:infrabot"},
		DelegationID:   "dlg_1",
		Scopes:         []string{"deploy:create"},
		Audience:       "https://deploy.example",
		SubjectVersion: 3,
		Gen:            7,
		IssuedAt:       base(),
		ExpiresAt:      base().Add(10 * time.Minute),
	}
}

func newEvent(id, action string) store.Event {
	return store.Event{
		ID:        id,
		Time:      base(),
		RequestID: "req-" + id,
		Action:    action,
		Result:    "ok",
		Performer: "admin:root",
	}
}

// mustEvents returns every event, newest first.
func mustEvents(t *testing.T, s store.Store) []store.Event {
	t.Helper()
	evs, err := s.QueryEvents(t.Context(), store.EventFilter{Limit: 1000})
	if err != nil {
		t.Fatalf("QueryEvents: %v", err)
	}
	return evs
}

// eventIDs is the IDs of evs, in order.
func eventIDs(evs []store.Event) []string {
	ids := make([]string, 0, len(evs))
	for _, e := range evs {
		ids = append(ids, e.ID)
	}
	return ids
}

func mustGeneration(t *testing.T, s store.Store) int64 {
	t.Helper()
	g, err := s.Generation(t.Context())
	if err != nil {
		t.Fatalf("Generation: %v", err)
	}
	return g
}

// aggregate is the CRUD surface of one record type, so that one test covers
// users, agents, delegations and keys alike.
type aggregate[T any] struct {
	make   func(id string) T
	id     func(T) string
	create func(context.Context, store.Store, T, ...store.Event) error
	get    func(context.Context, store.Store, string) (T, error)
	list   func(context.Context, store.Store) ([]T, error)
	update func(context.Context, store.Store, string, func(T) (T, error), ...store.Event) (T, error)
	// remove deletes a record (DeleteUser, DeleteAgent); nil for the
	// records that are never deleted (a delegation is revoked, a key
	// retired).
	remove func(context.Context, store.Store, string, ...store.Event) error
	// change is a valid modification for an update.
	change func(T) T
	// setID returns v with another ID, to prove updates cannot rename.
	setID func(T, string) T
}

func users() aggregate[store.User] {
	return aggregate[store.User]{
		make: newUser,
		id:   func(u store.User) string { return u.ID },
		create: func(ctx context.Context, s store.Store, u store.User, e ...store.Event) error {
			return s.CreateUser(ctx, u, e...)
		},
		get:  func(ctx context.Context, s store.Store, id string) (store.User, error) { return s.GetUser(ctx, id) },
		list: func(ctx context.Context, s store.Store) ([]store.User, error) { return s.ListUsers(ctx) },
		update: func(ctx context.Context, s store.Store, id string, fn func(store.User) (store.User, error), e ...store.Event) (store.User, error) {
			return s.UpdateUser(ctx, id, fn, e...)
		},
		remove: func(ctx context.Context, s store.Store, id string, e ...store.Event) error {
			return s.DeleteUser(ctx, id, e...)
		},
		change: func(u store.User) store.User {
			u.Permissions = []string{"deploy:read"}
			u.PasswordHash, u.Roles, u.Provider = "", []string{"auditor"}, "https://login.acme.example"
			u.Version++
			u.UpdatedAt = base().Add(time.Hour)
			return u
		},
		setID: func(u store.User, id string) store.User { u.ID = id; return u },
	}
}

func agents() aggregate[store.Agent] {
	return aggregate[store.Agent]{
		make: newAgent,
		id:   func(a store.Agent) string { return a.ID },
		create: func(ctx context.Context, s store.Store, a store.Agent, e ...store.Event) error {
			return s.CreateAgent(ctx, a, e...)
		},
		get:  func(ctx context.Context, s store.Store, id string) (store.Agent, error) { return s.GetAgent(ctx, id) },
		list: func(ctx context.Context, s store.Store) ([]store.Agent, error) { return s.ListAgents(ctx) },
		update: func(ctx context.Context, s store.Store, id string, fn func(store.Agent) (store.Agent, error), e ...store.Event) (store.Agent, error) {
			return s.UpdateAgent(ctx, id, fn, e...)
		},
		remove: func(ctx context.Context, s store.Store, id string, e ...store.Event) error {
			return s.DeleteAgent(ctx, id, e...)
		},
		change: func(a store.Agent) store.Agent {
			a.Disabled = true
			a.SecretHash = nil
			a.JWKS = nil
			a.Scopes = append(a.Scopes, "deploy:read")
			a.DelegateTo = nil
			a.MaxDepth = 0
			a.Resources = append(a.Resources[:1:1], "https://deploy.example/v2")
			a.RedirectURIs = []string{"https://agent.example/cb2"}
			a.Public = true
			a.Name = ""
			a.Registration = store.RegistrationDCR
			a.UpdatedAt = base().Add(time.Hour)
			return a
		},
		setID: func(a store.Agent, id string) store.Agent { a.ID = id; return a },
	}
}

func delegations() aggregate[store.Delegation] {
	return aggregate[store.Delegation]{
		make: newDelegation,
		id:   func(d store.Delegation) string { return d.ID },
		create: func(ctx context.Context, s store.Store, d store.Delegation, e ...store.Event) error {
			return s.CreateDelegation(ctx, d, e...)
		},
		get: func(ctx context.Context, s store.Store, id string) (store.Delegation, error) {
			return s.GetDelegation(ctx, id)
		},
		list: func(ctx context.Context, s store.Store) ([]store.Delegation, error) {
			return s.ListDelegations(ctx, store.DelegationFilter{IncludeRevoked: true})
		},
		update: func(ctx context.Context, s store.Store, id string, fn func(store.Delegation) (store.Delegation, error), e ...store.Event) (store.Delegation, error) {
			return s.UpdateDelegation(ctx, id, fn, e...)
		},
		change: func(d store.Delegation) store.Delegation {
			d.Revoked = true
			d.RevokedAt = base().Add(time.Hour)
			d.Expires = time.Time{}
			d.Audiences = nil
			d.DelegateTo, d.HandOn = []string{"agent:a", "agent:b"}, nil
			return d
		},
		setID: func(d store.Delegation, id string) store.Delegation { d.ID = id; return d },
	}
}

func keys() aggregate[store.Key] {
	return aggregate[store.Key]{
		make: newKey,
		id:   func(k store.Key) string { return k.KID },
		create: func(ctx context.Context, s store.Store, k store.Key, e ...store.Event) error {
			return s.CreateKey(ctx, k, e...)
		},
		// Keys have no Get: find the key in the list.
		get: func(ctx context.Context, s store.Store, kid string) (store.Key, error) {
			ks, err := s.ListKeys(ctx)
			if err != nil {
				return store.Key{}, err
			}
			for _, k := range ks {
				if k.KID == kid {
					return k, nil
				}
			}
			return store.Key{}, fmt.Errorf("key %q: %w", kid, store.ErrNotFound)
		},
		list: func(ctx context.Context, s store.Store) ([]store.Key, error) { return s.ListKeys(ctx) },
		update: func(ctx context.Context, s store.Store, kid string, fn func(store.Key) (store.Key, error), e ...store.Event) (store.Key, error) {
			return s.UpdateKey(ctx, kid, fn, e...)
		},
		change: func(k store.Key) store.Key {
			k.State = store.KeyRetired
			k.RetireAt = base().Add(48 * time.Hour)
			return k
		},
		setID: func(k store.Key, kid string) store.Key { k.KID = kid; return k },
	}
}

// testAggregate covers create, get, list and update of one record type,
// with their sentinel errors and the events written alongside.
func testAggregate[T any](t *testing.T, open func(t *testing.T) store.Store, a aggregate[T]) {
	t.Run("ok/create-get-list", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		want := []T{a.make("a-1"), a.make("a-2"), a.make("a-3")}
		for _, v := range want {
			if err := a.create(ctx, s, v); err != nil {
				t.Fatalf("create %s: %v", a.id(v), err)
			}
		}
		got, err := a.get(ctx, s, "a-2")
		if err != nil {
			t.Fatalf("get: %v", err)
		}
		if diff := cmp.Diff(want[1], got, opts()); diff != "" {
			t.Errorf("get (-want +got):\n%s", diff)
		}
		all, err := a.list(ctx, s)
		if err != nil {
			t.Fatalf("list: %v", err)
		}
		sortByID := cmpopts.SortSlices(func(x, y T) bool { return a.id(x) < a.id(y) })
		if diff := cmp.Diff(want, all, opts(), sortByID); diff != "" {
			t.Errorf("list (-want +got):\n%s", diff)
		}
	})
	t.Run("ok/list-empty", func(t *testing.T) {
		s := open(t)
		all, err := a.list(t.Context(), s)
		if err != nil || len(all) != 0 {
			t.Errorf("list on an empty store = %v, %v; want none, nil", all, err)
		}
	})
	t.Run("fail/get-missing", func(t *testing.T) {
		s := open(t)
		if _, err := a.get(t.Context(), s, "missing"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("get missing: err = %v, want ErrNotFound", err)
		}
	})
	t.Run("fail/create-duplicate", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		if err := a.create(ctx, s, a.make("dup"), newEvent("ev-1", "create")); err != nil {
			t.Fatalf("create: %v", err)
		}
		gen := mustGeneration(t, s)
		other := a.change(a.make("dup"))
		err := a.create(ctx, s, other, newEvent("ev-2", "create"))
		if !errors.Is(err, store.ErrAlreadyExists) {
			t.Fatalf("second create: err = %v, want ErrAlreadyExists", err)
		}
		got, err := a.get(ctx, s, "dup")
		if err != nil {
			t.Fatalf("get: %v", err)
		}
		if diff := cmp.Diff(a.make("dup"), got, opts()); diff != "" {
			t.Errorf("a failed create changed the record (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]string{"ev-1"}, eventIDs(mustEvents(t, s))); diff != "" {
			t.Errorf("a failed create wrote its event (-want +got):\n%s", diff)
		}
		if g := mustGeneration(t, s); g != gen {
			t.Errorf("a failed create moved the generation from %d to %d", gen, g)
		}
	})
	t.Run("ok/create-writes-events", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		evs := []store.Event{newEvent("ev-1", "create"), newEvent("ev-2", "create.detail")}
		if err := a.create(ctx, s, a.make("x"), evs...); err != nil {
			t.Fatalf("create: %v", err)
		}
		if diff := cmp.Diff([]store.Event{evs[1], evs[0]}, mustEvents(t, s), opts()); diff != "" {
			t.Errorf("events (-want +got):\n%s", diff)
		}
	})
	t.Run("ok/update", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		if err := a.create(ctx, s, a.make("x")); err != nil {
			t.Fatalf("create: %v", err)
		}
		want := a.change(a.make("x"))
		got, err := a.update(ctx, s, "x", func(v T) (T, error) {
			if diff := cmp.Diff(a.make("x"), v, opts()); diff != "" {
				t.Errorf("fn got (-want +got):\n%s", diff)
			}
			return a.change(v), nil
		}, newEvent("ev-upd", "update"))
		if err != nil {
			t.Fatalf("update: %v", err)
		}
		if diff := cmp.Diff(want, got, opts()); diff != "" {
			t.Errorf("update returned (-want +got):\n%s", diff)
		}
		stored, err := a.get(ctx, s, "x")
		if err != nil {
			t.Fatalf("get: %v", err)
		}
		if diff := cmp.Diff(want, stored, opts()); diff != "" {
			t.Errorf("stored (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]string{"ev-upd"}, eventIDs(mustEvents(t, s))); diff != "" {
			t.Errorf("events (-want +got):\n%s", diff)
		}
	})
	t.Run("fail/update-missing", func(t *testing.T) {
		s := open(t)
		called := false
		_, err := a.update(t.Context(), s, "missing", func(v T) (T, error) { called = true; return v, nil },
			newEvent("ev-1", "update"))
		if !errors.Is(err, store.ErrNotFound) {
			t.Errorf("update missing: err = %v, want ErrNotFound", err)
		}
		if called {
			t.Error("fn was called for a missing record")
		}
		if evs := mustEvents(t, s); len(evs) != 0 {
			t.Errorf("a failed update wrote events: %v", eventIDs(evs))
		}
	})
	if a.remove != nil {
		testRemove(t, open, a)
	}
	// A failing fn, or a result the store refuses, rolls everything back:
	// the record, the events and the generation.
	for _, tc := range []struct {
		name    string
		fn      func(T) (T, error)
		wantErr error
	}{
		{name: "fail/update-fn-error-rolls-back", fn: func(v T) (T, error) { return a.change(v), errFn }, wantErr: errFn},
		{name: "fail/update-changes-id", fn: func(v T) (T, error) { return a.setID(a.change(v), "renamed"), nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, ctx := open(t), t.Context()
			if err := a.create(ctx, s, a.make("x")); err != nil {
				t.Fatalf("create: %v", err)
			}
			gen := mustGeneration(t, s)
			_, err := a.update(ctx, s, "x", tc.fn, newEvent("ev-upd", "update"))
			if err == nil || (tc.wantErr != nil && !errors.Is(err, tc.wantErr)) {
				t.Fatalf("update: err = %v, want %v", err, tc.wantErr)
			}
			got, err := a.get(ctx, s, "x")
			if err != nil {
				t.Fatalf("get: %v", err)
			}
			if diff := cmp.Diff(a.make("x"), got, opts()); diff != "" {
				t.Errorf("a failed update changed the record (-want +got):\n%s", diff)
			}
			if _, err := a.get(ctx, s, "renamed"); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("get renamed: err = %v, want ErrNotFound", err)
			}
			if evs := mustEvents(t, s); len(evs) != 0 {
				t.Errorf("a failed update wrote events: %v", eventIDs(evs))
			}
			if g := mustGeneration(t, s); g != gen {
				t.Errorf("a failed update moved the generation from %d to %d", gen, g)
			}
		})
	}
}

// testRemove covers the deletion of a record: it is gone from get and list
// with its events written and the generation bumped; deleting a missing
// record is ErrNotFound and writes nothing.
func testRemove[T any](t *testing.T, open func(t *testing.T) store.Store, a aggregate[T]) {
	t.Run("ok/delete", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		for _, id := range []string{"x", "y"} {
			if err := a.create(ctx, s, a.make(id)); err != nil {
				t.Fatalf("create %s: %v", id, err)
			}
		}
		gen := mustGeneration(t, s)
		if err := a.remove(ctx, s, "x", newEvent("ev-del", "delete")); err != nil {
			t.Fatalf("delete: %v", err)
		}
		if _, err := a.get(ctx, s, "x"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("get deleted: err = %v, want ErrNotFound", err)
		}
		all, err := a.list(ctx, s)
		if err != nil {
			t.Fatalf("list: %v", err)
		}
		if diff := cmp.Diff([]T{a.make("y")}, all, opts()); diff != "" {
			t.Errorf("list after delete (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]string{"ev-del"}, eventIDs(mustEvents(t, s))); diff != "" {
			t.Errorf("events (-want +got):\n%s", diff)
		}
		if g := mustGeneration(t, s); g <= gen {
			t.Errorf("a delete left the generation at %d (was %d)", g, gen)
		}
		// The id may be used again: a new record, not the old one back.
		if err := a.create(ctx, s, a.change(a.make("x"))); err != nil {
			t.Fatalf("create again: %v", err)
		}
	})
	t.Run("fail/delete-missing", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		if err := a.create(ctx, s, a.make("x")); err != nil {
			t.Fatalf("create: %v", err)
		}
		gen := mustGeneration(t, s)
		if err := a.remove(ctx, s, "missing", newEvent("ev-del", "delete")); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("delete missing: err = %v, want ErrNotFound", err)
		}
		if evs := mustEvents(t, s); len(evs) != 0 {
			t.Errorf("a failed delete wrote events: %v", eventIDs(evs))
		}
		if g := mustGeneration(t, s); g != gen {
			t.Errorf("a failed delete moved the generation from %d to %d", gen, g)
		}
	})
}

func testUserVersion(t *testing.T, open func(t *testing.T) store.Store) {
	for _, tc := range []struct {
		name    string
		version int64
		wantErr bool
	}{
		{name: "fail/version-decreases", version: 4, wantErr: true},
		{name: "fail/version-zero", version: 0, wantErr: true},
		{name: "ok/version-same", version: 5},
		{name: "ok/version-grows", version: 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, ctx := open(t), t.Context()
			u := newUser("user:sam")
			u.Version = 5
			if err := s.CreateUser(ctx, u); err != nil {
				t.Fatalf("CreateUser: %v", err)
			}
			want := u
			if !tc.wantErr {
				want.Version = tc.version
				want.Permissions = []string{"changed"}
			}
			_, err := s.UpdateUser(ctx, u.ID, func(u store.User) (store.User, error) {
				u.Version = tc.version
				u.Permissions = []string{"changed"}
				return u, nil
			}, newEvent("ev-1", "user.update"))
			if gotErr := err != nil; gotErr != tc.wantErr {
				t.Fatalf("UpdateUser: err = %v, want error: %v", err, tc.wantErr)
			}
			got, err := s.GetUser(ctx, u.ID)
			if err != nil {
				t.Fatalf("GetUser: %v", err)
			}
			if diff := cmp.Diff(want, got, opts()); diff != "" {
				t.Errorf("stored user (-want +got):\n%s", diff)
			}
			if n := len(mustEvents(t, s)); (n == 0) != tc.wantErr {
				t.Errorf("%d events after the update, want error: %v", n, tc.wantErr)
			}
		})
	}
}

func testDelegationFilter(t *testing.T, open func(t *testing.T) store.Store) {
	s, ctx := open(t), t.Context()
	mk := func(id, subject, actor string, revoked bool) store.Delegation {
		d := newDelegation(id)
		d.Subject, d.Actor, d.Revoked = subject, actor, revoked
		if revoked {
			d.RevokedAt = base()
		}
		return d
	}
	for _, d := range []store.Delegation{
		mk("d1", "user:sam", "agent:a", false),
		mk("d2", "user:sam", "agent:b", false),
		mk("d3", "user:kim", "agent:a", false),
		mk("d4", "user:sam", "agent:a", true),
	} {
		if err := s.CreateDelegation(ctx, d); err != nil {
			t.Fatalf("CreateDelegation %s: %v", d.ID, err)
		}
	}
	for _, tc := range []struct {
		name   string
		filter store.DelegationFilter
		want   []string
	}{
		{name: "ok/all-active", filter: store.DelegationFilter{}, want: []string{"d1", "d2", "d3"}},
		{name: "ok/all", filter: store.DelegationFilter{IncludeRevoked: true}, want: []string{"d1", "d2", "d3", "d4"}},
		{name: "ok/subject", filter: store.DelegationFilter{Subject: "user:sam"}, want: []string{"d1", "d2"}},
		{name: "ok/actor", filter: store.DelegationFilter{Actor: "agent:a"}, want: []string{"d1", "d3"}},
		{name: "ok/subject-actor-revoked", filter: store.DelegationFilter{Subject: "user:sam", Actor: "agent:a", IncludeRevoked: true}, want: []string{"d1", "d4"}},
		{name: "ok/no-match", filter: store.DelegationFilter{Subject: "user:nobody"}, want: nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ds, err := s.ListDelegations(ctx, tc.filter)
			if err != nil {
				t.Fatalf("ListDelegations: %v", err)
			}
			var got []string
			for _, d := range ds {
				got = append(got, d.ID)
			}
			if diff := cmp.Diff(tc.want, got, cmpopts.EquateEmpty(), cmpopts.SortSlices(func(a, b string) bool { return a < b })); diff != "" {
				t.Errorf("ids (-want +got):\n%s", diff)
			}
		})
	}
}

func testTimes(t *testing.T, open func(t *testing.T) store.Store) {
	s, ctx := open(t), t.Context()
	loc := time.FixedZone("UTC+5:30", 5*3600+1800)
	u := newUser("user:zoned")
	u.CreatedAt = base().In(loc)
	u.UpdatedAt = time.Time{}
	if err := s.CreateUser(ctx, u); err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	got, err := s.GetUser(ctx, u.ID)
	if err != nil {
		t.Fatalf("GetUser: %v", err)
	}
	if !got.CreatedAt.Equal(base()) || got.CreatedAt.Location() != time.UTC {
		t.Errorf("CreatedAt = %v, want %v in UTC", got.CreatedAt, base())
	}
	if !got.UpdatedAt.IsZero() {
		t.Errorf("UpdatedAt = %v, want the zero time back", got.UpdatedAt)
	}
}

func testPing(t *testing.T, open func(t *testing.T) store.Store) {
	s := open(t)
	if err := s.Ping(t.Context()); err != nil {
		t.Errorf("Ping: %v", err)
	}
}
