package jwt

import (
	"encoding/base64"
	"fmt"
	"slices"
	"strings"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/mandate-dev/mandate/strictjson"
)

// MaxTokenSize is the largest compact JWS accepted, in bytes (THREATS.md
// "Decisions" 8).
const MaxTokenSize = 8 << 10

// maxKIDLen bounds the kid header; a kid is only ever a map key.
const maxKIDLen = 256

// maxHeaderNested bounds nesting in the protected header.
const maxHeaderNested = 4

// forbiddenHeader lists header members whose presence refuses a token: they
// name a key or certificate to fetch or trust (RFC 8725 §3.10), change how
// the token is processed (crit, b64, zip, cty: nested JWTs), or belong to JWE
// (RFC 7516, RFC 7518 §4.6–4.8). Matching is case-insensitive so that no
// parser can read "JKU" as "jku". Nothing is ever fetched for a header.
// Read-only.
var forbiddenHeader = [...]string{
	"jku", "x5u", "jwk", "x5c", "x5t", "x5t#S256",
	"crit", "zip", "enc", "b64", "cty",
	"epk", "apu", "apv", "iv", "tag", "p2s", "p2c",
}

// Header is the checked protected header of a JWS.
type Header struct {
	Algorithm string // "alg", never empty
	KeyID     string // "kid", never empty, at most 256 bytes
	Type      string // "typ", empty when absent
}

// JWS is a compact JWS that passed the structural gate of ParseJWS. Its
// payload is unverified until Verify succeeds. A JWS is not safe for
// concurrent use.
type JWS struct {
	Header  Header
	input   []byte // the signing input, header.payload
	payload []byte // decoded, unverified
	sig     []byte // decoded
}

// ParseJWS applies the checks that come before any key is chosen. In order:
// at most MaxTokenSize bytes and exactly three non-empty segments of
// canonical unpadded base64url (a byte scan, nothing decoded yet); a header
// that passes strictjson.Check, is an object holding a string "alg" and a
// non-empty "kid", and none of the refused members (jku, x5u, jwk, x5c, x5t,
// crit, zip, enc, b64, cty and the JWE parameters). Errors wrap
// ErrMalformed. The cost is one pass over the input and a constant number
// of allocations, whatever the input.
func ParseJWS(raw string) (*JWS, error) {
	dot1, dot2, err := scanCompact(raw)
	if err != nil {
		return nil, err
	}
	enc := base64.RawURLEncoding.Strict()
	hLen, pLen := enc.DecodedLen(dot1), enc.DecodedLen(dot2-dot1-1)
	sLen := enc.DecodedLen(len(raw) - dot2 - 1)
	// One allocation holds a copy of the token and the three decoded
	// segments.
	buf := make([]byte, len(raw)+hLen+pLen+sLen)
	copy(buf, raw)
	j := &JWS{input: buf[:dot2:dot2]}
	sigSrc := buf[dot2+1 : len(raw)]
	rest := buf[len(raw):]
	n, err := enc.Decode(rest[:hLen], j.input[:dot1])
	if err != nil {
		return nil, fmt.Errorf("%w: header encoding", ErrMalformed)
	}
	if j.Header, err = parseHeader(rest[:n:n]); err != nil {
		return nil, err
	}
	rest = rest[hLen:]
	if n, err = enc.Decode(rest[:pLen], j.input[dot1+1:]); err != nil {
		return nil, fmt.Errorf("%w: payload encoding", ErrMalformed)
	}
	j.payload = rest[:n:n]
	rest = rest[pLen:]
	if n, err = enc.Decode(rest, sigSrc); err != nil {
		return nil, fmt.Errorf("%w: signature encoding", ErrMalformed)
	}
	j.sig = rest[:n:n]
	return j, nil
}

// scanCompact checks size and structure with one pass over the bytes: three
// non-empty segments of the base64url alphabet, no padding, and canonical
// trailing bits (RFC 7515 §2, RFC 4648 §3.5), so that one signature has one
// encoding. It returns the positions of the two dots.
func scanCompact(raw string) (dot1, dot2 int, err error) {
	if len(raw) == 0 || len(raw) > MaxTokenSize {
		return 0, 0, fmt.Errorf("%w: size", ErrMalformed)
	}
	segments, start := 0, 0
	for i := 0; i <= len(raw); i++ {
		if i < len(raw) && raw[i] != '.' {
			if b64Value(raw[i]) < 0 {
				return 0, 0, fmt.Errorf("%w: not base64url", ErrMalformed)
			}
			continue
		}
		segments++
		if segments > 3 {
			return 0, 0, fmt.Errorf("%w: more than three segments", ErrMalformed)
		}
		if err := checkSegment(raw[start:i]); err != nil {
			return 0, 0, err
		}
		switch segments {
		case 1:
			dot1 = i
		case 2:
			dot2 = i
		}
		start = i + 1
	}
	if segments != 3 {
		return 0, 0, fmt.Errorf("%w: not three segments", ErrMalformed)
	}
	return dot1, dot2, nil
}

func checkSegment(seg string) error {
	if seg == "" {
		return fmt.Errorf("%w: empty segment", ErrMalformed)
	}
	last := b64Value(seg[len(seg)-1])
	switch len(seg) % 4 {
	case 1:
		return fmt.Errorf("%w: truncated base64url", ErrMalformed)
	case 2:
		if last&0x0f != 0 {
			return fmt.Errorf("%w: non-canonical base64url", ErrMalformed)
		}
	case 3:
		if last&0x03 != 0 {
			return fmt.Errorf("%w: non-canonical base64url", ErrMalformed)
		}
	}
	return nil
}

// b64Value is the value of a base64url character, or -1.
func b64Value(c byte) int {
	switch {
	case c >= 'A' && c <= 'Z':
		return int(c - 'A')
	case c >= 'a' && c <= 'z':
		return int(c-'a') + 26
	case c >= '0' && c <= '9':
		return int(c-'0') + 52
	case c == '-':
		return 62
	case c == '_':
		return 63
	}
	return -1
}

func parseHeader(hdr []byte) (Header, error) {
	if err := strictjson.Check(hdr, maxHeaderNested); err != nil {
		return Header{}, fmt.Errorf("%w: header: %w", ErrMalformed, err)
	}
	it, ok := newObjectIter(hdr)
	if !ok {
		return Header{}, fmt.Errorf("%w: header is not an object", ErrMalformed)
	}
	var h Header
	var hasAlg, hasKID bool
	for it.next() {
		m := &it.m
		for _, f := range forbiddenHeader {
			if strings.EqualFold(string(m.name), f) || (m.escaped && foldIs(m, f)) {
				return Header{}, fmt.Errorf("%w: header member %q refused", ErrMalformed, f)
			}
		}
		var s string
		switch {
		case m.is("alg"):
			s, hasAlg = stringContent(m.value)
			h.Algorithm = internAlg(s)
		case m.is("kid"):
			h.KeyID, hasKID = stringContent(m.value)
		case m.is("typ"):
			if h.Type, ok = stringContent(m.value); !ok {
				return Header{}, fmt.Errorf("%w: header typ", ErrMalformed)
			}
		}
	}
	if !hasAlg || h.Algorithm == "" {
		return Header{}, fmt.Errorf("%w: header alg", ErrMalformed)
	}
	if !hasKID || h.KeyID == "" || len(h.KeyID) > maxKIDLen {
		return Header{}, fmt.Errorf("%w: header kid", ErrMalformed)
	}
	return h, nil
}

// foldIs compares an escaped member name to f without case.
func foldIs(m *member, f string) bool {
	s, ok := m.decodedName()
	return ok && strings.EqualFold(s, f)
}

// internAlg returns the constant for a known algorithm name, so that the
// common case keeps no copy of the header.
func internAlg(s string) string {
	for _, a := range knownAlgorithms {
		if string(a) == s {
			return string(a)
		}
	}
	return s
}

// knownAlgorithms are the signature algorithms Verify can check. Read-only.
var knownAlgorithms = [...]jose.SignatureAlgorithm{
	jose.EdDSA, jose.ES256, jose.ES384, jose.ES512,
	jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512,
}

// UnverifiedString reads a string claim from the unverified payload, exact
// name, for choosing a key (iss) or a client (sub) only: nothing read here
// may decide anything. ok is false when the claim is absent; a payload that
// is not a JSON object is an error wrapping ErrMalformed. It does not run
// strictjson on the payload: a duplicate here fails Verify later.
func (j *JWS) UnverifiedString(name string) (s string, ok bool, err error) {
	it, isObj := newObjectIter(j.payload)
	if !isObj {
		return "", false, fmt.Errorf("%w: payload is not a JSON object", ErrMalformed)
	}
	for it.next() {
		if it.m.is(name) {
			s, ok := stringContent(it.m.value)
			if !ok {
				return "", true, fmt.Errorf("%w: %s must be a string", ErrClaims, name)
			}
			return s, true, nil
		}
	}
	return "", false, nil
}

// Verify checks the signature with key, accepting only the algorithms in
// algs (pinned by the key, see AlgorithmsFor; never taken from the header),
// then runs strictjson.Check on the verified payload and returns its claims.
// Errors: ErrAlgorithm when algs is empty, the header names another
// algorithm or the key cannot make that signature; ErrSignature when the
// signature does not verify; ErrMalformed when the verified payload is not
// a strict JSON object.
func (j *JWS) Verify(key jose.JSONWebKey, algs []jose.SignatureAlgorithm) (ClaimSet, error) {
	if err := j.VerifySignature(key, algs); err != nil {
		return ClaimSet{}, err
	}
	if err := strictjson.Check(j.payload, maxClaimsNested); err != nil {
		return ClaimSet{}, fmt.Errorf("%w: payload: %w", ErrMalformed, err)
	}
	c, ok := indexClaims(j.payload)
	if !ok {
		return ClaimSet{}, fmt.Errorf("%w: payload is not a JSON object", ErrMalformed)
	}
	return c, nil
}

// VerifySignature checks the signature alone, as Verify does, without
// reading the payload; Payload then returns the verified bytes. It is for
// JWS whose payload is not a JWT claims set (test vectors, for one).
func (j *JWS) VerifySignature(key jose.JSONWebKey, algs []jose.SignatureAlgorithm) error {
	alg := jose.SignatureAlgorithm(j.Header.Algorithm)
	if len(algs) == 0 || !slices.Contains(algs, alg) {
		return fmt.Errorf("%w: %q not allowed for this key", ErrAlgorithm, truncate(j.Header.Algorithm))
	}
	return verifySignature(key, alg, j.input, j.sig)
}

// Payload returns the decoded payload. It is unverified until Verify or
// VerifySignature has succeeded; the caller must not modify it.
func (j *JWS) Payload() []byte { return j.payload }

func truncate(s string) string {
	if len(s) > 32 {
		return s[:32]
	}
	return s
}
