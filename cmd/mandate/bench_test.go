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
