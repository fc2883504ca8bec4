package server

import (
	"errors"
	"net/http"

	"github.com/mandate-dev/mandate/internal/authorize"
	"github.com/mandate-dev/mandate/internal/cimd"
	"github.com/mandate-dev/mandate/internal/registration"
	"github.com/mandate-dev/mandate/internal/store"
)

// documentRefused is the authorization endpoint's error for a client whose
// metadata document cannot be used (err), with a reason for the audit
// trail that tells an attempt on a private address or an oversized
// document apart from an invalid or refused one.
func documentRefused(err error) error {
	reason := "client_document_invalid"
	switch {
	case errors.Is(err, cimd.ErrForbiddenAddress):
		reason = "client_document_address_forbidden"
	case errors.Is(err, cimd.ErrTooLarge):
		reason = "client_document_too_large"
	case errors.Is(err, cimd.ErrBusy):
		reason = "client_document_busy"
	case errors.Is(err, cimd.ErrFetch):
		reason = "client_document_unreachable"
	case errors.Is(err, registration.ErrDocumentRefused):
		reason = "client_document_refused"
	}
	return &authorize.DocumentError{Reason: reason, Err: err}
}

// errNewDocumentsLimited is a new metadata document client asked for from
// an address that has had its registrations of the hour.
var errNewDocumentsLimited = errors.New("server: too many new clients from this address")

// admitNewDocument charges a client not yet stored (existing nil) to the
// registration rate of the request's address, before its document is
// fetched: admitting a client from its document is registering it, and
// anyone can ask /authorize for any number of URLs, each a fetch, a
// stored client and its record. A client already admitted costs nothing.
func (s *Server) admitNewDocument(r *http.Request, existing *store.Agent) error {
	if existing != nil || s.cfg.RegisterLimit == nil || s.cfg.RegisterLimit.Allow(remoteAddr(r)) {
		return nil
	}
	return &authorize.DocumentError{Reason: "client_document_rate_limited", Err: errNewDocumentsLimited}
}
