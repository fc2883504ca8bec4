package directory_test

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/mandate-dev/mandate/internal/audit"
	"github.com/mandate-dev/mandate/internal/directory"
	"github.com/mandate-dev/mandate/internal/store"
)

// TestSyncPerson: a person follows their identity provider; one managed
// in Mandate or by another provider is not taken over.
func TestSyncPerson(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	f.seed()
	const idp = "https://login.example"
	byIDP := directory.Performer{ID: "idp:" + idp, RequestID: "req_2"}
	sync := func(perms, roles []string) (store.User, error) {
		return f.d.SyncPerson(ctx, byIDP, store.User{ID: "user:alex", Permissions: perms, Roles: roles, Provider: idp})
	}

	t.Run("ok/created", func(t *testing.T) {
		seq := f.lastSeq()
		u, err := sync([]string{"deploy:read", "deploy:create"}, []string{"admin"})
		if err != nil {
			t.Fatal(err)
		}
		if u.Provider != idp || !cmp.Equal(u.Permissions, []string{"deploy:create", "deploy:read"}) || !cmp.Equal(u.Roles, []string{"admin"}) {
			t.Errorf("created = %+v", u)
		}
		f.wantRecords(seq, recorded{Action: audit.ActionUserCreated, Performer: byIDP.ID, RequestID: "req_2",
			Resource: "user:alex", OnBehalf: "user:alex", Scopes: []string{"deploy:create", "deploy:read"}})
	})
	t.Run("ok/unchanged-writes-nothing", func(t *testing.T) {
		seq := f.lastSeq()
		if _, err := sync([]string{"deploy:create", "deploy:read"}, []string{"admin"}); err != nil {
			t.Fatal(err)
		}
		f.wantRecords(seq)
	})
	t.Run("ok/lost-permission-and-role", func(t *testing.T) {
		seq, revs := f.lastSeq(), f.revocationSeq()
		u, err := sync([]string{"deploy:read"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !cmp.Equal(u.Permissions, []string{"deploy:read"}) || len(u.Roles) != 0 {
			t.Errorf("updated = %+v", u)
		}
		f.wantRecords(seq,
			recorded{Action: audit.ActionUserPermissions, Performer: byIDP.ID, RequestID: "req_2", Resource: "user:alex", OnBehalf: "user:alex", Scopes: []string{"deploy:read"}},
			recorded{Action: audit.ActionUserRoles, Performer: byIDP.ID, RequestID: "req_2", Resource: "user:alex", OnBehalf: "user:alex"},
		)
		if got := f.revocationsAfter(revs); !cmp.Equal(got, []string{"scope:user:alex"}) {
			t.Errorf("revocation entries = %q", got)
		}
	})
	for _, tc := range []struct {
		name string
		u    store.User
		want error
	}{
		{name: "fail/managed-in-mandate", u: store.User{ID: "user:sam", Permissions: []string{"x"}, Provider: idp}, want: directory.ErrConflict},
		{name: "fail/managed-by-another-provider", u: store.User{ID: "user:alex", Provider: "https://other.example"}, want: directory.ErrConflict},
		{name: "fail/an-agents-id", u: store.User{ID: "agent:bot", Provider: idp}, want: directory.ErrConflict},
		{name: "fail/no-provider", u: store.User{ID: "user:new"}, want: directory.ErrInvalid},
		{name: "fail/invalid-permission", u: store.User{ID: "user:new", Permissions: []string{"a b"}, Provider: idp}, want: directory.ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f.refused(t, tc.want, "", func() error { _, err := f.d.SyncPerson(ctx, byIDP, tc.u); return err })
		})
	}
}
