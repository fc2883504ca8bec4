package server

import (
	"errors"

	"github.com/mandate-dev/mandate/internal/authorize"
	"github.com/mandate-dev/mandate/internal/cimd"
	"github.com/mandate-dev/mandate/internal/registration"
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
