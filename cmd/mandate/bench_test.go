package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestBenchRunsEndToEnd runs the load tool in its self-contained mode for a
// handful of requests: it writes a configuration the server loads, starts
// the server from the same binary, drives both grants and reports the
// server's CPU per request.
func TestBenchRunsEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs real processes")
	}
	bin := buildBinary(t)
	out, err := exec.Command(bin, "bench", "--requests", "40", "--warmup", "0s", "--concurrency", "2", "--no-pin").CombinedOutput()
	if err != nil {
		t.Fatalf("bench: %v\n%s", err, out)
	}
	for _, want := range []string{"exchange", "client_credentials", "µs"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("bench output lacks %q:\n%s", want, out)
		}
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
	bin := buildBinary(t)
	out, err := exec.Command(bin, "bench", "--propagation", "20", "--store", pg).CombinedOutput()
	if err != nil {
		t.Fatalf("bench --propagation: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "trials 20") {
		t.Errorf("output:\n%s", out)
	}
}
