package verify_test

import (
	"crypto"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/mandate-dev/mandate/verify"
)

// FuzzVerify checks two invariants on any input (THREATS.md T15): Verify
// never panics, and it never accepts a token that go-jose, independently,
// does not find signed by one of the configured keys.
func FuzzVerify(f *testing.F) {
	fx := newFixture(f)
	v := fx.verifier(f)
	good := fx.token(claims())
	parts := strings.Split(good, ".")
	for _, seed := range []string{
		good,
		compact(ecHeader(), mustJSON(claims()), esSigner(fx.ec, crypto.SHA256)),
		fx.token(with(claims(), "act", nestedAct(5))),
		compact(`{"alg":"none","kid":"ed1","typ":"at+jwt"}`, mustJSON(claims()), func([]byte) []byte { return nil }),
		compact(`{"alg":"HS256","kid":"ed1","typ":"at+jwt"}`, mustJSON(claims()), hsSigner([]byte("k"))),
		compact(`{"alg":"EdDSA","kid":"ed1","typ":"at+jwt","jku":"http://127.0.0.1:1/"}`, mustJSON(claims()), edSigner(fx.ed)),
		parts[0] + "." + parts[1],
		good + ".",
		strings.Repeat(".", 100),
		"",
		`{"payload":"e30","signatures":[]}`,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		p, err := v.Verify(t.Context(), raw)
		if err != nil {
			if p != nil {
				t.Fatal("a Principal with an error")
			}
			return
		}
		obj, perr := jose.ParseSignedCompact(raw, []jose.SignatureAlgorithm{jose.EdDSA, jose.ES256})
		if perr != nil || len(obj.Signatures) != 1 {
			t.Fatalf("accepted a token go-jose cannot parse: %v", perr)
		}
		key, ok := fx.keys[obj.Signatures[0].Header.KeyID]
		if !ok {
			t.Fatal("accepted a token whose kid is not configured")
		}
		if _, verr := obj.Verify(key.Key); verr != nil {
			t.Fatalf("accepted a token go-jose does not verify with the configured key: %v", verr)
		}
		if p.Subject == "" || p.JTI == "" || p.ClientID == "" || len(p.Chain) > 4 {
			t.Fatalf("accepted an incomplete principal: %+v", p)
		}
		_ = verify.ErrMalformed
	})
}
