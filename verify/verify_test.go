package verify_test

import (
	"crypto"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mandate-dev/mandate/verify"
)

// nestedAct returns an act claim n levels deep.
func nestedAct(n int) any {
	var a any
	for i := n; i >= 1; i-- {
		m := map[string]any{"sub": fmt.Sprintf("agent:%d", i)}
		if a != nil {
			m["act"] = a
		}
		a = m
	}
	return a
}

func TestVerifyAccepts(t *testing.T) {
	f := newFixture(t)
	v := f.verifier(t)
	got, err := v.Verify(t.Context(), f.token(claims()))
	if err != nil {
		t.Fatal(err)
	}
	want := &verify.Principal{
		Subject:      "user:sam",
		Actor:        "agent:argocd",
		Chain:        []string{"agent:argocd", "agent:infrabot"},
		Scopes:       []string{"deploy:create", "monitoring:read"},
		Audience:     []string{audience},
		ClientID:     "agent:argocd",
		Context:      verify.Context{"environment": "prod", "trigger": "ci_pipeline"},
		DelegationID: "dlg_1",
		JTI:          "jti-1",
		KeyID:        "ed1",
		Issuer:       issuer,
		IssuedAt:     epoch,
		NotBefore:    epoch,
		Expiry:       epoch.Add(10 * time.Minute),
	}
	if diff := cmp.Diff(want, got, cmp.FilterPath(func(p cmp.Path) bool {
		return p.String() == "AuthorizationDetails"
	}, cmp.Ignore())); diff != "" {
		t.Errorf("Principal (-want +got):\n%s", diff)
	}
	if got.PerformedBy() != "agent:argocd" || got.OnBehalfOf() != "user:sam" {
		t.Errorf("PerformedBy, OnBehalfOf = %q, %q", got.PerformedBy(), got.OnBehalfOf())
	}
	if err := got.CheckAmount("expense_approval", 487.50, "USD"); err != nil {
		t.Errorf("CheckAmount(487.50) = %v", err)
	}
	if err := got.CheckAmount("expense_approval", 1250, "USD"); !errors.Is(err, verify.ErrLimitExceeded) {
		t.Errorf("CheckAmount(1250) = %v, want ErrLimitExceeded", err)
	}
	if err := got.CheckAmount("expense_approval", 10, "EUR"); !errors.Is(err, verify.ErrLimitExceeded) {
		t.Errorf("CheckAmount(EUR) = %v, want ErrLimitExceeded", err)
	}
	if err := got.CheckAmount("travel", 1, "USD"); !errors.Is(err, verify.ErrLimitExceeded) {
		t.Errorf("CheckAmount(travel) = %v, want ErrLimitExceeded", err)
	}
}

func TestNewRefusesIncompleteConfig(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		name string
		edit func(*verify.Config)
	}{
		{name: "fail/no-issuer", edit: func(c *verify.Config) { c.Issuer = "" }},
		{name: "fail/no-audience", edit: func(c *verify.Config) { c.Audience = "" }},
		{name: "fail/no-algorithms", edit: func(c *verify.Config) { c.Algorithms = nil }},
		{name: "fail/alg-none", edit: func(c *verify.Config) { c.Algorithms = []string{"none"} }},
		{name: "fail/alg-hs256", edit: func(c *verify.Config) { c.Algorithms = []string{"HS256"} }},
		{name: "fail/negative-depth", edit: func(c *verify.Config) { c.MaxDepth = -1 }},
		{name: "fail/no-keys-non-url-issuer", edit: func(c *verify.Config) { c.Keys = nil; c.Issuer = "mandate" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := f.config()
			tc.edit(&cfg)
			if _, err := verify.New(t.Context(), cfg); err == nil {
				t.Fatal("New accepted the config")
			}
		})
	}
}

// verifyCase is one row of the threat tables: a token and the sentinel
// Verify must return (nil: accepted).
type verifyCase struct {
	name  string
	token string
	want  error
}

func runCases(t *testing.T, v *verify.Verifier, cases []verifyCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := v.Verify(t.Context(), tc.token)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("Verify error = %v, want %v", err, tc.want)
			}
			if p != nil {
				t.Fatal("Verify returned a Principal with an error")
			}
		})
	}
}

func TestVerifyForgery(t *testing.T) { // THREATS.md T01–T05
	f := newFixture(t)
	payload := mustJSON(claims())
	var canaryHits atomic.Int64
	canary := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { canaryHits.Add(1) }))
	defer canary.Close()

	pubDER, err := x509.MarshalPKIXPublicKey(&f.ec.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	ecJWK := jwk(f.keys["ec1"])
	xy := elliptic.Marshal(elliptic.P256(), f.ec.X, f.ec.Y)[1:] //nolint:staticcheck // raw x‖y is the attack input
	hs := func(kid string, key []byte) string {
		return compact(`{"alg":"HS256","kid":"`+kid+`","typ":"at+jwt"}`, payload, hsSigner(key))
	}
	attackerJWK := jwk(f.keys["ed1"])
	edSig := edSigner(f.ed)
	cases := []verifyCase{
		{name: "ok/valid", token: f.token(claims())},
		// T01
		{name: "fail/alg-none-no-signature", token: b64([]byte(`{"alg":"none","kid":"ed1","typ":"at+jwt"}`)) + "." + b64([]byte(payload)) + ".", want: verify.ErrMalformed},
		{name: "fail/alg-none", token: compact(`{"alg":"none","kid":"ed1","typ":"at+jwt"}`, payload, edSig), want: verify.ErrAlgorithm},
		{name: "fail/alg-None", token: compact(`{"alg":"None","kid":"ed1","typ":"at+jwt"}`, payload, edSig), want: verify.ErrAlgorithm},
		{name: "fail/alg-NONE", token: compact(`{"alg":"NONE","kid":"ed1","typ":"at+jwt"}`, payload, edSig), want: verify.ErrAlgorithm},
		{name: "fail/empty-signature", token: strings.TrimRight(f.token(claims()), "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"), want: verify.ErrMalformed},
		// T02: HS256 keyed with our public key in every encoding.
		{name: "fail/hs256-public-key-pem", token: hs("ec1", pubPEM), want: verify.ErrAlgorithm},
		{name: "fail/hs256-public-key-der", token: hs("ec1", pubDER), want: verify.ErrAlgorithm},
		{name: "fail/hs256-public-key-jwk", token: hs("ec1", []byte(ecJWK)), want: verify.ErrAlgorithm},
		{name: "fail/hs256-public-key-xy", token: hs("ec1", xy), want: verify.ErrAlgorithm},
		{name: "fail/hs256-ed25519-raw", token: hs("ed1", []byte(f.ed.Public().(ed25519.PublicKey))), want: verify.ErrAlgorithm},
		// T03: the algorithm comes from the key, never the header.
		{name: "fail/es384-on-es256-key", token: compact(`{"alg":"ES384","kid":"ec1","typ":"at+jwt"}`, payload, esSigner(f.ec, crypto.SHA384)), want: verify.ErrAlgorithm},
		{name: "fail/es512-on-es256-key", token: compact(`{"alg":"ES512","kid":"ec1","typ":"at+jwt"}`, payload, esSigner(f.ec, crypto.SHA256)), want: verify.ErrAlgorithm},
		{name: "fail/ps256-on-es256-key", token: compact(`{"alg":"PS256","kid":"ec1","typ":"at+jwt"}`, payload, esSigner(f.ec, crypto.SHA256)), want: verify.ErrAlgorithm},
		{name: "fail/rs256-on-es256-key", token: compact(`{"alg":"RS256","kid":"ec1","typ":"at+jwt"}`, payload, esSigner(f.ec, crypto.SHA256)), want: verify.ErrAlgorithm},
		{name: "fail/lowercase-es256", token: compact(`{"alg":"es256","kid":"ec1","typ":"at+jwt"}`, payload, esSigner(f.ec, crypto.SHA256)), want: verify.ErrAlgorithm},
		{name: "fail/eddsa-on-es256-key", token: compact(`{"alg":"EdDSA","kid":"ec1","typ":"at+jwt"}`, payload, edSig), want: verify.ErrAlgorithm},
		{name: "fail/es256-on-ed25519-key", token: compact(`{"alg":"ES256","kid":"ed1","typ":"at+jwt"}`, payload, esSigner(f.ec, crypto.SHA256)), want: verify.ErrAlgorithm},
		// T04: keys named by the token are never fetched or trusted.
		{name: "fail/header-jwk", token: compact(`{"alg":"EdDSA","kid":"ed1","typ":"at+jwt","jwk":`+attackerJWK+`}`, payload, edSig), want: verify.ErrMalformed},
		{name: "fail/header-jku", token: compact(`{"alg":"EdDSA","kid":"ed1","typ":"at+jwt","jku":"`+canary.URL+`"}`, payload, edSig), want: verify.ErrMalformed},
		{name: "fail/header-x5u", token: compact(`{"alg":"EdDSA","kid":"ed1","typ":"at+jwt","x5u":"`+canary.URL+`"}`, payload, edSig), want: verify.ErrMalformed},
		{name: "fail/header-x5c", token: compact(`{"alg":"EdDSA","kid":"ed1","typ":"at+jwt","x5c":["MIIB"]}`, payload, edSig), want: verify.ErrMalformed},
		{name: "fail/header-x5t", token: compact(`{"alg":"EdDSA","kid":"ed1","typ":"at+jwt","x5t":"abc"}`, payload, edSig), want: verify.ErrMalformed},
		{name: "fail/header-JKU-uppercase", token: compact(`{"alg":"EdDSA","kid":"ed1","typ":"at+jwt","JKU":"`+canary.URL+`"}`, payload, edSig), want: verify.ErrMalformed},
		{name: "fail/header-jku-escaped", token: compact(`{"alg":"EdDSA","kid":"ed1","typ":"at+jwt","\u006aku":"`+canary.URL+`"}`, payload, edSig), want: verify.ErrMalformed},
		// T05: kid is only ever a map key.
		{name: "fail/kid-path-traversal", token: compact(`{"alg":"EdDSA","kid":"../../../../dev/null","typ":"at+jwt"}`, payload, edSig), want: verify.ErrUnknownKey},
		{name: "fail/kid-proc", token: compact(`{"alg":"EdDSA","kid":"/proc/sys/kernel/randomize_va_space","typ":"at+jwt"}`, payload, edSig), want: verify.ErrUnknownKey},
		{name: "fail/kid-sql", token: compact(`{"alg":"EdDSA","kid":"' OR '1'='1","typ":"at+jwt"}`, payload, edSig), want: verify.ErrUnknownKey},
		{name: "fail/kid-10kb", token: compact(`{"alg":"EdDSA","kid":"`+strings.Repeat("k", 10<<10)+`","typ":"at+jwt"}`, payload, edSig), want: verify.ErrMalformed},
		{name: "fail/kid-300b", token: compact(`{"alg":"EdDSA","kid":"`+strings.Repeat("k", 300)+`","typ":"at+jwt"}`, payload, edSig), want: verify.ErrMalformed},
		{name: "fail/kid-nul", token: compact(`{"alg":"EdDSA","kid":"ed1\u0000","typ":"at+jwt"}`, payload, edSig), want: verify.ErrUnknownKey},
		{name: "fail/kid-control", token: compact(`{"alg":"EdDSA","kid":"ed1\r\n","typ":"at+jwt"}`, payload, edSig), want: verify.ErrUnknownKey},
		{name: "fail/kid-unknown", token: compact(`{"alg":"EdDSA","kid":"ed2","typ":"at+jwt"}`, payload, edSig), want: verify.ErrUnknownKey},
		{name: "fail/kid-missing", token: compact(`{"alg":"EdDSA","typ":"at+jwt"}`, payload, edSig), want: verify.ErrMalformed},
		{name: "fail/kid-number", token: compact(`{"alg":"EdDSA","kid":1,"typ":"at+jwt"}`, payload, edSig), want: verify.ErrMalformed},
	}
	runCases(t, f.verifier(t), cases)
	if n := canaryHits.Load(); n != 0 {
		t.Errorf("canary recorded %d fetches, want 0", n)
	}
}

// TestCheckAmountRefusesMissingConstraint (THREATS T82): an entry that
// lacks a constraint CheckAmount needs (the currency, the maximum) allows
// nothing, instead of allowing the amount in any currency.
func TestCheckAmountRefusesMissingConstraint(t *testing.T) {
	f := newFixture(t)
	v := f.verifier(t)
	for _, tc := range []struct {
		name    string
		details []any
		wantOK  bool
	}{
		{name: "ok/usd-limit", details: []any{map[string]any{"type": "expense_approval", "max_amount": 1000, "currency": "USD"}}, wantOK: true},
		{name: "fail/no-currency", details: []any{map[string]any{"type": "expense_approval", "max_amount": 1000}}},
		{name: "fail/currency-not-a-string", details: []any{map[string]any{"type": "expense_approval", "max_amount": 1000, "currency": 1}}},
		{name: "fail/no-max-amount", details: []any{map[string]any{"type": "expense_approval", "currency": "KWD"}}},
		{name: "fail/other-type", details: []any{map[string]any{"type": "travel", "max_amount": 1000, "currency": "KWD"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := claims()
			c["authorization_details"] = tc.details
			p, err := v.Verify(t.Context(), f.token(c))
			if err != nil {
				t.Fatal(err)
			}
			err = p.CheckAmount("expense_approval", 1000, "KWD")
			if tc.wantOK {
				err = p.CheckAmount("expense_approval", 1000, "USD")
			}
			if got := err == nil; got != tc.wantOK {
				t.Errorf("CheckAmount(1000) = %v, want allowed %v", err, tc.wantOK)
			}
			if !tc.wantOK && !errors.Is(err, verify.ErrLimitExceeded) {
				t.Errorf("err = %v, want ErrLimitExceeded", err)
			}
		})
	}
}
