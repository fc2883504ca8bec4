// Package monitoringapi is an example monitoring service: GET
// /metrics/{name} needs monitoring:read. GET
// /.well-known/oauth-protected-resource serves the service's RFC 9728
// metadata, which its 401 answers point to.
package monitoringapi

import (
	"encoding/json"
	"net/http"

	"github.com/mandate-dev/mandate/verify"
)

// Metadata describes the service in its RFC 9728 metadata: set it as the
// verify.Config's Resource.
func Metadata() verify.ResourceMetadata {
	return verify.ResourceMetadata{ResourceName: "Example monitoring API", ScopesSupported: []string{"monitoring:read"}}
}

// New returns the service's handler for v, whose Config.Resource is what
// the metadata endpoint serves. Its address is the resource identifier
// (the audience), without a path.
func New(v *verify.Verifier) http.Handler {
	mux := http.NewServeMux()
	// RFC 9728 §3.1: the well-known URL of a resource identifier without a
	// path, which is where the Middleware's 401 answers point.
	mux.Handle("/.well-known/oauth-protected-resource", v.ProtectedResourceMetadata())
	mux.Handle("GET /metrics/{name}", v.Middleware(verify.RequireScope("monitoring:read").Then(
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p, _ := verify.FromContext(r.Context())
			name := r.PathValue("name")
			verify.SetAction(r.Context(), "monitoring:read", "metrics/"+name)
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]any{
				"metric": name, "value": 0.42,
				"performed_by": p.PerformedBy(), "on_behalf_of": p.OnBehalfOf(),
			})
		}))))
	return mux
}
