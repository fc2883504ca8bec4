package token

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/mandate-dev/mandate/internal/store"
	"github.com/mandate-dev/mandate/jwks"
	"github.com/mandate-dev/mandate/jwt"
)

// memKeys is a minimal in-memory KeyStore for the fuzz target, which runs
// too many iterations per second for a database per worker to matter but
// must not share one SQLite file between fuzz worker processes. Its
// generation counts the changes; it is not safe for concurrent writes.
type memKeys struct {
	keys []store.Key
	gen  int64
}

func (m *memKeys) Generation(context.Context) (int64, error) { return m.gen, nil }

func (m *memKeys) CreateKey(_ context.Context, k store.Key, _ ...store.Event) error {
	m.keys = append(m.keys, k)
	m.gen++
	return nil
}

func (m *memKeys) ListKeys(context.Context) ([]store.Key, error) {
	return append([]store.Key(nil), m.keys...), nil
}

func (m *memKeys) UpdateKey(_ context.Context, kid string, fn func(store.Key) (store.Key, error), _ ...store.Event) (store.Key, error) {
	for i, k := range m.keys {
		if k.KID == kid {
			n, err := fn(k)
			if err != nil {
				return store.Key{}, err
			}
			m.keys[i] = n
			m.gen++
			return n, nil
		}
	}
	return store.Key{}, store.ErrNotFound
}

// FuzzVerify checks that Verify never panics and never accepts a token other
// than the ones signed here by a configured key. EdDSA signatures are not
// malleable and the encoding is canonical, so an accepted own token must be
// byte-identical to a seed; an accepted provider token must at least carry
// the seed's signed header and payload (THREATS.md T08: an ECDSA (r, n−s)
// variant verifies, which is why replay checks key on jti).
func FuzzVerify(f *testing.F) {
	clk := newClock()
	keyring, err := NewKeyring(context.Background(), &memKeys{}, KeyringConfig{Now: clk.Now})
	if err != nil {
		f.Fatal(err)
	}
	idpPriv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	v := &Verifier{
		Issuer: testIssuer, Keyring: keyring, Now: clk.Now, MaxTTL: 15 * time.Minute,
		Providers: []*Provider{{Issuer: testIDP, Audience: testAudience, Algorithms: []string{"ES256"},
			Keys: jwks.Static{"idp": jose.JSONWebKey{Key: &idpPriv.PublicKey, KeyID: "idp", Algorithm: "ES256"}}}},
	}
	fx := &fixture{clk: clk, ownKID: keyring.ActiveKID(), idpKID: "idp", idpPriv: idpPriv}
	own, err := keyring.Sign(context.Background(), testClaims(clk.Now(), 10*time.Minute))
	if err != nil {
		f.Fatal(err)
	}
	idp := fx.signIDP(fx.idpHeader(), fx.idpClaims())
	pub, _ := keyring.PublicKey(keyring.ActiveKID())
	der, _ := x509.MarshalPKIXPublicKey(pub.Key.(ed25519.PublicKey))
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	oc, oh := fx.ownClaims(), fx.ownHeader()

	seeds := []string{
		own, idp, "", ".", "..", "a.b.c", own + ".", own[:len(own)-1],
		compact(mustJSON(with(oh, "alg", "HS256")), mustJSON(oc), hsSigner(pemKey)),
		b64(mustJSON(with(oh, "alg", "none"))) + "." + b64(mustJSON(oc)) + ".",
		compact(mustJSON(with(oh, "jku", "http://127.0.0.1:1/")), mustJSON(oc), hsSigner(nil)),
		compact([]byte(`{"alg":"EdDSA","alg":"none","kid":"x"}`), mustJSON(oc), hsSigner(nil)),
		compact(mustJSON(oh), []byte(`{"sub":"a","SUB":"b","exp":1e309}`), hsSigner(nil)),
		compact(mustJSON(oh), []byte(`{"act":`+nested(300)+`}`), hsSigner(nil)),
		`{"protected":"e30","payload":"e30","signature":"AA"}`,
		strings.Repeat("A", jwt.MaxTokenSize+1),
	}
	for _, s := range seeds {
		f.Add(s)
	}
	idpSigned := idp[:strings.LastIndexByte(idp, '.')]
	f.Fuzz(func(t *testing.T, raw string) {
		got, err := v.Verify(context.Background(), raw)
		if err != nil {
			if got != nil {
				t.Fatalf("result with error %v", err)
			}
			return
		}
		switch {
		case raw == own, raw == idp:
		case got.Own:
			t.Fatalf("accepted an own token that was never signed: %q", raw)
		case !strings.HasPrefix(raw, idpSigned+"."):
			t.Fatalf("accepted a provider token with unsigned content: %q", raw)
		}
	})
}
