package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/mandate-dev/mandate/internal/audit"
	"github.com/mandate-dev/mandate/internal/config"
	"github.com/mandate-dev/mandate/internal/store"
	"github.com/mandate-dev/mandate/oauth"
)

// This file is THREATS T66: every decision leaves exactly one audit record,
// with its request's correlation id, durable before the answer leaves, on
// every backend. T69 (the record cannot be written) is audit_sink_test.go.

// firstByteWriter is an http.ResponseWriter that, when the handler writes
// the first byte of its answer (the status line), reads the audit log: what
// it finds then was durable before anything was sent to the client.
type firstByteWriter struct {
	header  http.Header
	status  int
	body    bytes.Buffer
	onFirst func(requestID string)
	fired   bool
}

func (w *firstByteWriter) Header() http.Header { return w.header }

func (w *firstByteWriter) WriteHeader(code int) {
	if w.fired {
		return
	}
	w.fired, w.status = true, code
	w.onFirst(w.header.Get("X-Request-Id"))
}

func (w *firstByteWriter) Write(b []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return w.body.Write(b)
}

// lastSeq is the seq of the newest audit record.
func (h *harness) lastSeq() int64 {
	h.t.Helper()
	evs, err := h.store.QueryEvents(context.Background(), store.EventFilter{Limit: 1})
	if err != nil {
		h.t.Fatal(err)
	}
	if len(evs) == 0 {
		return 0
	}
	return evs[0].Seq
}

// eventsSince returns the audit records after seq, oldest first, read from
// the store itself (not through the server's cache).
func (h *harness) eventsSince(seq int64) []store.Event {
	h.t.Helper()
	evs, err := h.store.EventsAfter(context.Background(), seq, 1000)
	if err != nil {
		h.t.Fatal(err)
	}
	return evs
}

// serveAudited runs req through the server in process and returns the
// answer with the audit records written after seq as they stood when the
// answer's first byte was written.
func (h *harness) serveAudited(req *http.Request, seq int64) (response, []store.Event) {
	h.t.Helper()
	var atFirstByte []store.Event
	w := &firstByteWriter{header: http.Header{}, onFirst: func(string) { atFirstByte = h.eventsSince(seq) }}
	h.app.Handler.ServeHTTP(w, req)
	if !w.fired {
		h.t.Fatal("the handler wrote no answer")
	}
	out := response{status: w.status, header: w.header, raw: w.body.String()}
	_ = json.Unmarshal(w.body.Bytes(), &out.body)
	return out, atFirstByte
}

// formRequest is a form POST to path authenticated by client and secret
// (client_secret_post; none when client is "").
func (h *harness) formRequest(path, client, secret string, form url.Values) *http.Request {
	if client != "" {
		form.Set("client_id", client)
		form.Set("client_secret", secret)
	}
	req := httptest.NewRequest(http.MethodPost, h.url+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return req
}

// agentRequest is a form POST by one of testConfig's agents.
func (h *harness) agentRequest(path, client string, form url.Values) *http.Request {
	return h.formRequest(path, client, strings.TrimPrefix(client, "agent:")+"-secret", form)
}

// adminRequest is an admin API call.
func (h *harness) adminRequest(method, path string, body any) *http.Request {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req := httptest.NewRequest(method, h.url+path, rd)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	req.Header.Set("Content-Type", "application/json")
	return req
}

// jtiOf is the jti claim of a Mandate token.
func jtiOf(t *testing.T, tok string) string {
	t.Helper()
	jti, _ := claims(t, tok)["jti"].(string)
	if jti == "" {
		t.Fatalf("token without jti: %s", tok)
	}
	return jti
}

// auditPrepared is what a case set up before the request under test.
type auditPrepared struct {
	req *http.Request
	// tok is a token the case prepared (the subject, the one to revoke).
	tok string
}

// samDelegation is the configured delegation from Sam to InfraBot.
var samDelegation = config.DelegationID("user:sam", "agent:infrabot")

// completenessCase is one endpoint and outcome. prepare sets it up and
// returns the request under test; want builds the one record the request
// must leave from what was prepared and the answer (RequestID is checked
// apart, against X-Request-Id).
type completenessCase struct {
	name       string
	prepare    func(t *testing.T, h *harness) auditPrepared
	wantStatus int
	want       func(t *testing.T, h *harness, p auditPrepared, r response) store.Event
}

// completenessCases are every endpoint and outcome that decides something.
func completenessCases() []completenessCase {
	const (
		exchangeAction = audit.ActionTokenExchange
		deployAPI      = "https://deploy.example"
	)
	issued := func(t *testing.T, r response) string { return jtiOf(t, r.str("access_token")) }
	exchangeBy := func(client string, f url.Values) func(*testing.T, *harness) auditPrepared {
		return func(_ *testing.T, h *harness) auditPrepared {
			return auditPrepared{req: h.agentRequest("/token", client, f)}
		}
	}
	idTokenForm := func(h *harness, kv ...string) url.Values {
		return exchangeForm(h.samToken(), oauth.TokenTypeIDToken, kv...)
	}
	return []completenessCase{
		// The token endpoint: exchanges granted and refused.
		{
			name: "ok/exchange-first-hop",
			prepare: func(t *testing.T, h *harness) auditPrepared {
				return exchangeBy("agent:infrabot", idTokenForm(h, "audience", deployAPI, "scope", "monitoring:read secrets:manage"))(t, h)
			},
			wantStatus: 200,
			want: func(t *testing.T, _ *harness, _ auditPrepared, r response) store.Event {
				return store.Event{
					Action: audit.ActionTokenExchange, Result: audit.ResultGranted,
					Performer: "agent:infrabot", ClientID: "agent:infrabot", OnBehalf: "user:sam", Chain: []string{"agent:infrabot"},
					Scopes: []string{"monitoring:read"}, Requested: []string{"monitoring:read", "secrets:manage"},
					Audience: deployAPI, DelegationID: samDelegation, JTI: issued(t, r),
				}
			},
		},
		{
			name: "ok/exchange-second-hop",
			prepare: func(_ *testing.T, h *harness) auditPrepared {
				hop1 := h.hop1("monitoring:read deploy:tag")
				return auditPrepared{tok: hop1, req: h.agentRequest("/token", "agent:argocd",
					exchangeForm(hop1, oauth.TokenTypeAccessToken, "audience", "agent:cleanup_agent", "scope", "deploy:tag"))}
			},
			wantStatus: 200,
			want: func(t *testing.T, _ *harness, p auditPrepared, r response) store.Event {
				return store.Event{
					Action: audit.ActionTokenExchange, Result: audit.ResultGranted,
					Performer: "agent:argocd", ClientID: "agent:argocd", OnBehalf: "user:sam", Chain: []string{"agent:argocd", "agent:infrabot"},
					Scopes: []string{"deploy:tag"}, Requested: []string{"deploy:tag"}, Audience: "agent:cleanup_agent",
					DelegationID: samDelegation, JTI: issued(t, r), ParentJTI: jtiOf(t, p.tok),
				}
			},
		},
		{
			name: "fail/exchange-subject-token-invalid",
			prepare: func(t *testing.T, h *harness) auditPrepared {
				return exchangeBy("agent:infrabot", exchangeForm("not.a.token", oauth.TokenTypeIDToken, "audience", deployAPI))(t, h)
			},
			wantStatus: 400,
			want: func(*testing.T, *harness, auditPrepared, response) store.Event {
				// No subject was established: the record names nobody as
				// acted for (not the client, which is not its subject).
				return store.Event{
					Action: audit.ActionTokenRefused, Result: audit.ResultRefused, Reason: "subject_token_invalid", Resource: exchangeAction,
					Performer: "agent:infrabot", ClientID: "agent:infrabot", Audience: deployAPI,
				}
			},
		},
		{
			name: "fail/exchange-scope-not-held",
			prepare: func(t *testing.T, h *harness) auditPrepared {
				return exchangeBy("agent:infrabot", idTokenForm(h, "audience", deployAPI, "scope", "secrets:manage"))(t, h)
			},
			wantStatus: 400,
			want: func(*testing.T, *harness, auditPrepared, response) store.Event {
				return store.Event{
					Action: audit.ActionTokenRefused, Result: audit.ResultRefused, Reason: "no_scope_granted", Resource: exchangeAction,
					Performer: "agent:infrabot", ClientID: "agent:infrabot", OnBehalf: "user:sam", Chain: []string{"agent:infrabot"},
					Requested: []string{"secrets:manage"}, Audience: deployAPI, DelegationID: samDelegation,
				}
			},
		},
		{
			name: "fail/exchange-policy-denied",
			prepare: func(t *testing.T, h *harness) auditPrepared {
				return exchangeBy("agent:infrabot", idTokenForm(h, "audience", "agent:argocd", "scope", "deploy:create",
					"context", `{"environment":"prod","trigger":"chat"}`))(t, h)
			},
			wantStatus: 400,
			want: func(*testing.T, *harness, auditPrepared, response) store.Event {
				return store.Event{
					Action: audit.ActionTokenRefused, Result: audit.ResultRefused, Reason: "policy_denied:prod-deploys-only-from-ci", Resource: exchangeAction,
					Performer: "agent:infrabot", ClientID: "agent:infrabot", OnBehalf: "user:sam", Chain: []string{"agent:infrabot"},
					Scopes: []string{"deploy:create"}, Requested: []string{"deploy:create"}, Audience: "agent:argocd", DelegationID: samDelegation,
					Context: json.RawMessage(`{"environment":"prod","trigger":"chat"}`),
				}
			},
		},
		{
			name: "fail/exchange-depth-exceeded",
			prepare: func(_ *testing.T, h *harness) auditPrepared {
				hop1 := h.hop1("deploy:tag")
				hop2 := h.mustExchange("agent:argocd", hop1, oauth.TokenTypeAccessToken, url.Values{"audience": {"agent:cleanup_agent"}})
				hop3 := h.mustExchange("agent:cleanup_agent", hop2, oauth.TokenTypeAccessToken, url.Values{"audience": {"agent:reaper"}})
				return auditPrepared{tok: hop3, req: h.agentRequest("/token", "agent:reaper",
					exchangeForm(hop3, oauth.TokenTypeAccessToken, "audience", deployAPI))}
			},
			wantStatus: 400,
			want: func(t *testing.T, _ *harness, p auditPrepared, _ response) store.Event {
				return store.Event{
					Action: audit.ActionTokenRefused, Result: audit.ResultRefused, Reason: "delegation_depth_exceeded", Resource: exchangeAction,
					Performer: "agent:reaper", ClientID: "agent:reaper", OnBehalf: "user:sam",
					Chain:    []string{"agent:reaper", "agent:cleanup_agent", "agent:argocd", "agent:infrabot"},
					Audience: deployAPI, DelegationID: samDelegation, ParentJTI: jtiOf(t, p.tok),
				}
			},
		},
		{
			name: "fail/exchange-malformed-parameter",
			prepare: func(t *testing.T, h *harness) auditPrepared {
				return exchangeBy("agent:infrabot", idTokenForm(h, "audience", deployAPI, "context", `["not an object"]`))(t, h)
			},
			wantStatus: 400,
			want: func(*testing.T, *harness, auditPrepared, response) store.Event {
				return store.Event{
					Action: audit.ActionTokenRefused, Result: audit.ResultRefused, Reason: "context_invalid", Resource: exchangeAction,
					Performer: "agent:infrabot", ClientID: "agent:infrabot",
				}
			},
		},
		// The token endpoint: client_credentials and the rest.
		{
			name:       "ok/client-credentials",
			prepare:    exchangeBy("agent:infrabot", url.Values{"grant_type": {oauth.GrantClientCredentials}, "scope": {"monitoring:read"}}),
			wantStatus: 200,
			want: func(t *testing.T, h *harness, _ auditPrepared, r response) store.Event {
				return store.Event{
					Action: audit.ActionTokenIssue, Result: audit.ResultGranted,
					Performer: "agent:infrabot", ClientID: "agent:infrabot", OnBehalf: "agent:infrabot",
					Scopes: []string{"monitoring:read"}, Requested: []string{"monitoring:read"}, Audience: h.url, JTI: issued(t, r),
				}
			},
		},
		{
			name:       "fail/client-credentials-no-scope",
			prepare:    exchangeBy("agent:infrabot", url.Values{"grant_type": {oauth.GrantClientCredentials}, "scope": {"secrets:manage"}}),
			wantStatus: 400,
			want: func(*testing.T, *harness, auditPrepared, response) store.Event {
				return store.Event{
					Action: audit.ActionTokenRefused, Result: audit.ResultRefused, Reason: "no_scope_granted", Resource: audit.ActionTokenIssue,
					Performer: "agent:infrabot", ClientID: "agent:infrabot", OnBehalf: "agent:infrabot", Requested: []string{"secrets:manage"},
				}
			},
		},
		{
			name:       "fail/grant-type-unsupported",
			prepare:    exchangeBy("agent:infrabot", url.Values{"grant_type": {"password"}}),
			wantStatus: 400,
			want: func(*testing.T, *harness, auditPrepared, response) store.Event {
				return store.Event{
					Action: audit.ActionTokenRefused, Result: audit.ResultRefused, Reason: "grant_type_unsupported",
					Performer: "agent:infrabot", ClientID: "agent:infrabot",
				}
			},
		},
		// Client authentication failures, on each endpoint that authenticates.
		{
			name: "fail/client-auth-secret-mismatch",
			prepare: func(_ *testing.T, h *harness) auditPrepared {
				return auditPrepared{req: h.formRequest("/token", "agent:infrabot", "not-the-secret",
					url.Values{"grant_type": {oauth.GrantClientCredentials}})}
			},
			wantStatus: 401,
			want: func(*testing.T, *harness, auditPrepared, response) store.Event {
				return store.Event{Action: audit.ActionClientAuth, Result: audit.ResultRefused, Reason: "client_secret_mismatch",
					ClientID: "agent:infrabot", Resource: "/token", Attributes: json.RawMessage(firstRefusal)}
			},
		},
		{
			name: "fail/client-auth-unknown-client",
			prepare: func(_ *testing.T, h *harness) auditPrepared {
				return auditPrepared{req: h.formRequest("/introspect", "agent:nobody", "some-secret", url.Values{"token": {"x"}})}
			},
			wantStatus: 401,
			want: func(*testing.T, *harness, auditPrepared, response) store.Event {
				return store.Event{Action: audit.ActionClientAuth, Result: audit.ResultRefused, Reason: "client_unknown",
					ClientID: "agent:nobody", Resource: "/introspect", Attributes: json.RawMessage(firstRefusal)}
			},
		},
		{
			name: "fail/client-auth-no-credentials",
			prepare: func(_ *testing.T, h *harness) auditPrepared {
				return auditPrepared{req: h.formRequest("/revoke", "", "", url.Values{"token": {"x"}})}
			},
			wantStatus: 401,
			want: func(*testing.T, *harness, auditPrepared, response) store.Event {
				return store.Event{Action: audit.ActionClientAuth, Result: audit.ResultRefused, Reason: "client_unauthenticated", Resource: "/revoke", Attributes: json.RawMessage(firstRefusal)}
			},
		},
		{
			name: "fail/client-auth-agent-disabled",
			prepare: func(t *testing.T, h *harness) auditPrepared {
				if r := h.admin(http.MethodPost, "/admin/agents/agent:mallory/disable", nil); r.status != 200 {
					t.Fatalf("disable: %d %s", r.status, r.raw)
				}
				return auditPrepared{req: h.agentRequest("/token", "agent:mallory", url.Values{"grant_type": {oauth.GrantClientCredentials}})}
			},
			wantStatus: 401,
			want: func(*testing.T, *harness, auditPrepared, response) store.Event {
				return store.Event{Action: audit.ActionClientAuth, Result: audit.ResultRefused, Reason: "client_disabled",
					ClientID: "agent:mallory", Resource: "/token", Attributes: json.RawMessage(firstRefusal)}
			},
		},
		// Revocation (RFC 7009): the caller's own token, garbage, another
		// client's token. All answer 200; each leaves its record.
		{
			name: "ok/revoke-own-token",
			prepare: func(_ *testing.T, h *harness) auditPrepared {
				tok := h.hop1("monitoring:read")
				return auditPrepared{tok: tok, req: h.agentRequest("/revoke", "agent:infrabot", url.Values{"token": {tok}})}
			},
			wantStatus: 200,
			want: func(t *testing.T, _ *harness, p auditPrepared, _ response) store.Event {
				return store.Event{Action: audit.ActionTokenRevoked, Result: audit.ResultOK, Reason: "rfc7009",
					Performer: "agent:infrabot", ClientID: "agent:infrabot", OnBehalf: "user:sam", Chain: []string{"agent:infrabot"}, JTI: jtiOf(t, p.tok)}
			},
		},
		{
			name: "fail/revoke-garbage",
			prepare: func(_ *testing.T, h *harness) auditPrepared {
				return auditPrepared{req: h.agentRequest("/revoke", "agent:infrabot", url.Values{"token": {"garbage"}})}
			},
			wantStatus: 200,
			want: func(*testing.T, *harness, auditPrepared, response) store.Event {
				return store.Event{Action: audit.ActionTokenRevoked, Result: audit.ResultRefused, Reason: "token_invalid",
					Performer: "agent:infrabot", ClientID: "agent:infrabot"}
			},
		},
		{
			name: "fail/revoke-other-clients-token",
			prepare: func(_ *testing.T, h *harness) auditPrepared {
				tok := h.hop1("monitoring:read")
				return auditPrepared{tok: tok, req: h.agentRequest("/revoke", "agent:mallory", url.Values{"token": {tok}})}
			},
			wantStatus: 200,
			want: func(t *testing.T, _ *harness, p auditPrepared, _ response) store.Event {
				return store.Event{Action: audit.ActionTokenRevoked, Result: audit.ResultRefused, Reason: "token_not_issued_to_client",
					Performer: "agent:mallory", ClientID: "agent:mallory", JTI: jtiOf(t, p.tok)}
			},
		},
		// Introspection (RFC 7662): active, inactive to another client,
		// garbage.
		{
			name: "ok/introspect-active",
			prepare: func(_ *testing.T, h *harness) auditPrepared {
				tok := h.hop1("monitoring:read")
				return auditPrepared{tok: tok, req: h.agentRequest("/introspect", "agent:argocd", url.Values{"token": {tok}})}
			},
			wantStatus: 200,
			want: func(t *testing.T, _ *harness, p auditPrepared, _ response) store.Event {
				return store.Event{Action: audit.ActionTokenIntrospect, Result: audit.ResultOK,
					Performer: "agent:argocd", ClientID: "agent:argocd", OnBehalf: "user:sam", Chain: []string{"agent:infrabot"}, JTI: jtiOf(t, p.tok)}
			},
		},
		{
			name: "ok/introspect-other-clients-token-inactive",
			prepare: func(_ *testing.T, h *harness) auditPrepared {
				tok := h.hop1("monitoring:read")
				return auditPrepared{tok: tok, req: h.agentRequest("/introspect", "agent:mallory", url.Values{"token": {tok}})}
			},
			wantStatus: 200,
			want: func(t *testing.T, _ *harness, p auditPrepared, _ response) store.Event {
				return store.Event{Action: audit.ActionTokenIntrospect, Result: audit.ResultOK, Reason: "token_not_issued_to_client",
					Performer: "agent:mallory", ClientID: "agent:mallory", JTI: jtiOf(t, p.tok)}
			},
		},
		{
			name: "ok/introspect-garbage-inactive",
			prepare: func(_ *testing.T, h *harness) auditPrepared {
				return auditPrepared{req: h.agentRequest("/introspect", "agent:infrabot", url.Values{"token": {"garbage"}})}
			},
			wantStatus: 200,
			want: func(*testing.T, *harness, auditPrepared, response) store.Event {
				return store.Event{Action: audit.ActionTokenIntrospect, Result: audit.ResultOK, Reason: "token_invalid",
					Performer: "agent:infrabot", ClientID: "agent:infrabot"}
			},
		},
		{
			name: "ok/introspect-revoked-inactive",
			prepare: func(t *testing.T, h *harness) auditPrepared {
				tok := h.hop1("monitoring:read")
				if r := h.post("/revoke", "agent:infrabot", url.Values{"token": {tok}}); r.status != 200 {
					t.Fatalf("revoke: %d %s", r.status, r.raw)
				}
				return auditPrepared{tok: tok, req: h.agentRequest("/introspect", "agent:infrabot", url.Values{"token": {tok}})}
			},
			wantStatus: 200,
			want: func(t *testing.T, _ *harness, p auditPrepared, _ response) store.Event {
				return store.Event{Action: audit.ActionTokenIntrospect, Result: audit.ResultOK, Reason: "token_revoked",
					Performer: "agent:infrabot", ClientID: "agent:infrabot", JTI: jtiOf(t, p.tok)}
			},
		},
		// The admin API: every change, and the sign-in stand-in.
		{
			name: "ok/admin-set-permissions",
			prepare: func(_ *testing.T, h *harness) auditPrepared {
				return auditPrepared{req: h.adminRequest(http.MethodPut, "/admin/users/user:alex/permissions",
					map[string]any{"permissions": []string{"monitoring:read", "deploy:tag"}})}
			},
			wantStatus: 200,
			want: func(*testing.T, *harness, auditPrepared, response) store.Event {
				return store.Event{Action: audit.ActionUserPermissions, Result: audit.ResultOK, Performer: "admin",
					Resource: "user:alex", OnBehalf: "user:alex", Scopes: []string{"monitoring:read", "deploy:tag"}}
			},
		},
		{
			// A user is created explicitly; setting the permissions of an
			// unknown one is 404 (TestAdminUnknownIDs).
			name: "ok/admin-create-user",
			prepare: func(_ *testing.T, h *harness) auditPrepared {
				return auditPrepared{req: h.adminRequest(http.MethodPost, "/admin/users",
					map[string]any{"id": "user:newcomer", "permissions": []string{"monitoring:read"}})}
			},
			wantStatus: 201,
			want: func(*testing.T, *harness, auditPrepared, response) store.Event {
				return store.Event{Action: audit.ActionUserCreated, Result: audit.ResultOK, Performer: "admin",
					Resource: "user:newcomer", OnBehalf: "user:newcomer", Scopes: []string{"monitoring:read"}}
			},
		},
		{
			name: "ok/admin-delete-user",
			prepare: func(t *testing.T, h *harness) auditPrepared {
				if r := h.admin(http.MethodPost, "/admin/users", map[string]any{"id": "user:leaver"}); r.status != 201 {
					t.Fatalf("create: %d %s", r.status, r.raw)
				}
				return auditPrepared{req: h.adminRequest(http.MethodDelete, "/admin/users/user:leaver", nil)}
			},
			wantStatus: 200,
			want: func(*testing.T, *harness, auditPrepared, response) store.Event {
				return store.Event{Action: audit.ActionUserDeleted, Result: audit.ResultOK, Performer: "admin",
					Resource: "user:leaver", OnBehalf: "user:leaver"}
			},
		},
		{
			name: "ok/admin-agent-create",
			prepare: func(_ *testing.T, h *harness) auditPrepared {
				return auditPrepared{req: h.adminRequest(http.MethodPost, "/admin/agents",
					map[string]any{"id": "agent:newbot", "scopes": []string{"monitoring:read"}})}
			},
			wantStatus: 201,
			want: func(*testing.T, *harness, auditPrepared, response) store.Event {
				return store.Event{Action: audit.ActionAgentCreated, Result: audit.ResultOK, Performer: "admin",
					Resource: "agent:newbot", Chain: []string{"agent:newbot"}, Scopes: []string{"monitoring:read"}}
			},
		},
		{
			name: "ok/admin-agent-update",
			prepare: func(_ *testing.T, h *harness) auditPrepared {
				return auditPrepared{req: h.adminRequest(http.MethodPatch, "/admin/agents/agent:mallory",
					map[string]any{"scopes": []string{"monitoring:read"}})}
			},
			wantStatus: 200,
			want: func(*testing.T, *harness, auditPrepared, response) store.Event {
				return store.Event{Action: audit.ActionAgentUpdated, Result: audit.ResultOK, Performer: "admin",
					Resource: "agent:mallory", Chain: []string{"agent:mallory"}, Scopes: []string{"monitoring:read"}}
			},
		},
		{
			name: "ok/admin-agent-secret",
			prepare: func(_ *testing.T, h *harness) auditPrepared {
				return auditPrepared{req: h.adminRequest(http.MethodPost, "/admin/agents/agent:mallory/secret", nil)}
			},
			wantStatus: 200,
			want: func(*testing.T, *harness, auditPrepared, response) store.Event {
				return store.Event{Action: audit.ActionAgentSecret, Result: audit.ResultOK, Performer: "admin",
					Resource: "agent:mallory", Chain: []string{"agent:mallory"}}
			},
		},
		{
			name: "ok/admin-agent-delete",
			prepare: func(_ *testing.T, h *harness) auditPrepared {
				return auditPrepared{req: h.adminRequest(http.MethodDelete, "/admin/agents/agent:mallory", nil)}
			},
			wantStatus: 200,
			want: func(*testing.T, *harness, auditPrepared, response) store.Event {
				return store.Event{Action: audit.ActionAgentDeleted, Result: audit.ResultOK, Performer: "admin",
					Resource: "agent:mallory", Chain: []string{"agent:mallory"}}
			},
		},
		{
			name: "ok/admin-set-limits",
			prepare: func(_ *testing.T, h *harness) auditPrepared {
				return auditPrepared{req: h.adminRequest(http.MethodPut, "/admin/users/user:alice/limits",
					map[string]any{"limits": []map[string]any{{"type": "expense_approval", "max_amount": 500, "currency": "USD"}}})}
			},
			wantStatus: 200,
			want: func(*testing.T, *harness, auditPrepared, response) store.Event {
				return store.Event{Action: audit.ActionUserLimits, Result: audit.ResultOK, Performer: "admin", Resource: "user:alice", OnBehalf: "user:alice"}
			},
		},
		{
			name: "ok/admin-revoke-subject-bumps-version",
			prepare: func(_ *testing.T, h *harness) auditPrepared {
				return auditPrepared{req: h.adminRequest(http.MethodPost, "/admin/revoke", map[string]any{"subject": "user:sam"})}
			},
			wantStatus: 200,
			want: func(*testing.T, *harness, auditPrepared, response) store.Event {
				return store.Event{Action: audit.ActionUserRevoked, Result: audit.ResultOK, Performer: "admin", Resource: "user:sam", OnBehalf: "user:sam"}
			},
		},
		{
			name: "ok/admin-agent-disable",
			prepare: func(_ *testing.T, h *harness) auditPrepared {
				return auditPrepared{req: h.adminRequest(http.MethodPost, "/admin/agents/agent:mallory/disable", nil)}
			},
			wantStatus: 200,
			want: func(*testing.T, *harness, auditPrepared, response) store.Event {
				return store.Event{Action: audit.ActionAgentDisabled, Result: audit.ResultOK, Performer: "admin",
					Resource: "agent:mallory", Chain: []string{"agent:mallory"}}
			},
		},
		{
			name: "ok/admin-agent-enable",
			prepare: func(t *testing.T, h *harness) auditPrepared {
				if r := h.admin(http.MethodPost, "/admin/agents/agent:mallory/disable", nil); r.status != 200 {
					t.Fatalf("disable: %d %s", r.status, r.raw)
				}
				return auditPrepared{req: h.adminRequest(http.MethodPost, "/admin/agents/agent:mallory/enable", nil)}
			},
			wantStatus: 200,
			want: func(*testing.T, *harness, auditPrepared, response) store.Event {
				return store.Event{Action: audit.ActionAgentEnabled, Result: audit.ResultOK, Performer: "admin",
					Resource: "agent:mallory", Chain: []string{"agent:mallory"}}
			},
		},
		{
			name: "ok/admin-delegation-create",
			prepare: func(_ *testing.T, h *harness) auditPrepared {
				return auditPrepared{req: h.adminRequest(http.MethodPost, "/admin/delegations",
					map[string]any{"subject": "user:alex", "actor": "agent:argocd", "scopes": []string{"monitoring:read"}})}
			},
			wantStatus: 201,
			want: func(t *testing.T, _ *harness, _ auditPrepared, r response) store.Event {
				id := r.str("id")
				if id == "" {
					t.Fatalf("no delegation id in %s", r.raw)
				}
				return store.Event{Action: audit.ActionDelegationNew, Result: audit.ResultOK, Performer: "admin",
					Resource: id, DelegationID: id, OnBehalf: "user:alex", Chain: []string{"agent:argocd"}, Scopes: []string{"monitoring:read"}}
			},
		},
		{
			name: "ok/admin-delegation-delete",
			prepare: func(_ *testing.T, h *harness) auditPrepared {
				return auditPrepared{req: h.adminRequest(http.MethodDelete, "/admin/delegations/"+samDelegation, nil)}
			},
			wantStatus: 200,
			want: func(*testing.T, *harness, auditPrepared, response) store.Event {
				return store.Event{Action: audit.ActionDelegationGone, Result: audit.ResultOK, Performer: "admin",
					Resource: samDelegation, DelegationID: samDelegation}
			},
		},
		{
			name: "ok/admin-revoke-jti",
			prepare: func(t *testing.T, h *harness) auditPrepared {
				tok := h.hop1("monitoring:read")
				return auditPrepared{tok: tok, req: h.adminRequest(http.MethodPost, "/admin/revoke", map[string]any{"jti": jtiOf(t, tok)})}
			},
			wantStatus: 200,
			// The record names the token by its jti and says whose it was
			// (subject and chain), as every revocation of a token does.
			want: func(t *testing.T, _ *harness, p auditPrepared, _ response) store.Event {
				return store.Event{Action: audit.ActionTokenRevoked, Result: audit.ResultOK, Performer: "admin", JTI: jtiOf(t, p.tok),
					OnBehalf: "user:sam", Chain: []string{"agent:infrabot"}}
			},
		},
		{
			name: "ok/admin-revoke-agent",
			prepare: func(_ *testing.T, h *harness) auditPrepared {
				return auditPrepared{req: h.adminRequest(http.MethodPost, "/admin/revoke", map[string]any{"agent": "agent:argocd"})}
			},
			wantStatus: 200,
			want: func(*testing.T, *harness, auditPrepared, response) store.Event {
				return store.Event{Action: audit.ActionAgentDisabled, Result: audit.ResultOK, Performer: "admin",
					Resource: "agent:argocd", Chain: []string{"agent:argocd"}}
			},
		},
		{
			name: "ok/admin-revoke-delegation",
			prepare: func(_ *testing.T, h *harness) auditPrepared {
				return auditPrepared{req: h.adminRequest(http.MethodPost, "/admin/revoke", map[string]any{"delegation_id": samDelegation})}
			},
			wantStatus: 200,
			want: func(*testing.T, *harness, auditPrepared, response) store.Event {
				return store.Event{Action: audit.ActionDelegationGone, Result: audit.ResultOK, Performer: "admin",
					Resource: samDelegation, DelegationID: samDelegation}
			},
		},
		{
			name: "ok/admin-sign-in",
			prepare: func(_ *testing.T, h *harness) auditPrepared {
				return auditPrepared{req: h.adminRequest(http.MethodPost, "/admin/users/user:alex/token", nil)}
			},
			wantStatus: 200,
			want: func(t *testing.T, h *harness, _ auditPrepared, r response) store.Event {
				return store.Event{Action: audit.ActionTokenIssue, Result: audit.ResultGranted, Performer: "mandate", ClientID: "mandate",
					OnBehalf: "user:alex", Scopes: []string{"monitoring:read"}, Audience: h.url, JTI: issued(t, r)}
			},
		},
		{
			// The revocation feed is for resource servers (T87).
			name: "fail/feed-read-by-an-agent",
			prepare: func(_ *testing.T, h *harness) auditPrepared {
				req := httptest.NewRequest(http.MethodGet, h.url+"/revocations", nil)
				req.SetBasicAuth("agent%3Aargocd", "argocd-secret")
				return auditPrepared{req: req}
			},
			wantStatus: 403,
			want: func(*testing.T, *harness, auditPrepared, response) store.Event {
				return store.Event{Action: audit.ActionRequest, Result: audit.ResultRefused, Reason: "feed_not_allowed",
					Performer: "agent:argocd", ClientID: "agent:argocd", Resource: "/revocations"}
			},
		},
		{
			name: "fail/admin-wrong-bearer",
			prepare: func(_ *testing.T, h *harness) auditPrepared {
				req := h.adminRequest(http.MethodGet, "/admin/users", nil)
				req.Header.Set("Authorization", "Bearer not-the-admin-token")
				return auditPrepared{req: req}
			},
			wantStatus: 401,
			want: func(*testing.T, *harness, auditPrepared, response) store.Event {
				return store.Event{Action: audit.ActionAdminAuth, Result: audit.ResultRefused, Reason: "admin_unauthenticated",
					Resource: "/admin/users", Attributes: json.RawMessage(`{"refusals":"1"}`)}
			},
		},
		{
			name: "fail/admin-sign-in-unknown-user",
			prepare: func(_ *testing.T, h *harness) auditPrepared {
				return auditPrepared{req: h.adminRequest(http.MethodPost, "/admin/users/user:nobody/token", nil)}
			},
			wantStatus: 404,
			want: func(t *testing.T, h *harness, _ auditPrepared, r response) store.Event {
				return store.Event{Action: audit.ActionTokenRefused, Result: audit.ResultRefused, Reason: "subject_unknown",
					Performer: "mandate", ClientID: "mandate", OnBehalf: "user:nobody", Audience: h.url, Resource: audit.ActionTokenIssue}
			},
		},
	}
}

// TestT66AuditCompleteness is THREATS T66: for every endpoint and outcome
// that decides something, exactly one audit record, with the expected
// action, result, reason (for refusals), performer, subject and chain, and
// the request's correlation id (X-Request-Id); and it is in the store when
// the answer's first byte is written, not after.
func TestT66AuditCompleteness(t *testing.T) {
	onEveryBackendEach(t, func(t *testing.T, h func(t *testing.T) *harness) {
		for _, tc := range completenessCases() {
			t.Run(tc.name, func(t *testing.T) {
				h := h(t)
				p := tc.prepare(t, h)
				seq := h.lastSeq()
				start := time.Now()
				r, atFirstByte := h.serveAudited(p.req, seq)
				if r.status != tc.wantStatus {
					t.Fatalf("status = %d, want %d: %s", r.status, tc.wantStatus, r.raw)
				}
				reqID := r.header.Get("X-Request-Id")
				if reqID == "" {
					t.Fatal("no X-Request-Id")
				}
				after := h.eventsSince(seq)
				if len(atFirstByte) != 1 {
					t.Fatalf("%d audit records when the answer was written, want exactly 1: %s", len(atFirstByte), eventsJSON(atFirstByte))
				}
				if len(after) != 1 {
					t.Fatalf("%d audit records after the answer, want exactly 1: %s", len(after), eventsJSON(after))
				}
				got := atFirstByte[0]
				if got.RequestID != reqID {
					t.Errorf("request_id = %q, want the answer's X-Request-Id %q", got.RequestID, reqID)
				}
				checkEventSchema(t, got, start)
				want := tc.want(t, h, p, r)
				want.RequestID = reqID
				if diff := cmp.Diff(want, got, eventCmp...); diff != "" {
					t.Errorf("audit record (-want +got):\n%s", diff)
				}
				if want.Context != nil && !jsonEqual(want.Context, got.Context) {
					t.Errorf("context = %s, want %s", got.Context, want.Context)
				}
				if tok := r.str("access_token"); tok != "" {
					if _, err := h.store.GetToken(context.Background(), jtiOf(t, tok)); err != nil {
						t.Errorf("the issued token has no durable record: %v", err)
					}
				}
			})
		}
		t.Run("ok/key-rotation-and-revocation", func(t *testing.T) {
			testKeyEventsCommitWithTheKey(t, h(t))
		})
	})
}

// testKeyEventsCommitWithTheKey: the keyring commits the record a key
// rotation or revocation is given with the key change itself, exactly once,
// a new key's record naming its kid; a revocation that cannot be written
// leaves neither the record nor the change. (`mandate keys` gives the
// records: internal/cli TestKeysAudited.)
func testKeyEventsCommitWithTheKey(t *testing.T, h *harness) {
	ctx := context.Background()
	ev := func(action string) store.Event {
		return store.Event{ID: audit.NewID("evt_"), Time: time.Now().UTC(), Action: action, Result: audit.ResultOK, Performer: "cli"}
	}
	seq := h.lastSeq()
	next, err := h.app.Keys.Rotate(ctx, ev(audit.ActionKeyCreated))
	if err != nil {
		t.Fatal(err)
	}
	got := h.eventsSince(seq)
	if len(got) != 1 || got[0].Action != audit.ActionKeyCreated || got[0].Resource != next.KID {
		t.Fatalf("rotation records = %s, want one %s naming %s", eventsJSON(got), audit.ActionKeyCreated, next.KID)
	}

	old := h.app.Keys.ActiveKID()
	seq = h.lastSeq()
	h.faulty.Fail("UpdateKey", errors.New("disk full"))
	revoke := ev(audit.ActionKeyRevoked)
	revoke.Resource = old
	if err := h.app.Keys.RevokeKey(ctx, old, revoke); err == nil {
		t.Error("a key revocation whose record cannot be written succeeded")
	}
	h.faulty.Heal()
	if got := h.eventsSince(seq); len(got) != 0 || !strings.Contains(string(h.app.Keys.JWKS()), old) {
		t.Fatalf("a failed revocation left records %s, key %s published: %v", eventsJSON(got), old, strings.Contains(string(h.app.Keys.JWKS()), old))
	}
	revoke.ID = audit.NewID("evt_")
	if err := h.app.Keys.RevokeKey(ctx, old, revoke); err != nil {
		t.Fatal(err)
	}
	got = h.eventsSince(seq)
	if len(got) != 1 || got[0].Action != audit.ActionKeyRevoked || got[0].Resource != old {
		t.Fatalf("revocation records = %s, want one %s naming %s", eventsJSON(got), audit.ActionKeyRevoked, old)
	}
}

// eventCmp compares records on what a case can know: not the store's seq,
// id, time and hash, nor the description text.
var eventCmp = []cmp.Option{
	cmpopts.IgnoreFields(store.Event{}, "Seq", "ID", "Time", "Hash", "Detail", "Context"),
	cmpopts.EquateEmpty(),
}

var knownActions = []string{
	audit.ActionTokenIssue, audit.ActionTokenExchange, audit.ActionTokenRefused, audit.ActionTokenRevoked,
	audit.ActionTokenIntrospect, audit.ActionClientAuth, audit.ActionUserPermissions, audit.ActionUserRevoked,
	audit.ActionUserLimits, audit.ActionUserCreated, audit.ActionUserDeleted, audit.ActionAgentCreated, audit.ActionAgentUpdated,
	audit.ActionAgentDisabled, audit.ActionAgentEnabled, audit.ActionAgentDeleted, audit.ActionAgentSecret,
	audit.ActionDelegationNew, audit.ActionDelegationUpdated, audit.ActionDelegationGone,
	audit.ActionKeyCreated, audit.ActionKeyRevoked, audit.ActionEpochAdvanced, audit.ActionAdminAuth, audit.ActionRequest,
}

// checkEventSchema checks what every record must have: a seq, an id, a
// time within the request, a chain hash, a known action and result, and a
// reason when it records a refusal.
func checkEventSchema(t *testing.T, ev store.Event, start time.Time) {
	t.Helper()
	switch {
	case ev.Seq <= 0:
		t.Errorf("seq = %d", ev.Seq)
	case !strings.HasPrefix(ev.ID, "evt_"):
		t.Errorf("id = %q", ev.ID)
	case ev.Time.Before(start.Add(-time.Second)) || ev.Time.After(time.Now().Add(time.Second)):
		t.Errorf("time = %s, outside the request (started %s)", ev.Time, start)
	case len(ev.Hash) != 32:
		t.Errorf("chain hash of %d bytes", len(ev.Hash))
	case !slices.Contains(knownActions, ev.Action):
		t.Errorf("action %q is not one of internal/audit's", ev.Action)
	case !slices.Contains([]string{audit.ResultGranted, audit.ResultRefused, audit.ResultOK, audit.ResultFailed}, ev.Result):
		t.Errorf("result %q is not one of internal/audit's", ev.Result)
	case ev.Result == audit.ResultRefused && (ev.Reason == "" || ev.Detail == ""):
		t.Errorf("a refusal without a reason (%q) or its text (%q)", ev.Reason, ev.Detail)
	}
	if _, err := json.Marshal(ev); err != nil {
		t.Errorf("the record does not encode: %v", err)
	}
}

func jsonEqual(a, b []byte) bool {
	var x, y any
	return json.Unmarshal(a, &x) == nil && json.Unmarshal(b, &y) == nil && cmp.Equal(x, y)
}

func eventsJSON(evs []store.Event) string {
	b, _ := json.MarshalIndent(evs, "", "  ")
	return string(b)
}

// onEveryBackendEach is onEveryBackend with a fresh harness for every
// subtest: newHarness(t) on the backend.
func onEveryBackendEach(t *testing.T, test func(t *testing.T, newHarness func(t *testing.T) *harness)) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			test(t, func(t *testing.T) *harness { return newHarnessOn(t, b.open, nil) })
		})
	}
}

// firstRefusal is the attributes of the record of a client's first failed
// authentication: failures are counted per client_id and recorded at most
// once a second each, with the count since the previous record (T77).
const firstRefusal = `{"refusals":"1"}`
