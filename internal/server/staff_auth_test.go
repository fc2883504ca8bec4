package server_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/mandate-dev/mandate/internal/store"
)

// setRoles gives user roles in the store.
func (h *harness) setRoles(user string, roles ...string) {
	h.t.Helper()
	if _, err := h.store.UpdateUser(context.Background(), user, func(u store.User) (store.User, error) {
		u.Roles = roles
		return u, nil
	}); err != nil {
		h.t.Fatal(err)
	}
}

// adminAs calls the admin API with bearer.
func (h *harness) adminAs(bearer, method, path string) response {
	h.t.Helper()
	req, _ := http.NewRequest(method, h.url+path, nil)
	req.Header.Set("Authorization", "Bearer "+bearer)
	return h.do(req)
}

// TestAdminAPITakesASignedInAdministrator: the admin API takes the token
// of a person who holds the admin role, their identity provider's or
// Mandate's own, and records the person as the performer; an auditor
// reads the log and changes nothing; a person without a role, and a
// delegated token, are refused and recorded.
func TestAdminAPITakesASignedInAdministrator(t *testing.T) {
	h := newHarness(t)
	h.setRoles("user:sam", "admin")
	h.setRoles("user:alice", "auditor")
	own := h.admin(http.MethodPost, "/admin/users/user:sam/token", nil).str("access_token")
	cases := []struct {
		name, bearer, method, path string
		status                     int
		performer                  string
	}{
		{"provider token of an admin", h.samToken(), http.MethodPost, "/admin/agents/agent:mallory/disable", http.StatusOK, "user:sam"},
		{"Mandate token of an admin", own, http.MethodPost, "/admin/agents/agent:mallory/enable", http.StatusOK, "user:sam"},
		{"static token", adminToken, http.MethodPost, "/admin/agents/agent:mallory/disable", http.StatusOK, "admin"},
		{"auditor reads the log", h.idp.token(t, "user:alice", nil), http.MethodGet, "/audit?limit=1", http.StatusOK, ""},
		{"auditor changes nothing", h.idp.token(t, "user:alice", nil), http.MethodPost, "/admin/agents/agent:mallory/enable", http.StatusForbidden, ""},
		{"no role", h.idp.token(t, "user:alex", nil), http.MethodGet, "/audit?limit=1", http.StatusForbidden, ""},
		{"delegated token", h.hop1("monitoring:read"), http.MethodGet, "/admin/users", http.StatusUnauthorized, ""},
		{"garbage", "not-a-token", http.MethodGet, "/admin/users", http.StatusUnauthorized, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := h.adminAs(c.bearer, c.method, c.path)
			if r.status != c.status {
				t.Fatalf("%s %s: %d %s, want %d", c.method, c.path, r.status, r.raw, c.status)
			}
			if c.performer != "" {
				evs := h.events(store.EventFilter{Resource: "agent:mallory", Limit: 1})
				if len(evs) == 0 || evs[0].Performer != c.performer {
					t.Fatalf("recorded %+v, want performed by %s", evs, c.performer)
				}
			}
		})
	}
	if evs := h.events(store.EventFilter{Action: "admin.auth", Result: "refused"}); len(evs) == 0 {
		t.Fatal("the refused admin calls left no record")
	}
}
