package main

import (
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// benchFeedSummary is the last line of `mandate-bench --feed`: the trials, the
// failures and the propagation time to the last of the three verifiers.
var benchFeedSummary = regexp.MustCompile(`(?m)^trials (\d+)  failures (\d+)  p50 ([0-9.]+)ms  p90 ([0-9.]+)ms  p99 ([0-9.]+)ms  max ([0-9.]+)ms`)

// TestBenchFeed runs the load tool's feed mode (issue 5): three verifiers
// following the revocation stream while an exchange load runs, twenty
// revocations, each timed to the last verifier's refusal. On SQLite always,
// and on PostgreSQL (two instances, revocations crossing them) when
// MANDATE_TEST_POSTGRES_URL is set.
func TestBenchFeed(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs real processes")
	}
	bin := buildBench(t)
	stores := []struct{ name, store string }{{name: "sqlite"}}
	if u := os.Getenv("MANDATE_TEST_POSTGRES_URL"); u != "" {
		stores = append(stores, struct{ name, store string }{"postgres", u})
	} else {
		t.Log("MANDATE_TEST_POSTGRES_URL not set: the PostgreSQL variant is skipped")
	}
	for _, s := range stores {
		t.Run("ok/"+s.name, func(t *testing.T) {
			args := []string{"--feed", "20", "--warmup", "500ms"}
			if s.store != "" {
				args = append(args, "--store", s.store)
			}
			out, err := exec.Command(bin, args...).CombinedOutput()
			if err != nil {
				t.Fatalf("bench --feed: %v\n%s", err, out)
			}
			m := benchFeedSummary.FindStringSubmatch(string(out))
			if m == nil {
				t.Fatalf("no summary line in the output:\n%s", out)
			}
			if m[1] != "20" || m[2] != "0" {
				t.Errorf("trials %s, failures %s; want 20 and 0:\n%s", m[1], m[2], out)
			}
			p50, _ := strconv.ParseFloat(m[3], 64)
			p99, _ := strconv.ParseFloat(m[5], 64)
			if !(p50 > 0 && p50 <= p99 && p99 <= 1000) {
				t.Errorf("p50 %vms, p99 %vms: want 0 < p50 ≤ p99 ≤ 1000 ms:\n%s", p50, p99, out)
			}
			if !strings.Contains(string(out), "exchange load during the trials: concurrency 4") {
				t.Errorf("the output does not report the exchange load:\n%s", out)
			}
			if s.store != "" && !strings.Contains(string(out), "verifier on the other instance") {
				t.Errorf("the PostgreSQL run does not report cross-instance propagation:\n%s", out)
			}
			t.Logf("%s", out)
		})
	}
	t.Run("fail/no-trials", func(t *testing.T) {
		out, err := exec.Command(bin, "--feed", "0").CombinedOutput()
		if err == nil || !strings.Contains(string(out), "--feed 0: want at least 1 trial") {
			t.Errorf("bench --feed 0: %v\n%s", err, out)
		}
	})
}
