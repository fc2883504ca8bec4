package jwt_test

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/mandate-dev/mandate/jwt"
)

// signed returns a compact JWS of payload by key with alg and kid "k".
func signed(t testing.TB, alg jose.SignatureAlgorithm, key any, payload string) string {
	t.Helper()
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, (&jose.SignerOptions{}).WithHeader("kid", "k"))
	if err != nil {
		t.Fatal(err)
	}
	obj, err := s.Sign([]byte(payload))
	if err != nil {
		t.Fatal(err)
	}
	out, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

type testKeys struct {
	ed  ed25519.PrivateKey
	ec  *ecdsa.PrivateKey
	rsa *rsa.PrivateKey
}

func newTestKeys(t testing.TB) testKeys {
	t.Helper()
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	ec, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return testKeys{ed: ed, ec: ec, rsa: rk}
}

func (k testKeys) public() map[jose.SignatureAlgorithm]jose.JSONWebKey {
	return map[jose.SignatureAlgorithm]jose.JSONWebKey{
		jose.EdDSA: {Key: k.ed.Public(), KeyID: "k"},
		jose.ES384: {Key: &k.ec.PublicKey, KeyID: "k"},
		jose.RS256: {Key: &k.rsa.PublicKey, KeyID: "k"},
		jose.PS512: {Key: &k.rsa.PublicKey, KeyID: "k"},
	}
}

func TestVerifyEveryFamily(t *testing.T) {
	k := newTestKeys(t)
	priv := map[jose.SignatureAlgorithm]any{jose.EdDSA: k.ed, jose.ES384: k.ec, jose.RS256: k.rsa, jose.PS512: k.rsa}
	for alg, pub := range k.public() {
		t.Run(string(alg), func(t *testing.T) {
			tok := signed(t, alg, priv[alg], `{"sub":"a","aud":["x","y"],"act":{"sub":"b","act":{"sub":"c"}}}`)
			j, err := jwt.ParseJWS(tok)
			if err != nil {
				t.Fatal(err)
			}
			c, err := j.Verify(pub, jwt.AlgorithmsFor(pub, []string{string(alg)}))
			if err != nil {
				t.Fatal(err)
			}
			chain, err := c.Chain("act", 4)
			if err != nil || strings.Join(chain, ",") != "b,c" {
				t.Fatalf("Chain = %v, %v", chain, err)
			}
			if _, err := c.Chain("act", 1); !errors.Is(err, jwt.ErrClaims) {
				t.Fatalf("Chain(max 1) error = %v, want ErrClaims", err)
			}
			if aud, _, err := c.Audience(); err != nil || len(aud) != 2 {
				t.Fatalf("Audience = %v, %v", aud, err)
			}
			// Flip one signature byte: refused.
			i := strings.LastIndexByte(tok, '.') + 2
			bad := tok[:i] + string("BA"[strings.IndexByte("AB", tok[i])&1]) + tok[i+1:]
			if tok[i] != 'A' && tok[i] != 'B' {
				bad = tok[:i] + "A" + tok[i+1:]
			}
			jb, err := jwt.ParseJWS(bad)
			if err == nil {
				_, err = jb.Verify(pub, jwt.AlgorithmsFor(pub, []string{string(alg)}))
			}
			if !errors.Is(err, jwt.ErrSignature) && !errors.Is(err, jwt.ErrMalformed) {
				t.Fatalf("tampered signature: error = %v", err)
			}
		})
	}
}

func TestAlgorithmsForRefusesWeakRSA(t *testing.T) {
	weak, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	if algs := jwt.AlgorithmsFor(jose.JSONWebKey{Key: &weak.PublicKey}, []string{"RS256"}); len(algs) != 0 {
		t.Fatalf("AlgorithmsFor(RSA-1024) = %v, want none", algs)
	}
}

func TestParseJWSBoundedAllocations(t *testing.T) {
	for name, raw := range map[string]string{
		"one-mib-of-dots": strings.Repeat(".", 1<<20),
		"1e5-segments":    strings.Repeat("a.", 100_000),
		"one-mib-base64":  strings.Repeat("A", 1<<20),
	} {
		if allocs := testing.AllocsPerRun(20, func() { _, _ = jwt.ParseJWS(raw) }); allocs > 3 {
			t.Errorf("%s: %v allocations, want ≤ 3", name, allocs)
		}
	}
}

// FuzzSignatureDifferential holds jwt's own signature check to go-jose's on
// the same input: whatever jwt accepts, go-jose must accept with the same
// key and algorithm (THREATS.md T15).
func FuzzSignatureDifferential(f *testing.F) {
	k := newTestKeys(f)
	priv := map[jose.SignatureAlgorithm]any{jose.EdDSA: k.ed, jose.ES384: k.ec, jose.RS256: k.rsa, jose.PS512: k.rsa}
	for alg, key := range priv {
		f.Add(signed(f, alg, key, `{"sub":"a"}`))
	}
	pubs := k.public()
	f.Fuzz(func(t *testing.T, raw string) {
		j, err := jwt.ParseJWS(raw)
		if err != nil {
			return
		}
		alg := jose.SignatureAlgorithm(j.Header.Algorithm)
		pub, ok := pubs[alg]
		if !ok {
			return
		}
		if j.VerifySignature(pub, []jose.SignatureAlgorithm{alg}) != nil {
			return
		}
		obj, err := jose.ParseSignedCompact(raw, []jose.SignatureAlgorithm{alg})
		if err != nil {
			t.Fatalf("jwt accepted what go-jose cannot parse: %v", err)
		}
		if _, err := obj.Verify(pub.Key); err != nil {
			t.Fatalf("jwt accepted a signature go-jose refuses: %v", err)
		}
	})
}
