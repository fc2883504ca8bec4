package bench

import (
	"github.com/mandate-dev/mandate/internal/cli"
	"strings"
	"testing"
	"time"
)

// TestFeedTrialPlan checks the mix of kinds and instances the trials go
// through: mostly jti; with two instances each kind goes through both, and
// every trial has a verifier on the other instance than the revoking one.
func TestFeedTrialPlan(t *testing.T) {
	kinds := map[string]int{}
	via := map[string]map[int]bool{}
	for i := range 200 {
		k := feedKind(i)
		kinds[k]++
		if via[k] == nil {
			via[k] = map[int]bool{}
		}
		v := feedVia(i, 2)
		via[k][v] = true
		crosses := false
		for vf := range feedVerifiers {
			crosses = crosses || feedFollows(vf, 2) != v
		}
		if !crosses {
			t.Errorf("trial %d: no verifier follows another instance than %d", i, v)
		}
		if feedVia(i, 1) != 0 || feedFollows(i%feedVerifiers, 1) != 0 {
			t.Errorf("trial %d: one instance, but not index 0", i)
		}
	}
	if kinds[feedKindJTI] != 125 || kinds[feedKindSubject] != 25 || kinds[feedKindAgent] != 25 || kinds[feedKindScope] != 25 {
		t.Errorf("kinds over 200 trials: %v", kinds)
	}
	for k, insts := range via {
		if !insts[0] || !insts[1] {
			t.Errorf("kind %s goes through instances %v only", k, insts)
		}
	}
}

func TestFeedTrialLast(t *testing.T) {
	ms := time.Millisecond
	for _, tc := range []struct {
		name    string
		refused []time.Duration
		want    time.Duration
		ok      bool
	}{
		{name: "ok/max-of-three", refused: []time.Duration{2 * ms, 7 * ms, 3 * ms}, want: 7 * ms, ok: true},
		{name: "ok/zero", refused: []time.Duration{0, 0, 0}, want: 0, ok: true},
		{name: "fail/one-never-refused", refused: []time.Duration{2 * ms, -1, 3 * ms}},
		{name: "fail/no-verifiers"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := feedTrial{Refused: tc.refused}.last()
			if got != tc.want || ok != tc.ok {
				t.Errorf("last() = %v, %v; want %v, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

// TestSummarizeFeed checks the figures: the last verifier per trial, over
// the trials that did not fail; per verifier; same and other instance; per
// kind.
func TestSummarizeFeed(t *testing.T) {
	ms := time.Millisecond
	verifiers := []feedVerifierInfo{{Name: "verifier 1", Follows: "A"}, {Name: "verifier 2", Follows: "B"}, {Name: "verifier 3", Follows: "A"}}
	trials := []feedTrial{
		{Kind: feedKindJTI, Via: 0, Refused: []time.Duration{1 * ms, 40 * ms, 2 * ms}},
		{Kind: feedKindJTI, Via: 1, Refused: []time.Duration{50 * ms, 3 * ms, 60 * ms}},
		{Kind: feedKindAgent, Via: 0, Refused: []time.Duration{4 * ms, 5 * ms, 6 * ms}},
		{Kind: feedKindJTI, Via: 0, Refused: []time.Duration{1 * ms, -1, 2 * ms}, Failure: "verifier 2 …"},
	}
	figs := summarizeFeed(trials, verifiers, 2)
	byLabel := map[string]feedFigure{}
	for _, f := range figs {
		byLabel[f.Label] = f
	}
	for _, tc := range []struct {
		label       string
		samples     int
		p50, maxLat time.Duration
	}{
		{label: "last of 3 verifiers", samples: 3, p50: 40 * ms, maxLat: 60 * ms},
		{label: "verifier 1 (follows A)", samples: 4, p50: 1 * ms, maxLat: 50 * ms},
		{label: "verifier 2 (follows B)", samples: 3, p50: 5 * ms, maxLat: 40 * ms},
		{label: "verifier 3 (follows A)", samples: 4, p50: 2 * ms, maxLat: 60 * ms},
		// Same instance: v1, v3 of trials 0, 2, 3 (via A); v2 of trial 1 (via B).
		{label: "verifier on the revoking instance", samples: 7, p50: 2 * ms, maxLat: 6 * ms},
		{label: "verifier on the other instance", samples: 4, p50: 40 * ms, maxLat: 60 * ms},
		{label: "kind jti, last verifier", samples: 2, p50: 40 * ms, maxLat: 60 * ms},
		{label: "kind agent, last verifier", samples: 1, p50: 6 * ms, maxLat: 6 * ms},
	} {
		f, ok := byLabel[tc.label]
		if !ok {
			t.Errorf("no figure %q in %v", tc.label, figs)
			continue
		}
		if f.Samples != tc.samples || f.Latency.P50 != tc.p50 || f.Latency.Max != tc.maxLat {
			t.Errorf("%s: samples %d, p50 %v, max %v; want %d, %v, %v", tc.label, f.Samples, f.Latency.P50, f.Latency.Max, tc.samples, tc.p50, tc.maxLat)
		}
	}
	if figs[0].Label != "last of 3 verifiers" {
		t.Errorf("first figure %q, want the last of the verifiers", figs[0].Label)
	}
	if _, ok := byLabel["kind subject, last verifier"]; ok {
		t.Error("a figure for a kind with no trials")
	}
	for _, f := range summarizeFeed(trials, verifiers, 1) {
		if strings.Contains(f.Label, "instance") {
			t.Errorf("one instance, but figure %q", f.Label)
		}
	}
}

func TestBenchFlagsFeed(t *testing.T) {
	base := func() benchFlags {
		return benchFlags{concurrency: []int{4}, grants: []string{benchGrantExchange}, rounds: 1,
			duration: time.Second, feed: 20, feedSet: true}
	}
	for _, tc := range []struct {
		name   string
		modify func(*benchFlags)
		want   string
	}{
		{name: "ok/sqlite", modify: func(*benchFlags) {}},
		{name: "ok/postgres", modify: func(f *benchFlags) { f.store = "postgres://x" }},
		{name: "fail/zero", modify: func(f *benchFlags) { f.feed = 0 }, want: "--feed 0: want at least 1 trial"},
		{name: "fail/negative", modify: func(f *benchFlags) { f.feed = -3 }, want: "--feed -3: want at least 1 trial"},
		{name: "fail/with-url", modify: func(f *benchFlags) { f.url, f.clientID, f.clientSecret = "http://x", "a", "b" }, want: "--feed starts its own servers"},
		{name: "fail/with-propagation", modify: func(f *benchFlags) { f.propagation, f.store = 5, "postgres://x" }, want: "--feed starts its own servers"},
		{name: "fail/two-concurrencies", modify: func(f *benchFlags) { f.concurrency = []int{1, 4} }, want: "one --concurrency value"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := base()
			tc.modify(&f)
			err := f.check()
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("check() = %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("check() = %v, want %q", err, tc.want)
			case err != nil:
				if cli.ExitStatus(err) != 2 {
					t.Errorf("check() = %#v, want a usage error (exit 2)", err)
				}
			}
		})
	}
}

func TestFeedOutputTally(t *testing.T) {
	ms := time.Millisecond
	verifiers := []feedVerifierInfo{{Name: "verifier 1", Follows: "A"}}
	for _, tc := range []struct {
		name     string
		trials   []feedTrial
		failures int
		met      bool
	}{
		{name: "ok/fast", trials: []feedTrial{{Kind: feedKindJTI, Refused: []time.Duration{3 * ms}}}, met: true},
		{name: "fail/slow", trials: []feedTrial{{Kind: feedKindJTI, Refused: []time.Duration{1100 * ms}}}},
		{name: "fail/missed", failures: 1, trials: []feedTrial{
			{Kind: feedKindJTI, Refused: []time.Duration{3 * ms}},
			{Kind: feedKindAgent, Refused: []time.Duration{-1}, Failure: "verifier 1 …"},
		}},
		{name: "fail/no-trials"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := feedOutput{Verifiers: verifiers, Kinds: map[string]int{}}
			out.tally(tc.trials, 1)
			if out.Failures != tc.failures || out.Met != tc.met {
				t.Errorf("failures %d, met %v; want %d, %v", out.Failures, out.Met, tc.failures, tc.met)
			}
			if tc.failures > 0 && out.FirstFailure == "" {
				t.Error("no first failure")
			}
			if n := len(tc.trials); n > 0 && out.Kinds[feedKindJTI] != 1 {
				t.Errorf("kinds %v", out.Kinds)
			}
		})
	}
}
