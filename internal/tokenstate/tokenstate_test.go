package tokenstate_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/mandate-dev/mandate/internal/store"
	"github.com/mandate-dev/mandate/internal/store/sqlite"
	"github.com/mandate-dev/mandate/internal/store/storetest"
	"github.com/mandate-dev/mandate/internal/tokenstate"
	"github.com/mandate-dev/mandate/oauth"
)

// now is the checker's clock; the fixture's tokens were issued a minute
// before and expire ten minutes after.
func now() time.Time { return time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC) }

const (
	subject  = "user:sam"
	agentA   = "agent:argocd"   // the first actor: holds the delegation
	agentB   = "agent:infrabot" // the second: the child token's current actor
	client   = "agent:ci"       // a client with its own client_credentials token
	dlgID    = "dlg_1"
	parentID = "tok-parent" // sam → argocd
	childID  = "tok-child"  // exchanged from tok-parent: sam → argocd → infrabot
	clientID = "tok-client" // agent:ci's own token
)

func openStore(t *testing.T) store.Store {
	t.Helper()
	s, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "mandate.db"))
	if err != nil {
		t.Fatalf("sqlite.Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// seed writes a user, three agents, a delegation and three tokens, all in
// force at now.
func seed(t *testing.T, s store.Store) {
	t.Helper()
	ctx := t.Context()
	issued := now().Add(-time.Minute)
	err := s.CreateUser(ctx, store.User{ID: subject, Permissions: []string{"deploy:create", "deploy:read"}, Version: 1})
	if err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	for _, id := range []string{agentA, agentB, client} {
		if err := s.CreateAgent(ctx, store.Agent{ID: id, Scopes: []string{"deploy:create"}}); err != nil {
			t.Fatalf("CreateAgent %s: %v", id, err)
		}
	}
	err = s.CreateDelegation(ctx, store.Delegation{
		ID: dlgID, Subject: subject, Actor: agentA, Scopes: []string{"deploy:create"},
		Expires: now().Add(time.Hour), Source: "config",
	})
	if err != nil {
		t.Fatalf("CreateDelegation: %v", err)
	}
	exchanged := func(jti, parent string, chain ...string) store.IssuedToken {
		return store.IssuedToken{
			JTI: jti, ParentJTI: parent, GrantType: oauth.GrantTokenExchange, Subject: subject,
			ClientID: chain[0], Chain: chain, DelegationID: dlgID, Scopes: []string{"deploy:create"},
			SubjectVersion: 1, IssuedAt: issued, ExpiresAt: now().Add(10 * time.Minute),
		}
	}
	err = s.Commit(ctx, store.Batch{Tokens: []store.IssuedToken{
		exchanged(parentID, "", agentA),
		exchanged(childID, parentID, agentB, agentA),
		{
			JTI: clientID, GrantType: oauth.GrantClientCredentials, Subject: client, ClientID: client,
			Scopes: []string{"deploy:create"}, IssuedAt: issued, ExpiresAt: now().Add(10 * time.Minute),
		},
	}})
	if err != nil {
		t.Fatalf("Commit: %v", err)
	}
}

func disable(id string) func(context.Context, store.Store) error {
	return func(ctx context.Context, s store.Store) error {
		_, err := s.UpdateAgent(ctx, id, func(a store.Agent) (store.Agent, error) { a.Disabled = true; return a, nil })
		return err
	}
}

func updateDelegation(fn func(store.Delegation) store.Delegation) func(context.Context, store.Store) error {
	return func(ctx context.Context, s store.Store) error {
		_, err := s.UpdateDelegation(ctx, dlgID, func(d store.Delegation) (store.Delegation, error) { return fn(d), nil })
		return err
	}
}

func updateUser(fn func(store.User) store.User) func(context.Context, store.Store) error {
	return func(ctx context.Context, s store.Store) error {
		_, err := s.UpdateUser(ctx, subject, func(u store.User) (store.User, error) { return fn(u), nil })
		return err
	}
}

func revoke(jti string) func(context.Context, store.Store) error {
	return func(ctx context.Context, s store.Store) error { return s.RevokeToken(ctx, jti, now()) }
}

func advance(at time.Time) func(context.Context, store.Store) error {
	return func(ctx context.Context, s store.Store) error {
		_, err := s.AdvanceNotBefore(ctx, at)
		return err
	}
}

func TestCheckJTI(t *testing.T) {
	for _, tc := range []struct {
		name string
		// change is applied to the seeded store before the check.
		change func(context.Context, store.Store) error
		jti    string
		// at, when set, replaces now as the checker's clock.
		at         time.Time
		wantReason string // empty: the token is in force
	}{
		{name: "ok/one-hop", jti: parentID},
		{name: "ok/two-hop", jti: childID},
		{name: "ok/client-credentials", jti: clientID},
		{name: "ok/issued-at-the-epoch", jti: childID, change: advance(now().Add(-time.Minute))},
		{name: "ok/epoch-in-the-past", jti: childID, change: advance(now().Add(-time.Hour))},
		{name: "fail/unknown", jti: "tok-missing", wantReason: tokenstate.ReasonUnknown},
		{name: "fail/revoked", jti: childID, change: revoke(childID), wantReason: tokenstate.ReasonRevoked},
		{name: "fail/expired", jti: childID, at: now().Add(10 * time.Minute), wantReason: tokenstate.ReasonExpired},
		{name: "fail/parent-revoked", jti: childID, change: revoke(parentID), wantReason: tokenstate.ReasonParentRevoked},
		{name: "fail/delegation-revoked", jti: childID, wantReason: tokenstate.ReasonDelegationRevoked,
			change: updateDelegation(func(d store.Delegation) store.Delegation { d.Revoked, d.RevokedAt = true, now(); return d })},
		{name: "fail/delegation-expired", jti: parentID, wantReason: tokenstate.ReasonDelegationRevoked,
			change: updateDelegation(func(d store.Delegation) store.Delegation { d.Expires = now(); return d })},
		{name: "fail/current-agent-disabled", jti: childID, change: disable(agentB), wantReason: tokenstate.ReasonAgentDisabled},
		{name: "fail/prior-agent-disabled", jti: childID, change: disable(agentA), wantReason: tokenstate.ReasonAgentDisabled},
		{name: "fail/client-disabled", jti: clientID, change: disable(client), wantReason: tokenstate.ReasonAgentDisabled},
		{name: "fail/subject-version-bumped", jti: parentID, wantReason: tokenstate.ReasonSubjectRevoked,
			change: updateUser(func(u store.User) store.User { u.Version++; return u })},
		{name: "fail/permission-removed", jti: childID, wantReason: tokenstate.ReasonPermissionRemoved,
			change: updateUser(func(u store.User) store.User { u.Permissions = []string{"deploy:read"}; return u })},
		{name: "fail/issued-before-restore", jti: childID, change: advance(now()), wantReason: tokenstate.ReasonRestoredEpoch},
		{name: "fail/client-issued-before-restore", jti: clientID, change: advance(now()), wantReason: tokenstate.ReasonRestoredEpoch},
		{name: "fail/epoch-one-microsecond-after-issue", jti: parentID, wantReason: tokenstate.ReasonRestoredEpoch,
			change: advance(now().Add(-time.Minute + time.Microsecond))},
		// Revoked is said first: it is the more specific answer.
		{name: "fail/revoked-and-before-restore", jti: childID, wantReason: tokenstate.ReasonRevoked,
			change: func(ctx context.Context, s store.Store) error {
				if err := revoke(childID)(ctx, s); err != nil {
					return err
				}
				return advance(now())(ctx, s)
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := openStore(t)
			seed(t, s)
			if tc.change != nil {
				if err := tc.change(t.Context(), s); err != nil {
					t.Fatalf("change: %v", err)
				}
			}
			clock := now()
			if !tc.at.IsZero() {
				clock = tc.at
			}
			c := &tokenstate.Checker{Store: s, Now: func() time.Time { return clock }}
			rec, err := c.CheckJTI(t.Context(), tc.jti)
			if tc.wantReason == "" {
				if err != nil {
					t.Fatalf("CheckJTI(%s) = %v, want in force", tc.jti, err)
				}
				if rec.JTI != tc.jti {
					t.Errorf("CheckJTI returned the record of %q, want %q", rec.JTI, tc.jti)
				}
				return
			}
			var ie *tokenstate.InactiveError
			if !errors.As(err, &ie) || !errors.Is(err, tokenstate.ErrInactive) {
				t.Fatalf("CheckJTI(%s) = %v, want an *InactiveError wrapping ErrInactive", tc.jti, err)
			}
			if ie.Reason != tc.wantReason {
				t.Errorf("reason = %q, want %q", ie.Reason, tc.wantReason)
			}
		})
	}
}

// TestCheckJTIStoreFailure proves the fail-closed path: when any read the
// check needs fails, the answer is an error that is not ErrInactive (so
// introspection answers 503 instead of active: false, and an exchange is
// refused as unavailable), and it keeps the store's sentinel.
func TestCheckJTIStoreFailure(t *testing.T) {
	for _, tc := range []struct {
		name   string
		method string
		jti    string
		// record makes the test call Check with the record in hand, so
		// that the GetToken that fails is the parent's.
		record bool
	}{
		{name: "fail/get-token", method: "GetToken", jti: childID},
		{name: "fail/not-before", method: "NotBefore", jti: childID},
		{name: "fail/get-parent", method: "GetToken", jti: childID, record: true},
		{name: "fail/get-delegation", method: "GetDelegation", jti: childID},
		{name: "fail/get-agent", method: "GetAgent", jti: childID},
		{name: "fail/get-client", method: "GetAgent", jti: clientID},
		{name: "fail/get-user", method: "GetUser", jti: childID},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			raw := openStore(t)
			seed(t, raw)
			s := storetest.NewFaulty(raw)
			c := &tokenstate.Checker{Store: s, Now: now}
			rec, err := raw.GetToken(t.Context(), tc.jti)
			if err != nil {
				t.Fatalf("GetToken: %v", err)
			}
			s.Fail(tc.method, nil)
			if tc.record {
				err = c.Check(t.Context(), rec)
			} else {
				_, err = c.CheckJTI(t.Context(), tc.jti)
			}
			if err == nil || errors.Is(err, tokenstate.ErrInactive) {
				t.Fatalf("err = %v, want a store error that is not ErrInactive", err)
			}
			if !errors.Is(err, store.ErrUnavailable) {
				t.Errorf("err = %v, want it to wrap store.ErrUnavailable", err)
			}
			if s.Calls(tc.method) == 0 {
				t.Errorf("%s was never called", tc.method)
			}
		})
	}
}
