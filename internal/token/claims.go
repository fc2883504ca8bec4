package token

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/mandate-dev/mandate/actor"
)

// Claims are the claims of an access token Mandate mints (DESIGN.md "Token
// format"; RFC 9068, RFC 8693 §4.1, RFC 9396). Times are seconds since the
// epoch.
type Claims struct {
	Issuer               string          `json:"iss"`
	Subject              string          `json:"sub"`
	Act                  *actor.Actor    `json:"act,omitempty"`
	Audience             string          `json:"aud"`
	Scope                string          `json:"scope,omitempty"`
	ClientID             string          `json:"client_id"`
	Context              map[string]any  `json:"context,omitempty"`
	AuthorizationDetails json.RawMessage `json:"authorization_details,omitempty"`
	DelegationID         string          `json:"delegation_id,omitempty"`
	JTI                  string          `json:"jti"`
	IssuedAt             int64           `json:"iat"`
	NotBefore            int64           `json:"nbf"`
	Expiry               int64           `json:"exp"`
	RevocationURL        string          `json:"revocation_url,omitempty"`
	LogURL               string          `json:"log_url,omitempty"`
}

// Limits on claims read from tokens (THREATS.md "Decisions" 8).
const (
	MaxScopes       = 64
	MaxScopeLen     = 2048
	MaxAudiences    = 4
	maxStringClaim  = 1024
	maxNumericDate  = 1 << 40 // far beyond any real date; keeps time arithmetic exact
	maxClaimsNested = 32
)

// ClaimSet is a verified JWT payload by exact member name. It is what
// (*JWS).Verify returns; its accessors read one claim each and report a
// claim of the wrong JSON type as an error wrapping ErrClaims. Member names
// are never case-folded.
type ClaimSet map[string]json.RawMessage

// Has reports whether the claim is present (even as JSON null).
func (c ClaimSet) Has(name string) bool {
	_, ok := c[name]
	return ok
}

// String returns a string claim; ok is false when it is absent. A present
// claim that is not a JSON string, or is longer than 1 KiB, is an error.
func (c ClaimSet) String(name string) (s string, ok bool, err error) {
	raw, ok := c[name]
	if !ok {
		return "", false, nil
	}
	if len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
		return "", true, fmt.Errorf("%w: %s must be a string", ErrClaims, name)
	}
	if len(s) > maxStringClaim {
		return "", true, fmt.Errorf("%w: %s too long", ErrClaims, name)
	}
	return s, true, nil
}

// NumericDate returns a NumericDate claim (RFC 7519 §2); ok is false when it
// is absent. Only a non-negative JSON integer is accepted: strings,
// fractions, exponents ("1e309"), negative numbers and values beyond 2^40
// are errors.
func (c ClaimSet) NumericDate(name string) (t time.Time, ok bool, err error) {
	raw, ok := c[name]
	if !ok {
		return time.Time{}, false, nil
	}
	if len(raw) == 0 || len(raw) > 13 {
		return time.Time{}, true, fmt.Errorf("%w: %s must be an integer date", ErrClaims, name)
	}
	for _, b := range raw {
		if b < '0' || b > '9' {
			return time.Time{}, true, fmt.Errorf("%w: %s must be an integer date", ErrClaims, name)
		}
	}
	n, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil || n > maxNumericDate {
		return time.Time{}, true, fmt.Errorf("%w: %s out of range", ErrClaims, name)
	}
	return time.Unix(n, 0), true, nil
}

// Audience returns the aud claim (RFC 7519 §4.1.3): a string or a non-empty
// array of at most MaxAudiences non-empty strings. ok is false when absent.
func (c ClaimSet) Audience() (aud []string, ok bool, err error) {
	return c.stringOrArray("aud", MaxAudiences)
}

// Scopes returns the scope claim split on single spaces (RFC 6749 §3.3,
// RFC 9068 §2.2.3). With allowArray, a JSON array of strings is accepted too,
// as some identity providers send one. Empty scope tokens, characters outside
// RFC 6749's scope-token set, more than MaxScopes scopes or more than
// MaxScopeLen bytes are errors. ok is false when the claim is absent.
func (c ClaimSet) Scopes(allowArray bool) (scopes []string, ok bool, err error) {
	raw, ok := c["scope"]
	if !ok {
		return nil, false, nil
	}
	if len(raw) > MaxScopeLen+2*MaxScopes+2 {
		return nil, true, fmt.Errorf("%w: scope too long", ErrClaims)
	}
	if len(raw) > 0 && raw[0] == '[' && allowArray {
		if err := json.Unmarshal(raw, &scopes); err != nil {
			return nil, true, fmt.Errorf("%w: scope must be an array of strings", ErrClaims)
		}
	} else {
		s, _, err := c.String("scope")
		if err != nil {
			return nil, true, err
		}
		if s == "" {
			return []string{}, true, nil
		}
		scopes = strings.Split(s, " ")
	}
	if len(scopes) > MaxScopes {
		return nil, true, fmt.Errorf("%w: more than %d scopes", ErrClaims, MaxScopes)
	}
	total := 0
	for _, s := range scopes {
		total += len(s) + 1
		if !validScopeToken(s) {
			return nil, true, fmt.Errorf("%w: invalid scope token", ErrClaims)
		}
	}
	if total > MaxScopeLen+1 {
		return nil, true, fmt.Errorf("%w: scope too long", ErrClaims)
	}
	return scopes, true, nil
}

// validScopeToken reports whether s is an RFC 6749 §3.3 scope-token:
// 1*( %x21 / %x23-5B / %x5D-7E ).
func validScopeToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		if b < 0x21 || b > 0x7e || b == '"' || b == '\\' {
			return false
		}
	}
	return true
}

func (c ClaimSet) stringOrArray(name string, limit int) ([]string, bool, error) {
	raw, ok := c[name]
	if !ok {
		return nil, false, nil
	}
	var list []string
	switch {
	case len(raw) > 0 && raw[0] == '"':
		s, _, err := c.String(name)
		if err != nil {
			return nil, true, err
		}
		list = []string{s}
	case len(raw) > 0 && raw[0] == '[':
		if err := json.Unmarshal(raw, &list); err != nil {
			return nil, true, fmt.Errorf("%w: %s must hold strings", ErrClaims, name)
		}
	default:
		return nil, true, fmt.Errorf("%w: %s must be a string or an array", ErrClaims, name)
	}
	if len(list) == 0 || len(list) > limit {
		return nil, true, fmt.Errorf("%w: %s must hold 1 to %d values", ErrClaims, name, limit)
	}
	for _, s := range list {
		if s == "" || len(s) > maxStringClaim {
			return nil, true, fmt.Errorf("%w: %s holds an empty or oversized value", ErrClaims, name)
		}
	}
	return list, true, nil
}

// Actor parses an act-shaped claim ("act", "may_act") with actor.Parse,
// which bounds its depth. A JSON null or absent claim yields nil.
func (c ClaimSet) Actor(name string) (*actor.Actor, error) {
	a, err := actor.Parse(c[name])
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrClaims, name, err)
	}
	return a, nil
}

// Object decodes a claim that must be a JSON object into a map; nil when
// absent or null.
func (c ClaimSet) Object(name string) (map[string]any, error) {
	raw, ok := c[name]
	if !ok || string(raw) == "null" {
		return nil, nil
	}
	if len(raw) == 0 || raw[0] != '{' {
		return nil, fmt.Errorf("%w: %s must be an object", ErrClaims, name)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrClaims, name, err)
	}
	return m, nil
}
