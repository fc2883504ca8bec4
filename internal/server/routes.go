package server

import (
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mandate-dev/mandate/internal/pages"
	"github.com/mandate-dev/mandate/oauth"
)

// routes lists every endpoint, its handler and, in the comment, what it
// depends on. A request no route takes is answered by unmatched: 405 with
// Allow when the path is a route's with other methods, else 404.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	s.mux, s.routeNames = mux, map[string]string{}
	handle := func(pattern, name string, h http.Handler) {
		mux.Handle(pattern, h)
		s.routeNames[pattern] = name
	}
	mount := func(pattern, name string, h handlerFunc) { handle(pattern, name, s.serve(name, h)) }

	// Discovery and keys: Keys.
	mount("GET /.well-known/oauth-authorization-server", "metadata", s.metadata)
	mount("GET /.well-known/openid-configuration", "metadata", s.metadata)
	mount("GET /jwks", "jwks", s.jwks)

	// OAuth endpoints: Auth (client authentication), Grant, Verifier,
	// Tokens; /revoke revokes through Directory.
	mount("/token", "token", s.token)
	mount("/introspect", "introspect", s.introspect)
	mount("/revoke", "revoke", s.revoke)
	// Dynamic Client Registration: Registration, RegisterLimit, Audit.
	mount("POST /register", "register", s.register)
	mount("GET /revocations/{jti}", "revocation_status", s.revocationStatus)

	// People: the authorization endpoint, sign-in, consent, My agents and
	// the staff pages (pages, not JSON): SignIn, Pages, Store (reads), Directory (a
	// person's revocations).
	if s.cfg.SignIn != nil {
		s.peopleRoutes(handle)
	}

	// The revocation feed: Auth (subscribers are clients), Feed.
	mount("GET /revocations", "revocation_snapshot", s.revocationSnapshot)
	handle("GET /revocations/stream", "revocation_stream", s.serveFor("revocation_stream", 0, s.revocationStream))
	handle("POST /revocations/sets", "revocation_sets", s.serveFor("revocation_sets", longPollWait+5*time.Second, s.securityEvents))

	// Admin API (docs/admin.md): AdminToken or a signed-in administrator's
	// token (Verifier, Tokens), Store (reads), Directory (writes, each with
	// its audit record); a person's own token for scripts: Grant.
	mount("GET /admin/users", "admin", s.adminListUsers)
	mount("POST /admin/users", "admin", s.adminCreateUser)
	mount("GET /admin/users/{id}", "admin", s.adminGetUser)
	mount("DELETE /admin/users/{id}", "admin", s.adminDeleteUser)
	mount("PUT /admin/users/{id}/permissions", "admin", s.adminSetPermissions)
	mount("PUT /admin/users/{id}/limits", "admin", s.adminSetLimits)
	mount("POST /admin/users/{id}/token", "admin", s.adminSignIn)
	mount("GET /admin/agents", "admin", s.adminListAgents)
	mount("POST /admin/agents", "admin", s.adminCreateAgent)
	mount("GET /admin/agents/{id}", "admin", s.adminGetAgent)
	mount("PATCH /admin/agents/{id}", "admin", s.adminUpdateAgent)
	mount("DELETE /admin/agents/{id}", "admin", s.adminDeleteAgent)
	mount("POST /admin/agents/{id}/disable", "admin", s.adminAgentState(true))
	mount("POST /admin/agents/{id}/enable", "admin", s.adminAgentState(false))
	mount("POST /admin/agents/{id}/secret", "admin", s.adminNewSecret)
	mount("GET /admin/delegations", "admin", s.adminListDelegations)
	mount("POST /admin/delegations", "admin", s.adminCreateDelegation)
	mount("GET /admin/delegations/{id}", "admin", s.adminGetDelegation)
	mount("DELETE /admin/delegations/{id}", "admin", s.adminDeleteDelegation)
	mount("POST /admin/revoke", "admin", s.adminRevoke)
	// Audit: AdminToken, Store, Checkpoints.
	mount("GET /audit", "audit", s.auditQuery)
	handle("GET /audit/export", "audit_export", s.serveFor("audit_export", exportTimeout, s.auditExport))
	mount("GET /audit/checkpoints", "audit", s.auditCheckpoints)
	mount("POST /audit/checkpoints", "audit", s.auditCheckpointNow)
	// Verifiers' records: Auth (reporters are clients with audit:report), Audit.
	mount("POST /audit/ingest", "audit_ingest", s.auditIngest)

	// Operations: Store.
	mount("GET /healthz", "healthz", s.healthz)
	handle("GET /metrics", "metrics", promhttp.HandlerFor(s.cfg.Registry, promhttp.HandlerOpts{}))

	mount(unmatchedPattern, "not_found", s.unmatched)
	return mux
}

// peopleRoutes are the pages: the authorization endpoint, sign-in (a
// password or a company's identity provider: Upstream), consent and My
// agents (SignIn, Pages, Store reads, Directory for a person's
// revocations), and the staff pages (role admin; Audit also auditor).
func (s *Server) peopleRoutes(handle func(pattern, name string, h http.Handler)) {
	page := func(pattern, name string, h handlerFunc) { handle(pattern, name, s.page(name, h)) }
	page("GET /authorize", "authorize", s.authorizeEndpoint)
	page("GET /login", "login", s.loginPage)
	page("POST /login", "login", s.login)
	page("POST /logout", "logout", s.logout)
	// Sign-in at a company's identity provider: Upstream.
	page("GET /login/provider", "login_provider", s.loginProviderStart)
	page("GET /login/callback", "login_callback", s.loginCallback)
	page("GET /consent", "consent", s.consentPage)
	page("POST /consent", "consent", s.consentDecision)
	page("GET /my/agents", "my_agents", s.myAgents)
	page("POST /my/agents/revoke", "my_agents", s.revokeMine)
	page("POST /my/agents/revoke-all", "my_agents", s.revokeAllMine)
	// Staff pages (role admin; Audit also auditor): Store (reads),
	// Directory (Disable and Enable, the person as performer).
	page("GET /manage/agents", "manage_agents", s.manageAgents)
	page("POST /manage/agents/disable", "manage_agents", s.manageAgentState(true))
	page("POST /manage/agents/enable", "manage_agents", s.manageAgentState(false))
	page("GET /manage/audit", "manage_audit", s.manageAudit)
	page("GET /manage/audit/record", "manage_audit", s.auditRecord)
	handle("GET "+pages.StylesheetPath, "static", s.serve("static", s.stylesheet))
}

// unmatchedPattern takes every request no other route takes.
const unmatchedPattern = "/"

// adminRoutes are the names of the routes the admin token opens.
var adminRoutes = map[string]bool{"admin": true, "audit": true, "audit_export": true}

// probeMethods are the methods unmatched asks the routes about, in the
// order Allow lists them.
var probeMethods = []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}

// unmatched answers a request no route takes. When routes serve its path
// with other methods it is 405 with Allow (RFC 9110 §15.5.6), as ServeMux
// answers, but in the RFC-shaped JSON of every other refusal; on the admin
// API the admin token is asked for first, so that a caller without it
// learns nothing more, and its refusal is recorded as every refused admin
// call is. Otherwise it is 404. Neither is recorded otherwise: no route
// decided anything.
func (s *Server) unmatched(w http.ResponseWriter, r *http.Request) error {
	var allow []string
	admin := false
	for _, m := range probeMethods {
		probe := &http.Request{Method: m, Host: r.Host, URL: r.URL, Header: http.Header{}}
		if _, pattern := s.mux.Handler(probe); pattern != "" && pattern != unmatchedPattern {
			allow = append(allow, m)
			admin = admin || adminRoutes[s.routeNames[pattern]]
		}
	}
	if len(allow) == 0 {
		return &oauth.Error{Code: oauth.ErrNotFound, Reason: "not_found", Description: "no such endpoint"}
	}
	if admin {
		if err := s.requireAdmin(r); err != nil {
			return err
		}
	}
	methods := strings.Join(allow, ", ")
	w.Header().Set("Allow", methods)
	return &oauth.Error{Code: oauth.ErrMethodNotAllowed, Reason: "method_not_allowed", Description: "use " + methods}
}
