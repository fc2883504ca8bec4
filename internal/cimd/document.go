package cimd

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/mandate-dev/mandate/internal/directory"
	"github.com/mandate-dev/mandate/jwks"
	"github.com/mandate-dev/mandate/strictjson"
)

// Token endpoint authentication methods a metadata document may name. The
// draft (§4) forbids every method built on a shared secret: the document
// is public, so no secret can be agreed through it.
const (
	AuthNone          = "none"
	AuthPrivateKeyJWT = "private_key_jwt"
)

// MaxNameLen bounds client_name, in characters: it is shown to people on
// the consent page.
const MaxNameLen = 100

// ErrInvalidDocument is returned, wrapped with the reason, for a document
// that is not a valid Client ID Metadata Document for its URL.
var ErrInvalidDocument = errors.New("cimd: invalid client metadata document")

// Client is what a metadata document says about its client, validated:
// what the authorization endpoint needs to check a request and the consent
// page needs to show it.
type Client struct {
	// ID is the client_id: the document's URL, exactly.
	ID string
	// RedirectURIs are the registered redirect URIs, each valid as
	// directory.CheckRedirectURIs says (https, or http to a loopback
	// address) or http://localhost with a port and path; at least one.
	RedirectURIs []string
	// Name is client_name as published, or "". It is the client's own
	// claim, shown with its URL, never instead of it.
	Name string
	// AuthMethod is AuthNone (also when the document names none) or
	// AuthPrivateKeyJWT.
	AuthMethod string
	// JWKS is the inline key set (jwks) when the document has one, public
	// signing keys only.
	JWKS jwks.Static
	// JWKSURI is jwks_uri when the document has one.
	JWKSURI string
}

// clone returns a copy of c that shares nothing with it, so that a
// caller changing it cannot change the cache.
func (c Client) clone() Client {
	c.RedirectURIs = slices.Clone(c.RedirectURIs)
	c.JWKS = maps.Clone(c.JWKS)
	return c
}

// Parse validates body as the metadata document of clientID (draft §4):
// one JSON object read strictly (strictjson: duplicate or case-variant
// member names refused), whose client_id equals clientID byte for byte,
// with redirect_uris, without client_secret or client_secret_expires_at,
// whose token_endpoint_auth_method is absent, "none" or "private_key_jwt"
// (the last with exactly one of jwks and jwks_uri), whose client_name is
// at most MaxNameLen characters with no control or bidirectional
// formatting characters, and whose grant_types and response_types, when
// present, allow the authorization code flow. Other members are ignored.
// Errors wrap ErrInvalidDocument.
func Parse(clientID string, body []byte) (Client, error) {
	c, reason := parse(clientID, body)
	if reason != "" {
		return Client{}, fmt.Errorf("%w: %s", ErrInvalidDocument, reason)
	}
	return c, nil
}

func parse(clientID string, body []byte) (Client, string) {
	if err := strictjson.Check(body, 8); err != nil {
		return Client{}, err.Error()
	}
	// Members are read by exact name: encoding/json would match a struct
	// field case-insensitively ("CLIENT_ID" for client_id).
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil || m == nil {
		return Client{}, "not a JSON object"
	}
	for _, name := range []string{"client_secret", "client_secret_expires_at"} {
		if _, ok := m[name]; ok {
			return Client{}, name + " is not allowed in a public document"
		}
	}
	var c Client
	if !str(m, "client_id", &c.ID) || c.ID != clientID {
		return Client{}, "client_id does not equal the document's URL"
	}
	if err := json.Unmarshal(m["redirect_uris"], &c.RedirectURIs); err != nil || len(c.RedirectURIs) == 0 {
		return Client{}, "redirect_uris must be a non-empty array of strings"
	}
	if reason := redirectURIsProblem(c.RedirectURIs); reason != "" {
		return Client{}, reason
	}
	if !str(m, "client_name", &c.Name) {
		return Client{}, "client_name must be a string"
	}
	if reason := nameProblem(c.Name); reason != "" {
		return Client{}, "client_name " + reason
	}
	if reason := parseAuth(m, &c); reason != "" {
		return Client{}, reason
	}
	if !listHas(m, "grant_types", "authorization_code") {
		return Client{}, "grant_types must include authorization_code"
	}
	if !listHas(m, "response_types", "code") {
		return Client{}, "response_types must include code"
	}
	return c, ""
}

// localhost is how a redirect URI to the loopback host by name begins.
const localhost = "http://localhost"

// redirectURIsProblem says what is wrong with a document's redirect_uris,
// "" for nothing: each must be valid as directory.CheckRedirectURIs says,
// and http://localhost (exactly so, lower case, with or without a port)
// counts as the loopback address it names. The MCP specification requires
// "localhost or https" redirect URIs and its example document lists
// http://localhost:3000/callback, so MCP clients use it, though RFC 8252
// §8.3 advises 127.0.0.1.
func redirectURIsProblem(uris []string) string {
	if len(uris) > directory.MaxRedirectURIs {
		return fmt.Sprintf("redirect_uris has %d entries, at most %d allowed", len(uris), directory.MaxRedirectURIs)
	}
	seen := make(map[string]bool, len(uris))
	for i, u := range uris {
		if seen[u] {
			return fmt.Sprintf("redirect_uris[%d] is listed twice", i)
		}
		seen[u] = true
		checked := u
		if rest, ok := strings.CutPrefix(u, localhost); ok && (rest == "" || rest[0] == ':' || rest[0] == '/') {
			checked = "http://127.0.0.1" + rest
		}
		if err := directory.CheckRedirectURIs(fmt.Sprintf("redirect_uris[%d]", i), []string{checked}); err != nil {
			return err.Error()
		}
	}
	return ""
}

// LoopbackOnly reports whether every redirect URI of c leads to the
// person's own machine (http, which validation allows only to localhost
// or a loopback address): any
// program there can then receive the code, so the consent page warns that
// the client's name and URL do not prove which program asks.
func (c Client) LoopbackOnly() bool {
	for _, u := range c.RedirectURIs {
		if len(u) < len("http://") || !strings.EqualFold(u[:len("http://")], "http://") {
			return false
		}
	}
	return len(c.RedirectURIs) > 0
}

// parseAuth reads token_endpoint_auth_method and the keys that go with it.
func parseAuth(m map[string]json.RawMessage, c *Client) string {
	c.AuthMethod = AuthNone
	if !str(m, "token_endpoint_auth_method", &c.AuthMethod) {
		return "token_endpoint_auth_method must be a string"
	}
	if raw, ok := m["jwks"]; ok {
		set, err := jwks.ParseSet(raw)
		if err != nil {
			return "jwks: " + err.Error()
		}
		c.JWKS = set
	}
	if !str(m, "jwks_uri", &c.JWKSURI) {
		return "jwks_uri must be a string"
	}
	if c.JWKSURI != "" {
		if err := CheckURL(c.JWKSURI); err != nil {
			return "jwks_uri: " + err.Error()
		}
	}
	_, inline := m["jwks"]
	switch c.AuthMethod {
	case AuthNone:
		return ""
	case AuthPrivateKeyJWT:
		switch {
		case inline && c.JWKSURI != "":
			return "jwks and jwks_uri must not both be present (RFC 7591 §2)"
		case inline && len(c.JWKS) == 0:
			return "jwks has no usable signing key"
		case !inline && c.JWKSURI == "":
			return "private_key_jwt needs jwks or jwks_uri"
		}
		return ""
	}
	return fmt.Sprintf("token_endpoint_auth_method %q is not allowed: only none or private_key_jwt", truncate(c.AuthMethod))
}

// str reads member name of m into *dst when it is present; it reports
// false when it is present but not a string.
func str(m map[string]json.RawMessage, name string, dst *string) bool {
	raw, ok := m[name]
	if !ok {
		return true
	}
	return json.Unmarshal(raw, dst) == nil && raw[0] == '"'
}

// listHas reports whether member name of m is absent, or an array of
// strings that holds want.
func listHas(m map[string]json.RawMessage, name, want string) bool {
	raw, ok := m[name]
	if !ok {
		return true
	}
	var list []string
	return json.Unmarshal(raw, &list) == nil && slices.Contains(list, want)
}

// nameProblem says what is wrong with a client_name, "" for nothing.
func nameProblem(s string) string {
	switch {
	case !utf8.ValidString(s):
		return "is not valid UTF-8"
	case utf8.RuneCountInString(s) > MaxNameLen:
		return fmt.Sprintf("is longer than %d characters", MaxNameLen)
	}
	for _, r := range s {
		// Controls break the line a name is shown on; bidirectional
		// formatting characters (and the other Cf characters, such as
		// zero-width ones) make it read as another name.
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return "has control or formatting characters"
		}
	}
	return ""
}

// truncate cuts s for an error message.
func truncate(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}
