package cli

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mandate-dev/mandate/internal/app"
	"github.com/mandate-dev/mandate/internal/archive"
	"github.com/mandate-dev/mandate/internal/auditlog"
	"github.com/mandate-dev/mandate/internal/config"
	"github.com/mandate-dev/mandate/internal/store"
)

// archivedLog writes a configuration whose store holds 14 records, the
// first 12 of them 100 days old, checkpointed, and archives those older
// than its 90-day retention in segments of 4, all but the newest: records
// 1-4, 5-8 and 9-12 in archives, 13-14 live. It returns the
// configuration's path and its archive directory.
func archivedLog(t *testing.T) (string, string) {
	t.Helper()
	ctx := t.Context()
	dir := t.TempDir()
	path := filepath.Join(dir, "mandate.yaml")
	yaml := fmt.Sprintf("issuer: https://mandate.test\ndata_dir: %s\naudit: {retention: 90d}\n", filepath.Join(dir, "data"))
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	s, err := app.OpenStore(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	now := time.Now()
	var evs []store.Event
	for i := range 14 {
		at := now.Add(-time.Minute)
		if i < 12 {
			at = now.Add(-100 * 24 * time.Hour).Add(time.Duration(i) * time.Second)
		}
		evs = append(evs, store.Event{ID: fmt.Sprintf("ev-%d", i+1), Time: at, Action: "token.issue", Result: "granted",
			Performer: "agent:a", OnBehalf: "user:alice", Resource: "expense/EXP-" + fmt.Sprint(i+1)})
	}
	if err := s.Commit(ctx, store.Batch{Events: evs}); err != nil {
		t.Fatal(err)
	}
	cp := &auditlog.Checkpointer{Store: s, Origin: cfg.Issuer, Witness: cfg.WitnessPath()}
	if _, err := cp.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	a := &archive.Archiver{Store: s, Archive: archive.Dir{Path: cfg.ArchivePath()}, Origin: cfg.Issuer,
		Retention: cfg.Audit.Retention.Std(), SegmentSize: 4}
	res, err := a.Pass(ctx)
	if err != nil || res.Archived != 12 {
		t.Fatalf("Pass = %+v, %v; want archived through 12", res, err)
	}
	return path, cfg.ArchivePath()
}

func runMain(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := Main(context.Background(), args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// rewrite replaces the decompressed content of a segment by what edit
// makes of it, compressed again.
func rewrite(t *testing.T, path string, edit func(string) string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	plain, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	zw.Write([]byte(edit(string(plain))))
	zw.Close()
	if err := os.WriteFile(path, out.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestArchiveVerifiesAcrossTheCut: `audit verify --config` reads the
// archives and then the live log as one chain.
func TestArchiveVerifiesAcrossTheCut(t *testing.T) {
	path, _ := archivedLog(t)
	code, out, errOut := runMain(t, "audit", "verify", "--config", path)
	if code != 0 || !strings.Contains(out, "audit log OK: 14 records (3 archive segments, then the live log)") {
		t.Fatalf("audit verify = %d\n%s%s", code, out, errOut)
	}
	// Without the archives, the missing records are named.
	code, out, _ = runMain(t, "audit", "verify", "--config", path, "--archive", t.TempDir())
	if code != 1 || !strings.Contains(out, "records 1 to 12 were archived") {
		t.Fatalf("audit verify --archive EMPTY = %d\n%s", code, out)
	}
}

// TestQueryReadsArchives: a query whose window reaches back before the
// live log reads the archives too, and says so; one within the live log
// does not.
func TestQueryReadsArchives(t *testing.T) {
	path, _ := archivedLog(t)
	code, out, errOut := runMain(t, "audit", "query", "--config", path, "--resource", "expense/EXP-3", "--json")
	if code != 0 || !strings.Contains(out, `"resource":"expense/EXP-3"`) || !strings.Contains(errOut, "reading archives: slower") {
		t.Fatalf("audit query of an archived record = %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = runMain(t, "audit", "query", "--config", path, "--json", "--limit", "0")
	if n := strings.Count(out, `"seq":`); code != 0 || n != 14 {
		t.Fatalf("audit query of everything = %d, %d records, want 14\n%s", code, n, errOut)
	}
	// The live records are a minute old: a window from 30 s ago starts
	// after the live log's first record.
	code, _, errOut = runMain(t, "audit", "query", "--config", path, "--since", "30s", "--json")
	if code != 0 || strings.Contains(errOut, "reading archives") {
		t.Fatalf("audit query --since 30s = %d, read the archives\n%s", code, errOut)
	}
}

// TestT98ArchiveTampering: each tampering of an archive (a segment missing,
// swapped, edited, truncated) is named by `audit verify`.
func TestT98ArchiveTampering(t *testing.T) {
	for _, tc := range []struct {
		name   string
		tamper func(t *testing.T, dir string)
		want   string
	}{
		{
			name:   "fail/segment-missing",
			tamper: func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, archive.Name(5, 8))) },
			want:   "FAILED at record 5: records 5 to 8 are missing: no archive segment holds them",
		},
		{
			name:   "fail/last-segment-missing",
			tamper: func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, archive.Name(9, 12))) },
			want:   "the live log does not continue from the last archive segment: record 9 is missing",
		},
		{
			name: "fail/segments-swapped",
			tamper: func(t *testing.T, dir string) {
				a, b := filepath.Join(dir, archive.Name(1, 4)), filepath.Join(dir, archive.Name(5, 8))
				tmp := filepath.Join(dir, "swap")
				os.Rename(a, tmp)
				os.Rename(b, a)
				os.Rename(tmp, b)
			},
			want: "archive segment " + archive.Name(1, 4) + ": its checkpoint is of the log at 8 records, not 4 as its name says: swapped or renamed",
		},
		{
			name: "fail/segment-edited",
			tamper: func(t *testing.T, dir string) {
				rewrite(t, filepath.Join(dir, archive.Name(5, 8)), func(s string) string {
					return strings.Replace(s, "expense/EXP-6", "expense/EXP-9", 1)
				})
			},
			want: "FAILED at record 6: archive segment " + archive.Name(5, 8) + ": record 6 does not match its chain hash",
		},
		{
			name: "fail/segment-truncated",
			tamper: func(t *testing.T, dir string) {
				p := filepath.Join(dir, archive.Name(5, 8))
				b, _ := os.ReadFile(p)
				os.WriteFile(p, b[:len(b)/2], 0o600)
			},
			want: "archive segment " + archive.Name(5, 8) + " is truncated",
		},
		{
			name: "fail/segment-cut-short-and-recompressed",
			tamper: func(t *testing.T, dir string) {
				rewrite(t, filepath.Join(dir, archive.Name(5, 8)), func(s string) string {
					lines := strings.SplitAfter(s, "\n")
					return strings.Join(lines[:2], "")
				})
			},
			want: "archive segment " + archive.Name(5, 8) + " is truncated: archive: segment truncated: it ends without its checkpoint",
		},
		{
			name: "fail/records-cut-checkpoint-kept",
			tamper: func(t *testing.T, dir string) {
				rewrite(t, filepath.Join(dir, archive.Name(5, 8)), func(s string) string {
					lines := strings.SplitAfter(s, "\n")
					return strings.Join(append(lines[:2:2], lines[4]), "")
				})
			},
			want: "FAILED at record 7: archive segment " + archive.Name(5, 8) + " is truncated: its records end at 6, its checkpoint and name say 8",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path, dir := archivedLog(t)
			tc.tamper(t, dir)
			code, out, errOut := runMain(t, "audit", "verify", "--config", path)
			if code != 1 || !strings.Contains(out, tc.want) {
				t.Fatalf("audit verify = %d\n%s%s\nwant %q", code, out, errOut, tc.want)
			}
		})
	}
}
