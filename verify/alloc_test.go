package verify_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mandate-dev/mandate/verify"
)

// TestHostileInputIsCheap holds rejection of allocation-amplification and
// structural bombs to a constant number of allocations and well under a
// millisecond (THREATS.md T74, T75).
func TestHostileInputIsCheap(t *testing.T) {
	f := newFixture(t)
	v := f.verifier(t)
	// The deepest act that fits in 8 KiB, validly signed: refused by the
	// payload's nesting bound before any actor is decoded.
	deepFits := f.token(with(claims(), "act", nestedAct(1)))
	for depth := 2; ; depth++ {
		tok := f.token(with(claims(), "act", nestedAct(depth)))
		if len(tok) > 8<<10 {
			break
		}
		deepFits = tok
	}
	for _, tc := range []struct {
		name      string
		token     string
		want      error
		maxAllocs float64
	}{
		{name: "fail/one-mib-of-dots", token: strings.Repeat(".", 1<<20), want: verify.ErrMalformed, maxAllocs: 8},
		{name: "fail/1e5-segments", token: strings.Repeat("a.", 100_000) + "a", want: verify.ErrMalformed, maxAllocs: 8},
		{name: "fail/one-mib-of-base64", token: strings.Repeat("A", 1<<20), want: verify.ErrMalformed, maxAllocs: 8},
		{name: "fail/act-1e4-deep", token: f.token(with(claims(), "act", nestedAct(10_000))), want: verify.ErrMalformed, maxAllocs: 8},
		{name: "fail/act-deepest-that-fits", token: deepFits, want: verify.ErrMalformed, maxAllocs: 16},
		{name: "fail/act-depth-5", token: f.token(with(claims(), "act", nestedAct(5))), want: verify.ErrTooDeep, maxAllocs: 32},
		{name: "fail/1e4-scopes", token: f.token(with(claims(), "scope", strings.Repeat("s ", 10_000)+"s")), want: verify.ErrMalformed, maxAllocs: 8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := v.Verify(t.Context(), tc.token); !errors.Is(err, tc.want) {
				t.Fatalf("Verify error = %v, want %v", err, tc.want)
			}
			allocs := testing.AllocsPerRun(50, func() { _, _ = v.Verify(t.Context(), tc.token) })
			if allocs > tc.maxAllocs {
				t.Errorf("allocations per refusal = %v, want ≤ %v", allocs, tc.maxAllocs)
			}
			start := time.Now()
			const runs = 50
			for range runs {
				_, _ = v.Verify(t.Context(), tc.token)
			}
			if per := time.Since(start) / runs; per > time.Millisecond {
				t.Errorf("refusal takes %v, want < 1 ms", per)
			}
		})
	}
}
