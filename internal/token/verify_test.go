package token

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/google/go-cmp/cmp"

	"github.com/mandate-dev/mandate/actor"
	"github.com/mandate-dev/mandate/jwt"
)

// nested returns an act claim nested n levels deep, as raw JSON.
func nested(n int) string {
	return strings.Repeat(`{"sub":"agent:a","act":`, n-1) + `{"sub":"agent:a"}` + strings.Repeat("}", n-1)
}

// flip changes the last character of the token.
func flipLast(tok string, c byte) string { return tok[:len(tok)-1] + string(c) }

func TestVerify(t *testing.T) {
	f := newFixture(t)
	pubDER, err := x509.MarshalPKIXPublicKey(f.ownPriv.Public())
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	pubJWK, _ := f.keyring.PublicKey(f.ownKID)
	pubJWKJSON := mustJSON(pubJWK)
	idpDER, _ := x509.MarshalPKIXPublicKey(&f.idpPriv.PublicKey)
	idpJWKJSON := mustJSON(jose.JSONWebKey{Key: &f.idpPriv.PublicKey, KeyID: f.idpKID, Algorithm: "ES256"})
	_, otherEdPriv, _ := ed25519.GenerateKey(rand.Reader)
	otherEC, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	now := f.now()
	oh, oc := f.ownHeader(), f.ownClaims()
	ih, ic := f.idpHeader(), f.idpClaims()

	tests := []struct {
		name  string
		token string
		want  error // nil: accepted
	}{
		{name: "ok/own", token: f.signOwn(oh, oc)},
		{name: "ok/own-signed-by-keyring", token: mustSign(t, f.keyring, &Claims{Issuer: testIssuer, Subject: "user:sam", Audience: "a", ClientID: "agent:x", JTI: "j", IssuedAt: now, NotBefore: now, Expiry: now + 60})},
		{name: "ok/idp", token: f.signIDP(ih, ic)},
		{name: "ok/idp-aud-string-no-jti", token: f.signIDP(ih, with(ic, "aud", testAudience, "scope", "openid"))},
		{name: "ok/idp-malleated-es256-signature", token: malleate(t, f.signIDP(ih, ic))},

		// T01: alg none.
		{name: "fail/alg-none-empty-signature", token: b64(mustJSON(with(oh, "alg", "none"))) + "." + b64(mustJSON(oc)) + ".", want: ErrMalformed},
		{name: "fail/alg-none", token: compact(mustJSON(with(oh, "alg", "none")), mustJSON(oc), edSigner(f.ownPriv)), want: ErrAlgorithm},
		{name: "fail/alg-None", token: compact(mustJSON(with(oh, "alg", "None")), mustJSON(oc), edSigner(f.ownPriv)), want: ErrAlgorithm},
		{name: "fail/alg-NONE", token: compact(mustJSON(with(oh, "alg", "NONE")), mustJSON(oc), edSigner(f.ownPriv)), want: ErrAlgorithm},
		{name: "fail/alg-empty", token: compact(mustJSON(with(oh, "alg", "")), mustJSON(oc), edSigner(f.ownPriv)), want: ErrMalformed},

		// T02: HS256 MAC'd with our public key.
		{name: "fail/hs256-key-confusion-pem", token: compact(mustJSON(with(oh, "alg", "HS256")), mustJSON(oc), hsSigner(pubPEM)), want: ErrAlgorithm},
		{name: "fail/hs256-key-confusion-der", token: compact(mustJSON(with(oh, "alg", "HS256")), mustJSON(oc), hsSigner(pubDER)), want: ErrAlgorithm},
		{name: "fail/hs256-key-confusion-jwk-json", token: compact(mustJSON(with(oh, "alg", "HS256")), mustJSON(oc), hsSigner(pubJWKJSON)), want: ErrAlgorithm},
		{name: "fail/hs256-key-confusion-raw", token: compact(mustJSON(with(oh, "alg", "HS256")), mustJSON(oc), hsSigner(f.ownPriv.Public().(ed25519.PublicKey))), want: ErrAlgorithm},
		{name: "fail/idp-hs256-key-confusion-der", token: compact(mustJSON(with(ih, "alg", "HS256")), mustJSON(ic), hsSigner(idpDER)), want: ErrAlgorithm},
		{name: "fail/idp-hs256-key-confusion-jwk-json", token: compact(mustJSON(with(ih, "alg", "HS256")), mustJSON(ic), hsSigner(idpJWKJSON)), want: ErrAlgorithm},

		// T03: the algorithm comes from the key.
		{name: "fail/es384-header-on-es256-key", token: compact(mustJSON(with(ih, "alg", "ES384")), mustJSON(ic), esSigner(f.idpPriv, crypto.SHA384)), want: ErrAlgorithm},
		{name: "fail/es512-header-on-es256-key", token: compact(mustJSON(with(ih, "alg", "ES512")), mustJSON(ic), esSigner(f.idpPriv, crypto.SHA256)), want: ErrAlgorithm},
		{name: "fail/rs256-header-on-es256-key", token: compact(mustJSON(with(ih, "alg", "RS256")), mustJSON(ic), esSigner(f.idpPriv, crypto.SHA256)), want: ErrAlgorithm},
		{name: "fail/ps256-header-on-es256-key", token: compact(mustJSON(with(ih, "alg", "PS256")), mustJSON(ic), esSigner(f.idpPriv, crypto.SHA256)), want: ErrAlgorithm},
		{name: "fail/lowercase-es256-header", token: compact(mustJSON(with(ih, "alg", "es256")), mustJSON(ic), esSigner(f.idpPriv, crypto.SHA256)), want: ErrAlgorithm},
		{name: "fail/es256-header-on-eddsa-key", token: compact(mustJSON(with(oh, "alg", "ES256")), mustJSON(oc), esSigner(otherEC, crypto.SHA256)), want: ErrAlgorithm},

		// T04, T13: header members that fetch or change processing.
		{name: "fail/jku-header", token: f.signOwn(with(oh, "jku", f.canary.URL), oc), want: ErrMalformed},
		{name: "fail/x5u-header", token: f.signOwn(with(oh, "x5u", f.canary.URL), oc), want: ErrMalformed},
		{name: "fail/jwk-header", token: f.signOwn(with(oh, "jwk", json.RawMessage(pubJWKJSON)), oc), want: ErrMalformed},
		{name: "fail/x5c-header", token: f.signOwn(with(oh, "x5c", []string{"MIIB"}), oc), want: ErrMalformed},
		{name: "fail/x5t-header", token: f.signOwn(with(oh, "x5t", "abc"), oc), want: ErrMalformed},
		{name: "fail/JKU-uppercase-header", token: f.signOwn(with(oh, "JKU", f.canary.URL), oc), want: ErrMalformed},
		{name: "fail/crit-header", token: f.signOwn(with(oh, "crit", []string{"x"}), oc), want: ErrMalformed},
		{name: "fail/b64-false-header", token: f.signOwn(with(oh, "b64", false), oc), want: ErrMalformed},
		{name: "fail/cty-jwt-header", token: f.signOwn(with(oh, "cty", "JWT"), oc), want: ErrMalformed},
		{name: "fail/zip-header", token: f.signOwn(with(oh, "zip", "DEF"), oc), want: ErrMalformed},
		{name: "fail/enc-header", token: f.signOwn(with(oh, "enc", "A128GCM"), oc), want: ErrMalformed},
		{name: "fail/p2c-header", token: f.signOwn(with(oh, "p2c", 2000000000), oc), want: ErrMalformed},
		{name: "fail/idp-jku-header", token: f.signIDP(with(ih, "jku", f.canary.URL), ic), want: ErrMalformed},
		{name: "fail/five-segment-jwe", token: "eyJhbGciOiJkaXIiLCJlbmMiOiJBMTI4R0NNIn0..aGVsbG8.aGVsbG8.aGVsbG8", want: ErrMalformed},

		// T05: kid is only a map key.
		{name: "fail/kid-path-traversal", token: f.signOwn(with(oh, "kid", "../../../../dev/null"), oc), want: ErrUnknownKey},
		{name: "fail/kid-proc-path", token: f.signOwn(with(oh, "kid", "/proc/sys/kernel/randomize_va_space"), oc), want: ErrUnknownKey},
		{name: "fail/kid-sql-injection", token: f.signOwn(with(oh, "kid", "' OR '1'='1"), oc), want: ErrUnknownKey},
		{name: "fail/kid-nul", token: f.signOwn(with(oh, "kid", "a\x00b"), oc), want: ErrUnknownKey},
		{name: "fail/kid-10kb", token: f.signOwn(with(oh, "kid", strings.Repeat("k", 10<<10)), oc), want: ErrMalformed},
		{name: "fail/kid-missing", token: f.signOwn(with(oh, "kid", del), oc), want: ErrMalformed},
		{name: "fail/kid-number", token: f.signOwn(with(oh, "kid", 1), oc), want: ErrMalformed},

		// T06: structure.
		{name: "fail/two-segments", token: b64(mustJSON(oh)) + "." + b64(mustJSON(oc)), want: ErrMalformed},
		{name: "fail/four-segments", token: f.signOwn(oh, oc) + ".AAAA", want: ErrMalformed},
		{name: "fail/trailing-dot", token: f.signOwn(oh, oc) + ".", want: ErrMalformed},
		{name: "fail/empty-header", token: "." + b64(mustJSON(oc)) + ".AAAA", want: ErrMalformed},
		{name: "fail/empty-payload", token: compact(mustJSON(oh), nil, edSigner(f.ownPriv)), want: ErrMalformed},
		{name: "fail/json-serialization", token: string(mustJSON(map[string]string{"protected": b64(mustJSON(oh)), "payload": b64(mustJSON(oc)), "signature": "AAAA"})), want: ErrMalformed},
		{name: "fail/padding", token: f.signOwn(oh, oc) + "==", want: ErrMalformed},
		{name: "fail/whitespace", token: " " + f.signOwn(oh, oc), want: ErrMalformed},
		{name: "fail/inner-newline", token: strings.Replace(f.signOwn(oh, oc), ".", ".\n", 1), want: ErrMalformed},
		{name: "fail/std-alphabet", token: strings.NewReplacer("-", "+", "_", "/").Replace(f.signOwn(oh, oc)) + "+/", want: ErrMalformed},
		{name: "fail/non-canonical-base64-signature", token: flipLast(f.signOwn(oh, oc), nonCanonical(f.signOwn(oh, oc))), want: ErrMalformed},
		{name: "fail/oversized", token: f.signOwn(oh, with(oc, "pad", strings.Repeat("a", jwt.MaxTokenSize))), want: ErrMalformed},
		{name: "fail/header-not-object", token: compact([]byte(`["alg"]`), mustJSON(oc), edSigner(f.ownPriv)), want: ErrMalformed},
		{name: "fail/payload-not-object", token: f.signOwnRaw(`"hello"`), want: ErrUnknownIssuer},

		// T09: claims.
		{name: "fail/exp-missing", token: f.signOwn(oh, with(oc, "exp", del)), want: ErrClaims},
		{name: "fail/exp-string", token: f.signOwn(oh, with(oc, "exp", "9999999999")), want: ErrClaims},
		{name: "fail/exp-1e309", token: f.signOwnRaw(strings.Replace(string(mustJSON(with(oc, "exp", 0))), `"exp":0`, `"exp":1e309`, 1)), want: ErrMalformed},
		{name: "fail/exp-1e400", token: f.signOwnRaw(strings.Replace(string(mustJSON(with(oc, "exp", 0))), `"exp":0`, `"exp":1e400`, 1)), want: ErrMalformed},
		{name: "fail/exp-exponent", token: f.signOwnRaw(strings.Replace(string(mustJSON(with(oc, "exp", 0))), `"exp":0`, `"exp":1.75e9`, 1)), want: ErrClaims},
		{name: "fail/exp-fraction", token: f.signOwn(oh, with(oc, "exp", float64(now)+600.5)), want: ErrClaims},
		{name: "fail/exp-negative", token: f.signOwn(oh, with(oc, "exp", -1)), want: ErrClaims},
		{name: "fail/exp-40-digits", token: f.signOwnRaw(strings.Replace(string(mustJSON(with(oc, "exp", 0))), `"exp":0`, `"exp":1234567890123456789012345678901234567890`, 1)), want: ErrClaims},
		{name: "fail/expired", token: f.signOwn(oh, with(oc, "exp", now-61)), want: ErrExpired},
		{name: "ok/expired-within-leeway", token: f.signOwn(oh, with(oc, "exp", now-30))},
		{name: "fail/nbf-61s-future", token: f.signOwn(oh, with(oc, "nbf", now+61)), want: ErrNotYetValid},
		{name: "ok/nbf-8s-future", token: f.signOwn(oh, with(oc, "nbf", now+8))},
		{name: "fail/iat-61s-future", token: f.signOwn(oh, with(oc, "iat", now+61)), want: ErrNotYetValid},
		{name: "fail/iat-missing", token: f.signOwn(oh, with(oc, "iat", del)), want: ErrClaims},
		{name: "fail/lifetime-above-max", token: f.signOwn(oh, with(oc, "exp", now+3600)), want: ErrClaims},
		{name: "fail/iss-trailing-slash", token: f.signOwn(oh, with(oc, "iss", testIssuer+"/")), want: ErrUnknownIssuer},
		{name: "fail/iss-case", token: f.signOwn(oh, with(oc, "iss", strings.ToUpper(testIssuer))), want: ErrUnknownIssuer},
		{name: "fail/iss-missing", token: f.signOwn(oh, with(oc, "iss", del)), want: ErrUnknownIssuer},
		{name: "fail/unknown-issuer", token: f.signOwn(oh, with(oc, "iss", "https://evil.example")), want: ErrUnknownIssuer},
		{name: "fail/aud-missing", token: f.signOwn(oh, with(oc, "aud", del)), want: ErrAudience},
		{name: "fail/aud-empty-array", token: f.signOwn(oh, with(oc, "aud", []string{})), want: ErrAudience},
		{name: "fail/aud-non-string", token: f.signOwn(oh, with(oc, "aud", []any{"a", 1})), want: ErrAudience},
		{name: "fail/sub-empty", token: f.signOwn(oh, with(oc, "sub", "")), want: ErrClaims},
		{name: "fail/sub-missing", token: f.signOwn(oh, with(oc, "sub", del)), want: ErrClaims},
		{name: "fail/sub-control-char", token: f.signOwn(oh, with(oc, "sub", "user:\nsam")), want: ErrClaims},
		{name: "fail/jti-missing", token: f.signOwn(oh, with(oc, "jti", del)), want: ErrClaims},
		{name: "fail/client-id-missing", token: f.signOwn(oh, with(oc, "client_id", del)), want: ErrClaims},
		{name: "fail/scope-double-space", token: f.signOwn(oh, with(oc, "scope", "a  b")), want: ErrClaims},
		{name: "fail/scope-array-own", token: f.signOwn(oh, with(oc, "scope", []string{"a"})), want: ErrClaims},
		{name: "fail/context-not-object", token: f.signOwn(oh, with(oc, "context", "prod")), want: ErrClaims},
		{name: "fail/authorization-details-object", token: f.signOwn(oh, with(oc, "authorization_details", map[string]any{})), want: ErrClaims},

		// T10: the most severe failure wins.
		{name: "fail/expired-and-bad-signature", token: compact(mustJSON(oh), mustJSON(with(oc, "exp", now-3600)), edSigner(otherEdPriv)), want: ErrSignature},
		{name: "fail/expired-and-wrong-aud", token: f.signIDP(ih, with(ic, "exp", now-3600, "aud", "other")), want: ErrAudience},
		{name: "fail/signed-by-other-key", token: compact(mustJSON(oh), mustJSON(oc), edSigner(otherEdPriv)), want: ErrSignature},
		{name: "fail/idp-signed-by-other-key", token: compact(mustJSON(ih), mustJSON(ic), esSigner(otherEC, crypto.SHA256)), want: ErrSignature},

		// T11: token confusion.
		{name: "fail/own-typ-missing", token: f.signOwn(with(oh, "typ", del), oc), want: ErrType},
		{name: "fail/own-typ-jwt", token: f.signOwn(with(oh, "typ", "JWT"), oc), want: ErrType},

		// T12: JSON differentials.
		{name: "fail/duplicate-sub", token: f.signOwnRaw(strings.Replace(string(mustJSON(oc)), `"sub":"user:sam"`, `"sub":"user:sam","sub":"user:admin"`, 1)), want: ErrMalformed},
		{name: "fail/case-variant-sub", token: f.signOwnRaw(strings.Replace(string(mustJSON(oc)), `"sub":"user:sam"`, `"sub":"user:sam","SUB":"user:admin"`, 1)), want: ErrMalformed},
		{name: "fail/capitalized-sub-only", token: f.signOwnRaw(strings.Replace(string(mustJSON(oc)), `"sub":"user:sam"`, `"Sub":"user:admin"`, 1)), want: ErrClaims},
		{name: "fail/duplicate-alg-header", token: compact([]byte(`{"alg":"EdDSA","alg":"none","kid":"`+f.ownKID+`","typ":"at+jwt"}`), mustJSON(oc), edSigner(f.ownPriv)), want: ErrMalformed},
		{name: "fail/invalid-utf8", token: f.signOwnRaw(strings.Replace(string(mustJSON(oc)), `user:sam`, "user:\xffsam", 1)), want: ErrMalformed},
		{name: "fail/lone-surrogate", token: f.signOwnRaw(strings.Replace(string(mustJSON(oc)), `user:sam`, `user:\ud800sam`, 1)), want: ErrMalformed},
		{name: "fail/bom", token: f.signOwnRaw("\ufeff" + string(mustJSON(oc))), want: ErrUnknownIssuer},

		// T14: keys are scoped by issuer.
		{name: "fail/cross-issuer-kid", token: f.signOwn(oh, with(oc, "iss", testIDP, "aud", testAudience)), want: ErrUnknownKey},
		{name: "fail/own-issuer-idp-kid", token: f.signIDP(ih, with(ic, "iss", testIssuer, "typ", "at+jwt")), want: ErrUnknownKey},

		// act and may_act are bounded.
		{name: "fail/act-depth-bomb", token: f.signOwnRaw(strings.Replace(string(mustJSON(with(oc, "act", 0))), `"act":0`, `"act":`+nested(10000), 1)), want: ErrMalformed},
		{name: "fail/act-depth-bomb-within-size", token: f.signOwnRaw(strings.Replace(string(mustJSON(with(oc, "act", 0))), `"act":0`, `"act":`+nested(200), 1)), want: ErrMalformed},
		{name: "fail/act-deeper-than-actor-max", token: f.signOwnRaw(strings.Replace(string(mustJSON(with(oc, "act", 0))), `"act":0`, `"act":`+nested(actor.MaxDepth+1), 1)), want: ErrClaims},
		{name: "fail/act-sub-not-string", token: f.signOwn(oh, with(oc, "act", map[string]any{"sub": 1})), want: ErrClaims},
		{name: "fail/may-act-bad", token: f.signIDP(ih, with(ic, "may_act", "agent:x")), want: ErrClaims},

		// Provider rules.
		{name: "fail/idp-wrong-aud", token: f.signIDP(ih, with(ic, "aud", "other")), want: ErrAudience},
		{name: "fail/idp-aud-missing", token: f.signIDP(ih, with(ic, "aud", del)), want: ErrAudience},
		{name: "fail/idp-exp-missing", token: f.signIDP(ih, with(ic, "exp", del)), want: ErrClaims},
		{name: "fail/idp-iss-trailing-slash", token: f.signIDP(ih, with(ic, "iss", testIDP+"/")), want: ErrUnknownIssuer},
		{name: "fail/idp-unknown-kid", token: f.signIDP(with(ih, "kid", "nope"), ic), want: ErrUnknownKey},
		{name: "fail/idp-jti-empty", token: f.signIDP(ih, with(ic, "jti", "")), want: ErrClaims},
		{name: "fail/idp-scope-array-non-string", token: f.signIDP(ih, with(ic, "scope", []any{"a", 1})), want: ErrClaims},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := f.verifier.Verify(t.Context(), tc.token)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if got.Subject == "" || got.Expiry.IsZero() {
					t.Fatalf("Verify returned %+v", got)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("Verify error = %v, want %v", err, tc.want)
			}
			if got != nil {
				t.Fatalf("Verify returned a result with an error: %+v", got)
			}
		})
	}
	if n := f.canary.hits.Load(); n != 0 {
		t.Errorf("canary hits = %d, want 0", n)
	}
}

// nonCanonical returns a character with the same 6-bit prefix as the
// token's last character but non-zero unused low bits.
func nonCanonical(tok string) byte {
	seg := tok[strings.LastIndexByte(tok, '.')+1:]
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	v := strings.IndexByte(alphabet, seg[len(seg)-1])
	switch len(seg) % 4 {
	case 2:
		return alphabet[v|0x01]
	case 3:
		return alphabet[v|0x01]
	}
	panic("signature segment has no unused bits")
}

func mustSign(t *testing.T, k *Keyring, c *Claims) string {
	t.Helper()
	s, err := k.Sign(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestVerifyResult(t *testing.T) {
	f := newFixture(t)
	now := f.clk.Now()
	c := &Claims{
		Issuer: testIssuer, Subject: "user:sam",
		Act:      actor.New(actor.Chain{"agent:argocd", "agent:infrabot"}),
		Audience: "https://deploy.example", Scope: "monitoring:read deploy:create",
		ClientID: "agent:argocd", Context: json.RawMessage(`{"environment":"prod","trigger":"ci_pipeline"}`),
		AuthorizationDetails: json.RawMessage(`[{"type":"expense_approval","max_amount":1000}]`),
		DelegationID:         "dlg_1", JTI: "jti-42",
		IssuedAt: now.Unix(), NotBefore: now.Unix(), Expiry: now.Add(10 * time.Minute).Unix(),
		RevocationURL: testIssuer + "/revocations/jti-42", LogURL: testIssuer + "/audit?jti=jti-42",
	}
	got, err := f.verifier.Verify(t.Context(), mustSign(t, f.keyring, c))
	if err != nil {
		t.Fatal(err)
	}
	want := &Verified{
		Own: true, Issuer: testIssuer, Subject: "user:sam", JTI: "jti-42", ClientID: "agent:argocd", DelegationID: "dlg_1",
		Audiences: []string{"https://deploy.example"}, Scopes: []string{"monitoring:read", "deploy:create"}, HasScope: true,
		Act:                  actor.New(actor.Chain{"agent:argocd", "agent:infrabot"}),
		Context:              map[string]any{"environment": "prod", "trigger": "ci_pipeline"},
		AuthorizationDetails: json.RawMessage(`[{"type":"expense_approval","max_amount":1000}]`),
		IssuedAt:             time.Unix(now.Unix(), 0), NotBefore: time.Unix(now.Unix(), 0), Expiry: time.Unix(now.Add(10*time.Minute).Unix(), 0),
		Type: "at+jwt",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("Verified mismatch (-want +got):\n%s", diff)
	}

	got, err = f.verifier.Verify(t.Context(), f.signIDP(f.idpHeader(), f.idpClaims()))
	if err != nil {
		t.Fatal(err)
	}
	want = &Verified{
		Issuer: testIDP, Subject: "user:sam", Audiences: []string{"other", testAudience},
		Scopes: []string{"openid", "deploy:create"}, HasScope: true,
		MayAct:   &actor.Actor{Subject: "agent:infrabot"},
		IssuedAt: time.Unix(now.Unix(), 0), Expiry: time.Unix(now.Unix()+3600, 0), Type: "JWT",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("Verified mismatch (-want +got):\n%s", diff)
	}
}

func TestVerifyProviderKeysUnavailable(t *testing.T) {
	f := newFixture(t)
	f.idpJWKS.body.Store(new([]byte)) // nil body: the server answers 500
	tok := f.signIDP(f.idpHeader(), f.idpClaims())
	if _, err := f.verifier.Verify(t.Context(), tok); !errors.Is(err, ErrKeyUnavailable) {
		t.Fatalf("error = %v, want ErrKeyUnavailable", err)
	}
}

func TestVerifyProviderWithoutAudienceAcceptsNothing(t *testing.T) {
	f := newFixture(t)
	f.verifier.Providers[0].Audience = ""
	tok := f.signIDP(f.idpHeader(), with(f.idpClaims(), "aud", ""))
	if _, err := f.verifier.Verify(t.Context(), tok); err == nil {
		t.Fatal("a provider without an audience accepted a token")
	}
}

func TestVerifyUnknownKidRefetchesOncePerCooldown(t *testing.T) {
	f := newFixture(t)
	if _, err := f.verifier.Verify(t.Context(), f.signIDP(f.idpHeader(), f.idpClaims())); err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		tok := f.signIDP(with(f.idpHeader(), "kid", "random-"+string(rune('a'+i%26))), f.idpClaims())
		if _, err := f.verifier.Verify(t.Context(), tok); !errors.Is(err, ErrUnknownKey) {
			t.Fatalf("error = %v, want ErrUnknownKey", err)
		}
	}
	if n := f.idpJWKS.hits.Load(); n != 1 {
		t.Fatalf("JWKS fetches = %d, want 1", n)
	}
}
