package server_test

import (
	"bufio"
	"context"
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/mandate-dev/mandate/internal/store"
	"github.com/mandate-dev/mandate/oauth"
)

// metric reads a counter from GET /metrics: the sum over its label sets.
func (h *harness) metric(name string) float64 {
	h.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, h.url+"/metrics", nil)
	r := h.do(req)
	if r.status != 200 {
		h.t.Fatalf("GET /metrics: %d", r.status)
	}
	line := regexp.MustCompile(`^` + regexp.QuoteMeta(name) + `(\{[^}]*\})? (\S+)$`)
	var sum float64
	sc := bufio.NewScanner(strings.NewReader(r.raw))
	for sc.Scan() {
		if m := line.FindStringSubmatch(sc.Text()); m != nil {
			v, err := strconv.ParseFloat(m[2], 64)
			if err != nil {
				h.t.Fatalf("%s: %v", sc.Text(), err)
			}
			sum += v
		}
	}
	return sum
}

// TestT69AuditSinkFails is THREATS T69 beyond TestAuditUnwritable (one
// exchange on SQLite): on every backend, every endpoint whose decision is
// recorded through the audit recorder answers 503 with Retry-After, issues
// nothing (no token in the answer, no record, no issuance counted) and
// mandate_audit_failures_total counts the failed commit; an admin change,
// committed in one transaction with its record, is refused with 503 and
// not made; and once the sink heals the same request works.
func TestT69AuditSinkFails(t *testing.T) {
	type sinkCase struct {
		name string
		// method is the store method that fails: Commit for the recorder,
		// the change's own method for an admin write.
		method string
		// prepare returns the request (built anew for the retry) and a
		// check that the change was not made, for admin writes.
		prepare func(t *testing.T, h *harness) (mk func() *http.Request, unchanged func() bool)
		// wantOK is the status once the sink heals.
		wantOK int
		// recorder: the failure goes through the audit recorder, so the
		// failure counter must move.
		recorder bool
	}
	samForm := func(h *harness, kv ...string) url.Values {
		return exchangeForm(h.samToken(), oauth.TokenTypeIDToken, kv...)
	}
	cases := []sinkCase{
		{
			name: "fail/exchange", method: "Commit", wantOK: 200, recorder: true,
			prepare: func(_ *testing.T, h *harness) (func() *http.Request, func() bool) {
				return func() *http.Request {
					return h.agentRequest("/token", "agent:infrabot", samForm(h, "audience", "https://deploy.example"))
				}, nil
			},
		},
		{
			name: "fail/exchange-refusal", method: "Commit", wantOK: 400, recorder: true,
			prepare: func(_ *testing.T, h *harness) (func() *http.Request, func() bool) {
				return func() *http.Request {
					return h.agentRequest("/token", "agent:infrabot", samForm(h, "audience", "agent:argocd", "scope", "deploy:create",
						"context", `{"environment":"prod","trigger":"chat"}`))
				}, nil
			},
		},
		{
			name: "fail/client-credentials", method: "Commit", wantOK: 200, recorder: true,
			prepare: func(_ *testing.T, h *harness) (func() *http.Request, func() bool) {
				return func() *http.Request {
					return h.agentRequest("/token", "agent:infrabot", url.Values{"grant_type": {oauth.GrantClientCredentials}})
				}, nil
			},
		},
		{
			name: "fail/client-auth-failure", method: "Commit", wantOK: 401, recorder: true,
			prepare: func(_ *testing.T, h *harness) (func() *http.Request, func() bool) {
				return func() *http.Request {
					return h.formRequest("/token", "agent:infrabot", "wrong", url.Values{"grant_type": {oauth.GrantClientCredentials}})
				}, nil
			},
		},
		{
			name: "fail/introspect", method: "Commit", wantOK: 200, recorder: true,
			prepare: func(_ *testing.T, h *harness) (func() *http.Request, func() bool) {
				tok := h.hop1("monitoring:read")
				return func() *http.Request {
					return h.agentRequest("/introspect", "agent:infrabot", url.Values{"token": {tok}})
				}, nil
			},
		},
		{
			name: "fail/sign-in", method: "Commit", wantOK: 200, recorder: true,
			prepare: func(_ *testing.T, h *harness) (func() *http.Request, func() bool) {
				return func() *http.Request { return h.adminRequest(http.MethodPost, "/admin/users/user:sam/token", nil) }, nil
			},
		},
		{
			name: "fail/revoke", method: "RevokeToken", wantOK: 200,
			prepare: func(t *testing.T, h *harness) (func() *http.Request, func() bool) {
				tok := h.hop1("monitoring:read")
				return func() *http.Request {
						return h.agentRequest("/revoke", "agent:infrabot", url.Values{"token": {tok}})
					}, func() bool {
						active, _ := h.introspectActive(tok)
						return active
					}
			},
		},
		{
			name: "fail/admin-permissions", method: "UpdateUser", wantOK: 200,
			prepare: func(t *testing.T, h *harness) (func() *http.Request, func() bool) {
				return func() *http.Request {
						return h.adminRequest(http.MethodPut, "/admin/users/user:sam/permissions", map[string]any{"permissions": []string{"deploy:tag"}})
					}, func() bool {
						u, err := h.store.GetUser(context.Background(), "user:sam")
						return err == nil && len(u.Permissions) == 4
					}
			},
		},
		{
			name: "fail/admin-agent-disable", method: "UpdateAgent", wantOK: 200,
			prepare: func(t *testing.T, h *harness) (func() *http.Request, func() bool) {
				return func() *http.Request {
						return h.adminRequest(http.MethodPost, "/admin/agents/agent:mallory/disable", nil)
					}, func() bool {
						a, err := h.store.GetAgent(context.Background(), "agent:mallory")
						return err == nil && !a.Disabled
					}
			},
		},
		{
			name: "fail/admin-delegation-create", method: "CreateDelegation", wantOK: 201,
			prepare: func(t *testing.T, h *harness) (func() *http.Request, func() bool) {
				return func() *http.Request {
						return h.adminRequest(http.MethodPost, "/admin/delegations",
							map[string]any{"subject": "user:alex", "actor": "agent:argocd", "scopes": []string{"monitoring:read"}})
					}, func() bool {
						ds, err := h.store.ListDelegations(context.Background(), store.DelegationFilter{Subject: "user:alex", Actor: "agent:argocd"})
						return err == nil && len(ds) == 0
					}
			},
		},
		{
			name: "fail/admin-revoke-subject", method: "UpdateUser", wantOK: 200,
			prepare: func(t *testing.T, h *harness) (func() *http.Request, func() bool) {
				return func() *http.Request {
						return h.adminRequest(http.MethodPost, "/admin/revoke", map[string]any{"subject": "user:sam"})
					}, func() bool {
						u, err := h.store.GetUser(context.Background(), "user:sam")
						return err == nil && u.Version == 0
					}
			},
		},
	}
	onEveryBackendEach(t, func(t *testing.T, newH func(t *testing.T) *harness) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				h := newH(t)
				mk, unchanged := tc.prepare(t, h)
				seq := h.lastSeq()
				failures, issued := h.metric("mandate_audit_failures_total"), h.metric("mandate_tokens_issued_total")

				h.faulty.Fail(tc.method, errors.New("disk full"))
				r, _ := h.serveAudited(mk(), seq)
				h.faulty.Heal()
				if r.status != http.StatusServiceUnavailable || r.str("error") != string(oauth.ErrTemporarilyUnavailable) {
					t.Fatalf("status %d, want 503 temporarily_unavailable: %s", r.status, r.raw)
				}
				if r.header.Get("Retry-After") == "" {
					t.Error("503 without Retry-After")
				}
				if _, ok := r.body["access_token"]; ok || strings.Contains(r.raw, "disk full") {
					t.Errorf("the refusal carries a token or the internal cause: %s", r.raw)
				}
				if evs := h.eventsSince(seq); len(evs) != 0 {
					t.Errorf("records written while the audit sink failed: %s", eventsJSON(evs))
				}
				if got := h.metric("mandate_tokens_issued_total"); got != issued {
					t.Errorf("mandate_tokens_issued_total went from %v to %v", issued, got)
				}
				if got := h.metric("mandate_audit_failures_total"); tc.recorder && got <= failures {
					t.Errorf("mandate_audit_failures_total did not increase (%v)", got)
				}
				if unchanged != nil && !unchanged() {
					t.Error("the change was made although its record could not be written")
				}

				// Healed, the same request is answered and recorded.
				seq = h.lastSeq()
				r, _ = h.serveAudited(mk(), seq)
				if r.status != tc.wantOK {
					t.Fatalf("after healing: status %d, want %d: %s", r.status, tc.wantOK, r.raw)
				}
				if evs := h.eventsSince(seq); len(evs) != 1 {
					t.Errorf("after healing: %d records, want 1: %s", len(evs), eventsJSON(evs))
				}
			})
		}
	})
}
