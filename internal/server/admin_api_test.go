package server_test

import (
	"context"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/mandate-dev/mandate/internal/audit"
	"github.com/mandate-dev/mandate/internal/server"
	"github.com/mandate-dev/mandate/internal/store"
	"github.com/mandate-dev/mandate/oauth"
)

// wantAdminRecord checks that the answer r left exactly one audit record
// after seq, of action on resource, performed by the admin in r's request.
func (h *harness) wantAdminRecord(t *testing.T, seq int64, r response, action, resource string) {
	t.Helper()
	evs := h.eventsSince(seq)
	if len(evs) != 1 {
		t.Fatalf("%d records after %s, want 1: %s", len(evs), action, eventsJSON(evs))
	}
	ev := evs[0]
	got := []string{ev.Action, ev.Result, ev.Performer, ev.Resource, ev.RequestID}
	want := []string{action, audit.ResultOK, "admin", resource, r.header.Get("X-Request-Id")}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("record (action, result, performer, resource, request id) (-want +got):\n%s", diff)
	}
}

// clientToken is a client_credentials token of client with secret, or
// the refusal.
func (h *harness) clientToken(client, secret, scope string) response {
	h.t.Helper()
	return h.postAs("/token", client, secret, url.Values{"grant_type": {oauth.GrantClientCredentials}, "scope": {scope}}, nil)
}

// revoked asks the token's revocation_url whether it is revoked.
func (h *harness) revoked(t *testing.T, tok string) bool {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, h.url+"/revocations/"+jtiOf(t, tok), nil)
	r := h.do(req)
	if r.status != http.StatusOK {
		t.Fatalf("revocation status: %d %s", r.status, r.raw)
	}
	return r.body["revoked"] == true
}

// TestAdminAgentLifecycle: the admin API creates an agent and gives it a
// secret, the agent authenticates with it (client_credentials), the admin
// gives it a new secret (the old one is refused), disables it (its token
// stops being in force) and deletes it; each change has its record, naming
// the admin, the agent and the request.
func TestAdminAgentLifecycle(t *testing.T) {
	h := newHarness(t)
	const id = "agent:newbot"

	seq := h.lastSeq()
	r := h.admin(http.MethodPost, "/admin/agents", map[string]any{"id": id, "scopes": []string{"monitoring:read"}, "max_depth": 2})
	if r.status != http.StatusCreated || r.str("client_secret") == "" || r.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("create: %d %s (Cache-Control %q)", r.status, r.raw, r.header.Get("Cache-Control"))
	}
	h.wantAdminRecord(t, seq, r, audit.ActionAgentCreated, id)
	first := r.str("client_secret")
	if tok := h.clientToken(id, first, "monitoring:read"); tok.status != http.StatusOK {
		t.Fatalf("client_credentials with the generated secret: %d %s", tok.status, tok.raw)
	}

	seq = h.lastSeq()
	r = h.admin(http.MethodPost, "/admin/agents/"+id+"/secret", nil)
	if r.status != http.StatusOK || r.str("client_secret") == "" || r.str("client_secret") == first {
		t.Fatalf("new secret: %d %s", r.status, r.raw)
	}
	h.wantAdminRecord(t, seq, r, audit.ActionAgentSecret, id)
	second := r.str("client_secret")
	if tok := h.clientToken(id, first, "monitoring:read"); tok.status != http.StatusUnauthorized {
		t.Errorf("the old secret after a new one: %d %s", tok.status, tok.raw)
	}
	tok := h.clientToken(id, second, "monitoring:read")
	if tok.status != http.StatusOK {
		t.Fatalf("client_credentials with the new secret: %d %s", tok.status, tok.raw)
	}
	token := tok.str("access_token")
	if h.revoked(t, token) {
		t.Fatal("a fresh token is revoked")
	}

	seq = h.lastSeq()
	r = h.admin(http.MethodPost, "/admin/agents/"+id+"/disable", nil)
	if r.status != http.StatusOK {
		t.Fatalf("disable: %d %s", r.status, r.raw)
	}
	h.wantAdminRecord(t, seq, r, audit.ActionAgentDisabled, id)
	if !h.revoked(t, token) {
		t.Error("the token of a disabled agent is still in force")
	}

	seq = h.lastSeq()
	r = h.admin(http.MethodDelete, "/admin/agents/"+id, nil)
	if r.status != http.StatusOK {
		t.Fatalf("delete: %d %s", r.status, r.raw)
	}
	h.wantAdminRecord(t, seq, r, audit.ActionAgentDeleted, id)
	if g := h.admin(http.MethodGet, "/admin/agents/"+id, nil); g.status != http.StatusNotFound {
		t.Errorf("a deleted agent: %d %s", g.status, g.raw)
	}
	if !h.revoked(t, token) {
		t.Error("the token of a deleted agent is in force")
	}
	if tok := h.clientToken(id, second, "monitoring:read"); tok.status != http.StatusUnauthorized {
		t.Errorf("a deleted agent authenticates: %d %s", tok.status, tok.raw)
	}
}

// TestAdminAgentKeys: an agent created with a key set has no secret, and
// a change of its keys or scopes is recorded as agent.updated.
func TestAdminAgentKeys(t *testing.T) {
	h := newHarness(t)
	jwks := map[string]any{"keys": []map[string]any{{"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}}}
	r := h.admin(http.MethodPost, "/admin/agents", map[string]any{"id": "agent:jwt", "jwks": jwks})
	if r.status != http.StatusCreated || r.str("client_secret") != "" {
		t.Fatalf("create with jwks: %d %s", r.status, r.raw)
	}
	seq := h.lastSeq()
	r = h.admin(http.MethodPatch, "/admin/agents/agent:jwt", map[string]any{"scopes": []string{"deploy:tag"}, "jwks_uri": "https://jwt.example/jwks"})
	if r.status != http.StatusOK || r.str("jwks_uri") != "https://jwt.example/jwks" || r.body["jwks"] != nil {
		t.Fatalf("patch: %d %s", r.status, r.raw)
	}
	h.wantAdminRecord(t, seq, r, audit.ActionAgentUpdated, "agent:jwt")
	for _, tc := range []struct {
		name, method, path string
		body               any
		field              string
	}{
		{name: "fail/create-private-key", method: http.MethodPost, path: "/admin/agents", field: "jwks",
			body: map[string]any{"id": "agent:x", "jwks": map[string]any{"keys": []map[string]any{{"kty": "OKP", "crv": "Ed25519",
				"x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo", "d": "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"}}}}},
		{name: "fail/create-delegate-to-itself", method: http.MethodPost, path: "/admin/agents", field: "delegate_to[0]",
			body: map[string]any{"id": "agent:x", "delegate_to": []string{"agent:x"}}},
		{name: "fail/create-taken-id", method: http.MethodPost, path: "/admin/agents", body: map[string]any{"id": "agent:infrabot"}},
		{name: "fail/create-a-users-id", method: http.MethodPost, path: "/admin/agents", body: map[string]any{"id": "user:sam"}},
		{name: "fail/patch-removes-the-only-credential", method: http.MethodPatch, path: "/admin/agents/agent:jwt",
			body: map[string]any{"jwks_uri": ""}},
		{name: "fail/patch-nothing", method: http.MethodPatch, path: "/admin/agents/agent:jwt", body: map[string]any{}},
		{name: "fail/patch-depth", method: http.MethodPatch, path: "/admin/agents/agent:jwt", body: map[string]any{"max_depth": 11}, field: "max_depth"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			seq, before := h.lastSeq(), h.adminStoreState()
			r := h.admin(tc.method, tc.path, tc.body)
			want := http.StatusBadRequest
			if strings.Contains(tc.name, "taken") || strings.Contains(tc.name, "users-id") {
				want = http.StatusConflict
			}
			if r.status != want || r.header.Get("Content-Type") != "application/json" || r.str("error") == "" {
				t.Fatalf("%s %s: %d %s, want %d", tc.method, tc.path, r.status, r.raw, want)
			}
			if tc.field != "" && !strings.Contains(r.str("error_description"), tc.field) {
				t.Errorf("error_description %q does not name %s", r.str("error_description"), tc.field)
			}
			if evs := h.eventsSince(seq); len(evs) != 0 {
				t.Errorf("a refused change left records: %s", eventsJSON(evs))
			}
			if diff := cmp.Diff(before, h.adminStoreState()); diff != "" {
				t.Errorf("a refused change changed the store (-before +after):\n%s", diff)
			}
		})
	}
}

// TestAdminUsers: a user is created explicitly and deleted; deleting them
// revokes their delegations and every token on their behalf.
func TestAdminUsers(t *testing.T) {
	h := newHarness(t)
	seq := h.lastSeq()
	r := h.admin(http.MethodPost, "/admin/users", map[string]any{"id": "user:newcomer", "permissions": []string{"monitoring:read"}})
	if r.status != http.StatusCreated || r.str("id") != "user:newcomer" {
		t.Fatalf("create: %d %s", r.status, r.raw)
	}
	h.wantAdminRecord(t, seq, r, audit.ActionUserCreated, "user:newcomer")
	for _, body := range []map[string]any{{"id": "user:newcomer"}, {"id": "agent:infrabot"}} {
		if r := h.admin(http.MethodPost, "/admin/users", body); r.status != http.StatusConflict {
			t.Errorf("create %v again: %d %s", body, r.status, r.raw)
		}
	}
	if r := h.admin(http.MethodPost, "/admin/users", map[string]any{"id": "user:x", "permissions": []string{"a b"}}); r.status != http.StatusBadRequest ||
		!strings.Contains(r.str("error_description"), "permissions[0]") {
		t.Errorf("invalid permissions: %d %s", r.status, r.raw)
	}

	// Alex's token, through his delegation to InfraBot.
	alex := h.mustExchange("agent:infrabot", h.idp.token(t, "user:alex", nil), oauth.TokenTypeIDToken,
		url.Values{"audience": {"https://metrics.example"}})
	seq = h.lastSeq()
	r = h.admin(http.MethodDelete, "/admin/users/user:alex", nil)
	if r.status != http.StatusOK {
		t.Fatalf("delete: %d %s", r.status, r.raw)
	}
	evs := h.eventsSince(seq)
	var actions []string
	for _, ev := range evs {
		actions = append(actions, ev.Action+" "+ev.Resource+" "+ev.Performer)
	}
	dlg := claims(t, alex)["delegation_id"].(string)
	if diff := cmp.Diff([]string{audit.ActionDelegationGone + " " + dlg + " admin", audit.ActionUserDeleted + " user:alex admin"}, actions); diff != "" {
		t.Errorf("records of the delete (-want +got):\n%s", diff)
	}
	if active, _ := h.introspectActive(alex); active {
		t.Error("a deleted user's token is active")
	}
	if r := h.admin(http.MethodGet, "/admin/users/user:alex", nil); r.status != http.StatusNotFound {
		t.Errorf("a deleted user: %d %s", r.status, r.raw)
	}
	if x := h.exchange("agent:infrabot", h.idp.token(t, "user:alex", nil), oauth.TokenTypeIDToken, nil); x.status == http.StatusOK {
		t.Errorf("an exchange for a deleted user: %d %s", x.status, x.raw)
	}
}

// TestAdminUnknownIDs: a write that names a user, agent, delegation or
// token the store does not hold is 404 and changes nothing; a mistyped
// user id is not created.
func TestAdminUnknownIDs(t *testing.T) {
	h := newHarness(t)
	cases := []struct {
		name, method, path string
		body               any
	}{
		{name: "fail/permissions-mistyped-user", method: http.MethodPut, path: "/admin/users/user:sma/permissions",
			body: map[string]any{"permissions": []string{"secrets:manage"}}},
		{name: "fail/limits-unknown-user", method: http.MethodPut, path: "/admin/users/user:nobody/limits", body: map[string]any{"limits": []any{}}},
		{name: "fail/get-unknown-user", method: http.MethodGet, path: "/admin/users/user:nobody"},
		{name: "fail/delete-unknown-user", method: http.MethodDelete, path: "/admin/users/user:nobody"},
		{name: "fail/get-unknown-agent", method: http.MethodGet, path: "/admin/agents/agent:nobody"},
		{name: "fail/patch-unknown-agent", method: http.MethodPatch, path: "/admin/agents/agent:nobody", body: map[string]any{"max_depth": 1}},
		{name: "fail/disable-unknown-agent", method: http.MethodPost, path: "/admin/agents/agent:nobody/disable"},
		{name: "fail/enable-unknown-agent", method: http.MethodPost, path: "/admin/agents/agent:nobody/enable"},
		{name: "fail/secret-unknown-agent", method: http.MethodPost, path: "/admin/agents/agent:nobody/secret"},
		{name: "fail/delete-unknown-agent", method: http.MethodDelete, path: "/admin/agents/agent:nobody"},
		{name: "fail/get-unknown-delegation", method: http.MethodGet, path: "/admin/delegations/dlg_nobody"},
		{name: "fail/delete-unknown-delegation", method: http.MethodDelete, path: "/admin/delegations/dlg_nobody"},
		{name: "fail/delegation-unknown-subject", method: http.MethodPost, path: "/admin/delegations",
			body: map[string]any{"subject": "user:nobody", "actor": "agent:argocd", "scopes": []string{"monitoring:read"}}},
		{name: "fail/revoke-unknown-jti", method: http.MethodPost, path: "/admin/revoke", body: map[string]any{"jti": "jti-nobody"}},
		{name: "fail/revoke-unknown-subject", method: http.MethodPost, path: "/admin/revoke", body: map[string]any{"subject": "user:nobody"}},
		{name: "fail/revoke-unknown-agent", method: http.MethodPost, path: "/admin/revoke", body: map[string]any{"agent": "agent:nobody"}},
		{name: "fail/revoke-unknown-delegation", method: http.MethodPost, path: "/admin/revoke", body: map[string]any{"delegation_id": "dlg_nobody"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			seq, before := h.lastSeq(), h.adminStoreState()
			r := h.admin(tc.method, tc.path, tc.body)
			if r.status != http.StatusNotFound || r.str("error") != string(oauth.ErrNotFound) {
				t.Fatalf("%s %s: %d %s, want 404 not_found", tc.method, tc.path, r.status, r.raw)
			}
			if evs := h.eventsSince(seq); len(evs) != 0 {
				t.Errorf("a write of an unknown id left records: %s", eventsJSON(evs))
			}
			if diff := cmp.Diff(before, h.adminStoreState()); diff != "" {
				t.Errorf("a write of an unknown id changed the store (-before +after):\n%s", diff)
			}
		})
	}
	if _, err := h.store.GetUser(context.Background(), "user:sma"); err == nil {
		t.Error("a mistyped user id was created")
	}
}

// TestMethodNotAllowed: a path that a route serves with other methods is
// answered 405 with Allow and the RFC-shaped JSON error; an admin path
// asks for the admin token first, and a refused one is recorded as every
// refused admin call is. A path no route serves is still 404.
func TestMethodNotAllowed(t *testing.T) {
	h := newHarness(t)
	for _, tc := range []struct {
		name, method, path, allow string
		admin                     bool
	}{
		{name: "fail/put-users", method: http.MethodPut, path: "/admin/users", allow: "GET, HEAD, POST", admin: true},
		{name: "fail/get-revoke", method: http.MethodGet, path: "/admin/revoke", allow: "POST", admin: true},
		{name: "fail/post-user", method: http.MethodPost, path: "/admin/users/user:sam", allow: "GET, HEAD, DELETE", admin: true},
		{name: "fail/put-agent", method: http.MethodPut, path: "/admin/agents/agent:infrabot", allow: "GET, HEAD, PATCH, DELETE", admin: true},
		{name: "fail/get-disable", method: http.MethodGet, path: "/admin/agents/agent:infrabot/disable", allow: "POST", admin: true},
		{name: "fail/delete-audit", method: http.MethodDelete, path: "/audit", allow: "GET, HEAD", admin: true},
		{name: "fail/delete-jwks", method: http.MethodDelete, path: "/jwks", allow: "GET, HEAD"},
		{name: "fail/post-metadata", method: http.MethodPost, path: "/.well-known/openid-configuration", allow: "GET, HEAD"},
		{name: "fail/get-ingest", method: http.MethodGet, path: "/audit/ingest", allow: "POST"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			seq := h.lastSeq()
			r := h.admin(tc.method, tc.path, nil)
			if r.status != http.StatusMethodNotAllowed || r.header.Get("Allow") != tc.allow {
				t.Fatalf("%s %s: %d (Allow %q) %s, want 405 with Allow %q", tc.method, tc.path, r.status, r.header.Get("Allow"), r.raw, tc.allow)
			}
			if r.str("error") != string(oauth.ErrMethodNotAllowed) || r.header.Get("Content-Type") != "application/json" ||
				r.header.Get("Cache-Control") != "no-store" || !strings.Contains(r.str("error_description"), tc.allow) {
				t.Errorf("body %s, Content-Type %q, Cache-Control %q", r.raw, r.header.Get("Content-Type"), r.header.Get("Cache-Control"))
			}
			if evs := h.eventsSince(seq); len(evs) != 0 {
				t.Errorf("a 405 left records: %s", eventsJSON(evs))
			}
			if !tc.admin {
				return
			}
			req, _ := http.NewRequest(tc.method, h.url+tc.path, nil)
			if r := h.do(req); r.status != http.StatusUnauthorized || r.header.Get("Allow") != "" {
				t.Errorf("without the admin token: %d (Allow %q) %s, want 401", r.status, r.header.Get("Allow"), r.raw)
			}
		})
	}
	t.Run("ok/refused-admin-call-recorded", func(t *testing.T) {
		h := newHarness(t) // a fresh tally
		req, _ := http.NewRequest(http.MethodPut, h.url+"/admin/users", nil)
		if r := h.do(req); r.status != http.StatusUnauthorized {
			t.Fatalf("status %d", r.status)
		}
		evs := h.events(store.EventFilter{Action: audit.ActionAdminAuth})
		if len(evs) != 1 || evs[0].Resource != "/admin/users" || evs[0].Result != audit.ResultRefused {
			t.Errorf("admin.auth records: %s", eventsJSON(evs))
		}
	})
	t.Run("fail/unknown-path-is-404", func(t *testing.T) {
		if r := h.admin(http.MethodGet, "/admin/nothing", nil); r.status != http.StatusNotFound || r.header.Get("Allow") != "" {
			t.Errorf("unknown path: %d (Allow %q) %s", r.status, r.header.Get("Allow"), r.raw)
		}
	})
}

// TestConfigHoldsNoStoreWrites: what the server is built from reads the
// store and nothing more; writes go through the directory (people,
// agents, delegations, revocations) and the audit recorder (tokens and
// records).
func TestConfigHoldsNoStoreWrites(t *testing.T) {
	writes := []string{"Create", "Update", "Delete", "Revoke", "Commit", "Advance", "Add", "Use", "Collect"}
	cfg := reflect.TypeFor[server.Config]()
	for i := range cfg.NumField() {
		f := cfg.Field(i)
		if f.Type.Kind() != reflect.Interface {
			continue
		}
		for j := range f.Type.NumMethod() {
			m := f.Type.Method(j).Name
			for _, w := range writes {
				if strings.HasPrefix(m, w) {
					t.Errorf("server.Config.%s (%s) has the store write %s", f.Name, f.Type, m)
				}
			}
		}
	}
}
