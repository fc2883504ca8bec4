package verify

import (
	"encoding/json"
	"net/http"
)

// ProtectedResourceMetadata returns a handler serving this resource's RFC
// 9728 metadata (mount it at /.well-known/oauth-protected-resource): the
// resource identifier, the issuer as its one authorization server, the
// supported scopes, and bearer_methods_supported ["header"], since
// Middleware reads only the Authorization header. GET and HEAD only.
func (v *Verifier) ProtectedResourceMetadata() http.Handler {
	md := v.cfg.Resource
	doc := struct {
		Resource               string   `json:"resource"`
		AuthorizationServers   []string `json:"authorization_servers"`
		ScopesSupported        []string `json:"scopes_supported,omitempty"`
		BearerMethodsSupported []string `json:"bearer_methods_supported"`
		ResourceName           string   `json:"resource_name,omitempty"`
		ResourceDocumentation  string   `json:"resource_documentation,omitempty"`
	}{
		Resource:               md.Resource,
		AuthorizationServers:   []string{v.cfg.Issuer},
		ScopesSupported:        md.ScopesSupported,
		BearerMethodsSupported: []string{"header"},
		ResourceName:           md.ResourceName,
		ResourceDocumentation:  md.ResourceDocumentation,
	}
	body, err := json.Marshal(doc)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeJSONError(w, http.StatusMethodNotAllowed, "method_not_allowed", "use GET")
			return
		}
		if err != nil {
			writeJSONError(w, http.StatusInternalServerError, "server_error", "metadata unavailable")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "max-age=3600")
		_, _ = w.Write(body)
	})
}
