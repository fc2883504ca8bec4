package cli

import (
	"bytes"
	"context"
	"testing"

	"github.com/mandate-dev/mandate/internal/buildinfo"
)

func TestVersionCommand(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := Main(context.Background(), []string{"version"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
	if want := "mandate " + buildinfo.Read().String() + "\n"; stdout.String() != want {
		t.Errorf("stdout = %q, want %q", stdout.String(), want)
	}
	stdout.Reset()
	if code := Main(context.Background(), []string{"version", "extra"}, &stdout, &stderr); code == 0 {
		t.Errorf("version with an argument: exit 0, stdout %q", stdout.String())
	}
}
