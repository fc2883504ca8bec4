// Package monitoringapi is an example monitoring service: GET
// /metrics/{name} needs monitoring:read.
package monitoringapi

import (
	"encoding/json"
	"net/http"

	"github.com/mandate-dev/mandate/verify"
)

// New returns the service's handler.
func New(v *verify.Verifier) http.Handler {
	mux := http.NewServeMux()
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
