package directory_test

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/mandate-dev/mandate/internal/audit"
	"github.com/mandate-dev/mandate/internal/clientauth"
	"github.com/mandate-dev/mandate/internal/directory"
	"github.com/mandate-dev/mandate/internal/store"
	"github.com/mandate-dev/mandate/internal/store/sqlite"
	"github.com/mandate-dev/mandate/revocation"
)

// admin is the performer of the tests' writes.
var admin = directory.Performer{ID: directory.PerformerAdmin, RequestID: "req_1"}

// fixture is a directory over a real SQLite store at a fixed time.
type fixture struct {
	t   *testing.T
	s   store.Store
	d   *directory.Directory
	now time.Time
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "m.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	f := &fixture{t: t, s: s, now: time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)}
	f.d = &directory.Directory{Store: s, Now: func() time.Time { return f.now }}
	return f
}

// seed stores user:sam and agent:bot (with a secret) and a delegation
// from Sam to the bot.
func (f *fixture) seed() {
	f.t.Helper()
	ctx := context.Background()
	if _, err := f.d.CreateUser(ctx, admin, store.User{ID: "user:sam", Permissions: []string{"deploy:create", "deploy:read"}}); err != nil {
		f.t.Fatal(err)
	}
	if _, _, err := f.d.CreateAgent(ctx, admin, store.Agent{ID: "agent:bot", Scopes: []string{"deploy:create"}}); err != nil {
		f.t.Fatal(err)
	}
	if _, err := f.d.CreateDelegation(ctx, admin, store.Delegation{ID: "dlg_sam_bot", Subject: "user:sam", Actor: "agent:bot",
		Scopes: []string{"deploy:create"}, Source: directory.SourceAdmin}); err != nil {
		f.t.Fatal(err)
	}
}

// events returns the records after seq, oldest first.
func (f *fixture) events(after int64) []store.Event {
	f.t.Helper()
	evs, err := f.s.EventsAfter(context.Background(), after, 1000)
	if err != nil {
		f.t.Fatal(err)
	}
	return evs
}

func (f *fixture) lastSeq() int64 {
	f.t.Helper()
	evs := f.events(0)
	if len(evs) == 0 {
		return 0
	}
	return evs[len(evs)-1].Seq
}

// recorded is what a test checks of a record.
type recorded struct {
	Action, Performer, RequestID, Resource, OnBehalf, Reason, DelegationID, JTI string
	Chain, Scopes                                                               []string
}

func summary(evs []store.Event) []recorded {
	out := make([]recorded, 0, len(evs))
	for _, ev := range evs {
		out = append(out, recorded{Action: ev.Action, Performer: ev.Performer, RequestID: ev.RequestID, Resource: ev.Resource,
			OnBehalf: ev.OnBehalf, Reason: ev.Reason, DelegationID: ev.DelegationID, JTI: ev.JTI, Chain: ev.Chain, Scopes: ev.Scopes})
	}
	return out
}

// wantRecords checks the records written since seq.
func (f *fixture) wantRecords(seq int64, want ...recorded) {
	f.t.Helper()
	if diff := cmp.Diff(want, summary(f.events(seq)), cmpopts.EquateEmpty()); diff != "" {
		f.t.Errorf("audit records (-want +got):\n%s", diff)
	}
}

func TestUsers(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	f.seed()

	t.Run("ok/create", func(t *testing.T) {
		seq := f.lastSeq()
		u, err := f.d.CreateUser(ctx, admin, store.User{ID: "user:alex", Permissions: []string{"x"},
			Limits: json.RawMessage(` [ {"type": "t", "max_amount": 10.50} ] `), Version: 9})
		if err != nil {
			t.Fatal(err)
		}
		if string(u.Limits) != `[{"type":"t","max_amount":10.50}]` || u.Version != 0 || !u.CreatedAt.Equal(f.now) {
			t.Errorf("created = %+v (limits %s)", u, u.Limits)
		}
		f.wantRecords(seq, recorded{Action: audit.ActionUserCreated, Performer: "admin", RequestID: "req_1",
			Resource: "user:alex", OnBehalf: "user:alex", Scopes: []string{"x"}})
	})
	for _, tc := range []struct {
		name string
		call func() error
		want error
		// what is the *NotFoundError's What, when want is ErrNotFound.
		what string
	}{
		{name: "fail/create-taken", want: directory.ErrConflict, call: func() error {
			_, err := f.d.CreateUser(ctx, admin, store.User{ID: "user:sam"})
			return err
		}},
		{name: "fail/create-an-agents-id", want: directory.ErrConflict, call: func() error {
			_, err := f.d.CreateUser(ctx, admin, store.User{ID: "agent:bot"})
			return err
		}},
		{name: "fail/create-invalid-id", want: directory.ErrInvalid, call: func() error {
			_, err := f.d.CreateUser(ctx, admin, store.User{ID: "user sam"})
			return err
		}},
		{name: "fail/permissions-unknown-user", want: directory.ErrNotFound, what: "user", call: func() error {
			_, err := f.d.SetPermissions(ctx, admin, "user:sma", []string{"x"})
			return err
		}},
		{name: "fail/permissions-invalid", want: directory.ErrInvalid, call: func() error {
			_, err := f.d.SetPermissions(ctx, admin, "user:sam", []string{"a b"})
			return err
		}},
		{name: "fail/limits-unknown-user", want: directory.ErrNotFound, what: "user", call: func() error {
			_, err := f.d.SetLimits(ctx, admin, "user:nobody", nil)
			return err
		}},
		{name: "fail/limits-invalid", want: directory.ErrInvalid, call: func() error {
			_, err := f.d.SetLimits(ctx, admin, "user:sam", json.RawMessage(`[{}]`))
			return err
		}},
		{name: "fail/revoke-unknown-subject", want: directory.ErrNotFound, what: "subject", call: func() error {
			_, err := f.d.RevokeSubject(ctx, admin, "user:nobody")
			return err
		}},
		{name: "fail/delete-unknown-user", want: directory.ErrNotFound, what: "user", call: func() error {
			return f.d.DeleteUser(ctx, admin, "user:nobody")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f.refused(t, tc.want, tc.what, tc.call)
		})
	}
	t.Run("ok/permissions-limits-revoke", func(t *testing.T) {
		seq := f.lastSeq()
		if _, err := f.d.SetPermissions(ctx, admin, "user:sam", []string{"deploy:read"}); err != nil {
			t.Fatal(err)
		}
		if _, err := f.d.SetLimits(ctx, admin, "user:sam", json.RawMessage(`[]`)); err != nil {
			t.Fatal(err)
		}
		u, err := f.d.RevokeSubject(ctx, admin, "user:sam")
		if err != nil {
			t.Fatal(err)
		}
		if u.Version != 1 || u.Limits != nil || !cmp.Equal(u.Permissions, []string{"deploy:read"}) {
			t.Errorf("user = %+v", u)
		}
		f.wantRecords(seq,
			recorded{Action: audit.ActionUserPermissions, Performer: "admin", RequestID: "req_1", Resource: "user:sam", OnBehalf: "user:sam", Scopes: []string{"deploy:read"}},
			recorded{Action: audit.ActionUserLimits, Performer: "admin", RequestID: "req_1", Resource: "user:sam", OnBehalf: "user:sam"},
			recorded{Action: audit.ActionUserRevoked, Performer: "admin", RequestID: "req_1", Resource: "user:sam", OnBehalf: "user:sam"},
		)
	})
	t.Run("ok/delete-revokes-delegations-first", func(t *testing.T) {
		seq, revs := f.lastSeq(), f.revocationSeq()
		if err := f.d.DeleteUser(ctx, admin, "user:sam"); err != nil {
			t.Fatal(err)
		}
		if _, err := f.s.GetUser(ctx, "user:sam"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("deleted user: %v", err)
		}
		if dl, _ := f.s.GetDelegation(ctx, "dlg_sam_bot"); !dl.Revoked {
			t.Error("the deleted user's delegation is not revoked")
		}
		f.wantRecords(seq,
			recorded{Action: audit.ActionDelegationGone, Performer: "admin", RequestID: "req_1", Resource: "dlg_sam_bot", DelegationID: "dlg_sam_bot", Reason: "user_deleted"},
			recorded{Action: audit.ActionUserDeleted, Performer: "admin", RequestID: "req_1", Resource: "user:sam", OnBehalf: "user:sam"},
		)
		if got := f.revocationsAfter(revs); !cmp.Equal(got, []string{"delegation:dlg_sam_bot", "subject:user:sam", "scope:user:sam"}) {
			t.Errorf("revocation entries = %q", got)
		}
		if _, err := f.d.CreateUser(ctx, admin, store.User{ID: "user:sam"}); err != nil {
			t.Errorf("the id of a deleted user cannot be used again: %v", err)
		}
	})
}

func TestAgents(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	f.seed()

	var secret string
	t.Run("ok/create-with-generated-secret", func(t *testing.T) {
		seq := f.lastSeq()
		a, s, err := f.d.CreateAgent(ctx, admin, store.Agent{ID: "agent:new", Scopes: []string{"deploy:read"}, DelegateTo: []string{"agent:bot"}, MaxDepth: 2})
		if err != nil {
			t.Fatal(err)
		}
		secret = s
		if len(s) < 43 || !cmp.Equal(a.SecretHash, clientauth.HashSecret(s)) {
			t.Errorf("secret %q (%d bytes), stored hash %x", s, len(s), a.SecretHash)
		}
		stored, _ := f.s.GetAgent(ctx, "agent:new")
		if !cmp.Equal(stored.SecretHash, clientauth.HashSecret(s)) || stored.MaxDepth != 2 {
			t.Errorf("stored = %+v", stored)
		}
		f.wantRecords(seq, recorded{Action: audit.ActionAgentCreated, Performer: "admin", RequestID: "req_1",
			Resource: "agent:new", Chain: []string{"agent:new"}, Scopes: []string{"deploy:read"}})
	})
	t.Run("ok/create-with-keys-has-no-secret", func(t *testing.T) {
		a, s, err := f.d.CreateAgent(ctx, admin, store.Agent{ID: "agent:jwt", JWKS: json.RawMessage(publicJWKS)})
		if err != nil || s != "" || len(a.SecretHash) != 0 {
			t.Fatalf("CreateAgent = %+v, %q, %v", a, s, err)
		}
	})
	t.Run("ok/new-secret-replaces-the-old", func(t *testing.T) {
		seq := f.lastSeq()
		s, err := f.d.NewSecret(ctx, admin, "agent:new")
		if err != nil {
			t.Fatal(err)
		}
		stored, _ := f.s.GetAgent(ctx, "agent:new")
		if s == secret || !cmp.Equal(stored.SecretHash, clientauth.HashSecret(s)) {
			t.Error("the new secret is not the one stored")
		}
		f.wantRecords(seq, recorded{Action: audit.ActionAgentSecret, Performer: "admin", RequestID: "req_1", Resource: "agent:new", Chain: []string{"agent:new"}})
		for _, ev := range f.events(0) {
			if b, _ := json.Marshal(ev); strings.Contains(string(b), secret) || strings.Contains(string(b), s) {
				t.Errorf("a record holds a secret: %s", b)
			}
		}
	})
	t.Run("ok/update", func(t *testing.T) {
		seq := f.lastSeq()
		scopes, depth := []string{"deploy:create"}, 0
		a, err := f.d.UpdateAgent(ctx, admin, "agent:new", directory.AgentChange{Scopes: &scopes, MaxDepth: &depth,
			Keys: &directory.Keys{JWKSURI: "https://new.example/jwks"}})
		if err != nil {
			t.Fatal(err)
		}
		if !cmp.Equal(a.Scopes, scopes) || a.MaxDepth != 0 || a.JWKSURI != "https://new.example/jwks" || len(a.SecretHash) == 0 {
			t.Errorf("updated = %+v", a)
		}
		f.wantRecords(seq, recorded{Action: audit.ActionAgentUpdated, Performer: "admin", RequestID: "req_1",
			Resource: "agent:new", Chain: []string{"agent:new"}, Scopes: scopes})
	})
	for _, tc := range []struct {
		name string
		call func() error
		want error
	}{
		{name: "fail/create-taken", want: directory.ErrConflict, call: func() error {
			_, _, err := f.d.CreateAgent(ctx, admin, store.Agent{ID: "agent:bot"})
			return err
		}},
		{name: "fail/create-a-users-id", want: directory.ErrConflict, call: func() error {
			_, _, err := f.d.CreateAgent(ctx, admin, store.Agent{ID: "user:sam"})
			return err
		}},
		{name: "fail/create-invalid", want: directory.ErrInvalid, call: func() error {
			_, _, err := f.d.CreateAgent(ctx, admin, store.Agent{ID: "agent:x", DelegateTo: []string{"agent:x"}})
			return err
		}},
		{name: "fail/create-private-key", want: directory.ErrInvalid, call: func() error {
			_, _, err := f.d.CreateAgent(ctx, admin, store.Agent{ID: "agent:x", JWKS: json.RawMessage(`{"keys":[{"kty":"OKP","crv":"Ed25519",` +
				`"x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","d":"nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"}]}`)})
			return err
		}},
		{name: "fail/update-removes-the-only-credential", want: directory.ErrInvalid, call: func() error {
			_, err := f.d.UpdateAgent(ctx, admin, "agent:jwt", directory.AgentChange{Keys: &directory.Keys{}})
			return err
		}},
		{name: "fail/update-unknown", want: directory.ErrNotFound, call: func() error {
			_, err := f.d.UpdateAgent(ctx, admin, "agent:nobody", directory.AgentChange{})
			return err
		}},
		{name: "fail/disable-unknown", want: directory.ErrNotFound, call: func() error {
			_, err := f.d.SetAgentDisabled(ctx, admin, "agent:nobody", true)
			return err
		}},
		{name: "fail/secret-unknown", want: directory.ErrNotFound, call: func() error {
			_, err := f.d.NewSecret(ctx, admin, "agent:nobody")
			return err
		}},
		{name: "fail/delete-unknown", want: directory.ErrNotFound, call: func() error {
			return f.d.DeleteAgent(ctx, admin, "agent:nobody")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f.refused(t, tc.want, "", tc.call)
		})
	}
	t.Run("ok/disable-enable", func(t *testing.T) {
		seq := f.lastSeq()
		if a, err := f.d.SetAgentDisabled(ctx, admin, "agent:bot", true); err != nil || !a.Disabled {
			t.Fatalf("disable = %+v, %v", a, err)
		}
		if a, err := f.d.SetAgentDisabled(ctx, admin, "agent:bot", false); err != nil || a.Disabled {
			t.Fatalf("enable = %+v, %v", a, err)
		}
		f.wantRecords(seq,
			recorded{Action: audit.ActionAgentDisabled, Performer: "admin", RequestID: "req_1", Resource: "agent:bot", Chain: []string{"agent:bot"}},
			recorded{Action: audit.ActionAgentEnabled, Performer: "admin", RequestID: "req_1", Resource: "agent:bot", Chain: []string{"agent:bot"}},
		)
	})
	t.Run("ok/delete-revokes-delegations-first", func(t *testing.T) {
		seq, revs := f.lastSeq(), f.revocationSeq()
		if err := f.d.DeleteAgent(ctx, admin, "agent:bot"); err != nil {
			t.Fatal(err)
		}
		if _, err := f.s.GetAgent(ctx, "agent:bot"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("deleted agent: %v", err)
		}
		f.wantRecords(seq,
			recorded{Action: audit.ActionDelegationGone, Performer: "admin", RequestID: "req_1", Resource: "dlg_sam_bot", DelegationID: "dlg_sam_bot", Reason: "agent_deleted"},
			recorded{Action: audit.ActionAgentDeleted, Performer: "admin", RequestID: "req_1", Resource: "agent:bot", Chain: []string{"agent:bot"}},
		)
		if got := f.revocationsAfter(revs); !cmp.Equal(got, []string{"delegation:dlg_sam_bot", "agent:agent:bot"}) {
			t.Errorf("revocation entries = %q", got)
		}
	})
}

func TestDelegations(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	f.seed()
	valid := func(edit func(*store.Delegation)) store.Delegation {
		d := store.Delegation{Subject: "user:sam", Actor: "agent:bot", Scopes: []string{"deploy:read"}, Source: directory.SourceAdmin}
		if edit != nil {
			edit(&d)
		}
		return d
	}
	for _, tc := range []struct {
		name string
		d    store.Delegation
		want error
		what string
	}{
		{name: "ok/generated-id", d: valid(nil)},
		{name: "ok/expires-later", d: valid(func(d *store.Delegation) { d.Expires = f.now.Add(time.Hour) })},
		{name: "ok/config-declares-an-ended-one", d: valid(func(d *store.Delegation) {
			d.ID, d.Source, d.Expires = "dlg_ended", directory.SourceConfig, f.now.Add(-time.Hour)
		})},
		{name: "fail/expires-in-the-past", d: valid(func(d *store.Delegation) { d.Expires = f.now }), want: directory.ErrInvalid},
		{name: "fail/unknown-source", d: valid(func(d *store.Delegation) { d.Source = "api" }), want: directory.ErrInvalid},
		{name: "fail/no-scopes", d: valid(func(d *store.Delegation) { d.Scopes = nil }), want: directory.ErrInvalid},
		{name: "fail/invalid-id", d: valid(func(d *store.Delegation) { d.ID = "dlg x" }), want: directory.ErrInvalid},
		{name: "fail/taken-id", d: valid(func(d *store.Delegation) { d.ID = "dlg_sam_bot" }), want: directory.ErrConflict},
		{name: "fail/unknown-subject", d: valid(func(d *store.Delegation) { d.Subject = "user:nobody" }), want: directory.ErrNotFound, what: "subject"},
		{name: "fail/unknown-actor", d: valid(func(d *store.Delegation) { d.Actor = "agent:nobody" }), want: directory.ErrNotFound, what: "actor"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.want != nil {
				f.refused(t, tc.want, tc.what, func() error {
					_, err := f.d.CreateDelegation(ctx, admin, tc.d)
					return err
				})
				return
			}
			seq := f.lastSeq()
			got, err := f.d.CreateDelegation(ctx, admin, tc.d)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(got.ID, "dlg_") || got.Revoked || !got.CreatedAt.Equal(f.now) {
				t.Errorf("created = %+v", got)
			}
			f.wantRecords(seq, recorded{Action: audit.ActionDelegationNew, Performer: "admin", RequestID: "req_1", Resource: got.ID,
				DelegationID: got.ID, OnBehalf: "user:sam", Chain: []string{"agent:bot"}, Scopes: []string{"deploy:read"}})
		})
	}
	t.Run("ok/update-narrows-and-reinstates", func(t *testing.T) {
		if err := f.d.RevokeDelegation(ctx, admin, "dlg_sam_bot", ""); err != nil {
			t.Fatal(err)
		}
		seq := f.lastSeq()
		auds := []string{"https://deploy.example"}
		dl, err := f.d.UpdateDelegation(ctx, admin, "dlg_sam_bot", directory.DelegationChange{Audiences: &auds, Reinstate: true})
		if err != nil {
			t.Fatal(err)
		}
		if dl.Revoked || !cmp.Equal(dl.Audiences, auds) {
			t.Errorf("updated = %+v", dl)
		}
		f.wantRecords(seq, recorded{Action: audit.ActionDelegationUpdated, Performer: "admin", RequestID: "req_1", Resource: "dlg_sam_bot",
			DelegationID: "dlg_sam_bot", OnBehalf: "user:sam", Chain: []string{"agent:bot"}, Scopes: []string{"deploy:create"}})
	})
	t.Run("fail/update-invalid-changes-nothing", func(t *testing.T) {
		var none []string
		f.refused(t, directory.ErrInvalid, "", func() error {
			_, err := f.d.UpdateDelegation(ctx, admin, "dlg_sam_bot", directory.DelegationChange{Scopes: &none})
			return err
		})
	})
	t.Run("fail/revoke-unknown", func(t *testing.T) {
		if err := f.d.RevokeDelegation(ctx, admin, "dlg_nobody", ""); !errors.Is(err, directory.ErrNotFound) {
			t.Fatalf("err = %v, want ErrNotFound", err)
		}
	})
}

func TestRevokeToken(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	f.seed()
	tok := store.IssuedToken{JTI: "jti-1", GrantType: "urn:ietf:params:oauth:grant-type:token-exchange", Subject: "user:sam",
		ClientID: "agent:bot", Chain: []string{"agent:bot"}, Scopes: []string{"deploy:create"}, IssuedAt: f.now, ExpiresAt: f.now.Add(10 * time.Minute)}
	if err := f.s.Commit(ctx, store.Batch{Tokens: []store.IssuedToken{tok}}); err != nil {
		t.Fatal(err)
	}
	client := directory.Performer{ID: "agent:bot", ClientID: "agent:bot", RequestID: "req_2"}
	seq := f.lastSeq()
	before, err := f.d.RevokeToken(ctx, client, "jti-1", "rfc7009")
	if err != nil || before.Revoked || before.ClientID != "agent:bot" {
		t.Fatalf("RevokeToken = %+v, %v", before, err)
	}
	again, err := f.d.RevokeToken(ctx, admin, "jti-1", "")
	if err != nil || !again.Revoked {
		t.Fatalf("second RevokeToken = %+v, %v; want the record as revoked", again, err)
	}
	f.wantRecords(seq,
		recorded{Action: audit.ActionTokenRevoked, Performer: "agent:bot", RequestID: "req_2", Reason: "rfc7009", JTI: "jti-1",
			OnBehalf: "user:sam", Chain: []string{"agent:bot"}},
		recorded{Action: audit.ActionTokenRevoked, Performer: "admin", RequestID: "req_1", JTI: "jti-1",
			OnBehalf: "user:sam", Chain: []string{"agent:bot"}},
	)
	if evs := f.events(seq); evs[0].ClientID != "agent:bot" || evs[1].ClientID != "" {
		t.Errorf("client_id = %q, %q; want the client's, then none", evs[0].ClientID, evs[1].ClientID)
	}
	seq = f.lastSeq()
	if _, err := f.d.RevokeToken(ctx, admin, "jti-unknown", ""); !errors.Is(err, directory.ErrNotFound) {
		t.Fatalf("unknown jti: err = %v, want ErrNotFound", err)
	}
	f.wantRecords(seq)
}

func TestAdvanceNotBefore(t *testing.T) {
	f := newFixture(t)
	cli := directory.Performer{ID: directory.PerformerCLI}
	got, err := f.d.AdvanceNotBefore(context.Background(), cli, f.now)
	if err != nil || !got.Equal(f.now) {
		t.Fatalf("AdvanceNotBefore = %s, %v", got, err)
	}
	f.wantRecords(0, recorded{Action: audit.ActionEpochAdvanced, Performer: "cli"})
}

// refused checks that call is refused with want (a *NotFoundError of what,
// when what is set) and changes nothing: no record, no change to the
// store.
func (f *fixture) refused(t *testing.T, want error, what string, call func() error) {
	t.Helper()
	seq, before := f.lastSeq(), f.state()
	err := call()
	if !errors.Is(err, want) {
		t.Fatalf("err = %v, want %v", err, want)
	}
	var nf *directory.NotFoundError
	if what != "" && (!errors.As(err, &nf) || nf.What != what) {
		t.Errorf("err = %v, want a %s not found", err, what)
	}
	f.wantRecords(seq)
	if diff := cmp.Diff(before, f.state()); diff != "" {
		t.Errorf("a refused write changed the store (-before +after):\n%s", diff)
	}
}

// state is what the directory can change: users, agents and every
// delegation, through JSON so that the comparison sees what they hold.
func (f *fixture) state() map[string]any {
	f.t.Helper()
	ctx := context.Background()
	users, err1 := f.s.ListUsers(ctx)
	agents, err2 := f.s.ListAgents(ctx)
	ds, err3 := f.s.ListDelegations(ctx, store.DelegationFilter{IncludeRevoked: true})
	if err := errors.Join(err1, err2, err3); err != nil {
		f.t.Fatal(err)
	}
	b, _ := json.Marshal(map[string]any{"users": users, "agents": agents, "delegations": ds})
	var out map[string]any
	_ = json.Unmarshal(b, &out)
	return out
}

func (f *fixture) revocationSeq() int64 {
	f.t.Helper()
	seq, err := f.s.RevocationSeq(context.Background())
	if err != nil {
		f.t.Fatal(err)
	}
	return seq
}

// revocationsAfter is kind:id of the revocation entries after seq, one
// scope entry of a user counted once.
func (f *fixture) revocationsAfter(seq int64) []string {
	f.t.Helper()
	rs, err := f.s.ListRevocations(context.Background(), seq, 100)
	if err != nil {
		f.t.Fatal(err)
	}
	var out []string
	for _, r := range rs {
		id := r.Kind + ":" + r.ID
		if r.Kind == revocation.KindScope && len(out) > 0 && out[len(out)-1] == id {
			continue
		}
		out = append(out, id)
	}
	return out
}
