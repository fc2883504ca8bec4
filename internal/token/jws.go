package token

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
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

// forbiddenHeader lists header members whose presence refuses a token: they
// name a key or certificate to fetch or trust (RFC 8725 §3.10), change how
// the token is processed (crit, b64, zip, cty: nested JWTs), or belong to JWE
// (RFC 7516, RFC 7518 §4.6–4.8). Matching is case-insensitive so that no
// parser can read "JKU" as "jku". Nothing is ever fetched for a header.
var forbiddenHeader = map[string]bool{
	"jku": true, "x5u": true, "jwk": true, "x5c": true, "x5t": true, "x5t#s256": true,
	"crit": true, "zip": true, "enc": true, "b64": true, "cty": true,
	"epk": true, "apu": true, "apv": true, "iv": true, "tag": true, "p2s": true, "p2c": true,
}

// Header is the checked protected header of a JWS.
type Header struct {
	Algorithm string // "alg"
	KeyID     string // "kid", never empty
	Type      string // "typ", empty when absent
}

// JWS is a compact JWS that passed the structural gate of ParseJWS. Its
// payload is unverified until Verify succeeds.
type JWS struct {
	Header  Header
	raw     string
	payload []byte   // decoded, unverified
	claims  ClaimSet // decoded lazily from payload
}

// ParseJWS applies the checks that come before any key is chosen. In order:
// at most MaxTokenSize bytes and exactly three non-empty segments of
// canonical unpadded base64url (a byte scan, nothing decoded yet); a header
// that passes strictjson.Check, holds a string "alg" and a non-empty "kid",
// and none of the refused members (jku, x5u, jwk, x5c, x5t, crit, zip, enc,
// b64, cty and the JWE parameters). Errors wrap ErrMalformed.
func ParseJWS(raw string) (*JWS, error) {
	if err := scanCompact(raw); err != nil {
		return nil, err
	}
	dot1 := strings.IndexByte(raw, '.')
	dot2 := dot1 + 1 + strings.IndexByte(raw[dot1+1:], '.')
	hdr, err := base64.RawURLEncoding.Strict().DecodeString(raw[:dot1])
	if err != nil {
		return nil, fmt.Errorf("%w: header encoding", ErrMalformed)
	}
	h, err := parseHeader(hdr)
	if err != nil {
		return nil, err
	}
	payload, err := base64.RawURLEncoding.Strict().DecodeString(raw[dot1+1 : dot2])
	if err != nil {
		return nil, fmt.Errorf("%w: payload encoding", ErrMalformed)
	}
	return &JWS{Header: h, raw: raw, payload: payload}, nil
}

// scanCompact checks size and structure with one pass over the bytes: three
// non-empty segments of the base64url alphabet, no padding, and canonical
// trailing bits (RFC 7515 §2, RFC 4648 §3.5), so that one signature has one
// encoding.
func scanCompact(raw string) error {
	if len(raw) == 0 || len(raw) > MaxTokenSize {
		return fmt.Errorf("%w: size", ErrMalformed)
	}
	segments, start := 0, 0
	for i := 0; i <= len(raw); i++ {
		if i < len(raw) && raw[i] != '.' {
			if b64Value(raw[i]) < 0 {
				return fmt.Errorf("%w: not base64url", ErrMalformed)
			}
			continue
		}
		segments++
		if segments > 3 {
			return fmt.Errorf("%w: more than three segments", ErrMalformed)
		}
		if err := checkSegment(raw[start:i]); err != nil {
			return err
		}
		start = i + 1
	}
	if segments != 3 {
		return fmt.Errorf("%w: not three segments", ErrMalformed)
	}
	return nil
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
	if err := strictjson.Check(hdr, 4); err != nil {
		return Header{}, fmt.Errorf("%w: header: %w", ErrMalformed, err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(hdr, &m); err != nil || m == nil {
		return Header{}, fmt.Errorf("%w: header is not an object", ErrMalformed)
	}
	for name := range m {
		if forbiddenHeader[strings.ToLower(name)] {
			return Header{}, fmt.Errorf("%w: header member %q refused", ErrMalformed, truncate(name))
		}
	}
	c := ClaimSet(m)
	var h Header
	var ok bool
	var err error
	if h.Algorithm, ok, err = c.String("alg"); err != nil || !ok || h.Algorithm == "" {
		return Header{}, fmt.Errorf("%w: header alg", ErrMalformed)
	}
	if h.KeyID, ok, err = c.String("kid"); err != nil || !ok || h.KeyID == "" || len(h.KeyID) > maxKIDLen {
		return Header{}, fmt.Errorf("%w: header kid", ErrMalformed)
	}
	if h.Type, _, err = c.String("typ"); err != nil {
		return Header{}, fmt.Errorf("%w: header typ", ErrMalformed)
	}
	return h, nil
}

// UnverifiedString reads a string claim from the unverified payload, exact
// name, for choosing a key (iss) or a client (sub) only: nothing read here
// may decide anything. ok is false when the claim is absent; a payload that
// is not a JSON object is an error wrapping ErrMalformed.
func (j *JWS) UnverifiedString(name string) (s string, ok bool, err error) {
	if err := j.decodeClaims(); err != nil {
		return "", false, err
	}
	return j.claims.String(name)
}

func (j *JWS) decodeClaims() error {
	if j.claims != nil {
		return nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(j.payload, &m); err != nil || m == nil {
		return fmt.Errorf("%w: payload is not a JSON object", ErrMalformed)
	}
	j.claims = m
	return nil
}

// Verify checks the signature with key, accepting only the algorithms in
// algs (pinned by the key, see AlgorithmsFor; never taken from the header),
// then runs strictjson.Check on the verified payload and returns its claims.
// Errors: ErrAlgorithm when algs is empty or the header names another
// algorithm; ErrSignature when the signature does not verify; ErrMalformed
// when the verified payload is not strict JSON. A JWS is not safe for
// concurrent use.
func (j *JWS) Verify(key jose.JSONWebKey, algs []jose.SignatureAlgorithm) (ClaimSet, error) {
	if len(algs) == 0 || !slices.Contains(algs, jose.SignatureAlgorithm(j.Header.Algorithm)) {
		return nil, fmt.Errorf("%w: %q not allowed for this key", ErrAlgorithm, truncate(j.Header.Algorithm))
	}
	pub, ok := publicKey(key)
	if !ok {
		return nil, fmt.Errorf("%w: not an asymmetric public key", ErrAlgorithm)
	}
	obj, err := jose.ParseSignedCompact(j.raw, algs)
	if err != nil {
		var unexpected *jose.ErrUnexpectedSignatureAlgorithm
		if errors.As(err, &unexpected) {
			return nil, fmt.Errorf("%w: %w", ErrAlgorithm, err)
		}
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	payload, err := obj.Verify(pub)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSignature, err)
	}
	// The bytes go-jose verified are the bytes decoded by ParseJWS; claims
	// are read only from verified bytes.
	if !bytes.Equal(payload, j.payload) {
		return nil, fmt.Errorf("%w: payload mismatch", ErrMalformed)
	}
	if err := strictjson.Check(payload, maxClaimsNested); err != nil {
		return nil, fmt.Errorf("%w: payload: %w", ErrMalformed, err)
	}
	if err := j.decodeClaims(); err != nil {
		return nil, err
	}
	return j.claims, nil
}

// publicKey returns the public half of an asymmetric key; symmetric keys are
// refused, so no HMAC can ever be checked with key bytes.
func publicKey(key jose.JSONWebKey) (any, bool) {
	switch k := key.Key.(type) {
	case ed25519.PublicKey, *ecdsa.PublicKey, *rsa.PublicKey:
		return k, true
	case ed25519.PrivateKey:
		return k.Public(), true
	case *ecdsa.PrivateKey:
		return &k.PublicKey, true
	case *rsa.PrivateKey:
		return &k.PublicKey, true
	default:
		return nil, false
	}
}

// AlgorithmsFor returns the algorithms a signature by key may use: those its
// type allows (Ed25519: EdDSA; EC: the ES algorithm of its curve; RSA: RS*
// and PS*), narrowed to the key's own "alg" when it has one, intersected
// with allowed. The result is empty, and every token refused, when they do
// not meet; HMAC algorithms are never returned.
func AlgorithmsFor(key jose.JSONWebKey, allowed []string) []jose.SignatureAlgorithm {
	var family []jose.SignatureAlgorithm
	switch k := key.Key.(type) {
	case ed25519.PublicKey, ed25519.PrivateKey:
		family = []jose.SignatureAlgorithm{jose.EdDSA}
	case *ecdsa.PublicKey:
		family = ecAlgorithm(k.Curve)
	case *ecdsa.PrivateKey:
		family = ecAlgorithm(k.Curve)
	case *rsa.PublicKey, *rsa.PrivateKey:
		family = []jose.SignatureAlgorithm{jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512}
	}
	var out []jose.SignatureAlgorithm
	for _, a := range family {
		if key.Algorithm != "" && string(a) != key.Algorithm {
			continue
		}
		if slices.Contains(allowed, string(a)) {
			out = append(out, a)
		}
	}
	return out
}

func ecAlgorithm(c elliptic.Curve) []jose.SignatureAlgorithm {
	switch c {
	case elliptic.P256():
		return []jose.SignatureAlgorithm{jose.ES256}
	case elliptic.P384():
		return []jose.SignatureAlgorithm{jose.ES384}
	case elliptic.P521():
		return []jose.SignatureAlgorithm{jose.ES512}
	}
	return nil
}

func truncate(s string) string {
	if len(s) > 32 {
		return s[:32]
	}
	return s
}
