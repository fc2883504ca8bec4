package token

import (
	"context"
	"encoding/json"
	"testing"
	"time"
)

func BenchmarkSign(b *testing.B) {
	f := newFixture(b)
	c := testClaims(f.clk.Now(), 10*time.Minute)
	c.Scope = "monitoring:read deploy:create"
	c.Context = json.RawMessage(`{"environment":"prod","trigger":"ci_pipeline"}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.keyring.Sign(context.Background(), c); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyOwn(b *testing.B) {
	f := newFixture(b)
	tok := f.signOwn(f.ownHeader(), f.ownClaims())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.verifier.Verify(b.Context(), tok); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyProviderES256(b *testing.B) {
	f := newFixture(b)
	tok := f.signIDP(f.idpHeader(), f.idpClaims())
	if _, err := f.verifier.Verify(b.Context(), tok); err != nil { // warm the JWKS cache
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.verifier.Verify(b.Context(), tok); err != nil {
			b.Fatal(err)
		}
	}
}
