package jwt

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/mandate-dev/mandate/actor"
)

// Limits on claims read from tokens (THREATS.md "Decisions" 8).
const (
	// MaxScopes is the most scope tokens a scope claim may hold.
	MaxScopes = 64
	// MaxScopeLen is the longest scope claim, in bytes.
	MaxScopeLen = 2048
	// MaxAudiences is the most values an aud claim may hold.
	MaxAudiences = 4
	// MaxStringClaim is the longest string claim, in bytes.
	MaxStringClaim = 1024

	maxNumericDate  = 1 << 40 // far beyond any real date; keeps time arithmetic exact
	maxClaimsNested = 32
	maxMembers      = 256
)

// ClaimSet is a verified JWT payload read by exact member name. It is what
// (*JWS).Verify returns; its readers look one claim up each and report a
// claim of the wrong JSON type as an error wrapping ErrClaims. Member names
// are never case-folded (strictjson has already refused case variants). The
// zero ClaimSet holds no claims. A ClaimSet aliases the JWS it came from and
// is read-only, so it is safe for concurrent reads.
type ClaimSet struct {
	members []member
}

// indexClaims records the members of a payload strictjson has accepted; ok
// is false when it is not an object or has more than 256 members.
func indexClaims(payload []byte) (ClaimSet, bool) {
	it, ok := newObjectIter(payload)
	if !ok {
		return ClaimSet{}, false
	}
	n := 0
	for probe := it; probe.next(); n++ {
	}
	if n > maxMembers {
		return ClaimSet{}, false
	}
	c := ClaimSet{members: make([]member, 0, n)}
	for it.next() {
		c.members = append(c.members, it.m)
	}
	return c, true
}

// Raw returns a claim's JSON value; ok is false when it is absent. The
// caller must not modify the bytes.
func (c ClaimSet) Raw(name string) (raw json.RawMessage, ok bool) {
	for i := range c.members {
		if c.members[i].is(name) {
			return c.members[i].value, true
		}
	}
	return nil, false
}

// StringsInto reads the string claims names into dst (same length), ""
// for an absent claim, with one allocation for all of them when none has
// escapes. A present claim that is not a string is an ErrClaims error.
func (c ClaimSet) StringsInto(names, dst []string) error {
	var raws [8][]byte
	if len(names) > len(raws) || len(dst) != len(names) {
		return fmt.Errorf("%w: StringsInto takes at most %d names", ErrClaims, len(raws))
	}
	n := 0
	for i, name := range names {
		raw, ok := c.Raw(name)
		if !ok {
			continue
		}
		if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' || len(raw)-2 > MaxStringClaim {
			return fmt.Errorf("%w: %s must be a string", ErrClaims, name)
		}
		if bytes.IndexByte(raw, '\\') >= 0 {
			s, err := c.stringClaim(name)
			if err != nil {
				return err
			}
			dst[i] = s
			continue
		}
		raws[i] = raw[1 : len(raw)-1]
		n += len(raws[i])
	}
	buf := make([]byte, 0, n)
	for _, r := range raws[:len(names)] {
		buf = append(buf, r...)
	}
	all := string(buf)
	for i, r := range raws[:len(names)] {
		if r != nil {
			dst[i], all = all[:len(r)], all[len(r):]
		}
	}
	return nil
}

func (c ClaimSet) stringClaim(name string) (string, error) {
	s, _, err := c.String(name)
	return s, err
}

// StringEquals reports whether the claim is the JSON string want, without
// copying it: present is false when the claim is absent.
func (c ClaimSet) StringEquals(name, want string) (present, equal bool) {
	raw, ok := c.Raw(name)
	if !ok {
		return false, false
	}
	if len(raw) >= 2 && raw[0] == '"' && raw[len(raw)-1] == '"' && bytes.IndexByte(raw, '\\') < 0 {
		return true, string(raw[1:len(raw)-1]) == want
	}
	s, isString := stringContent(raw)
	return true, isString && s == want
}

// Has reports whether the claim is present (even as JSON null).
func (c ClaimSet) Has(name string) bool {
	_, ok := c.Raw(name)
	return ok
}

// String returns a string claim; ok is false when it is absent. A present
// claim that is not a JSON string, or is longer than MaxStringClaim bytes,
// is an error.
func (c ClaimSet) String(name string) (s string, ok bool, err error) {
	raw, ok := c.Raw(name)
	if !ok {
		return "", false, nil
	}
	s, isString := stringContent(raw)
	if !isString {
		return "", true, fmt.Errorf("%w: %s must be a string", ErrClaims, name)
	}
	if len(s) > MaxStringClaim {
		return "", true, fmt.Errorf("%w: %s too long", ErrClaims, name)
	}
	return s, true, nil
}

// NumericDate returns a NumericDate claim (RFC 7519 §2); ok is false when it
// is absent. Only a non-negative JSON integer is accepted: strings,
// fractions, exponents ("1e309"), "-0", negative numbers and values beyond
// 2^40 are errors.
func (c ClaimSet) NumericDate(name string) (t time.Time, ok bool, err error) {
	raw, ok := c.Raw(name)
	if !ok {
		return time.Time{}, false, nil
	}
	if len(raw) == 0 || len(raw) > 13 {
		return time.Time{}, true, fmt.Errorf("%w: %s must be an integer date", ErrClaims, name)
	}
	var n int64
	for _, b := range raw {
		if b < '0' || b > '9' {
			return time.Time{}, true, fmt.Errorf("%w: %s must be an integer date", ErrClaims, name)
		}
		n = n*10 + int64(b-'0')
	}
	if n > maxNumericDate {
		return time.Time{}, true, fmt.Errorf("%w: %s out of range", ErrClaims, name)
	}
	return time.Unix(n, 0), true, nil
}

// Audience returns the aud claim (RFC 7519 §4.1.3): a string or a non-empty
// array of at most MaxAudiences non-empty strings. ok is false when absent.
func (c ClaimSet) Audience() (aud []string, ok bool, err error) {
	raw, ok := c.Raw("aud")
	if !ok {
		return nil, false, nil
	}
	if s, isString := stringContent(raw); isString {
		aud = []string{s}
	} else if aud, err = stringArray(raw, MaxAudiences); err != nil {
		return nil, true, fmt.Errorf("%w: aud: %w", ErrClaims, err)
	}
	if len(aud) == 0 {
		return nil, true, fmt.Errorf("%w: aud must hold 1 to %d values", ErrClaims, MaxAudiences)
	}
	for _, s := range aud {
		if s == "" || len(s) > MaxStringClaim {
			return nil, true, fmt.Errorf("%w: aud holds an empty or oversized value", ErrClaims)
		}
	}
	return aud, true, nil
}

// stringArray decodes a JSON array of at most limit strings.
func stringArray(raw []byte, limit int) ([]string, error) {
	it, ok := newArrayIter(raw)
	if !ok {
		return nil, fmt.Errorf("must be a string or an array of strings")
	}
	n := 0
	for probe := it; probe.next(); n++ {
	}
	if n > limit {
		return nil, fmt.Errorf("more than %d values", limit)
	}
	out := make([]string, 0, n)
	for it.next() {
		s, ok := stringContent(it.value)
		if !ok {
			return nil, fmt.Errorf("must hold strings")
		}
		out = append(out, s)
	}
	return out, nil
}

// Scopes returns the scope claim split on single spaces (RFC 6749 §3.3,
// RFC 9068 §2.2.3). With allowArray, a JSON array of strings is accepted too,
// as some identity providers send one. Empty scope tokens, characters outside
// RFC 6749's scope-token set, more than MaxScopes scopes or more than
// MaxScopeLen bytes are errors. ok is false when the claim is absent.
func (c ClaimSet) Scopes(allowArray bool) (scopes []string, ok bool, err error) {
	raw, ok := c.Raw("scope")
	if !ok {
		return nil, false, nil
	}
	if len(raw) > MaxScopeLen+4*MaxScopes+2 {
		return nil, true, fmt.Errorf("%w: scope too long", ErrClaims)
	}
	if len(raw) > 0 && raw[0] == '[' && allowArray {
		if scopes, err = stringArray(raw, MaxScopes); err != nil {
			return nil, true, fmt.Errorf("%w: scope: %w", ErrClaims, err)
		}
	} else {
		s, isString := stringContent(raw)
		if !isString {
			return nil, true, fmt.Errorf("%w: scope must be a string", ErrClaims)
		}
		if s == "" {
			return []string{}, true, nil
		}
		if strings.Count(s, " ") >= MaxScopes {
			return nil, true, fmt.Errorf("%w: more than %d scopes", ErrClaims, MaxScopes)
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

// Chain reads an act-shaped claim ("act", "may_act"; RFC 8693 §4.1) as the
// list of actor subjects, outermost (current) first. Its depth is counted
// from the structure before any subject is decoded, and more than maxDepth
// levels (at most actor.MaxDepth) is an error wrapping both ErrClaims and
// actor.ErrTooDeep. Every level must be an object with a "sub" that passes
// actor.ValidSubject; other members are ignored. An absent or null claim
// yields an empty chain.
func (c ClaimSet) Chain(name string, maxDepth int) ([]string, error) {
	raw, ok := c.Raw(name)
	if !ok || isNull(raw) {
		return nil, nil
	}
	if maxDepth <= 0 || maxDepth > actor.MaxDepth {
		maxDepth = actor.MaxDepth
	}
	depth := 0
	for level := raw; level != nil; level = nextActor(level) {
		if depth++; depth > maxDepth {
			return nil, fmt.Errorf("%w: %s: %w", ErrClaims, name, actor.ErrTooDeep)
		}
	}
	// The subjects are copied into one string and sliced: a verifier reads
	// a chain on every request, and one allocation instead of one per
	// actor keeps Verify within its allocation budget. A subject with
	// escapes is decoded on its own.
	chain := make([]string, 0, depth)
	var raws [actor.MaxDepth][]byte
	n, escaped := 0, false
	for level, i := raw, 0; level != nil; level, i = nextActor(level), i+1 {
		sub, err := actorSubjectRaw(level)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrClaims, name, err)
		}
		raws[i] = sub
		n += len(sub)
		escaped = escaped || bytes.IndexByte(sub, '\\') >= 0
	}
	if escaped {
		for level := raw; level != nil; level = nextActor(level) {
			sub, err := actorSubject(level)
			if err != nil {
				return nil, fmt.Errorf("%w: %s: %w", ErrClaims, name, err)
			}
			chain = append(chain, sub)
		}
		return chain, nil
	}
	buf := make([]byte, 0, n)
	for _, r := range raws[:depth] {
		buf = append(buf, r[1:len(r)-1]...)
	}
	all := string(buf)
	for _, r := range raws[:depth] {
		var sub string
		sub, all = all[:len(r)-2], all[len(r)-2:]
		if err := actor.ValidSubject(sub); err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrClaims, name, err)
		}
		chain = append(chain, sub)
	}
	return chain, nil
}

// nextActor returns the nested "act" of one level, nil at the end of the
// chain (absent, null, or a level that is not an object, which
// actorSubject then refuses).
func nextActor(level []byte) []byte {
	it, ok := newObjectIter(level)
	if !ok {
		return nil
	}
	for it.next() {
		if it.m.is("act") {
			if isNull(it.m.value) {
				return nil
			}
			return it.m.value
		}
	}
	return nil
}

// actorSubjectRaw returns the raw JSON string of one level's "sub",
// quotes included.
func actorSubjectRaw(level []byte) ([]byte, error) {
	it, ok := newObjectIter(level)
	if !ok {
		return nil, fmt.Errorf("%w: not an object", actor.ErrInvalid)
	}
	for it.next() {
		if it.m.is("sub") {
			v := it.m.value
			if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
				return nil, fmt.Errorf("%w: sub must be a string", actor.ErrInvalid)
			}
			return v, nil
		}
	}
	return nil, fmt.Errorf("%w: sub missing", actor.ErrInvalid)
}

func actorSubject(level []byte) (string, error) {
	it, ok := newObjectIter(level)
	if !ok {
		return "", fmt.Errorf("%w: not an object", actor.ErrInvalid)
	}
	for it.next() {
		if it.m.is("sub") {
			sub, ok := stringContent(it.m.value)
			if !ok {
				return "", fmt.Errorf("%w: sub must be a string", actor.ErrInvalid)
			}
			if err := actor.ValidSubject(sub); err != nil {
				return "", err
			}
			return sub, nil
		}
	}
	return "", fmt.Errorf("%w: sub missing", actor.ErrInvalid)
}

// Actor reads an act-shaped claim as an *actor.Actor with Chain, bounded at
// actor.MaxDepth. A JSON null or absent claim yields nil.
func (c ClaimSet) Actor(name string) (*actor.Actor, error) {
	chain, err := c.Chain(name, actor.MaxDepth)
	if err != nil {
		return nil, err
	}
	return actor.New(chain), nil
}

// Object decodes a claim that must be a JSON object into a map; nil when
// absent or null. Numbers decode as float64, as encoding/json does.
func (c ClaimSet) Object(name string) (map[string]any, error) {
	raw, ok := c.Raw(name)
	if !ok || isNull(raw) {
		return nil, nil
	}
	it, isObj := newObjectIter(raw)
	if !isObj {
		return nil, fmt.Errorf("%w: %s must be an object", ErrClaims, name)
	}
	n := 0
	for probe := it; probe.next(); n++ {
	}
	m := make(map[string]any, n)
	for it.next() {
		key, ok := it.m.decodedName()
		if !ok {
			return nil, fmt.Errorf("%w: %s: member name", ErrClaims, name)
		}
		if s, isString := stringContent(it.m.value); isString {
			m[key] = s
			continue
		}
		var v any
		if err := json.Unmarshal(it.m.value, &v); err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrClaims, name, err)
		}
		m[key] = v
	}
	return m, nil
}

// Array returns the elements of an array claim as raw JSON values; nil when
// absent or null. A claim that is not an array, or holds more than max
// elements, is an error wrapping ErrClaims.
func (c ClaimSet) Array(name string, max int) ([]json.RawMessage, error) {
	raw, ok := c.Raw(name)
	if !ok || isNull(raw) {
		return nil, nil
	}
	it, isArray := newArrayIter(raw)
	if !isArray {
		return nil, fmt.Errorf("%w: %s must be an array", ErrClaims, name)
	}
	n := 0
	for probe := it; probe.next(); n++ {
	}
	if n > max {
		return nil, fmt.Errorf("%w: %s holds more than %d values", ErrClaims, name, max)
	}
	out := make([]json.RawMessage, 0, n)
	for it.next() {
		out = append(out, it.value)
	}
	return out, nil
}

// Member returns the value of member name, exact name, in obj, a JSON object
// taken from a ClaimSet (a claim or an element of one); ok is false when obj
// is not an object or has no such member. It does not allocate unless the
// object's member names use escapes.
func Member(obj json.RawMessage, name string) (value json.RawMessage, ok bool) {
	it, isObj := newObjectIter(obj)
	if !isObj {
		return nil, false
	}
	for it.next() {
		if it.m.is(name) {
			return it.m.value, true
		}
	}
	return nil, false
}

// StringValue returns the content of a JSON string value; ok is false when
// raw is not a string.
func StringValue(raw json.RawMessage) (s string, ok bool) { return stringContent(raw) }
