package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// The load tool is its own command, cmd/mandate-bench; its process tests
// live here with the other process tests of the server it starts.

// builtBench compiles the mandate-bench command the first time a test asks
// for it, beside the mandate binary (TestMain removes both).
var builtBench = sync.OnceValues(func() (string, error) {
	bin := filepath.Join(testBinDir, "mandate-bench")
	cmd := exec.Command("go", "build", "-o", bin, "../mandate-bench")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build: %w", err)
	}
	return bin, nil
})

// buildBench returns the mandate-bench command, compiled once per test run.
func buildBench(t *testing.T) string {
	t.Helper()
	bin, err := builtBench()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// TestBenchRunsEndToEnd runs the load tool in its self-contained mode for a
// handful of requests: it writes a configuration the server loads, starts
// the server from the same binary (mandate serve, built into it), drives both grants and reports the
// server's CPU per request.
func TestBenchRunsEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs real processes")
	}
	bin := buildBench(t)
	out, err := exec.Command(bin, "--requests", "40", "--warmup", "0s", "--concurrency", "2", "--no-pin").CombinedOutput()
	if err != nil {
		t.Fatalf("bench: %v\n%s", err, out)
	}
	for _, want := range []string{"exchange", "client_credentials", "µs"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("bench output lacks %q:\n%s", want, out)
		}
	}
}

// TestBenchBareBaseline runs the exchange against mandate serve and against
// the bare server of the same run, each request carrying an actor token
// (two signatures to check), and checks that every request of both
// succeeded and that the ratio is printed.
func TestBenchBareBaseline(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs real processes")
	}
	bin := buildBench(t)
	out, err := exec.Command(bin, "--requests", "40", "--warmup", "0s", "--concurrency", "2", "--no-pin",
		"--grant", "exchange,bare", "--actor-token", "--json").Output()
	if err != nil {
		t.Fatalf("bench: %v\n%s", err, out)
	}
	var res struct {
		Runs []struct {
			Grant    string `json:"grant"`
			Requests int    `json:"requests"`
			Errors   int    `json:"errors"`
		} `json:"runs"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("bench --json: %v\n%s", err, out)
	}
	grants := map[string]bool{}
	for _, r := range res.Runs {
		grants[r.Grant] = true
		if r.Requests < 40 || r.Errors != 0 {
			t.Errorf("%s: %d requests, %d errors", r.Grant, r.Requests, r.Errors)
		}
	}
	if !grants["exchange"] || !grants["bare"] {
		t.Errorf("runs %+v, want exchange and bare", res.Runs)
	}
	text, err := exec.Command(bin, "--requests", "20", "--warmup", "0s", "--concurrency", "1", "--no-pin",
		"--grant", "exchange,bare").CombinedOutput()
	if err != nil || !strings.Contains(string(text), "exchange ÷ bare") {
		t.Errorf("bench: %v, want the exchange ÷ bare ratio:\n%s", err, text)
	}
}

// TestBenchPropagation runs the load tool's propagation mode: two
// instances on one PostgreSQL database, an agent disabled on one, its token
// refused by the other (issue 3).
func TestBenchPropagation(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs real processes")
	}
	pg := postgresURL(t)
	bin := buildBench(t)
	out, err := exec.Command(bin, "--propagation", "20", "--store", pg).CombinedOutput()
	if err != nil {
		t.Fatalf("bench --propagation: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "trials 20") {
		t.Errorf("output:\n%s", out)
	}
}
