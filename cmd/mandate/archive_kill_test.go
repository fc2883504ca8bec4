package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// waitLog returns once the server log at path holds want (at most 30 s).
func waitLog(t *testing.T, path, want string) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if b, _ := os.ReadFile(path); strings.Contains(string(b), want) {
			return
		}
	}
	t.Fatalf("the server never logged %q", want)
}

// archivedOKLine is what `mandate audit verify` prints for a log read from
// archives and the live log.
var archivedOKLine = regexp.MustCompile(`audit log OK: (\d+) records \((\d+) archive segments, then the live log\)`)

// TestArchivePassSurvivesSIGKILL kills a server in the middle of an archive
// pass, after a segment is written and before its records are marked
// archived, and after they are marked and before they are deleted; a
// restarted server finishes the pass. No record is lost and none is left
// both in an archive and in the database: the archives and the live log
// verify as one chain holding every record once.
func TestArchivePassSurvivesSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills real processes")
	}
	bin := buildBinary(t)
	for _, b := range backends(t) {
		for i, stage := range []string{"written", "marked"} {
			t.Run(b.name+"/killed-"+stage, func(t *testing.T) {
				b := backend{name: b.name, yaml: strings.Replace(b.yaml, "store_schema: t_", fmt.Sprintf("store_schema: a%d_", i), 1) +
					"audit:\n  checkpoint_every: 1s\n  retention: 2s\n"}
				dir, port := t.TempDir(), freePort(t)
				cfg := writeConfig(t, dir, port, b)
				p, logPath := startServerEnv(t, bin, cfg, port, []string{"MANDATE_TEST_ARCHIVE_PAUSE=" + stage})
				key := p.verifierKey(t)
				subject := p.personToken(t)
				const exchanges = 30
				for range exchanges {
					if code, body, err := p.exchange(subject); err != nil || code != 200 {
						t.Fatalf("exchange: %d %v %v", code, body, err)
					}
				}
				waitLog(t, logPath, "archive pass paused")
				p.kill(t)

				p, logPath = startServerEnv(t, bin, cfg, port, nil)
				waitLog(t, logPath, "audit records archived")
				p.kill(t)

				out, code := auditRun(t, bin, "verify", "--config", cfg, "--key", key)
				m := archivedOKLine.FindStringSubmatch(out)
				if code != 0 || m == nil {
					t.Fatalf("mandate audit verify: exit %d: %s", code, out)
				}
				records, _ := strconv.ParseInt(m[1], 10, 64)
				if records < exchanges {
					t.Fatalf("%d records verified, want at least the %d exchanges", records, exchanges)
				}
				// Every record is in one place: the segments chain from
				// record 1 up to the live log, which starts right after the
				// archived mark. The server may have been killed, in turn,
				// after writing the next segment and before marking it: that
				// segment starts at the live log's first record and is the
				// one the next pass reuses.
				live := exportedLog(t, bin, cfg)
				if len(live) == 0 {
					t.Fatal("the live log is empty; the newest record always stays")
				}
				marked, pending := archivedThrough(t, filepath.Join(dir, "data", "archive"), live[0].Seq)
				if marked != live[0].Seq-1 {
					t.Fatalf("the segments chain through record %d, the live log starts at %d", marked, live[0].Seq)
				}
				if total := marked + int64(len(live)); total != records {
					t.Fatalf("archives (%d) and live log (%d) hold %d records, verify chained %d", marked, len(live), total, records)
				}
				t.Logf("killed at %q: %d records, %d archived, %d live, %d written and not yet marked", stage, records, marked, len(live), pending)
			})
		}
	}
}

// archivedThrough reads the segment names in dir, which must chain from
// record 1 without a gap or an overlap, and returns the last record of the
// segments that end before record liveFirst and how many records the one
// segment that may follow them (written, not yet marked) holds.
func archivedThrough(t *testing.T, dir string, liveFirst int64) (marked, pending int64) {
	t.Helper()
	segs, err := filepath.Glob(filepath.Join(dir, "audit-*.jsonl.gz"))
	if err != nil || len(segs) == 0 {
		t.Fatalf("no archive segments: %v", err)
	}
	sort.Strings(segs)
	var next int64 = 1
	for i, s := range segs {
		var first, last int64
		if _, err := fmt.Sscanf(filepath.Base(s), "audit-%012d-%012d.jsonl.gz", &first, &last); err != nil {
			t.Fatal(err)
		}
		if first != next || last < first {
			t.Fatalf("segment %s does not follow record %d", filepath.Base(s), next-1)
		}
		if last >= liveFirst {
			if i != len(segs)-1 || first != liveFirst {
				t.Fatalf("segment %s overlaps the live log, which starts at %d", filepath.Base(s), liveFirst)
			}
			return next - 1, last - first + 1
		}
		next = last + 1
	}
	return next - 1, 0
}
