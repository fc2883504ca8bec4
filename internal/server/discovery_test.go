package server_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/zitadel/oidc/v3/pkg/client"
	"github.com/zitadel/oidc/v3/pkg/oidc"
)

// rfc8414Fields are the metadata names of RFC 8414 §2, the ones OpenID
// Connect Discovery 1.0 §3 adds that describe this server, and the one
// extension Mandate states (the token types its token exchange takes as
// subject_token_type).
var rfc8414Fields = map[string]bool{
	"issuer": true, "authorization_endpoint": true, "token_endpoint": true, "jwks_uri": true,
	"registration_endpoint": true, "scopes_supported": true, "response_types_supported": true,
	"response_modes_supported": true, "grant_types_supported": true, "token_endpoint_auth_methods_supported": true,
	"token_endpoint_auth_signing_alg_values_supported": true, "service_documentation": true,
	"ui_locales_supported": true, "op_policy_uri": true, "op_tos_uri": true, "revocation_endpoint": true,
	"revocation_endpoint_auth_methods_supported": true, "revocation_endpoint_auth_signing_alg_values_supported": true,
	"introspection_endpoint": true, "introspection_endpoint_auth_methods_supported": true,
	"introspection_endpoint_auth_signing_alg_values_supported": true, "code_challenge_methods_supported": true,
	// RFC 9207 §3.
	"authorization_response_iss_parameter_supported": true,
	// draft-ietf-oauth-client-id-metadata-document.
	"client_id_metadata_document_supported": true,
	// OpenID Connect Discovery 1.0 §3.
	"subject_types_supported": true,
	// Mandate's own.
	"token_exchange_token_types_supported": true,
}

// TestDiscoveryDocuments: both discovery documents use only registered
// names, carry what RFC 8414 requires, advertise only endpoints the server
// serves and the scopes agents may be granted, give the signing algorithms
// of every endpoint that takes private_key_jwt, and are read right by a
// maintained OpenID client library (zitadel/oidc).
func TestDiscoveryDocuments(t *testing.T) {
	h := newHarness(t)
	agents, err := h.store.ListAgents(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var wantScopes []string
	for _, a := range agents {
		wantScopes = append(wantScopes, a.Scopes...)
	}
	// People sign in here, and every code comes with a refresh token:
	// offline_access is accepted, and granted as nothing.
	wantScopes = append(wantScopes, "offline_access")
	slices.Sort(wantScopes)
	wantScopes = slices.Compact(wantScopes)

	for _, path := range []string{"/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"} {
		t.Run(strings.TrimPrefix(path, "/.well-known/"), func(t *testing.T) {
			doc := getJSON(t, h.url+path)
			for name := range doc {
				if !rfc8414Fields[name] {
					t.Errorf("%s is not a registered metadata name", name)
				}
			}
			for _, name := range []string{"issuer", "token_endpoint", "jwks_uri", "response_types_supported"} {
				if _, ok := doc[name]; !ok {
					t.Errorf("%s is missing (RFC 8414 §2)", name)
				}
			}
			if doc["issuer"] != h.url {
				t.Errorf("issuer %v, want %s", doc["issuer"], h.url)
			}
			// Nothing that is not served.
			for _, name := range []string{"registration_endpoint", "userinfo_endpoint", "id_token_signing_alg_values_supported"} {
				if _, ok := doc[name]; ok {
					t.Errorf("%s is advertised but not served", name)
				}
			}
			for name, method := range map[string]string{"authorization_endpoint": http.MethodGet, "token_endpoint": http.MethodPost, "jwks_uri": http.MethodGet,
				"introspection_endpoint": http.MethodPost, "revocation_endpoint": http.MethodPost} {
				u, _ := doc[name].(string)
				if !strings.HasPrefix(u, h.url+"/") {
					t.Errorf("%s = %q, not under the issuer", name, u)
					continue
				}
				if status := statusOf(t, method, u); status == http.StatusNotFound || status == http.StatusMethodNotAllowed {
					t.Errorf("%s %s answers %d: advertised but not served", method, u, status)
				}
			}
			// RFC 8414 §2: private_key_jwt needs the algorithms listed.
			for _, ep := range []string{"token_endpoint", "introspection_endpoint", "revocation_endpoint"} {
				methods, _ := doc[ep+"_auth_methods_supported"].([]any)
				algs, _ := doc[ep+"_auth_signing_alg_values_supported"].([]any)
				if slices.Contains(methods, any("private_key_jwt")) && len(algs) == 0 {
					t.Errorf("%s takes private_key_jwt but lists no %s_auth_signing_alg_values_supported", ep, ep)
				}
				if slices.Contains(algs, any("none")) {
					t.Errorf("%s_auth_signing_alg_values_supported lists none", ep)
				}
			}
			var scopes []string
			for _, s := range doc["scopes_supported"].([]any) {
				scopes = append(scopes, s.(string))
			}
			if !slices.Equal(scopes, wantScopes) {
				t.Errorf("scopes_supported %v, want the agents' scopes and offline_access %v", scopes, wantScopes)
			}
		})
	}

	t.Run("zitadel-oidc-client", func(t *testing.T) {
		cfg, err := client.Discover(context.Background(), h.url, http.DefaultClient)
		if err != nil {
			t.Fatalf("client.Discover: %v", err)
		}
		if cfg.Issuer != h.url || cfg.TokenEndpoint != h.url+"/token" || cfg.JwksURI != h.url+"/jwks" ||
			cfg.IntrospectionEndpoint != h.url+"/introspect" || cfg.RevocationEndpoint != h.url+"/revoke" {
			t.Errorf("the client read %+v", cfg)
		}
		if !slices.Contains(cfg.GrantTypesSupported, oidc.GrantTypeTokenExchange) {
			t.Errorf("the client does not see token exchange among %v", cfg.GrantTypesSupported)
		}
		if !slices.Contains(cfg.IntrospectionEndpointAuthSigningAlgValuesSupported, "ES256") {
			t.Errorf("the client sees introspection signing algorithms %v", cfg.IntrospectionEndpointAuthSigningAlgValuesSupported)
		}
	})

	t.Run("scopes-follow-the-agents", func(t *testing.T) {
		r := h.admin(http.MethodPatch, "/admin/agents/agent:infrabot", map[string]any{"scopes": []string{"monitoring:read", "zz:new"}})
		if r.status != http.StatusOK {
			t.Fatalf("PATCH agent: %d %s", r.status, r.raw)
		}
		doc := getJSON(t, h.url+"/.well-known/oauth-authorization-server")
		if !slices.Contains(doc["scopes_supported"].([]any), any("zz:new")) {
			t.Errorf("scopes_supported %v lacks the agent's new scope", doc["scopes_supported"])
		}
	})
}

func getJSON(t *testing.T, u string) map[string]any {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var doc map[string]any
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &doc) != nil {
		t.Fatalf("GET %s: %d %s", u, resp.StatusCode, body)
	}
	return doc
}

func statusOf(t *testing.T, method, u string) int {
	t.Helper()
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
