package token

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mandate-dev/mandate/jwks"
	"github.com/mandate-dev/mandate/jwt"
	"github.com/mandate-dev/mandate/verify"
)

// TestOwnTokensOneRule: the server (a subject_token, Verifier.Verify) and
// a resource server (verify.Verifier for the token's audience) accept and
// refuse the same Mandate tokens, for the same reason: both run
// verify.CheckJWS. Each case names the error of each side.
func TestOwnTokensOneRule(t *testing.T) {
	f := newFixture(t)
	pub, _ := f.keyring.PublicKey(f.ownKID)
	pubDER, err := x509.MarshalPKIXPublicKey(f.ownPriv.Public())
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	oh, oc := f.ownHeader(), f.ownClaims()
	rs, err := verify.New(t.Context(), verify.Config{
		Issuer: testIssuer, Audience: oc["aud"].(string), Algorithms: []string{"EdDSA"},
		Keys: jwks.Static{f.ownKID: pub}, MaxTTL: f.verifier.MaxTTL, MaxDepth: 16, Now: f.clk.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	now := f.now()
	long := strings.Repeat("j", jwt.MaxStringClaim+1)

	tests := []struct {
		name   string
		token  string
		server error // nil: accepted
		rs     error
	}{
		{name: "ok/own", token: f.signOwn(oh, oc)},
		{name: "ok/typ-media-type", token: f.signOwn(with(oh, "typ", "application/at+jwt"), oc)},
		{name: "ok/expired-within-leeway", token: f.signOwn(oh, with(oc, "exp", now-30))},
		{name: "ok/nbf-within-leeway", token: f.signOwn(oh, with(oc, "nbf", now+59))},
		{name: "ok/lifetime-at-max", token: f.signOwn(oh, with(oc, "exp", now+int64(f.verifier.MaxTTL/time.Second)))},
		{name: "ok/exchanged-from", token: f.signOwn(oh, with(oc, "exchanged_from", []string{"jti-0"}, "gen", 7))},

		{name: "fail/expired", token: f.signOwn(oh, with(oc, "exp", now-61)), server: ErrExpired, rs: verify.ErrExpired},
		{name: "fail/nbf-in-future", token: f.signOwn(oh, with(oc, "nbf", now+61)), server: ErrNotYetValid, rs: verify.ErrNotYetValid},
		{name: "fail/iat-in-future", token: f.signOwn(oh, with(oc, "iat", now+61)), server: ErrNotYetValid, rs: verify.ErrNotYetValid},
		{name: "fail/exp-before-iat", token: f.signOwn(oh, with(oc, "iat", now+30, "exp", now-40)), server: ErrClaims, rs: verify.ErrClaims},
		{name: "fail/lifetime-above-max", token: f.signOwn(oh, with(oc, "exp", now+3600)), server: ErrClaims, rs: verify.ErrClaims},
		{name: "fail/lifetime-backdated-above-max", token: f.signOwn(oh, with(oc, "iat", now-3600, "nbf", now-3600)), server: ErrClaims, rs: verify.ErrClaims},
		{name: "fail/typ-missing", token: f.signOwn(with(oh, "typ", del), oc), server: ErrType, rs: verify.ErrType},
		{name: "fail/typ-jwt", token: f.signOwn(with(oh, "typ", "JWT"), oc), server: ErrType, rs: verify.ErrType},
		{name: "fail/alg-none", token: compact(mustJSON(with(oh, "alg", "none")), mustJSON(oc), edSigner(f.ownPriv)), server: ErrAlgorithm, rs: verify.ErrAlgorithm},
		{name: "fail/alg-none-unsigned", token: b64(mustJSON(with(oh, "alg", "none"))) + "." + b64(mustJSON(oc)) + ".", server: ErrMalformed, rs: verify.ErrMalformed},
		{name: "fail/hs256-public-key", token: compact(mustJSON(with(oh, "alg", "HS256")), mustJSON(oc), hsSigner(pubPEM)), server: ErrAlgorithm, rs: verify.ErrAlgorithm},
		{name: "fail/hs256-raw-key", token: compact(mustJSON(with(oh, "alg", "HS256")), mustJSON(oc), hsSigner(f.ownPriv.Public().(ed25519.PublicKey))), server: ErrAlgorithm, rs: verify.ErrAlgorithm},
		{name: "fail/jti-missing", token: f.signOwn(oh, with(oc, "jti", del)), server: ErrClaims, rs: verify.ErrClaims},
		{name: "fail/jti-empty", token: f.signOwn(oh, with(oc, "jti", "")), server: ErrClaims, rs: verify.ErrClaims},
		{name: "fail/jti-too-long", token: f.signOwn(oh, with(oc, "jti", long)), server: ErrClaims, rs: verify.ErrClaims},
		{name: "fail/sub-missing", token: f.signOwn(oh, with(oc, "sub", del)), server: ErrClaims, rs: verify.ErrClaims},
		{name: "fail/client-id-missing", token: f.signOwn(oh, with(oc, "client_id", del)), server: ErrClaims, rs: verify.ErrClaims},
		{name: "fail/client-id-empty", token: f.signOwn(oh, with(oc, "client_id", "")), server: ErrClaims, rs: verify.ErrClaims},
		{name: "fail/exp-missing", token: f.signOwn(oh, with(oc, "exp", del)), server: ErrClaims, rs: verify.ErrClaims},
		{name: "fail/iat-missing", token: f.signOwn(oh, with(oc, "iat", del)), server: ErrClaims, rs: verify.ErrClaims},
		{name: "fail/aud-missing", token: f.signOwn(oh, with(oc, "aud", del)), server: ErrAudience, rs: verify.ErrAudience},
		{name: "fail/scope-array", token: f.signOwn(oh, with(oc, "scope", []string{"a"})), server: ErrClaims, rs: verify.ErrClaims},
		{name: "fail/act-deeper-than-16", token: f.signOwnRaw(strings.Replace(string(mustJSON(with(oc, "act", 0))), `"act":0`, `"act":`+nested(17), 1)), server: ErrClaims, rs: verify.ErrTooDeep},
		{name: "fail/exchanged-from-empty-string", token: f.signOwn(oh, with(oc, "exchanged_from", []string{""})), server: ErrClaims, rs: verify.ErrClaims},
		{name: "fail/gen-negative", token: f.signOwn(oh, with(oc, "gen", -1)), server: ErrClaims, rs: verify.ErrClaims},
		{name: "fail/gen-fraction", token: f.signOwn(oh, with(oc, "gen", 1.5)), server: ErrClaims, rs: verify.ErrClaims},
		{name: "fail/authorization-details-without-type", token: f.signOwn(oh, with(oc, "authorization_details", []any{map[string]any{"max_amount": 1}})), server: ErrClaims, rs: verify.ErrClaims},
		{name: "fail/kid-unknown", token: f.signOwn(with(oh, "kid", "nope"), oc), server: ErrUnknownKey, rs: verify.ErrUnknownKey},
		{name: "fail/jku-header", token: f.signOwn(with(oh, "jku", f.canary.URL), oc), server: ErrMalformed, rs: verify.ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, serr := f.verifier.Verify(t.Context(), tc.token)
			_, rerr := rs.Verify(t.Context(), tc.token)
			if (serr == nil) != (rerr == nil) {
				t.Fatalf("the server and a resource server disagree: server %v, resource server %v", serr, rerr)
			}
			if tc.server == nil {
				if serr != nil {
					t.Fatalf("refused: server %v, resource server %v", serr, rerr)
				}
				return
			}
			if !errors.Is(serr, tc.server) {
				t.Errorf("server error = %v, want %v", serr, tc.server)
			}
			if !errors.Is(rerr, tc.rs) {
				t.Errorf("resource server error = %v, want %v", rerr, tc.rs)
			}
			// Past the parse, the server's error also says what verify said.
			if tc.server != ErrMalformed && !errors.Is(serr, tc.rs) {
				t.Errorf("server error %v does not wrap %v", serr, tc.rs)
			}
		})
	}
}

// TestOwnRulesAreComplete: the rules the server checks its own tokens
// with leave nothing out, whatever zero values the Verifier holds.
func TestOwnRulesAreComplete(t *testing.T) {
	v := &Verifier{Issuer: testIssuer}
	r := v.ownRules()
	if r.Leeway != DefaultLeeway || r.MaxTTL != verify.DefaultMaxTTL || r.Now == nil || !r.AnyAudience || len(r.Algorithms) == 0 {
		t.Fatalf("ownRules() = %+v", r)
	}
}
