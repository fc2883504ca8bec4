package revocation_test

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/mandate-dev/mandate/revocation"
)

// TestT77RevocationSetUnderChurn applies a million unique revocations, of
// every kind, at a steady rate over simulated time to one verifier's set,
// collecting as a verifier does, and holds the set to its bound: entries
// in force ≈ rate × (lifetime + collection interval), whatever the total.
// Every entry younger than its lifetime still refuses its token; no entry
// older than its lifetime plus one interval is held.
func TestT77RevocationSetUnderChurn(t *testing.T) {
	const (
		total    = 1_000_000
		rate     = 200  // entries per simulated second
		lifetime = 1020 // max_ttl (15 min) + leeway (2 min), in seconds
		interval = 10   // seconds between collections
		start    = int64(1_800_000_000)
	)
	bound := rate * (lifetime + interval)
	kinds := []string{revocation.KindToken, revocation.KindToken, revocation.KindToken, revocation.KindToken,
		revocation.KindDelegation, revocation.KindSubject, revocation.KindAgent, revocation.KindScope}
	entry := func(i int) revocation.Entry {
		now := start + int64(i/rate)
		e := revocation.Entry{Seq: int64(i + 1), Kind: kinds[i%len(kinds)], ID: fmt.Sprintf("e%07d", i), Until: now + lifetime}
		switch e.Kind {
		case revocation.KindToken:
		case revocation.KindScope:
			e.Scope = "s"
			e.Gen = 1
		default:
			e.Gen = 1
		}
		return e
	}
	// refuses says whether s still refuses the token entry i revoked.
	refuses := func(s *revocation.Set, i int) bool {
		e := entry(i)
		tok := revocation.Token{JTI: "other", IssuedAt: start}
		switch e.Kind {
		case revocation.KindToken:
			tok.JTI = e.ID
		case revocation.KindDelegation:
			tok.DelegationID = e.ID
		case revocation.KindSubject:
			tok.Subject = e.ID
		case revocation.KindAgent:
			tok.Chain = []string{e.ID}
		case revocation.KindScope:
			tok.Subject, tok.Scopes = e.ID, []string{"s"}
		}
		return s.Check(&tok) != ""
	}
	s := revocation.NewSet()
	rng := rand.New(rand.NewPCG(77, 1))
	peak, collected := 0, 0
	batch := make([]revocation.Entry, 0, rate)
	for sec := 0; sec*rate < total; sec++ {
		now := start + int64(sec)
		batch = batch[:0]
		for i := sec * rate; i < (sec+1)*rate; i++ {
			batch = append(batch, entry(i))
		}
		if err := s.Apply(batch...); err != nil {
			t.Fatal(err)
		}
		if sec%interval == 0 {
			collected += s.Collect(now)
		}
		n := s.Len()
		peak = max(peak, n)
		if n > bound {
			t.Fatalf("second %d: %d entries held, above the bound %d", sec, n, bound)
		}
		// A revocation still in its lifetime refuses its token.
		if young := sec*rate - rng.IntN(min(sec*rate, rate*(lifetime-1))+1); young >= 0 && young < total && !refuses(s, young) {
			t.Fatalf("second %d: entry %d (%s) was dropped within its lifetime", sec, young, entry(young).Kind)
		}
	}
	if peak < rate*lifetime*9/10 {
		t.Fatalf("peak %d entries: too few to show the bound %d", peak, bound)
	}
	if want := total - bound; collected < want {
		t.Errorf("collected %d entries, want at least %d", collected, want)
	}
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	t.Logf("%d entries applied; at most %d held (bound %d); %d collected; heap %.1f MiB at the end",
		total, peak, bound, collected, float64(ms.HeapAlloc)/(1<<20))
	runtime.KeepAlive(s)
}
