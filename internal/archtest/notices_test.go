package archtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestThirdPartyNoticesComplete: THIRD_PARTY_NOTICES.md names every module
// compiled into the binary and the libraries, at the version go.mod picks,
// so that a new dependency cannot ship without its licence
// (scripts/notices writes the file).
func TestThirdPartyNoticesComplete(t *testing.T) {
	root := repoRoot(t)
	notices, err := os.ReadFile(filepath.Join(root, "THIRD_PARTY_NOTICES.md"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "LICENSE")); err != nil {
		t.Fatalf("no LICENSE at the root: %v", err)
	}
	cmd := exec.Command("go", "list", "-deps", "-f", "{{with .Module}}{{.Path}} {{.Version}}{{end}}", "./cmd/mandate", "./verify/...", "./agent")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	seen := map[string]bool{}
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) != 2 || seen[line] {
			continue // the standard library, and this module, have no version
		}
		seen[line] = true
		if !strings.Contains(string(notices), "\n## "+line+"\n") {
			t.Errorf("THIRD_PARTY_NOTICES.md lacks %s: run scripts/notices", line)
		}
	}
	if len(seen) == 0 {
		t.Fatal("go list named no module")
	}
}
