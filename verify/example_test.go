package verify_test

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/mandate-dev/mandate/jwks"
	"github.com/mandate-dev/mandate/verify"
)

// exampleKey is a fixed Ed25519 key standing in for the issuer's: in tests,
// pass the public half as Config.Keys; in production, leave Keys empty and
// the Verifier fetches the issuer's jwks_uri.
func exampleKey() ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
}

// exampleToken signs claims as the issuer would: typ at+jwt, kid "k1".
func exampleToken(claims map[string]any) string {
	opts := (&jose.SignerOptions{}).WithType("at+jwt").WithHeader("kid", "k1")
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.EdDSA, Key: exampleKey()}, opts)
	if err != nil {
		panic(err)
	}
	payload, _ := json.Marshal(claims)
	jws, err := signer.Sign(payload)
	if err != nil {
		panic(err)
	}
	s, _ := jws.CompactSerialize()
	return s
}

// exampleClaims are Sam's deploy delegated to InfraBot, handed on to ArgoCD.
func exampleClaims() map[string]any {
	now := time.Now()
	return map[string]any{
		"iss": "https://mandate.example", "aud": "https://deploy.example",
		"sub":   "user:sam",
		"act":   map[string]any{"sub": "agent:argocd", "act": map[string]any{"sub": "agent:infrabot"}},
		"scope": "deploy:create", "client_id": "agent:argocd", "jti": "tok-1",
		"context": map[string]any{"environment": "prod", "trigger": "ci_pipeline"},
		"authorization_details": []any{
			map[string]any{"type": "expense_approval", "max_amount": 1000, "currency": "USD"},
		},
		"iat": now.Unix(), "exp": now.Add(10 * time.Minute).Unix(),
	}
}

func exampleVerifier() *verify.Verifier {
	v, err := verify.New(context.Background(), verify.Config{
		Issuer:     "https://mandate.example",
		Audience:   "https://deploy.example",
		Algorithms: []string{"EdDSA"},
		Keys:       jwks.Static{"k1": {Key: exampleKey().Public(), KeyID: "k1", Algorithm: "EdDSA"}},
	})
	if err != nil {
		panic(err)
	}
	return v
}

// Verify a token directly, outside HTTP, and read who acts for whom.
func Example() {
	v := exampleVerifier()
	p, err := v.Verify(context.Background(), exampleToken(exampleClaims()))
	if err != nil {
		fmt.Println("refused:", err)
		return
	}
	fmt.Println("performed by:", p.PerformedBy())
	fmt.Println("on behalf of:", p.OnBehalfOf())
	fmt.Println("chain:", p.Chain)
	fmt.Println("scopes:", p.Scopes)
	// Output:
	// performed by: agent:argocd
	// on behalf of: user:sam
	// chain: [agent:argocd agent:infrabot]
	// scopes: [deploy:create]
}

// Every failure is a sentinel error; the most severe one is reported.
func ExampleVerifier_Verify_errors() {
	v := exampleVerifier()
	claims := exampleClaims()
	claims["exp"] = time.Now().Add(-time.Hour).Unix()
	claims["iat"] = time.Now().Add(-time.Hour - time.Minute).Unix()
	_, err := v.Verify(context.Background(), exampleToken(claims))
	fmt.Println(errors.Is(err, verify.ErrExpired))
	_, err = v.Verify(context.Background(), "eyJhbGciOiJub25lIn0.e30.")
	fmt.Println(errors.Is(err, verify.ErrMalformed))
	// Output:
	// true
	// true
}

// Protect a route: Middleware verifies the token, the rules check it, the
// handler reads the Principal.
func ExampleVerifier_Middleware() {
	v := exampleVerifier()
	deploy := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := verify.FromContext(r.Context())
		fmt.Fprintf(w, "deploying as %s for %s", p.PerformedBy(), p.OnBehalfOf())
	})
	mux := http.NewServeMux()
	mux.Handle("POST /deploys", v.Middleware(verify.RequireScope("deploy:create").Then(deploy)))
	mux.Handle("GET /.well-known/oauth-protected-resource", v.ProtectedResourceMetadata())

	r := httptest.NewRequest(http.MethodPost, "/deploys", nil)
	r.Header.Set("Authorization", "Bearer "+exampleToken(exampleClaims()))
	w := httptest.NewRecorder()
	mux.ServeHTTP(w, r)
	fmt.Println(w.Code, w.Body.String())

	w = httptest.NewRecorder()
	mux.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/deploys", nil))
	fmt.Println(w.Code, w.Header().Get("WWW-Authenticate"))
	// Output:
	// 200 deploying as agent:argocd for user:sam
	// 401 Bearer resource_metadata="https://deploy.example/.well-known/oauth-protected-resource"
}

// RequireScope answers 403 insufficient_scope, naming the scope, when the
// token lacks it.
func ExampleRequireScope() {
	v := exampleVerifier()
	h := v.Middleware(verify.RequireScope("deploy:delete").Then(http.NotFoundHandler()))
	r := httptest.NewRequest(http.MethodDelete, "/deploys/1", nil)
	r.Header.Set("Authorization", "Bearer "+exampleToken(exampleClaims()))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	fmt.Println(w.Code)
	fmt.Println(w.Header().Get("WWW-Authenticate"))
	// Output:
	// 403
	// Bearer error="insufficient_scope", error_description="the access token lacks a required scope", scope="deploy:delete", resource_metadata="https://deploy.example/.well-known/oauth-protected-resource"
}

// RequireContext enforces a rule on the facts the issuer recorded: here,
// production deploys must come from the CI pipeline. DenyActors looks at the
// current actor only.
func ExampleRequireContext() {
	v := exampleVerifier()
	prodNeedsCI := verify.RequireContext(func(c verify.Context) error {
		if c.String("environment") == "prod" && c.String("trigger") != "ci_pipeline" {
			return errors.New("prod deploys come from ci_pipeline")
		}
		return nil
	})
	h := v.Middleware(verify.Chain(prodNeedsCI, verify.DenyActors("agent:cleanup")).Then(
		http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "deployed") })))
	for _, trigger := range []string{"ci_pipeline", "manual"} {
		claims := exampleClaims()
		claims["context"] = map[string]any{"environment": "prod", "trigger": trigger}
		r := httptest.NewRequest(http.MethodPost, "/deploys", nil)
		r.Header.Set("Authorization", "Bearer "+exampleToken(claims))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		fmt.Println(trigger, w.Code)
	}
	// Output:
	// ci_pipeline 200
	// manual 403
}

// CheckAmount holds an amount to the limit the person's delegation carries
// (RFC 9396 authorization_details).
func ExamplePrincipal_CheckAmount() {
	p, err := exampleVerifier().Verify(context.Background(), exampleToken(exampleClaims()))
	if err != nil {
		panic(err)
	}
	fmt.Println(p.CheckAmount("expense_approval", 487.50, "USD"))
	err = p.CheckAmount("expense_approval", 1250, "USD")
	fmt.Println(errors.Is(err, verify.ErrLimitExceeded), err)
	// Output:
	// <nil>
	// true verify: limit exceeded: above the expense_approval limit
}
