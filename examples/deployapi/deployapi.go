// Package deployapi is an example deploy service. POST /deployments starts a
// deployment; it needs the deploy:create scope, and a deployment to prod
// must come from the CI pipeline (context trigger "ci_pipeline"), whoever
// the agent and whoever the person. GET
// /.well-known/oauth-protected-resource serves the service's RFC 9728
// metadata, which its 401 answers point to.
package deployapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/mandate-dev/mandate/verify"
)

// ErrManualProd is the context rule's refusal.
var ErrManualProd = errors.New("deployments to prod come from the CI pipeline")

// ProdFromCI is the context rule: prod needs trigger ci_pipeline.
func ProdFromCI(c verify.Context) error {
	if c.String("environment") == "prod" && c.String("trigger") != "ci_pipeline" {
		return ErrManualProd
	}
	return nil
}

// Metadata describes the service in its RFC 9728 metadata: set it as the
// verify.Config's Resource.
func Metadata() verify.ResourceMetadata {
	return verify.ResourceMetadata{ResourceName: "Example deploy API", ScopesSupported: []string{"deploy:create"}}
}

// New returns the service's handler for v, whose Config.Resource is what
// the metadata endpoint serves. Its address is the resource identifier
// (the audience), without a path.
func New(v *verify.Verifier) http.Handler {
	mux := http.NewServeMux()
	// RFC 9728 §3.1: the well-known URL of a resource identifier without a
	// path, which is where the Middleware's 401 answers point.
	mux.Handle("/.well-known/oauth-protected-resource", v.ProtectedResourceMetadata())
	mux.Handle("POST /deployments", v.Middleware(verify.Chain(
		verify.RequireScope("deploy:create"),
		verify.RequireContext(ProdFromCI),
	).Then(http.HandlerFunc(deploy))))
	return mux
}

func deploy(w http.ResponseWriter, r *http.Request) {
	p, _ := verify.FromContext(r.Context())
	var body struct {
		Service string `json:"service"`
	}
	_ = json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&body)
	verify.SetAction(r.Context(), "deploy:create", "service/"+body.Service)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"status":       "deploying",
		"service":      body.Service,
		"environment":  p.Context.String("environment"),
		"performed_by": p.PerformedBy(),
		"on_behalf_of": p.OnBehalfOf(),
		"message":      fmt.Sprintf("%s deploys %s for %s", p.PerformedBy(), body.Service, p.OnBehalfOf()),
	})
}
