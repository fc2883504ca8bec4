package verify_test

import (
	"crypto"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/mandate-dev/mandate/revocation"
	"github.com/mandate-dev/mandate/verify"
	"github.com/mandate-dev/mandate/verify/internal/feedtest"
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

// BenchmarkVerifyWithFeed is BenchmarkVerifyEdDSA with a Feed holding
// 100,000 token entries (and one entry of every other kind, none hitting
// the token) as Config.Revocation; the token also carries exchanged_from
// and gen, so that every check of the Set runs. Compare with
// BenchmarkVerifyEdDSA and BenchmarkSignatureOnly.
func BenchmarkVerifyWithFeed(b *testing.B) {
	f := newFixture(b)
	u := epoch.Add(time.Hour).Unix()
	const n = 100_000
	snap := revocation.Snapshot{Stream: "bench", Seq: n + 5, Entries: make([]revocation.Entry, 0, n+5)}
	for i := range n {
		snap.Entries = append(snap.Entries, revocation.Entry{Seq: int64(i + 1), Kind: revocation.KindToken, ID: "revoked-" + strconv.Itoa(i), Until: u})
	}
	snap.Entries = append(snap.Entries,
		revocation.Entry{Seq: n + 1, Kind: revocation.KindKey, ID: "old-key", Until: u},
		revocation.Entry{Seq: n + 2, Kind: revocation.KindSubject, ID: "user:gone", Gen: 9, Until: u},
		revocation.Entry{Seq: n + 3, Kind: revocation.KindScope, ID: "user:sam", Scope: "deploy:delete", Gen: 9, Until: u},
		revocation.Entry{Seq: n + 4, Kind: revocation.KindAgent, ID: "agent:rogue", Gen: 9, Until: u},
		revocation.Entry{Seq: n + 5, Kind: revocation.KindDelegation, ID: "dlg_gone", Gen: 9, Until: u},
	)
	rf, err := feedtest.Loaded(b, snap, func() time.Time { return epoch })
	if err != nil {
		b.Fatal(err)
	}
	v := f.verifier(b, func(c *verify.Config) { c.Revocation = rf })
	tok := f.token(with(chain3(), "exchanged_from", []string{"jti-parent", "jti-root"}, "gen", 7))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(b.Context(), tok); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFeedRevoked is the revocation check alone, on the Feed of
// BenchmarkVerifyWithFeed: the cost the rf adds to Verify beside reading
// the two claims.
func BenchmarkFeedRevoked(b *testing.B) {
	u := epoch.Add(time.Hour).Unix()
	const n = 100_000
	snap := revocation.Snapshot{Stream: "bench", Seq: n, Entries: make([]revocation.Entry, 0, n)}
	for i := range n {
		snap.Entries = append(snap.Entries, revocation.Entry{Seq: int64(i + 1), Kind: revocation.KindToken, ID: "revoked-" + strconv.Itoa(i), Until: u})
	}
	rf, err := feedtest.Loaded(b, snap, func() time.Time { return epoch })
	if err != nil {
		b.Fatal(err)
	}
	f := newFixture(b)
	p, err := f.verifier(b).Verify(b.Context(), f.token(with(chain3(), "exchanged_from", []string{"jti-parent", "jti-root"}, "gen", 7)))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if revoked, err := rf.Revoked(b.Context(), p); revoked || err != nil {
			b.Fatal(revoked, err)
		}
	}
}
