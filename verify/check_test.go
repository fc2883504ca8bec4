package verify_test

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mandate-dev/mandate/jwt"
	"github.com/mandate-dev/mandate/verify"
)

// rules are the Rules of the fixture's Verifier, defaults filled in.
func rules() verify.Rules {
	return verify.Rules{
		Issuer: issuer, Audience: audience, Algorithms: []string{"EdDSA", "ES256"},
		Leeway: verify.DefaultLeeway, MaxTTL: verify.DefaultMaxTTL, MaxDepth: verify.DefaultMaxDepth,
		Now: func() time.Time { return epoch },
	}
}

// TestCheckJWSIsVerify: CheckJWS with a Verifier's rules says what Verify
// says, token for token, and hands back the verified claims.
func TestCheckJWSIsVerify(t *testing.T) {
	f := newFixture(t)
	v := f.verifier(t)
	c := claims()
	at := func(d time.Duration) int64 { return epoch.Add(d).Unix() }
	for _, tc := range []struct {
		name  string
		token string
		want  error
	}{
		{name: "ok/valid", token: f.token(c)},
		{name: "fail/expired", token: f.token(with(c, "exp", at(-61*time.Second), "iat", at(-5*time.Minute))), want: verify.ErrExpired},
		{name: "fail/nbf-future", token: f.token(with(c, "nbf", at(61*time.Second))), want: verify.ErrNotYetValid},
		{name: "fail/exp-before-iat", token: f.token(with(c, "iat", at(30*time.Second), "exp", at(-40*time.Second))), want: verify.ErrClaims},
		{name: "fail/typ-jwt", token: compact(`{"alg":"EdDSA","kid":"ed1","typ":"JWT"}`, mustJSON(c), edSigner(f.ed)), want: verify.ErrType},
		{name: "fail/alg-none", token: compact(`{"alg":"none","kid":"ed1","typ":"at+jwt"}`, mustJSON(c), edSigner(f.ed)), want: verify.ErrAlgorithm},
		{name: "fail/other-audience", token: f.token(with(c, "aud", "https://other.example")), want: verify.ErrAudience},
		{name: "fail/jti-missing", token: f.token(with(c, "jti", remove)), want: verify.ErrClaims},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j, err := jwt.ParseJWS(tc.token)
			if err != nil {
				t.Fatal(err)
			}
			got, claims, err := verify.CheckJWS(t.Context(), j, f.keys, rules())
			want, verr := v.Verify(t.Context(), tc.token)
			if !errors.Is(err, tc.want) || !errors.Is(verr, tc.want) || (err == nil) != (verr == nil) {
				t.Fatalf("CheckJWS error = %v, Verify error = %v, want %v", err, verr, tc.want)
			}
			if err != nil {
				return
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("CheckJWS and Verify disagree (-Verify +CheckJWS):\n%s", diff)
			}
			if !claims.Has("scope") {
				t.Error("CheckJWS returned no claims")
			}
		})
	}
}

// TestCheckJWSRefusesIncompleteRules: Rules that leave a check out are an
// error, never a check skipped; AnyAudience still wants an aud.
func TestCheckJWSRefusesIncompleteRules(t *testing.T) {
	f := newFixture(t)
	j, err := jwt.ParseJWS(f.token(claims()))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		edit func(*verify.Rules)
	}{
		{name: "fail/no-issuer", edit: func(r *verify.Rules) { r.Issuer = "" }},
		{name: "fail/no-audience", edit: func(r *verify.Rules) { r.Audience = "" }},
		{name: "fail/audience-and-any-audience", edit: func(r *verify.Rules) { r.AnyAudience = true }},
		{name: "fail/no-algorithms", edit: func(r *verify.Rules) { r.Algorithms = nil }},
		{name: "fail/hs256", edit: func(r *verify.Rules) { r.Algorithms = []string{"HS256"} }},
		{name: "fail/no-max-ttl", edit: func(r *verify.Rules) { r.MaxTTL = 0 }},
		{name: "fail/negative-leeway", edit: func(r *verify.Rules) { r.Leeway = -time.Second }},
		{name: "fail/no-max-depth", edit: func(r *verify.Rules) { r.MaxDepth = 0 }},
		{name: "fail/max-depth-17", edit: func(r *verify.Rules) { r.MaxDepth = 17 }},
		{name: "fail/no-clock", edit: func(r *verify.Rules) { r.Now = nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := rules()
			tc.edit(&r)
			if p, _, err := verify.CheckJWS(t.Context(), j, f.keys, r); err == nil || p != nil {
				t.Fatalf("CheckJWS = %v, %v; want an error", p, err)
			}
		})
	}
	r := rules()
	r.Audience, r.AnyAudience = "", true
	if _, _, err := verify.CheckJWS(t.Context(), j, f.keys, r); err != nil {
		t.Fatalf("AnyAudience: %v", err)
	}
	j, err = jwt.ParseJWS(f.token(with(claims(), "aud", remove)))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := verify.CheckJWS(t.Context(), j, f.keys, r); !errors.Is(err, verify.ErrAudience) {
		t.Fatalf("AnyAudience without aud: %v, want ErrAudience", err)
	}
}
