package forward_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"testing"
	"time"

	"github.com/mandate-dev/mandate/jwks"
	"github.com/mandate-dev/mandate/verify"
)

const (
	issuer   = "https://mandate.example"
	audience = "https://deploy.example"
	// The resource server's credentials at the issuer: characters that
	// RFC 6749 §2.3.1 has form-urlencoded before Basic authentication.
	feedClientID = "rs:deploy api"
	feedSecret   = "s3cr:t/+%"
)

// epoch is the fixed test time.
var epoch = time.Unix(1_750_000_000, 0)

// recordID is the shape of Record.ID.
var recordID = regexp.MustCompile(`^req_[0-9a-f]{32}$`)

// fixture holds the issuer's key and mints its tokens.
type fixture struct {
	ed   ed25519.PrivateKey
	keys jwks.Static
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{ed: ed, keys: jwks.Static{"ed1": {Key: ed.Public(), KeyID: "ed1", Algorithm: "EdDSA", Use: "sig"}}}
}

func (f *fixture) verifier(t testing.TB, edit ...func(*verify.Config)) *verify.Verifier {
	t.Helper()
	cfg := verify.Config{Issuer: issuer, Audience: audience, Algorithms: []string{"EdDSA"}, Keys: f.keys, Now: func() time.Time { return epoch }}
	for _, e := range edit {
		e(&cfg)
	}
	v, err := verify.New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// token signs claims with the fixture's key.
func (f *fixture) token(c map[string]any) string {
	b64 := base64.RawURLEncoding.EncodeToString
	payload, err := json.Marshal(c)
	if err != nil {
		panic(err)
	}
	input := b64([]byte(`{"alg":"EdDSA","kid":"ed1","typ":"at+jwt"}`)) + "." + b64(payload)
	return input + "." + b64(ed25519.Sign(f.ed, []byte(input)))
}

// claims returns a valid claim set: Sam → InfraBot → ArgoCD, deploying.
func claims() map[string]any {
	return map[string]any{
		"iss":           issuer,
		"sub":           "user:sam",
		"act":           map[string]any{"sub": "agent:argocd", "act": map[string]any{"sub": "agent:infrabot"}},
		"aud":           audience,
		"scope":         "deploy:create monitoring:read",
		"client_id":     "agent:argocd",
		"context":       map[string]any{"environment": "prod", "trigger": "ci_pipeline"},
		"delegation_id": "dlg_1",
		"jti":           "jti-1",
		"iat":           epoch.Unix(),
		"nbf":           epoch.Unix(),
		"exp":           epoch.Add(10 * time.Minute).Unix(),
	}
}

// request is a POST /deploys with token as its bearer token.
func request(token string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/deploys", nil)
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	return r
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}
