package directory_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/mandate-dev/mandate/internal/audit"
	"github.com/mandate-dev/mandate/internal/directory"
	"github.com/mandate-dev/mandate/internal/password"
	"github.com/mandate-dev/mandate/internal/store"
)

// TestPasswordAndRoles covers SetPassword and SetRoles, and a user created
// with a password and roles: each write with its record, which never holds
// the hash; each refusal changes nothing and records nothing.
func TestPasswordAndRoles(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	f.seed()
	hash, err := password.Hash("a long enough password")
	if err != nil {
		t.Fatal(err)
	}
	// noHash checks that no record since seq holds the hash or a part of it.
	noHash := func(t *testing.T, seq int64) {
		t.Helper()
		for _, ev := range f.events(seq) {
			b, _ := json.Marshal(ev)
			if strings.Contains(string(b), hash[30:]) || strings.Contains(string(b), "argon2") {
				t.Errorf("record %s holds the password hash: %s", ev.Action, b)
			}
		}
	}

	t.Run("ok/create-with-password-and-roles", func(t *testing.T) {
		seq := f.lastSeq()
		u, err := f.d.CreateUser(ctx, admin, store.User{ID: "user:lee", PasswordHash: hash,
			Roles: []string{directory.RoleAuditor}, Provider: "https://login.acme.example"})
		if err != nil {
			t.Fatal(err)
		}
		stored, err := f.s.GetUser(ctx, "user:lee")
		if err != nil || stored.PasswordHash != hash || !cmp.Equal(stored.Roles, []string{"auditor"}) ||
			stored.Provider != "https://login.acme.example" || !cmp.Equal(u, stored) {
			t.Errorf("stored %+v, %v; created %+v", stored, err, u)
		}
		f.wantRecords(seq, recorded{Action: audit.ActionUserCreated, Performer: "admin", RequestID: "req_1",
			Resource: "user:lee", OnBehalf: "user:lee"})
		noHash(t, seq)
	})
	t.Run("ok/set-password", func(t *testing.T) {
		seq := f.lastSeq()
		u, err := f.d.SetPassword(ctx, admin, "user:sam", hash)
		if err != nil {
			t.Fatal(err)
		}
		if ok, err := password.Check(u.PasswordHash, "a long enough password"); !ok || err != nil {
			t.Errorf("the stored hash does not check: %v, %v", ok, err)
		}
		if !cmp.Equal(u.Permissions, []string{"deploy:create", "deploy:read"}) || u.Version != 0 {
			t.Errorf("SetPassword changed more than the hash: %+v", u)
		}
		f.wantRecords(seq, recorded{Action: audit.ActionUserPassword, Performer: "admin", RequestID: "req_1",
			Resource: "user:sam", OnBehalf: "user:sam"})
		noHash(t, seq)
		// An empty hash removes the password.
		if u, err := f.d.SetPassword(ctx, admin, "user:sam", ""); err != nil || u.PasswordHash != "" {
			t.Errorf("SetPassword(\"\") = %q, %v", u.PasswordHash, err)
		}
	})
	t.Run("ok/set-roles", func(t *testing.T) {
		seq := f.lastSeq()
		u, err := f.d.SetRoles(ctx, admin, "user:sam", []string{"admin", "auditor"})
		if err != nil || !cmp.Equal(u.Roles, []string{"admin", "auditor"}) {
			t.Fatalf("SetRoles = %+v, %v", u.Roles, err)
		}
		evs := f.events(seq)
		if len(evs) != 1 || evs[0].Action != audit.ActionUserRoles || evs[0].OnBehalf != "user:sam" ||
			string(evs[0].Context) != `{"roles":["admin","auditor"]}` {
			t.Errorf("records = %+v", evs)
		}
		seq = f.lastSeq()
		if u, err := f.d.SetRoles(ctx, admin, "user:sam", nil); err != nil || len(u.Roles) != 0 {
			t.Errorf("SetRoles(nil) = %+v, %v", u.Roles, err)
		}
		if evs := f.events(seq); len(evs) != 1 || string(evs[0].Context) != `{"roles":[]}` {
			t.Errorf("records of removing every role = %+v", evs)
		}
	})
	for _, tc := range []struct {
		name string
		call func() error
		want error
		what string
	}{
		{name: "fail/password-unknown-user", want: directory.ErrNotFound, what: "user", call: func() error {
			_, err := f.d.SetPassword(ctx, admin, "user:nobody", hash)
			return err
		}},
		{name: "fail/password-not-a-hash", want: directory.ErrInvalid, call: func() error {
			_, err := f.d.SetPassword(ctx, admin, "user:sam", "hunter2hunter2")
			return err
		}},
		{name: "fail/password-hostile-parameters", want: directory.ErrInvalid, call: func() error {
			_, err := f.d.SetPassword(ctx, admin, "user:sam", strings.Replace(hash, "m=19456", "m=4194304", 1))
			return err
		}},
		{name: "fail/roles-unknown-user", want: directory.ErrNotFound, what: "user", call: func() error {
			_, err := f.d.SetRoles(ctx, admin, "user:nobody", []string{"admin"})
			return err
		}},
		{name: "fail/roles-unknown-role", want: directory.ErrInvalid, call: func() error {
			_, err := f.d.SetRoles(ctx, admin, "user:sam", []string{"admin", "root"})
			return err
		}},
		{name: "fail/roles-twice", want: directory.ErrInvalid, call: func() error {
			_, err := f.d.SetRoles(ctx, admin, "user:sam", []string{"admin", "admin"})
			return err
		}},
		{name: "fail/create-bad-hash", want: directory.ErrInvalid, call: func() error {
			_, err := f.d.CreateUser(ctx, admin, store.User{ID: "user:kim", PasswordHash: "$argon2i$v=19$m=1,t=1,p=1$x$y"})
			return err
		}},
		{name: "fail/create-bad-role", want: directory.ErrInvalid, call: func() error {
			_, err := f.d.CreateUser(ctx, admin, store.User{ID: "user:kim", Roles: []string{"Admin"}})
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f.refused(t, tc.want, tc.what, tc.call)
		})
	}
	t.Run("fail/problem-never-quotes-the-hash", func(t *testing.T) {
		bad := strings.Replace(hash, "m=19456", "m=4194304", 1)
		err := directory.CheckPasswordHash("password_hash", bad)
		if err == nil || strings.Contains(err.Error(), bad[30:]) {
			t.Errorf("CheckPasswordHash = %v", err)
		}
	})
}
