package verify_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"maps"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/mandate-dev/mandate/jwks"
	"github.com/mandate-dev/mandate/verify"
)

const (
	issuer   = "https://mandate.example"
	audience = "https://deploy.example"
)

// epoch is the fixed test time.
var epoch = time.Unix(1_750_000_000, 0)

// signFunc signs a JWS signing input.
type signFunc func(input []byte) []byte

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// compact assembles a JWS from raw header and payload JSON, so that tests
// can forge tokens no honest signer would produce.
func compact(header, payload string, sign signFunc) string {
	input := b64([]byte(header)) + "." + b64([]byte(payload))
	return input + "." + b64(sign([]byte(input)))
}

func edSigner(priv ed25519.PrivateKey) signFunc {
	return func(in []byte) []byte { return ed25519.Sign(priv, in) }
}

// esSigner signs in the JWS (P1363) format with hash h, whatever the key's
// curve, so that tests can forge algorithm mismatches.
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

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// fixture holds the issuer's keys and a Verifier trusting them.
type fixture struct {
	ed    ed25519.PrivateKey
	ec    *ecdsa.PrivateKey
	other ed25519.PrivateKey // a key nobody trusts
	keys  jwks.Static
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{ed: ed, ec: ec, other: other, keys: jwks.Static{
		"ed1": {Key: ed.Public(), KeyID: "ed1", Algorithm: "EdDSA", Use: "sig"},
		"ec1": {Key: &ec.PublicKey, KeyID: "ec1", Algorithm: "ES256", Use: "sig"},
	}}
}

func (f *fixture) config() verify.Config {
	return verify.Config{
		Issuer:     issuer,
		Audience:   audience,
		Algorithms: []string{"EdDSA", "ES256"},
		Keys:       f.keys,
		Now:        func() time.Time { return epoch },
	}
}

func (f *fixture) verifier(t testing.TB, edit ...func(*verify.Config)) *verify.Verifier {
	t.Helper()
	cfg := f.config()
	for _, e := range edit {
		e(&cfg)
	}
	v, err := verify.New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// claims returns a valid claim set: Sam → InfraBot → ArgoCD, deploying.
func claims() map[string]any {
	return map[string]any{
		"iss":       issuer,
		"sub":       "user:sam",
		"act":       map[string]any{"sub": "agent:argocd", "act": map[string]any{"sub": "agent:infrabot"}},
		"aud":       audience,
		"scope":     "deploy:create monitoring:read",
		"client_id": "agent:argocd",
		"context":   map[string]any{"environment": "prod", "trigger": "ci_pipeline"},
		"authorization_details": []any{
			map[string]any{"type": "expense_approval", "max_amount": 1000, "currency": "USD"},
		},
		"delegation_id": "dlg_1",
		"jti":           "jti-1",
		"iat":           epoch.Unix(),
		"nbf":           epoch.Unix(),
		"exp":           epoch.Add(10 * time.Minute).Unix(),
	}
}

// with returns a copy of c with name set to value, or removed when value
// is the remove marker.
func with(c map[string]any, kv ...any) map[string]any {
	out := maps.Clone(c)
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == remove {
			delete(out, kv[i].(string))
			continue
		}
		out[kv[i].(string)] = kv[i+1]
	}
	return out
}

type removeMarker struct{}

var remove = removeMarker{}

func edHeader() string { return `{"alg":"EdDSA","kid":"ed1","typ":"at+jwt"}` }
func ecHeader() string { return `{"alg":"ES256","kid":"ec1","typ":"at+jwt"}` }

// token signs claims with the fixture's Ed25519 key.
func (f *fixture) token(c map[string]any) string {
	return compact(edHeader(), mustJSON(c), edSigner(f.ed))
}

// jwk returns the JSON of a public key.
func jwk(k jose.JSONWebKey) string {
	b, err := k.MarshalJSON()
	if err != nil {
		panic(err)
	}
	return string(b)
}
