// Package expenseapi is an example expense service: POST
// /expenses/{id}/approve approves an expense. It needs expense:approve, and
// the amount must be within the expense_approval limit the token carries
// (RFC 9396 authorization_details), which Mandate grants only up to the
// person's own limit. GET /.well-known/oauth-protected-resource serves the
// service's RFC 9728 metadata, which its 401 answers point to.
package expenseapi

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/mandate-dev/mandate/verify"
)

// Metadata describes the service in its RFC 9728 metadata: set it as the
// verify.Config's Resource.
func Metadata() verify.ResourceMetadata {
	return verify.ResourceMetadata{ResourceName: "Example expense API", ScopesSupported: []string{"expense:approve"}}
}

// New returns the service's handler for v, whose Config.Resource is what
// the metadata endpoint serves. Its address is the resource identifier
// (the audience), without a path.
func New(v *verify.Verifier) http.Handler {
	mux := http.NewServeMux()
	// RFC 9728 §3.1: the well-known URL of a resource identifier without a
	// path, which is where the Middleware's 401 answers point.
	mux.Handle("/.well-known/oauth-protected-resource", v.ProtectedResourceMetadata())
	mux.Handle("POST /expenses/{id}/approve", v.Middleware(verify.RequireScope("expense:approve").Then(http.HandlerFunc(approve))))
	return mux
}

func approve(w http.ResponseWriter, r *http.Request) {
	p, _ := verify.FromContext(r.Context())
	id := r.PathValue("id")
	verify.SetAction(r.Context(), "expense:approve", "expense/"+id)
	var body struct {
		Amount   float64 `json:"amount"`
		Currency string  `json:"currency"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&body); err != nil || body.Currency == "" {
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": "invalid_request", "error_description": "amount and currency are required"})
		return
	}
	// The amount goes into the request's audit record, so that "who
	// approved the $487.50 expense?" has an answer in the log.
	verify.Attribute(r.Context(), "amount", strconv.FormatFloat(body.Amount, 'f', 2, 64))
	verify.Attribute(r.Context(), "currency", body.Currency)
	if err := p.CheckAmount("expense_approval", body.Amount, body.Currency); err != nil {
		verify.Refused(r.Context(), "limit_exceeded")
		writeJSON(w, http.StatusForbidden, map[string]any{
			"error": "limit_exceeded", "error_description": "limit exceeded: the amount is above what the person may approve",
			"expense": id, "performed_by": p.PerformedBy(), "on_behalf_of": p.OnBehalfOf(),
		})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"status": "approved", "expense": id, "amount": body.Amount, "currency": body.Currency,
		"performed_by": p.PerformedBy(), "on_behalf_of": p.OnBehalfOf(),
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
