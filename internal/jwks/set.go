package jwks

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/mandate-dev/mandate/strictjson"
)

// Sentinel errors, wrapped with detail.
var (
	// ErrUnknownKey means the set holds no usable key with the kid asked for.
	ErrUnknownKey = errors.New("jwks: unknown key")
	// ErrFetch means the set could not be fetched and no cached key answers.
	ErrFetch = errors.New("jwks: fetch failed")
	// ErrInvalidSet means a key set was refused: not JSON, private or
	// symmetric key material, duplicate kids, or too large.
	ErrInvalidSet = errors.New("jwks: invalid key set")
)

// Limits on the sets ParseSet accepts.
const (
	// MaxKeys is the largest number of keys a set may hold.
	MaxKeys = 100
	// MaxKIDLen is the longest kid kept, in bytes.
	MaxKIDLen = 256
	// MinRSABits is the smallest RSA modulus kept.
	MinRSABits = 2048
)

// privateMembers are JWK members that only private or symmetric keys carry
// (RFC 7518 §6.2.2, §6.3.2, §6.4; RFC 8037 §2). A published set holding any
// of them is refused whole: its owner has leaked a secret.
var privateMembers = [...]string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"}

// Static is a fixed key set, by kid. It satisfies the key-source interface of
// package token; Key returns ErrUnknownKey for a kid it does not hold. A
// Static must not be modified while in use.
type Static map[string]jose.JSONWebKey

// Key returns the key with the given kid.
func (s Static) Key(_ context.Context, kid string) (jose.JSONWebKey, error) {
	k, ok := s[kid]
	if !ok {
		return jose.JSONWebKey{}, ErrUnknownKey
	}
	return k, nil
}

// ParseSet decodes a JWK Set. It refuses the whole set (ErrInvalidSet) when
// it is not strict JSON, holds more than MaxKeys keys, a private or symmetric
// key, or two keys with the same kid. Keys that cannot sign for us are
// skipped, not refused: keys without a kid, with "use" other than "sig",
// with a type or curve Mandate does not verify (RSA below MinRSABits, EC
// curves other than P-256/384/521, anything but Ed25519 among OKP keys), or
// that go-jose cannot parse. The result maps kid to the public key, with
// Algorithm and Use as published.
func ParseSet(data []byte) (Static, error) {
	if err := strictjson.Check(data, 8); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidSet, err)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil || top == nil {
		return nil, fmt.Errorf("%w: not a JSON object", ErrInvalidSet)
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(top["keys"], &raws); err != nil || raws == nil {
		return nil, fmt.Errorf("%w: \"keys\" must be an array", ErrInvalidSet)
	}
	if len(raws) > MaxKeys {
		return nil, fmt.Errorf("%w: more than %d keys", ErrInvalidSet, MaxKeys)
	}
	set := make(Static, len(raws))
	seen := make(map[string]bool, len(raws))
	for i, raw := range raws {
		var members map[string]json.RawMessage
		if err := json.Unmarshal(raw, &members); err != nil || members == nil {
			return nil, fmt.Errorf("%w: key %d is not an object", ErrInvalidSet, i)
		}
		for _, m := range privateMembers {
			if _, ok := members[m]; ok {
				return nil, fmt.Errorf("%w: key %d has private member %q", ErrInvalidSet, i, m)
			}
		}
		var kid string
		if err := json.Unmarshal(members["kid"], &kid); err != nil || kid == "" || len(kid) > MaxKIDLen {
			continue // unaddressable: every token we accept names its kid
		}
		if seen[kid] {
			return nil, fmt.Errorf("%w: duplicate kid", ErrInvalidSet)
		}
		seen[kid] = true
		var k jose.JSONWebKey
		if err := k.UnmarshalJSON(raw); err != nil {
			continue
		}
		if !usable(&k) {
			continue
		}
		set[kid] = k
	}
	return set, nil
}

// usable reports whether k is a public signing key of a kind Mandate
// verifies.
func usable(k *jose.JSONWebKey) bool {
	if !k.Valid() || !k.IsPublic() || (k.Use != "" && k.Use != "sig") {
		return false
	}
	switch pub := k.Key.(type) {
	case ed25519.PublicKey:
		return true
	case *ecdsa.PublicKey:
		switch pub.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
			return true
		}
		return false
	case *rsa.PublicKey:
		return pub.N.BitLen() >= MinRSABits && pub.E >= 3 && pub.E%2 == 1
	default:
		return false
	}
}
