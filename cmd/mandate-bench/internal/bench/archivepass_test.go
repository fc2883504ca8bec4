package bench

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/mandate-dev/mandate/internal/cli"
)

// TestArchivePassCommand: `mandate-bench archive` over a filled and
// checkpointed store moves the records older than the retention into
// segments and sweeps the expired token rows, and the archives and the
// live log still verify as one chain of every record.
func TestArchivePassCommand(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db := filepath.Join(dir, "mandate.db")
	arch := filepath.Join(dir, "archive")
	run := func(args ...string) string {
		t.Helper()
		var out, errOut bytes.Buffer
		if code := Main(ctx, args, &out, &errOut); code != 0 {
			t.Fatalf("mandate-bench %s: exit %d\n%s%s", strings.Join(args, " "), code, out.String(), errOut.String())
		}
		return out.String()
	}
	run("fill", "--store", "sqlite:"+db, "--records", "4000", "--batch", "500", "--span", "96h")
	run("checkpoint", "--store", "sqlite:"+db, "--origin", "http://127.0.0.1:1")
	out := run("archive", "--store", "sqlite:"+db, "--retention", "48h", "--archive-dir", arch, "--origin", "http://127.0.0.1:1")

	m := regexp.MustCompile(`(\d+) records deleted`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("archive said:\n%s", out)
	}
	// Half the span lies beyond the retention: about half the records.
	if n, _ := strconv.Atoi(m[1]); n < 1500 || n > 2500 {
		t.Errorf("deleted %d of 4000 records, want about half:\n%s", n, out)
	}
	if !regexp.MustCompile(`sweep: [1-9]\d* token rows`).MatchString(out) || !strings.Contains(out, "before: tables and indexes") || !strings.Contains(out, "after: tables and indexes") {
		t.Errorf("archive said:\n%s", out)
	}

	cfg := filepath.Join(dir, "mandate.yaml")
	if err := os.WriteFile(cfg, []byte("issuer: http://127.0.0.1:1\nstore: sqlite:"+db+"\ndata_dir: "+dir+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var vout, verr bytes.Buffer
	if code := cli.Main(ctx, []string{"audit", "verify", "--config", cfg, "--archive", arch}, &vout, &verr); code != 0 || !strings.Contains(vout.String(), "4000") {
		t.Fatalf("mandate audit verify: exit %d\n%s%s", code, vout.String(), verr.String())
	}
}
