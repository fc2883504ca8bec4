// Package authorize checks authorization requests (RFC 6749 §4.1) before a
// person sees them: the client and its redirect URI, PKCE (RFC 7636, S256
// only), the scopes, the resource (RFC 8707) and requested_actor; and it
// checks a code's PKCE verifier at the token endpoint. It knows nothing of
// HTTP handlers, sessions or the store.
package authorize

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net"
	"net/url"
	"slices"
	"strings"

	"github.com/mandate-dev/mandate/internal/resource"
	"github.com/mandate-dev/mandate/oauth"
)

// Request is an authorization request that passed Parse.
type Request struct {
	ClientID    string
	RedirectURI string
	// State is echoed in the response; it may be empty.
	State string
	// Challenge is the PKCE code_challenge (method S256).
	Challenge string
	// Scopes are the scopes asked for, in order, without duplicates.
	Scopes []string
	// Resource is the resource the tokens are for (RFC 8707); empty for
	// none.
	Resource string
	// RequestedActor is the agent the client asks tokens to act as; empty
	// when the client itself is the agent.
	RequestedActor string
}

// Actor is the agent the request's tokens name in act.
func (r Request) Actor() string {
	if r.RequestedActor != "" {
		return r.RequestedActor
	}
	return r.ClientID
}

// Client is what Parse needs to know of the client the request names.
type Client struct {
	ID           string
	RedirectURIs []string
	Disabled     bool
}

// ErrUnknownClient is what a Lookup returns for a client_id nobody
// registered.
var ErrUnknownClient = errors.New("authorize: unknown client")

// ErrClientDocument is what a Lookup returns for a client whose metadata
// document cannot be fetched, is not valid, or is not admitted.
var ErrClientDocument = errors.New("authorize: the client's metadata document cannot be used")

// Lookup finds a client by id; ErrUnknownClient when there is none. Any
// other error means the directory could not be read.
type Lookup func(id string) (Client, error)

// PageError is a failure that must not be redirected: the client or the
// redirect URI cannot be trusted, so the person is shown an error page
// (RFC 6749 §4.1.2.1).
type PageError struct {
	// Reason is the machine-readable cause, for the audit trail.
	Reason string
	// Message says what is wrong, for the person.
	Message string
	// Err is the cause when the directory failed; the page then says to
	// try again later.
	Err error
}

func (e *PageError) Error() string { return "authorize: " + e.Message }

// Unwrap returns the cause.
func (e *PageError) Unwrap() error { return e.Err }

// Limits on what a request may carry.
const (
	maxScopes   = 64
	maxParam    = 2048
	maxStateLen = 1024
)

// Parse checks an authorization request. A *PageError means the request
// must not be redirected; an *oauth.Error is sent to the client's
// redirect_uri with state and iss (Redirect). The request is returned as far
// as it was read, so that a redirected error can echo its state.
//
// When resources are registered (a non-empty registry), a resource the
// request names must be one of them and allow the client (invalid_target
// otherwise); it is then written in its canonical form, and a request that
// asks for no scope asks the resource's default scopes. A request naming no
// resource is left as it was. offline_access is accepted and dropped: every
// code comes with a refresh token.
func Parse(q url.Values, lookup Lookup, resources *resource.Registry) (Request, error) {
	r := Request{ClientID: single(q, "client_id"), RedirectURI: single(q, "redirect_uri")}
	if r.ClientID == "" || len(r.ClientID) > 256 {
		return r, &PageError{Reason: "client_id_missing", Message: "The request names no client, or a malformed one."}
	}
	c, err := lookup(r.ClientID)
	switch {
	case errors.Is(err, ErrUnknownClient):
		return r, &PageError{Reason: "client_unknown", Message: "The application that sent you here is not known to this server."}
	case errors.Is(err, ErrClientDocument):
		return r, &PageError{Reason: "client_document_invalid", Message: "The application that sent you here describes itself at its address, and that description cannot be used here."}
	case err != nil:
		return r, &PageError{Reason: "store_unavailable", Message: "The server cannot check this request now; try again later.", Err: err}
	case !MatchRedirect(c.RedirectURIs, r.RedirectURI):
		return r, &PageError{Reason: "redirect_uri_mismatch", Message: "The application asked to send you back to an address it did not register."}
	}
	r.State = single(q, "state")
	if len(r.State) > maxStateLen {
		r.State = ""
		return r, oauth.InvalidRequest("state_too_long", "state is longer than 1024 bytes", nil)
	}
	for _, name := range []string{"client_id", "redirect_uri", "response_type", "state", "scope", "code_challenge", "code_challenge_method", "resource", "requested_actor"} {
		if len(q[name]) > 1 {
			return r, oauth.InvalidRequest("parameter_repeated", name+" is repeated", nil)
		}
	}
	if c.Disabled {
		return r, oauth.UnauthorizedClient("agent_disabled", "the client is disabled", nil)
	}
	if rt := single(q, "response_type"); rt != "code" {
		return r, &oauth.Error{Code: "unsupported_response_type", Reason: "response_type_unsupported",
			Description: "only response_type=code is supported", Status: 302}
	}
	if err := parsePKCE(q, &r); err != nil {
		return r, err
	}
	if err := parseScopes(q, &r); err != nil {
		return r, err
	}
	r.Resource = single(q, "resource")
	if r.Resource != "" && !absoluteURI(r.Resource) {
		return r, oauth.InvalidTarget("resource_malformed", "resource must be an absolute URI without a fragment", nil)
	}
	if err := checkResource(&r, resources); err != nil {
		return r, err
	}
	r.RequestedActor = single(q, "requested_actor")
	if len(r.RequestedActor) > 256 || strings.ContainsFunc(r.RequestedActor, isSpaceOrControl) {
		return r, oauth.InvalidRequest("requested_actor_malformed", "requested_actor is malformed", nil)
	}
	return r, nil
}

// checkResource holds the request's resource to the registered ones: a
// known resource (RFC 8707 §2: invalid_target otherwise), that allows the
// client, canonical; its default scopes when none was asked. A request
// that names none is for the default resource when there is one and it
// allows the client (clients that leave resource out), else for none.
func checkResource(r *Request, resources *resource.Registry) error {
	if r.Resource == "" {
		if res, ok := resources.Default(); ok && res.Allows(r.ClientID) {
			r.Resource = res.URI
		}
	}
	if resources.Empty() || r.Resource == "" {
		return nil
	}
	res, ok := resources.Lookup(r.Resource)
	switch {
	case !ok:
		return oauth.InvalidTarget("resource_unknown", "the resource is not registered at this server", nil)
	case !res.Allows(r.ClientID):
		return oauth.InvalidTarget("resource_not_allowed", "the client may not receive tokens for this resource", nil)
	}
	r.Resource = res.URI
	if len(r.Scopes) == 0 {
		r.Scopes = slices.Clone(res.DefaultScopes)
	}
	return nil
}

// parsePKCE requires an S256 code_challenge: a missing one and plain are
// refused (no downgrade).
func parsePKCE(q url.Values, r *Request) error {
	ch, method := single(q, "code_challenge"), single(q, "code_challenge_method")
	switch {
	case ch == "":
		return oauth.InvalidRequest("pkce_missing", "code_challenge is required (PKCE, method S256)", nil)
	case method != "S256":
		return oauth.InvalidRequest("pkce_method_unsupported", "code_challenge_method must be S256", nil)
	case !validChallenge(ch):
		return oauth.InvalidRequest("pkce_challenge_malformed", "code_challenge must be 43 base64url characters", nil)
	}
	r.Challenge = ch
	return nil
}

// parseScopes reads scope as a set, in order, without offline_access.
func parseScopes(q url.Values, r *Request) error {
	s := single(q, "scope")
	if len(s) > maxParam {
		return oauth.InvalidScope("scope_too_long", "scope is too long", nil)
	}
	for _, sc := range strings.Fields(s) {
		if sc != oauth.ScopeOfflineAccess && !slices.Contains(r.Scopes, sc) {
			r.Scopes = append(r.Scopes, sc)
		}
	}
	if len(r.Scopes) > maxScopes {
		return oauth.InvalidScope("scope_too_many", "more than 64 scopes requested", nil)
	}
	return nil
}

func single(q url.Values, name string) string {
	v := q[name]
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

func isSpaceOrControl(r rune) bool { return r <= ' ' || r == 0x7f }

func absoluteURI(s string) bool {
	u, err := url.Parse(s)
	return err == nil && u.IsAbs() && u.Host != "" && u.Fragment == "" && !strings.Contains(s, "#") && len(s) <= maxParam
}

// MatchRedirect reports whether got is one of the registered redirect
// URIs: the same string exactly, except that for a loopback address
// (http://127.0.0.1, http://[::1] or http://localhost: RFC 8252 §7.3, and
// the MCP authorization spec, whose clients use localhost) the port may
// differ.
// Nothing is normalised: not case, not a trailing slash, not an escape.
func MatchRedirect(registered []string, got string) bool {
	if got == "" || len(got) > maxParam || strings.ContainsAny(got, "#\\") || strings.ContainsFunc(got, isSpaceOrControl) {
		return false
	}
	for _, reg := range registered {
		if reg == got {
			return true
		}
		if loopbackSameButPort(reg, got) {
			return true
		}
	}
	return false
}

// loopbackSameButPort reports whether reg is a loopback redirect URI and
// got differs from it in the port alone.
func loopbackSameButPort(reg, got string) bool {
	ru, err1 := url.Parse(reg)
	gu, err2 := url.Parse(got)
	if err1 != nil || err2 != nil || ru.Scheme != "http" || gu.Scheme != "http" || ru.User != nil || gu.User != nil {
		return false
	}
	host := ru.Hostname()
	if ip := net.ParseIP(host); (ip == nil || !ip.IsLoopback()) && host != "localhost" || gu.Hostname() != host {
		return false
	}
	if p := gu.Port(); p != "" && !allDigits(p) {
		return false
	}
	return ru.EscapedPath() == gu.EscapedPath() && ru.RawPath == gu.RawPath && ru.Path == gu.Path &&
		ru.RawQuery == gu.RawQuery && !gu.ForceQuery && !ru.ForceQuery && ru.Opaque == "" && gu.Opaque == ""
}

func allDigits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return len(s) <= 5
}

// validChallenge reports whether c is a base64url SHA-256 (43 characters
// without padding).
func validChallenge(c string) bool {
	if len(c) != 43 {
		return false
	}
	_, err := base64.RawURLEncoding.DecodeString(c)
	return err == nil
}

// CheckVerifier checks a code_verifier against the code's S256 challenge
// (RFC 7636 §4.6). Its errors are invalid_grant.
func CheckVerifier(challenge, verifier string) error {
	if len(verifier) < 43 || len(verifier) > 128 || strings.IndexFunc(verifier, notUnreserved) >= 0 {
		return oauth.New(oauth.ErrInvalidGrant, "pkce_verifier_malformed", "code_verifier must be 43 to 128 unreserved characters", nil)
	}
	sum := sha256.Sum256([]byte(verifier))
	want := base64.RawURLEncoding.EncodeToString(sum[:])
	if subtle.ConstantTimeCompare([]byte(want), []byte(challenge)) != 1 {
		return oauth.New(oauth.ErrInvalidGrant, "pkce_verifier_mismatch", "code_verifier does not match the code_challenge", nil)
	}
	return nil
}

// notUnreserved reports whether c is outside RFC 3986's unreserved set.
func notUnreserved(c rune) bool {
	switch {
	case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		return false
	}
	return !strings.ContainsRune("-._~", c)
}

// Redirect returns the redirect URI with params added to its query (RFC
// 6749 §4.1.2: a query the client registered is kept). The caller adds
// state and iss (RFC 9207) to params.
func Redirect(redirectURI string, params url.Values) string {
	u, err := url.Parse(redirectURI)
	if err != nil {
		return ""
	}
	q := u.Query()
	for k, vs := range params {
		for _, v := range vs {
			q.Add(k, v)
		}
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// ErrorParams are the query parameters of an error sent to the client:
// error, error_description, state (when the request had one) and iss.
func ErrorParams(e *oauth.Error, state, issuer string) url.Values {
	v := url.Values{"error": {string(e.Code)}, "iss": {issuer}}
	if e.Description != "" {
		v.Set("error_description", oauth.CleanDescription(e.Description))
	}
	if state != "" {
		v.Set("state", state)
	}
	return v
}
