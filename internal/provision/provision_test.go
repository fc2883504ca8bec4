package provision

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/mandate-dev/mandate/internal/config"
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
