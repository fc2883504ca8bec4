package directory

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/go-jose/go-jose/v4"

	"github.com/mandate-dev/mandate/actor"
	"github.com/mandate-dev/mandate/internal/password"
	"github.com/mandate-dev/mandate/internal/store"
	"github.com/mandate-dev/mandate/strictjson"
)

// Limits of the records. The configuration file's validation uses the
// same (internal/config re-exports them).
const (
	// MaxIDLen is the longest user, agent or delegation id and audience,
	// in bytes: an id is a token's sub or act.sub.
	MaxIDLen = actor.MaxSubjectLen
	// MaxScopeLen is the longest scope, in bytes.
	MaxScopeLen = 128
	// MaxListLen is the most scopes, permissions, audiences or delegate_to
	// entries one record holds.
	MaxListLen = 64
	// MaxDepth is the highest chain-depth limit an agent or a delegation
	// may set.
	MaxDepth = 10
	// MaxLimits is the most authorization_details limits a user holds.
	MaxLimits = 8
	// MaxClientNameLen is the longest client_name, in bytes.
	MaxClientNameLen = 200
)

// maxJSONDepth bounds the nesting of the JSON a record holds (limits, jwks).
const maxJSONDepth = 16

// InvalidError is one problem of a record: the field, a path relative to
// the record such as "scopes[1]" (empty for the record as a whole), and
// why. It wraps ErrInvalid. Problem may quote the value it refuses.
type InvalidError struct {
	Field   string
	Problem string
}

// Error reads like `scopes[1]: "a b" contains white space or control characters`.
func (e *InvalidError) Error() string {
	if e.Field == "" {
		return e.Problem
	}
	return e.Field + ": " + e.Problem
}

// Unwrap makes errors.Is(err, ErrInvalid) true.
func (e *InvalidError) Unwrap() error { return ErrInvalid }

// Problems returns the *InvalidError values err holds, in order, looking
// through wrapping and errors.Join; nil when it holds none.
func Problems(err error) []*InvalidError {
	switch e := err.(type) {
	case nil:
		return nil
	case *InvalidError:
		return []*InvalidError{e}
	case interface{ Unwrap() []error }:
		var out []*InvalidError
		for _, inner := range e.Unwrap() {
			out = append(out, Problems(inner)...)
		}
		return out
	case interface{ Unwrap() error }:
		return Problems(e.Unwrap())
	}
	return nil
}

// problems collects InvalidErrors under a field prefix.
type problems struct{ errs []error }

func (p *problems) add(field, format string, args ...any) {
	p.errs = append(p.errs, &InvalidError{Field: field, Problem: fmt.Sprintf(format, args...)})
}

func (p *problems) err() error { return errors.Join(p.errs...) }

// CheckID checks the id of a user, an agent or a delegation: non-empty, at
// most MaxIDLen bytes of UTF-8 without white space or control characters
// (ids travel in space-separated lists and in log lines).
func CheckID(id string) error { return checkName(id, MaxIDLen) }

// checkName accepts a non-empty UTF-8 string of at most max bytes without
// white space or control characters: ids, scopes and audiences all travel
// in space-separated lists and log lines.
func checkName(s string, max int) error {
	switch {
	case s == "":
		return errors.New("must not be empty")
	case len(s) > max:
		return fmt.Errorf("is %d bytes, at most %d allowed", len(s), max)
	case !utf8.ValidString(s):
		return errors.New("is not valid UTF-8")
	case hasSpaceOrControl(s):
		return fmt.Errorf("%q contains white space or control characters", s)
	}
	return nil
}

func hasSpaceOrControl(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) })
}

// CheckScopes checks a list of scopes (or permissions) named field: at most
// MaxListLen, each a valid, distinct scope of at most MaxScopeLen bytes;
// required says whether the list may be empty. It returns nil or an
// errors.Join of *InvalidError.
func CheckScopes(field string, scopes []string, required bool) error {
	p := &problems{}
	checkScopes(p, field, scopes, required)
	return p.err()
}

func checkScopes(p *problems, field string, scopes []string, required bool) {
	switch {
	case required && len(scopes) == 0:
		p.add(field, "must list at least one scope")
	case len(scopes) > MaxListLen:
		p.add(field, "has %d scopes, at most %d allowed", len(scopes), MaxListLen)
	}
	checkNames(p, field, scopes, MaxScopeLen)
}

// checkNames checks each entry of a list with checkName and refuses
// repeats.
func checkNames(p *problems, field string, names []string, max int) {
	seen := make(map[string]bool, len(names))
	for i, s := range names {
		f := fmt.Sprintf("%s[%d]", field, i)
		if err := checkName(s, max); err != nil {
			p.add(f, "%v", err)
		} else if seen[s] {
			p.add(f, "%q is listed twice", s)
		}
		seen[s] = true
	}
}

// CheckDepth checks the chain-depth limit of an agent or a delegation
// named field: 0 for no own limit, at most MaxDepth. It returns nil or an
// *InvalidError.
func CheckDepth(field string, depth int) error {
	p := &problems{}
	checkDepth(p, field, depth)
	return p.err()
}

func checkDepth(p *problems, field string, depth int) {
	if depth < 0 || depth > MaxDepth {
		p.add(field, "must be from 0 (no own limit) to %d, is %d", MaxDepth, depth)
	}
}

// CheckResources checks an agent's resource identifiers (the audiences it
// serves and reports for) named field: at most MaxListLen valid, distinct
// ids. It returns nil or an errors.Join of *InvalidError.
func CheckResources(field string, resources []string) error {
	p := &problems{}
	checkResources(p, field, resources)
	return p.err()
}

func checkResources(p *problems, field string, resources []string) {
	if len(resources) > MaxListLen {
		p.add(field, "has %d entries, at most %d allowed", len(resources), MaxListLen)
	}
	checkNames(p, field, resources, MaxIDLen)
}

// MaxRedirectURIs is the most redirect URIs an agent may register.
const MaxRedirectURIs = 16

// CheckRedirectURIs checks an agent's redirect URIs named field: at most
// MaxRedirectURIs distinct absolute URIs without a fragment or user info,
// https unless the host is a loopback address (RFC 8252 §7.3), at most
// 2,048 bytes each. It returns nil or an errors.Join of *InvalidError.
func CheckRedirectURIs(field string, uris []string) error {
	p := &problems{}
	checkRedirectURIs(p, field, uris)
	return p.err()
}

func checkRedirectURIs(p *problems, field string, uris []string) {
	if len(uris) > MaxRedirectURIs {
		p.add(field, "has %d entries, at most %d allowed", len(uris), MaxRedirectURIs)
	}
	seen := make(map[string]bool, len(uris))
	for j, s := range uris {
		f := fmt.Sprintf("%s[%d]", field, j)
		if seen[s] {
			p.add(f, "is listed twice")
		}
		seen[s] = true
		if msg := redirectURIProblem(s); msg != "" {
			p.add(f, "%s", msg)
		}
	}
}

// redirectURIProblem says what is wrong with a redirect URI, "" for
// nothing.
func redirectURIProblem(s string) string {
	u, err := url.Parse(s)
	switch {
	case len(s) > 2048:
		return "is longer than 2048 bytes"
	case err != nil || !u.IsAbs() || u.Host == "":
		return "must be an absolute URI"
	case u.Fragment != "" || strings.Contains(s, "#"):
		return "must not have a fragment"
	case u.User != nil:
		return "must not have user info"
	case strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f || r == '\\' }):
		return "must not contain white space, control characters or backslashes"
	case u.Scheme == "https":
		return ""
	case u.Scheme == "http":
		if ip := net.ParseIP(u.Hostname()); ip != nil && ip.IsLoopback() || u.Hostname() == "localhost" {
			return ""
		}
		return "must be https, or http to a loopback address such as 127.0.0.1 or localhost"
	}
	return "must be https, or http to a loopback address"
}

// CheckDelegateTo checks the delegate_to list of the agent id: at most
// MaxListLen valid, distinct agent ids, not id itself. An id the store
// does not hold is accepted: it hands on to no one until such an agent
// exists. It returns nil or an errors.Join of *InvalidError.
func CheckDelegateTo(id string, delegateTo []string) error {
	p := &problems{}
	checkDelegateTo(p, id, delegateTo)
	return p.err()
}

func checkDelegateTo(p *problems, id string, delegateTo []string) {
	const f = "delegate_to"
	if len(delegateTo) > MaxListLen {
		p.add(f, "has %d entries, at most %d allowed", len(delegateTo), MaxListLen)
	}
	seen := make(map[string]bool, len(delegateTo))
	for j, to := range delegateTo {
		tf := fmt.Sprintf("%s[%d]", f, j)
		switch err := checkName(to, MaxIDLen); {
		case err != nil:
			p.add(tf, "%v", err)
		case to == id:
			p.add(tf, "an agent cannot delegate to itself")
		case seen[to]:
			p.add(tf, "%q is listed twice", to)
		}
		seen[to] = true
	}
}

// CheckCredentials checks an agent's credentials. A confidential client
// needs one: a client secret (client_secret_basic, client_secret_post) or a
// key set for private_key_jwt, which is jwks (a JWK Set of public
// asymmetric keys) or jwks_uri (CheckURL), not both. A public client
// (token_endpoint_auth_method "none") holds none of them: it proves
// nothing but its client_id, so a secret or keys it was given would only
// suggest a protection it does not have. It returns nil or an errors.Join
// of *InvalidError.
func CheckCredentials(public, hasSecret bool, jwks json.RawMessage, jwksURI string) error {
	p := &problems{}
	checkCredentials(p, public, hasSecret, jwks, jwksURI)
	return p.err()
}

func checkCredentials(p *problems, public, hasSecret bool, jwks json.RawMessage, jwksURI string) {
	hasJWKS := len(jwks) > 0 && string(jwks) != "null"
	if public {
		if hasSecret || hasJWKS || jwksURI != "" {
			p.add("", "a public client (token_endpoint_auth_method none) holds no secret, jwks or jwks_uri")
		}
		return
	}
	if !hasSecret && !hasJWKS && jwksURI == "" {
		p.add("", "needs a credential: a secret (client_secret_basic/post), or jwks or jwks_uri (private_key_jwt)")
	}
	if hasJWKS && jwksURI != "" {
		p.add("", "set jwks or jwks_uri, not both")
	}
	if hasJWKS {
		if err := checkJWKS(jwks); err != nil {
			p.add("jwks", "%v", err)
		}
	}
	if jwksURI != "" {
		if err := CheckURL(jwksURI); err != nil {
			p.add("jwks_uri", "%v", err)
		}
	}
}

// CheckClientName checks a client's display name (RFC 7591 client_name):
// at most MaxClientNameLen bytes of valid UTF-8 without control
// characters; empty is allowed. It returns nil or an *InvalidError.
func CheckClientName(field, name string) error {
	p := &problems{}
	checkClientName(p, field, name)
	return p.err()
}

func checkClientName(p *problems, field, name string) {
	switch {
	case len(name) > MaxClientNameLen:
		p.add(field, "is %d bytes, at most %d", len(name), MaxClientNameLen)
	case !utf8.ValidString(name):
		p.add(field, "is not valid UTF-8")
	case strings.IndexFunc(name, unicode.IsControl) >= 0:
		p.add(field, "contains control characters")
	}
}

// checkRegistration accepts the store.Registration* values, and empty for
// an agent stored before they were kept.
func checkRegistration(p *problems, r string) {
	switch r {
	case "", store.RegistrationConfig, store.RegistrationAdmin, store.RegistrationDCR, store.RegistrationCIMD:
	default:
		p.add("registration", "%q is not config, admin, dcr or cimd", r)
	}
}

// checkJWKS accepts a JWK Set of valid public asymmetric keys only: a
// private key would be a secret the server has no use for, and a symmetric
// one would allow HMAC key confusion.
func checkJWKS(raw json.RawMessage) error {
	var jwks jose.JSONWebKeySet
	if strictjson.Check(raw, maxJSONDepth) != nil || json.Unmarshal(raw, &jwks) != nil {
		// go-jose's message may quote key material; keep only its kind.
		return errors.New("not a valid JWK Set (want {keys: [JWK, ...]} with public keys)")
	}
	if len(jwks.Keys) == 0 {
		return errors.New("holds no keys")
	}
	for i, k := range jwks.Keys {
		if _, symmetric := k.Key.([]byte); symmetric {
			return fmt.Errorf("keys[%d] is a symmetric key; private_key_jwt takes public keys only", i)
		}
		switch {
		case !k.Valid():
			return fmt.Errorf("keys[%d] is not a valid key", i)
		case !k.IsPublic():
			return fmt.Errorf("keys[%d] is a private key; give only the public key", i)
		}
	}
	return nil
}

// CheckURL accepts a URL Mandate is named by or fetches from (the issuer,
// an identity provider, an agent's jwks_uri): an absolute http(s) URL
// without user info, query or fragment, and http only on a loopback host.
func CheckURL(s string) error {
	u, err := ParseURL(s)
	if err != nil {
		return err
	}
	if u.Scheme == "http" && !IsLoopbackHost(u.Hostname()) {
		return errors.New("must use https unless the host is a loopback address (127.0.0.0/8, ::1, localhost)")
	}
	return nil
}

// ParseURL parses an absolute http(s) URL without white space, user info,
// query or fragment; CheckURL adds the https rule.
func ParseURL(s string) (*url.URL, error) {
	if s == "" {
		return nil, errors.New("is required")
	}
	if hasSpaceOrControl(s) {
		return nil, errors.New("contains white space or control characters")
	}
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return nil, errors.New("is not a URL")
	case u.Scheme != "https" && u.Scheme != "http":
		return nil, fmt.Errorf("want an absolute https:// URL, got scheme %q", u.Scheme)
	case u.Host == "" || u.Hostname() == "":
		return nil, errors.New("has no host")
	case u.User != nil:
		return nil, errors.New("must not contain user info")
	case u.RawQuery != "" || u.ForceQuery:
		return nil, errors.New("must not contain a query")
	case u.Fragment != "" || strings.Contains(s, "#"):
		return nil, errors.New("must not contain a fragment")
	}
	return u, nil
}

// IsLoopbackHost reports whether host is "localhost" or a loopback IP.
func IsLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// CheckLimits checks a user's RFC 9396 authorization_details limits: at
// most MaxLimits objects, each with a non-empty string "type". It returns
// nil or an errors.Join of *InvalidError.
func CheckLimits(field string, limits []map[string]any) error {
	p := &problems{}
	if len(limits) > MaxLimits {
		p.add(field, "at most %d limits", MaxLimits)
	}
	for i, l := range limits {
		if t, ok := l["type"].(string); !ok || t == "" {
			p.add(fmt.Sprintf("%s[%d].type", field, i), "a limit needs a type, as in expense_approval")
		}
	}
	return p.err()
}

// ParseLimits decodes a user's limits as stored: a JSON array of objects,
// strict (no member twice), numbers kept as their text; empty, null and []
// are none.
func ParseLimits(raw json.RawMessage) ([]map[string]any, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	if err := strictjson.Check(raw, maxJSONDepth); err != nil {
		return nil, &InvalidError{Field: "limits", Problem: "must be a JSON array of objects, each member once"}
	}
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.UseNumber()
	var out []map[string]any
	if err := dec.Decode(&out); err != nil {
		return nil, &InvalidError{Field: "limits", Problem: "must be a JSON array of objects"}
	}
	return out, nil
}

// ValidateUser checks what a user holds: its permissions (CheckScopes,
// none required), its limits (ParseLimits, CheckLimits), its roles
// (CheckRoles) and its password hash (CheckPasswordHash). The id is
// CheckID's. It returns nil or an errors.Join of *InvalidError.
func ValidateUser(u store.User) error {
	p := &problems{}
	checkScopes(p, "permissions", u.Permissions, false)
	checkRoles(p, "roles", u.Roles)
	checkPasswordHash(p, "password_hash", u.PasswordHash)
	limits, err := ParseLimits(u.Limits)
	if err != nil {
		p.errs = append(p.errs, err)
	} else if err := CheckLimits("limits", limits); err != nil {
		p.errs = append(p.errs, err)
	}
	return p.err()
}

// ValidateAgent checks an agent: its credentials (CheckCredentials: a
// secret hash, jwks or jwks_uri, or none at all for a public client), its
// name (CheckClientName), its registration (a store.Registration* value), scopes (CheckScopes, none required),
// max_depth (0 for none, at most MaxDepth) and delegate_to
// (CheckDelegateTo). The id is CheckID's. It returns nil or an errors.Join
// of *InvalidError.
func ValidateAgent(a store.Agent) error {
	p := &problems{}
	checkCredentials(p, a.Public, len(a.SecretHash) > 0, a.JWKS, a.JWKSURI)
	checkClientName(p, "client_name", a.Name)
	checkRegistration(p, a.Registration)
	checkScopes(p, "scopes", a.Scopes, false)
	checkDepth(p, "max_depth", a.MaxDepth)
	checkResources(p, "resources", a.Resources)
	checkRedirectURIs(p, "redirect_uris", a.RedirectURIs)
	checkDelegateTo(p, a.ID, a.DelegateTo)
	return p.err()
}

// ValidateDelegation checks what a delegation grants: scopes (1 to
// MaxListLen, CheckScopes), audiences (at most MaxListLen distinct ids;
// none means any), delegate_to (as an agent's, none naming the actor),
// hand_on (as audiences; only with audiences, since without them every
// audience is allowed already) and max_depth (0 for none, at most
// MaxDepth). Its id,
// subject and actor are CheckID's and must name stored records, and a new
// one must not have ended (Directory.CreateDelegation). It returns nil or
// an errors.Join of *InvalidError.
func ValidateDelegation(d store.Delegation) error {
	p := &problems{}
	checkScopes(p, "scopes", d.Scopes, true)
	if len(d.Audiences) > MaxListLen {
		p.add("audiences", "has %d entries, at most %d allowed", len(d.Audiences), MaxListLen)
	}
	checkNames(p, "audiences", d.Audiences, MaxIDLen)
	checkDelegateTo(p, d.Actor, d.DelegateTo)
	if len(d.HandOn) > MaxListLen {
		p.add("hand_on", "has %d entries, at most %d allowed", len(d.HandOn), MaxListLen)
	}
	checkNames(p, "hand_on", d.HandOn, MaxIDLen)
	if len(d.HandOn) > 0 && len(d.Audiences) == 0 {
		p.add("hand_on", "needs audiences: without them every audience is allowed")
	}
	checkDepth(p, "max_depth", d.MaxDepth)
	return p.err()
}

// Roles of people in Mandate itself (store.User.Roles).
const (
	// RoleAdmin may change people, agents and delegations.
	RoleAdmin = "admin"
	// RoleAuditor may read the audit log.
	RoleAuditor = "auditor"
)

// Roles returns every role a person may hold, in order.
func Roles() []string { return []string{RoleAdmin, RoleAuditor} }

// CheckRoles checks a person's roles named field: each one of Roles, none
// twice; none at all is allowed. It returns nil or an errors.Join of
// *InvalidError.
func CheckRoles(field string, roles []string) error {
	p := &problems{}
	checkRoles(p, field, roles)
	return p.err()
}

func checkRoles(p *problems, field string, roles []string) {
	seen := map[string]bool{}
	for i, r := range roles {
		f := fmt.Sprintf("%s[%d]", field, i)
		switch {
		case r != RoleAdmin && r != RoleAuditor:
			p.add(f, "%q is not a role: want %s", r, strings.Join(Roles(), " or "))
		case seen[r]:
			p.add(f, "%q is listed twice", r)
		}
		seen[r] = true
	}
}

// CheckPasswordHash checks the stored hash of a person's password named
// field: empty for none, or an argon2id hash in the PHC string format whose
// parameters password.Check accepts. The problem never quotes the hash.
func CheckPasswordHash(field, hash string) error {
	p := &problems{}
	checkPasswordHash(p, field, hash)
	return p.err()
}

func checkPasswordHash(p *problems, field, hash string) {
	if hash == "" {
		return
	}
	if err := password.Validate(hash); err != nil {
		// The error names the part that is wrong, never the hash itself.
		p.add(field, "%s", strings.TrimPrefix(err.Error(), "password: "))
	}
}
