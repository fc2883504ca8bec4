package server

import (
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/mandate-dev/mandate/oauth"
)

// Request limits (THREATS.md, Decisions 8).
const (
	maxBodyBytes   = 64 << 10
	maxFormParams  = 100
	maxTokenBytes  = 8 << 10
	maxScopes      = 64
	maxScopeBytes  = 2 << 10
	maxAudiences   = 4
	maxContextSize = 2 << 10
)

// multiValued are the parameters RFC 8693 §2.1 lets a request repeat.
var multiValued = map[string]bool{"audience": true, "resource": true}

// ParseForm reads an application/x-www-form-urlencoded POST body under the
// limits above. Parameters come only from the body (RFC 6749 §3.2: a query
// string is refused), none but audience and resource may repeat, and an
// empty value counts as absent (RFC 6749 §3.1). Errors are *oauth.Error.
func ParseForm(w http.ResponseWriter, r *http.Request) (url.Values, error) {
	if r.Method != http.MethodPost {
		return nil, &oauth.Error{Code: oauth.ErrMethodNotAllowed, Status: http.StatusMethodNotAllowed, Description: "use POST", Reason: "method_not_allowed"}
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return nil, oauth.InvalidRequest("content_type", "the body must be application/x-www-form-urlencoded", err)
	}
	if r.URL.RawQuery != "" {
		return nil, oauth.InvalidRequest("query_parameters", "parameters must be sent in the request body", nil)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, &oauth.Error{Code: oauth.ErrRequestTooLarge, Reason: "body_too_large", Description: "the request body is too large"}
		}
		return nil, oauth.InvalidRequest("body_unreadable", "the request body could not be read", err)
	}
	return DecodeForm(string(body))
}

// DecodeForm decodes a form body with the limits of ParseForm. It counts the
// parameters before decoding, so a flood of them costs one pass.
func DecodeForm(body string) (url.Values, error) {
	if strings.Count(body, "&")+1 > maxFormParams {
		return nil, oauth.InvalidRequest("too_many_parameters", "too many parameters", nil)
	}
	if strings.Contains(body, ";") {
		return nil, oauth.InvalidRequest("malformed_body", "the request body is malformed", nil)
	}
	raw, err := url.ParseQuery(body)
	if err != nil {
		return nil, oauth.InvalidRequest("malformed_body", "the request body is malformed", err)
	}
	form := make(url.Values, len(raw))
	for k, vs := range raw {
		var kept []string
		for _, v := range vs {
			if v != "" {
				kept = append(kept, v)
			}
		}
		if len(kept) == 0 {
			continue
		}
		if len(kept) > 1 && !multiValued[k] {
			return nil, oauth.InvalidRequest("duplicate_parameter", "a parameter is repeated: "+safeName(k), nil)
		}
		form[k] = kept
	}
	return form, nil
}

// safeName returns a parameter name fit to echo: known names only.
func safeName(k string) string {
	switch k {
	case "grant_type", "scope", "subject_token", "subject_token_type", "actor_token",
		"actor_token_type", "requested_token_type", "client_id", "client_secret",
		"client_assertion", "client_assertion_type", "context", "token", "token_type_hint", "authorization_details",
		"agent_version":
		return k
	}
	return "(unrecognized)"
}

// ParseScope splits a scope parameter (RFC 6749 §3.3): space-delimited
// scope-tokens of %x21 / %x23-5B / %x5D-7E, compared as exact strings.
// Duplicates collapse; more than maxScopes is refused.
func ParseScope(s string) ([]string, error) {
	if len(s) > maxScopeBytes {
		return nil, oauth.InvalidScope("scope_too_long", "the scope parameter is too long", nil)
	}
	var out []string
	for tok := range strings.SplitSeq(s, " ") {
		if tok == "" {
			return nil, oauth.InvalidScope("scope_malformed", "scopes are separated by single spaces", nil)
		}
		for i := 0; i < len(tok); i++ {
			c := tok[i]
			if c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
				return nil, oauth.InvalidScope("scope_malformed", "a scope holds a character RFC 6749 does not allow", nil)
			}
		}
		if !slices.Contains(out, tok) {
			out = append(out, tok)
		}
		if len(out) > maxScopes {
			return nil, oauth.InvalidScope("scope_too_many", "too many scopes", nil)
		}
	}
	return out, nil
}
