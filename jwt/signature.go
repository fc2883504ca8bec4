package jwt

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
	"math/big"
	"slices"

	jose "github.com/go-jose/go-jose/v4"
)

// MinRSABits is the smallest RSA modulus whose signatures are checked.
const MinRSABits = 2048

// verifySignature checks sig over input with the standard library, as
// go-jose does (fixed-size P1363 ECDSA signatures, RFC 7518 §3.4; PSS with
// the salt as long as the hash, §3.5), without re-parsing the token. The
// differential fuzz test holds it to go-jose's answers.
func verifySignature(key jose.JSONWebKey, alg jose.SignatureAlgorithm, input, sig []byte) error {
	pub, ok := publicKey(key)
	if !ok {
		return fmt.Errorf("%w: not an asymmetric public key", ErrAlgorithm)
	}
	switch alg {
	case jose.EdDSA:
		k, ok := pub.(ed25519.PublicKey)
		if !ok || len(k) != ed25519.PublicKeySize {
			return fmt.Errorf("%w: EdDSA needs an Ed25519 key", ErrAlgorithm)
		}
		if len(sig) != ed25519.SignatureSize || !ed25519.Verify(k, input, sig) {
			return ErrSignature
		}
		return nil
	case jose.ES256, jose.ES384, jose.ES512:
		return verifyECDSA(pub, alg, input, sig)
	case jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512:
		return verifyRSA(pub, alg, input, sig)
	}
	return fmt.Errorf("%w: %q unsupported", ErrAlgorithm, truncate(string(alg)))
}

func verifyECDSA(pub any, alg jose.SignatureAlgorithm, input, sig []byte) error {
	k, ok := pub.(*ecdsa.PublicKey)
	if !ok {
		return fmt.Errorf("%w: %s needs an EC key", ErrAlgorithm, alg)
	}
	var curve elliptic.Curve
	var h crypto.Hash
	switch alg {
	case jose.ES256:
		curve, h = elliptic.P256(), crypto.SHA256
	case jose.ES384:
		curve, h = elliptic.P384(), crypto.SHA384
	default:
		curve, h = elliptic.P521(), crypto.SHA512
	}
	if k.Curve != curve {
		return fmt.Errorf("%w: %s needs curve %s", ErrAlgorithm, alg, curve.Params().Name)
	}
	size := (curve.Params().BitSize + 7) / 8
	if len(sig) != 2*size {
		return fmt.Errorf("%w: signature size", ErrSignature)
	}
	var sum [sha512.Size]byte
	digest := hashInto(&sum, h, input)
	// RFC 7518 §3.4: r and s are fixed-size big-endian integers. ecdsa.Verify
	// refuses zero and out-of-range values.
	r, ss := new(big.Int).SetBytes(sig[:size]), new(big.Int).SetBytes(sig[size:])
	if !ecdsa.Verify(k, digest, r, ss) {
		return ErrSignature
	}
	return nil
}

func verifyRSA(pub any, alg jose.SignatureAlgorithm, input, sig []byte) error {
	k, ok := pub.(*rsa.PublicKey)
	if !ok || !strongRSA(k) {
		return fmt.Errorf("%w: %s needs an RSA key of at least %d bits", ErrAlgorithm, alg, MinRSABits)
	}
	var h crypto.Hash
	switch alg {
	case jose.RS256, jose.PS256:
		h = crypto.SHA256
	case jose.RS384, jose.PS384:
		h = crypto.SHA384
	default:
		h = crypto.SHA512
	}
	var sum [sha512.Size]byte
	digest := hashInto(&sum, h, input)
	var err error
	if alg == jose.RS256 || alg == jose.RS384 || alg == jose.RS512 {
		err = rsa.VerifyPKCS1v15(k, h, digest, sig)
	} else {
		err = rsa.VerifyPSS(k, h, digest, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
	}
	if err != nil {
		return ErrSignature
	}
	return nil
}

// hashInto hashes input with h (SHA-256, -384 or -512) into sum.
func hashInto(sum *[sha512.Size]byte, h crypto.Hash, input []byte) []byte {
	switch h {
	case crypto.SHA256:
		d := sha256.Sum256(input)
		return append(sum[:0], d[:]...)
	case crypto.SHA384:
		d := sha512.Sum384(input)
		return append(sum[:0], d[:]...)
	default:
		d := sha512.Sum512(input)
		return append(sum[:0], d[:]...)
	}
}

func strongRSA(k *rsa.PublicKey) bool {
	return k.N != nil && k.N.BitLen() >= MinRSABits && k.E >= 3 && k.E%2 == 1
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
// type allows (Ed25519: EdDSA; EC: the ES algorithm of its curve; RSA of at
// least MinRSABits with an odd exponent ≥ 3: RS* and PS*), narrowed to the
// key's own "alg" when it has one, intersected with allowed. The result is
// empty, and every token refused, when they do not meet; HMAC algorithms are
// never returned.
func AlgorithmsFor(key jose.JSONWebKey, allowed []string) []jose.SignatureAlgorithm {
	var out []jose.SignatureAlgorithm
	for _, a := range family(key) {
		if key.Algorithm != "" && string(a) != key.Algorithm {
			continue
		}
		if slices.Contains(allowed, string(a)) {
			out = append(out, a)
		}
	}
	return out
}

// Allows reports whether a signature by key may use alg: whether alg is in
// AlgorithmsFor(key, allowed), without building the list.
func Allows(key jose.JSONWebKey, alg string, allowed []string) bool {
	if key.Algorithm != "" && key.Algorithm != alg {
		return false
	}
	return slices.Contains(family(key), jose.SignatureAlgorithm(alg)) && slices.Contains(allowed, alg)
}

// family returns the algorithms key's type can verify. Read-only results.
func family(key jose.JSONWebKey) []jose.SignatureAlgorithm {
	switch k := key.Key.(type) {
	case ed25519.PublicKey, ed25519.PrivateKey:
		return knownAlgorithms[:1]
	case *ecdsa.PublicKey:
		return ecAlgorithm(k.Curve)
	case *ecdsa.PrivateKey:
		return ecAlgorithm(k.Curve)
	case *rsa.PublicKey:
		if strongRSA(k) {
			return knownAlgorithms[4:]
		}
	case *rsa.PrivateKey:
		if strongRSA(&k.PublicKey) {
			return knownAlgorithms[4:]
		}
	}
	return nil
}

func ecAlgorithm(c elliptic.Curve) []jose.SignatureAlgorithm {
	switch c {
	case elliptic.P256():
		return knownAlgorithms[1:2]
	case elliptic.P384():
		return knownAlgorithms[2:3]
	case elliptic.P521():
		return knownAlgorithms[3:4]
	}
	return nil
}
