package provision

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
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
