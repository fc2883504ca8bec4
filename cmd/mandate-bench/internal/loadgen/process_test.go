package loadgen

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func startShell(t *testing.T, script string) *Process {
	t.Helper()
	log, err := os.Create(filepath.Join(t.TempDir(), "server.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = log.Close() })
	p, err := Start(ProcessConfig{Path: "/bin/sh", Args: []string{"-c", script}, CPU: -1, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Stop(time.Second) })
	return p
}

func TestProcessStop(t *testing.T) {
	p := startShell(t, "echo started; exec sleep 30")
	time.Sleep(100 * time.Millisecond)
	if err := p.Stop(5 * time.Second); err != nil {
		t.Errorf("Stop = %v, want nil after SIGTERM", err)
	}
	if got := p.LogTail(100); got != "started" {
		t.Errorf("LogTail = %q", got)
	}
}

func TestProcessExitsBeforeHealthy(t *testing.T) {
	p := startShell(t, "echo bad config >&2; exit 3")
	err := p.WaitHealthy(context.Background(), "http://127.0.0.1:1/healthz", 10*time.Second)
	if err == nil || !strings.Contains(err.Error(), "exited before it was ready") {
		t.Errorf("WaitHealthy = %v", err)
	}
	if got := p.LogTail(100); got != "bad config" {
		t.Errorf("LogTail = %q", got)
	}
}

func TestParseCPUModel(t *testing.T) {
	const info = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Processor @ 2.50GHz\nprocessor\t: 1\nmodel name\t: other\n"
	if got := ParseCPUModel([]byte(info)); got != "Intel(R) Xeon(R) Processor @ 2.50GHz" {
		t.Errorf("ParseCPUModel = %q", got)
	}
}
