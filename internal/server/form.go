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
	body, err := readBody(http.MaxBytesReader(w, r.Body, maxBodyBytes), r.ContentLength)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, &oauth.Error{Code: oauth.ErrRequestTooLarge, Reason: "body_too_large", Description: "the request body is too large"}
		}
		return nil, oauth.InvalidRequest("body_unreadable", "the request body could not be read", err)
	}
	return DecodeForm(string(body))
}

// readBody is io.ReadAll with a buffer sized from the declared length (up
// to maxBodyBytes), so that a body read in one piece costs one allocation;
// the length is only a hint, the reader's end is the body's.
func readBody(r io.Reader, declared int64) ([]byte, error) {
	if declared < 0 || declared > maxBodyBytes {
		return io.ReadAll(r)
	}
	// One byte more, so that reaching EOF needs no growth.
	b := make([]byte, 0, declared+1)
	for {
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
		if len(b) == cap(b) {
			b = slices.Grow(b, 512)
		}
	}
}

// DecodeForm decodes a form body with the limits of ParseForm. It counts the
// parameters before decoding, so a flood of them costs one pass. It decodes
// as url.ParseQuery does, into a map sized once, and drops empty values.
func DecodeForm(body string) (url.Values, error) {
	n := strings.Count(body, "&") + 1
	if n > maxFormParams {
		return nil, oauth.InvalidRequest("too_many_parameters", "too many parameters", nil)
	}
	if strings.Contains(body, ";") {
		return nil, oauth.InvalidRequest("malformed_body", "the request body is malformed", nil)
	}
	form := make(url.Values, n)
	// One array holds the first value of every parameter; a repeat, which
	// only audience and resource may be, copies out of it (cap is 1).
	firsts := make([]string, 0, n)
	for rest := body; rest != ""; {
		var pair string
		pair, rest, _ = strings.Cut(rest, "&")
		if pair == "" {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		k, err := url.QueryUnescape(k)
		if err == nil {
			v, err = url.QueryUnescape(v)
		}
		if err != nil {
			return nil, oauth.InvalidRequest("malformed_body", "the request body is malformed", err)
		}
		switch vs, seen := form[k]; {
		case v == "": // RFC 6749 §3.1: an empty value counts as absent
		case seen:
			form[k] = append(vs, v)
		default:
			firsts = append(firsts, v)
			form[k] = firsts[len(firsts)-1 : len(firsts) : len(firsts)]
		}
	}
	for k, vs := range form {
		if len(vs) > 1 && !multiValued[k] {
			return nil, oauth.InvalidRequest("duplicate_parameter", "a parameter is repeated: "+safeName(k), nil)
		}
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
	for rest, more := s, true; more; {
		var tok string
		tok, rest, more = strings.Cut(rest, " ")
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
