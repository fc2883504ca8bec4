package server_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// testBinDir is where builtMandate puts the mandate command; TestMain makes
// it and removes it.
var testBinDir string

// builtMandate compiles the mandate command the first time a test runs it:
// one link per test run.
var builtMandate = sync.OnceValues(func() (string, error) {
	bin := filepath.Join(testBinDir, "mandate")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/mandate-dev/mandate/cmd/mandate")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build: %w", err)
	}
	return bin, nil
})

// mandateBinary returns the mandate command, compiled once per test run.
func mandateBinary(t testing.TB) string {
	t.Helper()
	bin, err := builtMandate()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// TestMain runs the tests with a directory for the binary they share.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "mandate-server-test-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	testBinDir = dir
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}
