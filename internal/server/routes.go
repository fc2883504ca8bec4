package server

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// routes lists every endpoint, its handler and, in the comment, what it
// depends on.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mount := func(pattern, name string, h handlerFunc) { mux.Handle(pattern, s.serve(name, h)) }

	// Discovery and keys: Keys.
	mount("GET /.well-known/oauth-authorization-server", "metadata", s.metadata)
	mount("GET /.well-known/openid-configuration", "metadata", s.metadata)
	mount("GET /jwks", "jwks", s.jwks)

	// OAuth endpoints: Auth (client authentication), Grant, Verifier, Tokens, Store.
	mount("/token", "token", s.token)
	mount("/introspect", "introspect", s.introspect)
	mount("/revoke", "revoke", s.revoke)
	mount("GET /revocations/{jti}", "revocation_status", s.revocationStatus)

	// The revocation feed: Auth (subscribers are clients), Feed.
	mount("GET /revocations", "revocation_snapshot", s.revocationSnapshot)
	mux.Handle("GET /revocations/stream", s.serveFor("revocation_stream", 0, s.revocationStream))
	mux.Handle("POST /revocations/sets", s.serveFor("revocation_sets", longPollWait+5*time.Second, s.securityEvents))

	// Admin and audit: AdminToken, Store, Audit.
	mount("GET /admin/users", "admin", s.adminListUsers)
	mount("PUT /admin/users/{id}/permissions", "admin", s.adminSetPermissions)
	mount("PUT /admin/users/{id}/limits", "admin", s.adminSetLimits)
	mount("POST /admin/users/{id}/token", "admin", s.adminSignIn)
	mount("GET /admin/agents", "admin", s.adminListAgents)
	mount("POST /admin/agents/{id}/disable", "admin", s.adminAgentState(true))
	mount("POST /admin/agents/{id}/enable", "admin", s.adminAgentState(false))
	mount("GET /admin/delegations", "admin", s.adminListDelegations)
	mount("POST /admin/delegations", "admin", s.adminCreateDelegation)
	mount("DELETE /admin/delegations/{id}", "admin", s.adminDeleteDelegation)
	mount("POST /admin/revoke", "admin", s.adminRevoke)
	mount("GET /audit", "audit", s.auditQuery)
	mux.Handle("GET /audit/export", s.serveFor("audit_export", exportTimeout, s.auditExport))
	mount("GET /audit/checkpoints", "audit", s.auditCheckpoints)
	mount("POST /audit/checkpoints", "audit", s.auditCheckpointNow)
	// Verifiers' records: Auth (reporters are clients with audit:report), Audit.
	mount("POST /audit/ingest", "audit_ingest", s.auditIngest)

	// Operations: Store.
	mount("GET /healthz", "healthz", s.healthz)
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.cfg.Registry, promhttp.HandlerOpts{}))

	mount("/", "not_found", s.notFound)
	return mux
}
