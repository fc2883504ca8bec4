package oauth

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
)

// ErrorCode is an error code from RFC 6749 §5.2, RFC 6750 §3.1, RFC 7009 §2.2.1,
// RFC 8693 §2.2.2 or RFC 6749 §4.1.2.1.
type ErrorCode string

// The error codes Mandate uses.
const (
	ErrInvalidRequest         ErrorCode = "invalid_request"
	ErrInvalidClient          ErrorCode = "invalid_client"
	ErrInvalidGrant           ErrorCode = "invalid_grant"
	ErrUnauthorizedClient     ErrorCode = "unauthorized_client"
	ErrUnsupportedGrantType   ErrorCode = "unsupported_grant_type"
	ErrUnsupportedTokenType   ErrorCode = "unsupported_token_type"
	ErrInvalidScope           ErrorCode = "invalid_scope"
	ErrInvalidTarget          ErrorCode = "invalid_target"
	ErrAccessDenied           ErrorCode = "access_denied"
	ErrInvalidToken           ErrorCode = "invalid_token"
	ErrInsufficientScope      ErrorCode = "insufficient_scope"
	ErrServerError            ErrorCode = "server_error"
	ErrTemporarilyUnavailable ErrorCode = "temporarily_unavailable"
	ErrNotFound               ErrorCode = "not_found"
	ErrMethodNotAllowed       ErrorCode = "method_not_allowed"
	ErrRequestTooLarge        ErrorCode = "request_too_large"
)

// Error is the error every Mandate endpoint returns. Code and Description go
// to the client; Reason is the machine-readable cause recorded in the audit
// trail (for example "delegation_depth_exceeded"); Err is the internal cause,
// logged but never shown. Status is the HTTP status; zero means the status
// RFC 6749 gives the code.
type Error struct {
	Code        ErrorCode
	Description string
	Reason      string
	Status      int
	Err         error
}

// Error implements error. It includes the internal cause, so it is for logs,
// never for responses.
func (e *Error) Error() string {
	s := string(e.Code)
	if e.Reason != "" {
		s += " (" + e.Reason + ")"
	}
	if e.Description != "" {
		s += ": " + e.Description
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the internal cause.
func (e *Error) Unwrap() error { return e.Err }

// HTTPStatus is the status the error is answered with.
func (e *Error) HTTPStatus() int {
	if e.Status != 0 {
		return e.Status
	}
	switch e.Code {
	case ErrInvalidClient, ErrInvalidToken:
		return http.StatusUnauthorized
	case ErrInsufficientScope, ErrAccessDenied:
		return http.StatusForbidden
	case ErrServerError:
		return http.StatusInternalServerError
	case ErrTemporarilyUnavailable:
		return http.StatusServiceUnavailable
	case ErrNotFound:
		return http.StatusNotFound
	case ErrMethodNotAllowed:
		return http.StatusMethodNotAllowed
	case ErrRequestTooLarge:
		return http.StatusRequestEntityTooLarge
	default:
		return http.StatusBadRequest
	}
}

// New returns an Error with the given code, audit reason and safe description.
// The description is cleaned to the RFC 6749 §5.2 character set.
func New(code ErrorCode, reason, description string, cause error) *Error {
	return &Error{Code: code, Reason: reason, Description: CleanDescription(description), Err: cause}
}

// InvalidRequest returns an invalid_request error (RFC 6749 §5.2, RFC 8693 §2.2.2).
func InvalidRequest(reason, description string, cause error) *Error {
	return New(ErrInvalidRequest, reason, description, cause)
}

// InvalidClient returns an invalid_client error (401).
func InvalidClient(reason, description string, cause error) *Error {
	return New(ErrInvalidClient, reason, description, cause)
}

// InvalidScope returns an invalid_scope error.
func InvalidScope(reason, description string, cause error) *Error {
	return New(ErrInvalidScope, reason, description, cause)
}

// InvalidTarget returns an invalid_target error (RFC 8693 §2.2.2).
func InvalidTarget(reason, description string, cause error) *Error {
	return New(ErrInvalidTarget, reason, description, cause)
}

// UnauthorizedClient returns an unauthorized_client error.
func UnauthorizedClient(reason, description string, cause error) *Error {
	return New(ErrUnauthorizedClient, reason, description, cause)
}

// Unavailable returns a temporarily_unavailable error answered with 503: the
// request could not be decided or recorded, so it is refused.
func Unavailable(reason string, cause error) *Error {
	return New(ErrTemporarilyUnavailable, reason, "the service is temporarily unavailable, retry later", cause)
}

// ServerError returns a server_error with a generic description.
func ServerError(reason string, cause error) *Error {
	return New(ErrServerError, reason, "internal error", cause)
}

// As returns err as an *Error. Errors that are not an *Error become a
// server_error whose description reveals nothing.
func As(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return ServerError("internal", err)
}

// CleanDescription keeps only the characters RFC 6749 §5.2 allows in
// error_description (%x20-21 / %x23-5B / %x5D-7E) and caps the length.
func CleanDescription(s string) string {
	const maxLen = 200
	var b strings.Builder
	for i := 0; i < len(s) && b.Len() < maxLen; i++ {
		c := s[i]
		if c >= 0x20 && c <= 0x7e && c != '"' && c != '\\' {
			b.WriteByte(c)
		}
	}
	return b.String()
}

// Body is the JSON error response of RFC 6749 §5.2.
type Body struct {
	Error       ErrorCode `json:"error"`
	Description string    `json:"error_description,omitempty"`
}

// WriteJSON writes v as a JSON response with the headers RFC 6749 §5.1
// requires of token responses (no caching).
func WriteJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// WriteError writes err as an RFC 6749 §5.2 error response. An invalid_client
// answer carries a WWW-Authenticate challenge (RFC 6749 §5.2), and a 503 or
// 429 carries Retry-After.
func WriteError(w http.ResponseWriter, err error) {
	e := As(err)
	status := e.HTTPStatus()
	switch status {
	case http.StatusUnauthorized:
		if e.Code == ErrInvalidClient {
			w.Header().Set("WWW-Authenticate", `Basic realm="mandate"`)
		}
	case http.StatusServiceUnavailable, http.StatusTooManyRequests:
		w.Header().Set("Retry-After", "1")
	}
	WriteJSON(w, status, Body{Error: e.Code, Description: e.Description})
}
