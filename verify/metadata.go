package verify

import (
	"encoding/json"
	"net/http"
	"net/url"
)

// MetadataPath returns the URL path at which to mount
// ProtectedResourceMetadata: the path of Config.Resource.MetadataURL, which
// by default is the well-known location of the resource identifier with
// its path inserted after it (RFC 9728 §3.1), for example
// /.well-known/oauth-protected-resource/mcp for https://tools.example/mcp.
// It is "" when there is no metadata URL (a resource identifier that is not
// an http or https URL, and none configured).
func (v *Verifier) MetadataPath() string {
	u, err := url.Parse(v.cfg.Resource.MetadataURL)
	if err != nil || v.cfg.Resource.MetadataURL == "" {
		return ""
	}
	return u.EscapedPath()
}

// ProtectedResourceMetadata returns a handler serving this resource's RFC
// 9728 metadata (mount it at MetadataPath, which for a resource identifier
// without a path is /.well-known/oauth-protected-resource): the
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
