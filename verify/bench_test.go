package verify_test

import (
	"crypto"
	"net/http"
	"net/http/httptest"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/mandate-dev/mandate/verify"
)

// chain3 is a three-actor chain: CleanupAgent ← ArgoCD ← InfraBot.
func chain3() map[string]any {
	return with(claims(), "act", map[string]any{"sub": "agent:cleanup", "act": map[string]any{
		"sub": "agent:argocd", "act": map[string]any{"sub": "agent:infrabot"}}})
}

func BenchmarkVerifyEdDSA(b *testing.B) {
	f := newFixture(b)
	v := f.verifier(b)
	tok := f.token(chain3())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(b.Context(), tok); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyES256(b *testing.B) {
	f := newFixture(b)
	v := f.verifier(b)
	tok := compact(ecHeader(), mustJSON(chain3()), esSigner(f.ec, crypto.SHA256))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(b.Context(), tok); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSignatureOnly is the baseline: go-jose parsing and checking the
// signature of the same EdDSA token, nothing else.
func BenchmarkSignatureOnly(b *testing.B) {
	f := newFixture(b)
	tok := f.token(chain3())
	pub := f.ed.Public()
	b.ReportAllocs()
	for b.Loop() {
		obj, err := jose.ParseSignedCompact(tok, []jose.SignatureAlgorithm{jose.EdDSA})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := obj.Verify(pub); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSignatureOnlyES256 is the baseline for BenchmarkVerifyES256.
func BenchmarkSignatureOnlyES256(b *testing.B) {
	f := newFixture(b)
	tok := compact(ecHeader(), mustJSON(chain3()), esSigner(f.ec, crypto.SHA256))
	b.ReportAllocs()
	for b.Loop() {
		obj, err := jose.ParseSignedCompact(tok, []jose.SignatureAlgorithm{jose.ES256})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := obj.Verify(&f.ec.PublicKey); err != nil {
			b.Fatal(err)
		}
	}
}

func benchHandler(b *testing.B, h http.Handler, tok string) {
	r := httptest.NewRequest(http.MethodPost, "/deploys", nil)
	r.Header.Set("Authorization", "Bearer "+tok)
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != http.StatusOK {
			b.Fatal(w.Code)
		}
	}
}

// BenchmarkMiddleware is a trivial handler behind Middleware and
// RequireScope, EdDSA token with a three-actor chain; compare with
// BenchmarkBareHandler.
func BenchmarkMiddleware(b *testing.B) {
	f := newFixture(b)
	v := f.verifier(b)
	h := v.Middleware(verify.RequireScope("deploy:create").Then(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusOK)
	})))
	benchHandler(b, h, f.token(chain3()))
}

// BenchmarkBareHandler is the same trivial handler without verification.
func BenchmarkBareHandler(b *testing.B) {
	f := newFixture(b)
	benchHandler(b, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }), f.token(chain3()))
}
