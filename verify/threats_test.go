package verify_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/mandate-dev/mandate/verify"
)

func TestVerifyStructure(t *testing.T) { // THREATS.md T06, T13
	f := newFixture(t)
	good := f.token(claims())
	parts := strings.Split(good, ".")
	payload := mustJSON(claims())
	edSig := edSigner(f.ed)
	hdr := func(extra string) string {
		return compact(`{"alg":"EdDSA","kid":"ed1","typ":"at+jwt",`+extra+`}`, payload, edSig)
	}
	flipLast := func(seg string) string {
		// Set unused low bits of the last character: the same bytes, a
		// second encoding.
		last := seg[len(seg)-1]
		const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
		i := strings.IndexByte(alphabet, last)
		return seg[:len(seg)-1] + string(alphabet[i|1])
	}
	cases := []verifyCase{
		{name: "fail/two-segments", token: parts[0] + "." + parts[1], want: verify.ErrMalformed},
		{name: "fail/four-segments", token: good + "." + parts[2], want: verify.ErrMalformed},
		{name: "fail/trailing-dot", token: good + ".", want: verify.ErrMalformed},
		{name: "fail/empty-header", token: "." + parts[1] + "." + parts[2], want: verify.ErrMalformed},
		{name: "fail/empty-payload", token: parts[0] + ".." + parts[2], want: verify.ErrMalformed},
		{name: "fail/json-serialization-flattened", token: `{"payload":"` + parts[1] + `","protected":"` + parts[0] + `","signature":"` + parts[2] + `"}`, want: verify.ErrMalformed},
		{name: "fail/json-serialization-general", token: `{"payload":"` + parts[1] + `","signatures":[{"protected":"` + parts[0] + `","signature":"` + parts[2] + `"}]}`, want: verify.ErrMalformed},
		{name: "fail/padding", token: good + "==", want: verify.ErrMalformed},
		{name: "fail/whitespace", token: parts[0] + ". " + parts[1] + "." + parts[2], want: verify.ErrMalformed},
		{name: "fail/newline", token: good + "\n", want: verify.ErrMalformed},
		{name: "fail/std-alphabet", token: strings.NewReplacer("-", "+", "_", "/").Replace(good) + "+/", want: verify.ErrMalformed},
		{name: "fail/noncanonical-signature-bits", token: parts[0] + "." + parts[1] + "." + flipLast(parts[2]), want: verify.ErrMalformed}, // T08 (b)
		{name: "fail/oversized", token: f.token(with(claims(), "pad", strings.Repeat("a", 8<<10))), want: verify.ErrMalformed},
		{name: "fail/one-mib-of-dots", token: strings.Repeat(".", 1<<20), want: verify.ErrMalformed},
		// T13: nothing changes how the token is processed.
		{name: "fail/crit", token: hdr(`"crit":["x"],"x":1`), want: verify.ErrMalformed},
		{name: "fail/b64-false", token: hdr(`"b64":false`), want: verify.ErrMalformed},
		{name: "fail/cty-jwt", token: hdr(`"cty":"JWT"`), want: verify.ErrMalformed},
		{name: "fail/zip", token: hdr(`"zip":"DEF"`), want: verify.ErrMalformed},
		{name: "fail/enc", token: hdr(`"enc":"A256GCM"`), want: verify.ErrMalformed},
		{name: "fail/pbes2-p2c", token: hdr(`"p2c":2000000000,"p2s":"AAAA"`), want: verify.ErrMalformed},
		{name: "fail/jwe-five-segments", token: parts[0] + ".AAAA.AAAA." + parts[1] + ".AAAA", want: verify.ErrMalformed},
	}
	runCases(t, f.verifier(t), cases)
}

// p1363 encodes r and s as a P-256 JWS signature.
func p1363(r, s *big.Int) []byte {
	out := make([]byte, 64)
	r.FillBytes(out[:32])
	s.FillBytes(out[32:])
	return out
}

func TestVerifyECDSASpecialValues(t *testing.T) { // THREATS.md T07, T08 (a)
	f := newFixture(t)
	payload := mustJSON(claims())
	n := elliptic.P256().Params().N
	one, zero := big.NewInt(1), big.NewInt(0)
	nMinus1 := new(big.Int).Sub(n, one)
	fixed := func(sig []byte) signFunc { return func([]byte) []byte { return sig } }
	tok := func(sign signFunc) string { return compact(ecHeader(), payload, sign) }
	var derSig []byte
	derSigner := func(in []byte) []byte {
		d := sha256.Sum256(in)
		var err error
		derSig, err = ecdsa.SignASN1(rand.Reader, f.ec, d[:])
		if err != nil {
			t.Fatal(err)
		}
		return derSig
	}
	tooLong := func(in []byte) []byte { return append(esSigner(f.ec, crypto.SHA256)(in), 0) }
	tooShort := func(in []byte) []byte { return esSigner(f.ec, crypto.SHA256)(in)[:63] }
	rBig := func(in []byte) []byte {
		sig := esSigner(f.ec, crypto.SHA256)(in)
		r := new(big.Int).SetBytes(sig[:32])
		r.Add(r, n) // r+n still fits 32 bytes only sometimes; beyond n either way
		if r.BitLen() > 256 {
			r.Set(n)
		}
		return p1363(r, new(big.Int).SetBytes(sig[32:]))
	}
	cases := []verifyCase{
		{name: "ok/es256", token: tok(esSigner(f.ec, crypto.SHA256))},
		{name: "fail/r0-s0", token: tok(fixed(p1363(zero, zero))), want: verify.ErrSignature},
		{name: "fail/r1-s1", token: tok(fixed(p1363(one, one))), want: verify.ErrSignature},
		{name: "fail/r-n-s-n", token: tok(fixed(p1363(n, n))), want: verify.ErrSignature},
		{name: "fail/r-nminus1-s-nminus1", token: tok(fixed(p1363(nMinus1, nMinus1))), want: verify.ErrSignature},
		{name: "fail/r0-s1", token: tok(fixed(p1363(zero, one))), want: verify.ErrSignature},
		{name: "fail/der-signature", token: tok(derSigner), want: verify.ErrSignature},
		{name: "fail/signature-too-long", token: tok(tooLong), want: verify.ErrSignature},
		{name: "fail/signature-too-short", token: tok(tooShort), want: verify.ErrSignature},
		{name: "fail/r-not-below-n", token: tok(rBig), want: verify.ErrSignature},
	}
	runCases(t, f.verifier(t), cases)

	// T08 (a): (r, n−s) verifies too, so it is the same token: revoking the
	// jti refuses both encodings.
	orig := esSigner(f.ec, crypto.SHA256)
	var r, s *big.Int
	token := tok(func(in []byte) []byte {
		sig := orig(in)
		r, s = new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
		return sig
	})
	variant := tok(fixed(p1363(r, new(big.Int).Sub(n, s))))
	if token == variant {
		t.Fatal("variant equals the original")
	}
	rev := revokedJTIs{"jti-1": true}
	v := f.verifier(t, func(c *verify.Config) { c.Revocation = rev })
	for name, tk := range map[string]string{"original": token, "variant": variant} {
		if _, err := v.Verify(t.Context(), tk); !errors.Is(err, verify.ErrRevoked) {
			t.Errorf("%s after revoking the jti: error = %v, want ErrRevoked", name, err)
		}
	}
	if _, err := f.verifier(t).Verify(t.Context(), variant); err != nil {
		t.Errorf("the (r, n-s) variant does not verify: %v", err)
	}
}

// revokedJTIs is a Revocation that knows revoked jti values.
type revokedJTIs map[string]bool

func (r revokedJTIs) Revoked(_ context.Context, p *verify.Principal) (bool, error) {
	return r[p.JTI], nil
}

// revocationDown is a Revocation whose state is unavailable.
type revocationDown struct{}

func (revocationDown) Revoked(context.Context, *verify.Principal) (bool, error) {
	return false, errors.New("feed stale")
}

func TestVerifyClaims(t *testing.T) { // THREATS.md T09
	f := newFixture(t)
	c := claims()
	at := func(d time.Duration) int64 { return epoch.Add(d).Unix() }
	cases := []verifyCase{
		{name: "ok/exp-59s-ago", token: f.token(with(c, "exp", at(-59*time.Second), "iat", at(-5*time.Minute), "nbf", remove))},
		{name: "ok/nbf-8s-future", token: f.token(with(c, "nbf", at(8*time.Second)))},
		{name: "ok/iat-8s-future", token: f.token(with(c, "iat", at(8*time.Second)))},
		{name: "ok/no-nbf", token: f.token(with(c, "nbf", remove))},
		{name: "ok/no-act", token: f.token(with(c, "act", remove))},
		{name: "ok/aud-array", token: f.token(with(c, "aud", []string{"https://other.example", audience}))},
		{name: "ok/typ-media-type", token: compact(`{"alg":"EdDSA","kid":"ed1","typ":"application/at+jwt"}`, mustJSON(c), edSigner(f.ed))},
		{name: "fail/exp-missing", token: f.token(with(c, "exp", remove)), want: verify.ErrClaims},
		{name: "fail/exp-61s-ago", token: f.token(with(c, "exp", at(-61*time.Second), "iat", at(-5*time.Minute))), want: verify.ErrExpired},
		{name: "fail/exp-string", token: f.token(with(c, "exp", "1750000600")), want: verify.ErrClaims},
		{name: "fail/exp-fraction", token: f.token(with(c, "exp", 1750000600.5)), want: verify.ErrClaims},
		{name: "fail/exp-negative", token: f.token(with(c, "exp", -1)), want: verify.ErrClaims},
		{name: "fail/nbf-61s-future", token: f.token(with(c, "nbf", at(61*time.Second))), want: verify.ErrNotYetValid},
		{name: "fail/iat-61s-future", token: f.token(with(c, "iat", at(61*time.Second))), want: verify.ErrNotYetValid},
		{name: "fail/iat-missing", token: f.token(with(c, "iat", remove)), want: verify.ErrClaims},
		{name: "fail/lifetime-above-max", token: f.token(with(c, "exp", at(16*time.Minute))), want: verify.ErrClaims},
		{name: "fail/iss-trailing-slash", token: f.token(with(c, "iss", issuer+"/")), want: verify.ErrIssuer},
		{name: "fail/iss-case", token: f.token(with(c, "iss", strings.ToUpper(issuer))), want: verify.ErrIssuer},
		{name: "fail/iss-missing", token: f.token(with(c, "iss", remove)), want: verify.ErrIssuer},
		{name: "fail/iss-number", token: f.token(with(c, "iss", 1)), want: verify.ErrMalformed},
		{name: "fail/aud-missing", token: f.token(with(c, "aud", remove)), want: verify.ErrAudience},
		{name: "fail/aud-other", token: f.token(with(c, "aud", "https://other.example")), want: verify.ErrAudience},
		{name: "fail/aud-empty-array", token: f.token(with(c, "aud", []string{})), want: verify.ErrAudience},
		{name: "fail/aud-non-strings", token: f.token(with(c, "aud", []any{audience, 1})), want: verify.ErrAudience},
		{name: "fail/aud-too-many", token: f.token(with(c, "aud", []string{"a", "b", "c", "d", audience})), want: verify.ErrAudience},
		{name: "fail/sub-empty", token: f.token(with(c, "sub", "")), want: verify.ErrClaims},
		{name: "fail/sub-missing", token: f.token(with(c, "sub", remove)), want: verify.ErrClaims},
		{name: "fail/sub-control", token: f.token(with(c, "sub", "user:\u0007sam")), want: verify.ErrClaims},
		{name: "fail/jti-missing", token: f.token(with(c, "jti", remove)), want: verify.ErrClaims},
		{name: "fail/client-id-missing", token: f.token(with(c, "client_id", remove)), want: verify.ErrClaims},
		{name: "fail/scope-array", token: f.token(with(c, "scope", []string{"deploy:create"})), want: verify.ErrClaims},
		{name: "fail/scope-double-space", token: f.token(with(c, "scope", "a  b")), want: verify.ErrClaims},
		{name: "fail/context-not-object", token: f.token(with(c, "context", "prod")), want: verify.ErrClaims},
		{name: "fail/authorization-details-object", token: f.token(with(c, "authorization_details", map[string]any{"type": "x"})), want: verify.ErrClaims},
		{name: "fail/authorization-details-no-type", token: f.token(with(c, "authorization_details", []any{map[string]any{"max_amount": 1}})), want: verify.ErrClaims},
		// Chain structure.
		{name: "ok/act-depth-4", token: f.token(with(c, "act", nestedAct(4)))},
		{name: "fail/act-depth-exceeded", token: f.token(with(c, "act", nestedAct(5))), want: verify.ErrTooDeep},
		{name: "fail/act-depth-17", token: f.token(with(c, "act", nestedAct(17))), want: verify.ErrTooDeep},
		{name: "fail/act-without-sub", token: f.token(with(c, "act", map[string]any{"act": map[string]any{"sub": "agent:x"}})), want: verify.ErrClaims},
		{name: "fail/act-not-object", token: f.token(with(c, "act", "agent:x")), want: verify.ErrClaims},
		{name: "fail/act-sub-number", token: f.token(with(c, "act", map[string]any{"sub": 1})), want: verify.ErrClaims},
	}
	runCases(t, f.verifier(t), cases)
}

func TestVerifyMostSevereFailureWins(t *testing.T) { // THREATS.md T10
	f := newFixture(t)
	c := claims()
	expired := with(c, "exp", epoch.Add(-time.Hour).Unix(), "iat", epoch.Add(-time.Hour-time.Minute).Unix(), "nbf", remove)
	badSig := func(tok string) string {
		i := strings.LastIndexByte(tok, '.')
		return tok[:i+1] + b64(make([]byte, 64))
	}
	runCases(t, f.verifier(t), []verifyCase{
		{name: "fail/expired-and-bad-signature", token: badSig(f.token(expired)), want: verify.ErrSignature},
		{name: "fail/expired-and-wrong-aud", token: f.token(with(expired, "aud", "https://other.example")), want: verify.ErrAudience},
		{name: "fail/expired-and-unknown-kid", token: compact(`{"alg":"EdDSA","kid":"nope","typ":"at+jwt"}`, mustJSON(expired), edSigner(f.ed)), want: verify.ErrUnknownKey},
		{name: "fail/expired-and-wrong-typ", token: compact(`{"alg":"EdDSA","kid":"ed1","typ":"JWT"}`, mustJSON(expired), edSigner(f.ed)), want: verify.ErrType},
		{name: "fail/expired-and-too-deep", token: f.token(with(expired, "act", nestedAct(6))), want: verify.ErrTooDeep},
	})
	runCases(t, f.verifier(t, func(cfg *verify.Config) { cfg.Revocation = revokedJTIs{"jti-1": true} }), []verifyCase{
		{name: "fail/revoked-and-expired", token: f.token(expired), want: verify.ErrRevoked},
		{name: "fail/revoked-and-bad-signature", token: badSig(f.token(c)), want: verify.ErrSignature},
	})
	runCases(t, f.verifier(t, func(cfg *verify.Config) { cfg.Revocation = revocationDown{} }), []verifyCase{
		{name: "fail/revocation-down", token: f.token(c), want: verify.ErrRevocationUnavailable},
		{name: "fail/revocation-down-and-expired", token: f.token(expired), want: verify.ErrExpired},
		{name: "fail/revocation-down-and-bad-signature", token: badSig(f.token(c)), want: verify.ErrSignature},
	})
	// No error is ever two things a caller could confuse.
	_, err := f.verifier(t).Verify(t.Context(), badSig(f.token(expired)))
	if errors.Is(err, verify.ErrExpired) {
		t.Errorf("a badly signed token reports ErrExpired: %v", err)
	}
}

func TestVerifyCrossJWTConfusion(t *testing.T) { // THREATS.md T11
	f := newFixture(t)
	p := mustJSON(claims())
	sign := edSigner(f.ed)
	runCases(t, f.verifier(t), []verifyCase{
		{name: "fail/typ-JWT", token: compact(`{"alg":"EdDSA","kid":"ed1","typ":"JWT"}`, p, sign), want: verify.ErrType},
		{name: "fail/typ-missing", token: compact(`{"alg":"EdDSA","kid":"ed1"}`, p, sign), want: verify.ErrType},
		{name: "fail/typ-dpop", token: compact(`{"alg":"EdDSA","kid":"ed1","typ":"dpop+jwt"}`, p, sign), want: verify.ErrType},
		{name: "fail/typ-number", token: compact(`{"alg":"EdDSA","kid":"ed1","typ":1}`, p, sign), want: verify.ErrMalformed},
		{name: "fail/id-token-shape", token: compact(`{"alg":"EdDSA","kid":"ed1","typ":"JWT"}`, mustJSON(with(claims(), "aud", "agent:argocd", "nonce", "n")), sign), want: verify.ErrType},
	})
}

func TestVerifyJSONDifferentials(t *testing.T) { // THREATS.md T12
	f := newFixture(t)
	sign := edSigner(f.ed)
	base := strings.TrimSuffix(mustJSON(claims()), "}")
	raw := func(s string) string { return compact(edHeader(), s, sign) }
	runCases(t, f.verifier(t), []verifyCase{
		{name: "fail/duplicate-sub", token: raw(base + `,"sub":"user:admin"}`), want: verify.ErrMalformed},
		{name: "fail/case-variant-SUB", token: raw(base + `,"SUB":"user:admin"}`), want: verify.ErrMalformed},
		{name: "fail/case-variant-Sub", token: raw(base + `,"Sub":"user:admin"}`), want: verify.ErrMalformed},
		{name: "fail/escaped-duplicate-sub", token: raw(base + `,"\u0073ub":"user:admin"}`), want: verify.ErrMalformed},
		{name: "fail/duplicate-act-sub", token: raw(strings.Replace(base, `"sub":"agent:argocd"`, `"sub":"agent:argocd","sub":"agent:evil"`, 1) + `}`), want: verify.ErrMalformed},
		{name: "fail/duplicate-alg", token: compact(`{"alg":"EdDSA","alg":"none","kid":"ed1","typ":"at+jwt"}`, mustJSON(claims()), sign), want: verify.ErrMalformed},
		{name: "fail/invalid-utf8", token: raw(base + ",\"x\":\"\xff\"}"), want: verify.ErrMalformed},
		{name: "fail/lone-surrogate", token: raw(base + `,"x":"\ud800"}`), want: verify.ErrMalformed},
		{name: "fail/bom", token: raw("\ufeff" + base + "}"), want: verify.ErrMalformed},
		{name: "fail/exp-1e400", token: raw(strings.Replace(base, `"exp":1750000600`, `"exp":1e400`, 1) + "}"), want: verify.ErrMalformed},
		{name: "fail/exp-1e309", token: raw(strings.Replace(base, `"exp":1750000600`, `"exp":1e309`, 1) + "}"), want: verify.ErrMalformed},
		{name: "fail/exp-minus-zero", token: raw(strings.Replace(base, `"exp":1750000600`, `"exp":-0`, 1) + "}"), want: verify.ErrClaims},
		{name: "fail/exp-40-digits", token: raw(strings.Replace(base, `"exp":1750000600`, `"exp":1750000600000000000000000000000000000000`, 1) + "}"), want: verify.ErrClaims},
		{name: "fail/trailing-data", token: raw(base + `}{}`), want: verify.ErrMalformed},
		{name: "fail/payload-array", token: raw(`[1]`), want: verify.ErrMalformed},
		{name: "ok/escaped-member-name", token: raw(strings.Replace(base, `"delegation_id"`, `"delegation\u005fid"`, 1) + "}")},
	})
}

func TestVerifyIssuerKeyScoping(t *testing.T) { // THREATS.md T14
	f := newFixture(t)
	other := edSigner(f.other)
	runCases(t, f.verifier(t), []verifyCase{
		// Another issuer's token naming our kid: refused before any key
		// lookup, whoever signed it.
		{name: "fail/other-issuer-our-kid", token: compact(edHeader(), mustJSON(with(claims(), "iss", "https://idp.example")), other), want: verify.ErrIssuer},
		{name: "fail/other-issuer-signed-by-us", token: f.token(with(claims(), "iss", "https://tenant-b.mandate.example")), want: verify.ErrIssuer},
		// Our iss with a key that is not ours under our kid.
		{name: "fail/our-iss-foreign-key", token: compact(edHeader(), mustJSON(claims()), other), want: verify.ErrSignature},
	})
}
