package token

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/mandate-dev/mandate/internal/store"
	"github.com/mandate-dev/mandate/internal/store/sqlite"
	"github.com/mandate-dev/mandate/jwks"
)

const (
	testIssuer   = "https://mandate.example"
	testIDP      = "https://idp.example"
	testAudience = "mandate"
)

// clock is a settable clock, safe for concurrent use.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Unix(1_750_000_000, 0)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// openStore opens a real SQLite store in a temporary directory.
func openStore(t testing.TB) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "mandate.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// signFunc signs a JWS signing input.
type signFunc func(input []byte) []byte

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// compact assembles a JWS from raw header and payload JSON. Tests use it to
// forge tokens that no honest signer would produce.
func compact(header, payload []byte, sign signFunc) string {
	input := b64(header) + "." + b64(payload)
	return input + "." + b64(sign([]byte(input)))
}

func edSigner(priv ed25519.PrivateKey) signFunc {
	return func(in []byte) []byte { return ed25519.Sign(priv, in) }
}

// esSigner signs in the JWS (P1363) format with the given hash, whatever the
// key's curve, so that tests can forge algorithm mismatches.
func esSigner(priv *ecdsa.PrivateKey, h crypto.Hash) signFunc {
	return func(in []byte) []byte {
		var digest []byte
		switch h {
		case crypto.SHA384:
			d := sha512.Sum384(in)
			digest = d[:]
		default:
			d := sha256.Sum256(in)
			digest = d[:]
		}
		r, s, err := ecdsa.Sign(rand.Reader, priv, digest)
		if err != nil {
			panic(err)
		}
		size := (priv.Curve.Params().BitSize + 7) / 8
		out := make([]byte, 2*size)
		r.FillBytes(out[:size])
		s.FillBytes(out[size:])
		return out
	}
}

func hsSigner(key []byte) signFunc {
	return func(in []byte) []byte {
		m := hmac.New(sha256.New, key)
		m.Write(in)
		return m.Sum(nil)
	}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// del marks a member to delete in with.
type delMarker struct{}

var del delMarker

// with returns a copy of m with the given key/value pairs set (del removes).
func with(m map[string]any, kv ...any) map[string]any {
	out := make(map[string]any, len(m)+len(kv)/2)
	for k, v := range m {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if _, ok := kv[i+1].(delMarker); ok {
			delete(out, kv[i].(string))
			continue
		}
		out[kv[i].(string)] = kv[i+1]
	}
	return out
}

// counter is an HTTP server that counts hits: a JWKS endpoint or a canary.
type counter struct {
	*httptest.Server
	hits atomic.Int64
	body atomic.Pointer[[]byte]
}

func newCounter(t testing.TB, body []byte) *counter {
	t.Helper()
	c := &counter{}
	c.body.Store(&body)
	c.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		c.hits.Add(1)
		b := *c.body.Load()
		if b == nil {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		_, _ = w.Write(b)
	}))
	t.Cleanup(c.Close)
	return c
}

// fixture is Mandate's keyring, an ES256 identity provider behind an
// httptest JWKS server, and a canary that must never be contacted.
type fixture struct {
	clk      *clock
	store    *sqlite.Store
	keyring  *Keyring
	ownKID   string
	ownPriv  ed25519.PrivateKey
	idpKID   string
	idpPriv  *ecdsa.PrivateKey
	idpJWKS  *counter
	canary   *counter
	verifier *Verifier
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	f := &fixture{clk: newClock(), store: openStore(t)}
	var err error
	f.keyring, err = NewKeyring(t.Context(), f.store, KeyringConfig{Now: f.clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	f.ownKID = f.keyring.ActiveKID()
	f.ownPriv = privateKey(t, f.store, f.ownKID).(ed25519.PrivateKey)

	f.idpPriv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	f.idpKID = "idp-key-1"
	set := mustJSON(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
		{Key: &f.idpPriv.PublicKey, KeyID: f.idpKID, Algorithm: "ES256", Use: "sig"},
	}})
	f.idpJWKS = newCounter(t, set)
	f.canary = newCounter(t, set)
	cache, err := jwks.New(jwks.Config{URI: f.idpJWKS.URL, Client: f.idpJWKS.Client(), Now: f.clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	f.verifier = &Verifier{
		Issuer:    testIssuer,
		Keyring:   f.keyring,
		Providers: []*Provider{{Issuer: testIDP, Audience: testAudience, Algorithms: []string{"ES256"}, Keys: cache}},
		MaxTTL:    15 * time.Minute,
		Now:       f.clk.Now,
	}
	return f
}

// privateKey reads a key's private half from the store.
func privateKey(t testing.TB, s store.Keys, kid string) crypto.Signer {
	t.Helper()
	keys, err := s.ListKeys(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if k.KID == kid {
			p, err := x509.ParsePKCS8PrivateKey(k.Private)
			if err != nil {
				t.Fatal(err)
			}
			return p.(crypto.Signer)
		}
	}
	t.Fatalf("no key %s", kid)
	return nil
}

func (f *fixture) now() int64 { return f.clk.Now().Unix() }

func (f *fixture) ownHeader() map[string]any {
	return map[string]any{"alg": "EdDSA", "kid": f.ownKID, "typ": "at+jwt"}
}

func (f *fixture) ownClaims() map[string]any {
	now := f.now()
	return map[string]any{
		"iss": testIssuer, "sub": "user:sam", "aud": "agent:argocd",
		"act":       map[string]any{"sub": "agent:infrabot"},
		"scope":     "monitoring:read deploy:create",
		"client_id": "agent:infrabot", "jti": "jti-1", "delegation_id": "dlg_1",
		"context": map[string]any{"environment": "prod", "trigger": "ci_pipeline"},
		"iat":     now, "nbf": now, "exp": now + 600,
	}
}

func (f *fixture) signOwn(h, c map[string]any) string {
	return compact(mustJSON(h), mustJSON(c), edSigner(f.ownPriv))
}

func (f *fixture) signOwnRaw(payload string) string {
	return compact(mustJSON(f.ownHeader()), []byte(payload), edSigner(f.ownPriv))
}

func (f *fixture) idpHeader() map[string]any {
	return map[string]any{"alg": "ES256", "kid": f.idpKID, "typ": "JWT"}
}

func (f *fixture) idpClaims() map[string]any {
	now := f.now()
	return map[string]any{
		"iss": testIDP, "sub": "user:sam", "aud": []string{"other", testAudience},
		"scope": []string{"openid", "deploy:create"},
		"iat":   now, "exp": now + 3600,
		"may_act": map[string]any{"sub": "agent:infrabot"},
	}
}

func (f *fixture) signIDP(h, c map[string]any) string {
	return compact(mustJSON(h), mustJSON(c), esSigner(f.idpPriv, crypto.SHA256))
}

// p256Order is n of P-256, for malleability cases.
var p256Order = elliptic.P256().Params().N

// malleate returns the (r, n−s) variant of an ES256 token's signature.
func malleate(t testing.TB, tok string) string {
	t.Helper()
	dot := len(tok) - 1
	for tok[dot] != '.' {
		dot--
	}
	sig, err := base64.RawURLEncoding.DecodeString(tok[dot+1:])
	if err != nil {
		t.Fatal(err)
	}
	s := new(big.Int).SetBytes(sig[32:])
	s.Sub(p256Order, s)
	s.FillBytes(sig[32:])
	return tok[:dot+1] + b64(sig)
}
