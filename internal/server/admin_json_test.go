package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/mandate-dev/mandate/internal/store"
	"github.com/mandate-dev/mandate/oauth"
)

// TestAdminJSONStrict is THREATS T88: an admin body with a member the
// endpoint does not know, a known member in another case, or a member
// twice (also in another case) is refused with 400 naming the member, and
// nothing changes: encoding/json alone would match "Agent" to "agent" and
// keep the last of two members, so a proxy or a log that reads the first
// would see another change than the one made.
func TestAdminJSONStrict(t *testing.T) {
	h := newHarness(t)
	cases := []struct {
		name   string
		method string
		path   string
		body   string
		member string // the member the refusal names
	}{
		{name: "fail/permissions-unknown-member", method: http.MethodPut, path: "/admin/users/user:sam/permissions",
			body: `{"permissions":["monitoring:read"],"permission":["secrets:manage"]}`, member: "permission"},
		{name: "fail/permissions-case-variant", method: http.MethodPut, path: "/admin/users/user:sam/permissions",
			body: `{"Permissions":["monitoring:read"]}`, member: "Permissions"},
		{name: "fail/permissions-duplicate", method: http.MethodPut, path: "/admin/users/user:sam/permissions",
			body: `{"permissions":["secrets:manage"],"permissions":["monitoring:read"]}`, member: "permissions"},
		{name: "fail/permissions-case-variant-duplicate", method: http.MethodPut, path: "/admin/users/user:sam/permissions",
			body: `{"permissions":["monitoring:read"],"PERMISSIONS":[]}`, member: "PERMISSIONS"},
		{name: "fail/new-user-case-variant", method: http.MethodPut, path: "/admin/users/user:eve/permissions",
			body: `{"permissionS":["secrets:manage"]}`, member: "permissionS"},
		{name: "fail/limits-case-variant", method: http.MethodPut, path: "/admin/users/user:alice/limits",
			body: `{"LIMITS":[]}`, member: "LIMITS"},
		{name: "fail/limits-duplicate", method: http.MethodPut, path: "/admin/users/user:alice/limits",
			body: `{"limits":[{"type":"expense_approval","max_amount":1000000,"currency":"USD"}],"limits":[]}`, member: "limits"},
		{name: "fail/delegation-case-variant", method: http.MethodPost, path: "/admin/delegations",
			body: `{"subject":"user:sam","Actor":"agent:argocd","scopes":["monitoring:read"]}`, member: "Actor"},
		{name: "fail/delegation-duplicate", method: http.MethodPost, path: "/admin/delegations",
			body: `{"subject":"user:sam","actor":"agent:reaper","actor":"agent:argocd","scopes":["monitoring:read"]}`, member: "actor"},
		{name: "fail/delegation-unknown-member", method: http.MethodPost, path: "/admin/delegations",
			body: `{"subject":"user:sam","actor":"agent:argocd","scopes":["monitoring:read"],"note":"x"}`, member: "note"},
		{name: "fail/revoke-case-variant", method: http.MethodPost, path: "/admin/revoke",
			body: `{"Agent":"agent:argocd"}`, member: "Agent"},
		{name: "fail/revoke-duplicate", method: http.MethodPost, path: "/admin/revoke",
			body: `{"agent":"agent:nobody","agent":"agent:argocd"}`, member: "agent"},
		{name: "fail/revoke-unknown-member", method: http.MethodPost, path: "/admin/revoke",
			body: `{"agent":"agent:argocd","reason":"compromised"}`, member: "reason"},
	}
	before := h.adminStoreState()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			seq := h.lastSeq()
			req, _ := http.NewRequest(tc.method, h.url+tc.path, strings.NewReader(tc.body))
			req.Header.Set("Authorization", "Bearer "+adminToken)
			req.Header.Set("Content-Type", "application/json")
			r := h.do(req)
			if r.status != http.StatusBadRequest || r.str("error") != string(oauth.ErrInvalidRequest) {
				t.Fatalf("%s %s: %d %s, want 400 invalid_request", tc.method, tc.path, r.status, r.raw)
			}
			if d := r.str("error_description"); !strings.Contains(d, "'"+tc.member+"'") {
				t.Errorf("error_description %q does not name the member %q", d, tc.member)
			}
			if got := h.eventsSince(seq); len(got) != 0 {
				t.Errorf("a refused body left audit records: %s", eventsJSON(got))
			}
			if diff := cmp.Diff(before, h.adminStoreState()); diff != "" {
				t.Errorf("a refused body changed the store (-before +after):\n%s", diff)
			}
		})
	}
	t.Run("ok/exact-members", func(t *testing.T) {
		r := h.admin(http.MethodPut, "/admin/users/user:alex/permissions", map[string]any{"permissions": []string{"deploy:tag"}})
		if r.status != http.StatusOK {
			t.Fatalf("a well-formed body: %d %s", r.status, r.raw)
		}
	})
}

// adminStoreState is what the admin API can change: users, agents and every
// delegation, revoked ones included.
func (h *harness) adminStoreState() map[string]any {
	h.t.Helper()
	ctx := context.Background()
	users, err := h.store.ListUsers(ctx)
	if err != nil {
		h.t.Fatal(err)
	}
	agents, err := h.store.ListAgents(ctx)
	if err != nil {
		h.t.Fatal(err)
	}
	delegations, err := h.store.ListDelegations(ctx, store.DelegationFilter{IncludeRevoked: true})
	if err != nil {
		h.t.Fatal(err)
	}
	// Through JSON, so that the comparison sees what the records hold.
	b, _ := json.Marshal(map[string]any{"users": users, "agents": agents, "delegations": delegations})
	var out map[string]any
	_ = json.Unmarshal(b, &out)
	return out
}
