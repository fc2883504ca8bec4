package provision

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mandate-dev/mandate/internal/audit"
	"github.com/mandate-dev/mandate/internal/config"
	"github.com/mandate-dev/mandate/internal/directory"
	"github.com/mandate-dev/mandate/internal/store"
	"github.com/mandate-dev/mandate/internal/store/sqlite"
)

const sample = `
issuer: http://127.0.0.1:8080
users:
  - id: user:sam
    permissions: [monitoring:read, deploy:create]
agents:
  - id: agent:infrabot
    secret: infrabot-secret
    scopes: [monitoring:read, deploy:create]
delegations:
  - subject: user:sam
    actor: agent:infrabot
    scopes: [monitoring:read]
`

func open(t *testing.T) store.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "m.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestSync(t *testing.T) {
	ctx := context.Background()
	cfg, err := config.Parse([]byte(sample), "m.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s := open(t)
	now := time.Now()

	r, err := Sync(ctx, s, cfg, false, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Created) != 3 || len(r.Differences) != 0 {
		t.Fatalf("first start: %+v", r)
	}

	// An administrator removes a permission and disables the agent.
	if _, err := s.UpdateUser(ctx, "user:sam", func(u store.User) (store.User, error) {
		u.Permissions = []string{"deploy:create"}
		return u, nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateAgent(ctx, "agent:infrabot", func(a store.Agent) (store.Agent, error) {
		a.Disabled = true
		return a, nil
	}); err != nil {
		t.Fatal(err)
	}

	t.Run("ok/restart-keeps-admin-changes", func(t *testing.T) {
		r, err := Sync(ctx, s, cfg, false, now)
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Created) != 0 || len(r.Updated) != 0 || len(r.Differences) != 2 {
			t.Fatalf("restart: %+v", r)
		}
		u, _ := s.GetUser(ctx, "user:sam")
		a, _ := s.GetAgent(ctx, "agent:infrabot")
		if slices.Contains(u.Permissions, "monitoring:read") || !a.Disabled {
			t.Fatal("a restart undid an administrator's change")
		}
	})
	t.Run("ok/apply-enforces-the-file", func(t *testing.T) {
		r, err := Sync(ctx, s, cfg, true, now)
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Updated) != 2 || len(r.Differences) != 0 {
			t.Fatalf("apply: %+v", r)
		}
		u, _ := s.GetUser(ctx, "user:sam")
		a, _ := s.GetAgent(ctx, "agent:infrabot")
		if !slices.Contains(u.Permissions, "monitoring:read") || a.Disabled {
			t.Fatal("apply did not make the store match the file")
		}
		evs, err := s.QueryEvents(ctx, store.EventFilter{Action: "agent.updated"})
		if err != nil || len(evs) != 1 || evs[0].Performer != "config" {
			t.Fatalf("apply was not audited: %+v %v", evs, err)
		}
		again, _ := Sync(ctx, s, cfg, true, now)
		if len(again.Updated)+len(again.Created) != 0 {
			t.Fatalf("second apply changed things: %+v", again)
		}
	})
}

// TestSyncThroughDirectory: provisioning writes through the directory, so
// the file's records follow its rules and every change names "config".
func TestSyncThroughDirectory(t *testing.T) {
	ctx := context.Background()
	parse := func(t *testing.T, extra string) *config.Config {
		t.Helper()
		cfg, err := config.Parse([]byte(sample+extra), "m.yaml")
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	t.Run("ok/apply-changes-limits-and-a-delegation", func(t *testing.T) {
		s := open(t)
		if _, err := Sync(ctx, s, parse(t, ""), false, time.Now()); err != nil {
			t.Fatal(err)
		}
		cfg := parse(t, "")
		cfg.Users[0].Limits = []map[string]any{{"type": "expense_approval", "max_amount": 500}}
		cfg.Delegations[0].Scopes = []string{"deploy:create"}
		r, err := Sync(ctx, s, cfg, false, time.Now())
		if err != nil || len(r.Differences) != 2 {
			t.Fatalf("restart: %+v %v", r, err)
		}
		r, err = Sync(ctx, s, cfg, true, time.Now())
		if err != nil || len(r.Updated) != 2 {
			t.Fatalf("apply: %+v %v", r, err)
		}
		u, _ := s.GetUser(ctx, "user:sam")
		if string(u.Limits) != `[{"max_amount":500,"type":"expense_approval"}]` {
			t.Errorf("limits = %s", u.Limits)
		}
		for _, action := range []string{audit.ActionUserLimits, audit.ActionDelegationUpdated} {
			evs, err := s.QueryEvents(ctx, store.EventFilter{Action: action})
			if err != nil || len(evs) != 1 || evs[0].Performer != "config" {
				t.Errorf("%s records: %+v %v", action, evs, err)
			}
		}
	})
	t.Run("ok/subject-and-actor-are-never-rewritten", func(t *testing.T) {
		s := open(t)
		if _, err := Sync(ctx, s, parse(t, ""), false, time.Now()); err != nil {
			t.Fatal(err)
		}
		cfg := parse(t, "")
		cfg.Users = append(cfg.Users, config.User{ID: "user:alex"})
		cfg.Delegations[0].Subject = "user:alex" // same id, another subject
		r, err := Sync(ctx, s, cfg, true, time.Now())
		if err != nil || len(r.Differences) != 1 || len(r.Updated) != 0 {
			t.Fatalf("apply: %+v %v", r, err)
		}
		d, _ := s.GetDelegation(ctx, cfg.Delegations[0].ID)
		if d.Subject != "user:sam" {
			t.Errorf("the delegation's subject became %q", d.Subject)
		}
	})
	t.Run("fail/a-users-id-held-by-an-agent", func(t *testing.T) {
		s := open(t)
		if err := s.CreateAgent(ctx, store.Agent{ID: "user:sam", SecretHash: []byte{1}}); err != nil {
			t.Fatal(err)
		}
		if _, err := Sync(ctx, s, parse(t, ""), false, time.Now()); !errors.Is(err, directory.ErrConflict) {
			t.Fatalf("Sync = %v, want a conflict", err)
		}
	})
}

// TestSyncPasswordAndRoles: a user is created with the file's password hash
// and roles; a later difference in roles is reported and enforced like
// permissions, through the directory; a password set in the store is kept
// when the file names none, and enforced when it names one.
func TestSyncPasswordAndRoles(t *testing.T) {
	ctx := context.Background()
	parse := func(yaml string) *config.Config {
		t.Helper()
		cfg, err := config.Parse([]byte(yaml), "m.yaml")
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	withHash := parse("users:\n  - id: user:sam\n    password_hash: \"" + config.DevPasswordHash + "\"\n    roles: [admin]\n  - id: user:lee\n")
	s := open(t)
	now := time.Now()
	if r, err := Sync(ctx, s, withHash, false, now); err != nil || len(r.Created) != 2 {
		t.Fatalf("first start: %+v, %v", r, err)
	}
	sam, err := s.GetUser(ctx, "user:sam")
	if err != nil || sam.PasswordHash != config.DevPasswordHash || !slices.Equal(sam.Roles, []string{"admin"}) {
		t.Fatalf("sam = %+v, %v", sam, err)
	}
	// Lee sets a password; Sam loses the admin role.
	d := &directory.Directory{Store: s}
	if _, err := d.SetPassword(ctx, directory.Performer{ID: directory.PerformerCLI}, "user:lee", config.DevPasswordHash); err != nil {
		t.Fatal(err)
	}
	if _, err := d.SetRoles(ctx, directory.Performer{ID: directory.PerformerCLI}, "user:sam", nil); err != nil {
		t.Fatal(err)
	}
	r, err := Sync(ctx, s, withHash, false, now)
	if err != nil || !slices.Equal(r.Differences, []string{"user user:sam: roles"}) {
		t.Fatalf("restart: %+v, %v; want only Sam's roles to differ (Lee's password is not the file's)", r, err)
	}
	// Sam's password changes in the store: the file names one, so it differs.
	other := strings.Replace(config.DevPasswordHash, "eOOo", "AAAA", 1)
	if _, err := d.SetPassword(ctx, directory.Performer{ID: directory.PerformerCLI}, "user:sam", other); err != nil {
		t.Fatal(err)
	}
	seq := lastSeq(t, s)
	r, err = Sync(ctx, s, withHash, true, now)
	if err != nil || !slices.Equal(r.Updated, []string{"user user:sam: roles, password_hash"}) {
		t.Fatalf("apply: %+v, %v", r, err)
	}
	sam, _ = s.GetUser(ctx, "user:sam")
	lee, _ := s.GetUser(ctx, "user:lee")
	if sam.PasswordHash != config.DevPasswordHash || !slices.Equal(sam.Roles, []string{"admin"}) || lee.PasswordHash != config.DevPasswordHash {
		t.Errorf("after apply: sam %+v, lee %+v", sam, lee)
	}
	evs, err := s.EventsAfter(ctx, seq, 100)
	if err != nil || len(evs) != 2 || evs[0].Action != audit.ActionUserRoles || evs[1].Action != audit.ActionUserPassword ||
		evs[1].Performer != directory.PerformerConfig {
		t.Errorf("records of the apply: %+v, %v", evs, err)
	}
}

func lastSeq(t *testing.T, s store.Store) int64 {
	t.Helper()
	evs, err := s.EventsAfter(context.Background(), 0, store.MaxPageLimit)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) == 0 {
		return 0
	}
	return evs[len(evs)-1].Seq
}
