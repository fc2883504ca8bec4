package server

import (
	"encoding/json"
	"net/http"
	"slices"

	"github.com/mandate-dev/mandate/internal/buildinfo"
	"github.com/mandate-dev/mandate/internal/clientauth"
	"github.com/mandate-dev/mandate/internal/exchange"
	"github.com/mandate-dev/mandate/oauth"
)

// metadata serves RFC 8414 authorization server metadata, also at the OIDC
// discovery path that openid-client looks up first (and, for an issuer with
// a path, at the locations derived from it: issuerpath.go). It advertises
// only what the server serves: the authorization endpoint when people sign
// in, the registration endpoint when anyone may register a client, no ID
// token, and the scopes agents may be granted (the union of their allowed
// scopes), the registered resources' and offline_access (scopesSupported).
func (s *Server) metadata(w http.ResponseWriter, r *http.Request) error {
	agents, err := s.cfg.Store.ListAgents(r.Context())
	if err != nil {
		return oauth.Unavailable("store_unavailable", err)
	}
	scopes := []string{}
	for _, a := range agents {
		scopes = append(scopes, a.Scopes...)
	}
	iss := s.cfg.Issuer
	authMethods := []string{oauth.AuthMethodSecretBasic, oauth.AuthMethodSecretPost, oauth.AuthMethodPrivateKeyJWT}
	// The algorithms a private_key_jwt client assertion may use, at every
	// endpoint that takes one (RFC 8414 §2).
	assertionAlgs := clientauth.AssertionAlgorithms()
	w.Header().Set("Cache-Control", "public, max-age=300")
	doc := map[string]any{
		"issuer":                                iss,
		"token_endpoint":                        iss + "/token",
		"jwks_uri":                              iss + "/jwks",
		"introspection_endpoint":                iss + "/introspect",
		"revocation_endpoint":                   iss + "/revoke",
		"grant_types_supported":                 []string{oauth.GrantTokenExchange, oauth.GrantClientCredentials},
		"response_types_supported":              []string{},
		"token_endpoint_auth_methods_supported": authMethods,
		"token_endpoint_auth_signing_alg_values_supported":         assertionAlgs,
		"introspection_endpoint_auth_methods_supported":            authMethods,
		"introspection_endpoint_auth_signing_alg_values_supported": assertionAlgs,
		"revocation_endpoint_auth_methods_supported":               authMethods,
		"revocation_endpoint_auth_signing_alg_values_supported":    assertionAlgs,
		"scopes_supported":        s.scopesSupported(scopes),
		"subject_types_supported": []string{"public"},
		"token_exchange_token_types_supported": []string{
			oauth.TokenTypeAccessToken, oauth.TokenTypeIDToken, oauth.TokenTypeJWT,
		},
	}
	if s.cfg.SignIn != nil {
		// People sign in and approve agents at the authorization endpoint:
		// authorization code with PKCE S256 only, iss in every response
		// (RFC 9207), refresh tokens rotated.
		doc["authorization_endpoint"] = iss + "/authorize"
		doc["response_types_supported"] = []string{"code"}
		doc["response_modes_supported"] = []string{"query"}
		doc["code_challenge_methods_supported"] = []string{"S256"}
		doc["authorization_response_iss_parameter_supported"] = true
		doc["grant_types_supported"] = []string{exchange.GrantAuthorizationCode, exchange.GrantRefreshToken,
			oauth.GrantTokenExchange, oauth.GrantClientCredentials}
		// A public client (no credential) may use the code and refresh
		// grants; the introspection and revocation endpoints refuse it.
		doc["token_endpoint_auth_methods_supported"] = append(slices.Clone(authMethods), oauth.AuthMethodNone)
	}
	if s.cfg.Documents != nil && s.cfg.Registration.Open() {
		// An https client_id may describe its client (a Client ID Metadata
		// Document), admitted by the registration policy.
		doc["client_id_metadata_document_supported"] = true
	}
	if s.cfg.Registration.Open() {
		// Advertised only when a client can register without an
		// administrator's token: under admin_only the endpoint still
		// answers the administrator, who knows where it is, and a client
		// that found it here could only be refused.
		doc["registration_endpoint"] = iss + "/register"
	}
	writeJSON(w, http.StatusOK, doc)
	return nil
}

// jwks serves the public signing keys (RFC 7517).
func (s *Server) jwks(w http.ResponseWriter, _ *http.Request) error {
	w.Header().Set("Content-Type", "application/jwk-set+json")
	w.Header().Set("Cache-Control", "public, max-age=60")
	_, err := w.Write(s.cfg.Keys.JWKS())
	return err
}

// healthz answers 200 with the build while the store answers a ping, and
// 503 otherwise, for load balancers' health checks.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) error {
	if err := s.cfg.Store.Ping(r.Context()); err != nil {
		return oauth.Unavailable("store_unavailable", err)
	}
	writeJSON(w, http.StatusOK, health{Status: "ok", Info: s.cfg.Build})
	return nil
}

// health is the answer of /healthz: "ok", and the build that answers
// (version, commit, modified), so that an operator can tell
// which build each instance behind a load balancer runs.
type health struct {
	Status string `json:"status"`
	buildinfo.Info
}

// writeJSON writes a JSON response that must not be cached unless the
// handler set Cache-Control itself.
func writeJSON(w http.ResponseWriter, status int, v any) {
	if w.Header().Get("Cache-Control") != "" {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(v)
		return
	}
	oauth.WriteJSON(w, status, v)
}
