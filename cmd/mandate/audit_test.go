package main

import (
	"bufio"
	"bytes"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite"

	"github.com/mandate-dev/mandate/internal/auditchain"
	"github.com/mandate-dev/mandate/internal/auditlog"
	"github.com/mandate-dev/mandate/internal/store"
)

// auditRun runs `mandate audit ARGS` and returns its output and exit code.
func auditRun(t *testing.T, bin string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"audit"}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), code
}

// openDB opens the backend's database directly, as someone who controls
// it would: the SQLite file, or the PostgreSQL schema.
func openDB(t *testing.T, b backend, dir string) *sql.DB {
	t.Helper()
	var db *sql.DB
	var err error
	if b.name == "sqlite" {
		db, err = sql.Open("sqlite", filepath.Join(dir, "data", "mandate.db"))
	} else {
		schema := regexp.MustCompile(`store_schema: (\S+)`).FindStringSubmatch(b.yaml)[1]
		u, perr := url.Parse(postgresURL(t))
		if perr != nil {
			t.Fatal(perr)
		}
		q := u.Query()
		q.Set("search_path", schema)
		u.RawQuery = q.Encode()
		db, err = sql.Open("pgx", u.String())
	}
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	return db
}

func execSQL(t *testing.T, db *sql.DB, stmts ...string) {
	t.Helper()
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// TestAuditTamperEvidence is THREATS T67 and T68 with the real binary on
// every backend: a log written by a running server, checkpointed twice,
// verifies; then, the server stopped, each tampering with the database
// that someone who controls it could do is caught by `mandate audit
// verify`, which names the first bad record or the broken checkpoint.
func TestAuditTamperEvidence(t *testing.T) {
	onEveryBackend(t, func(t *testing.T, bin string, b backend) {
		dir, port := t.TempDir(), freePort(t)
		cfg := writeConfig(t, dir, port, b)
		p := startServer(t, bin, cfg, port)
		checkpoint := func() int64 {
			t.Helper()
			code, body, err := p.admin(http.MethodPost, "/audit/checkpoints", "")
			if err != nil || code != http.StatusOK {
				t.Fatalf("checkpoint: %d %v %v", code, body, err)
			}
			return int64(body["size"].(float64))
		}
		for range 6 {
			if code, _, err := p.exchange(p.personToken(t)); err != nil || code != http.StatusOK {
				t.Fatalf("exchange: %d %v", code, err)
			}
		}
		first := checkpoint()
		for range 4 {
			p.exchange(p.personToken(t))
		}
		last := checkpoint()
		_, body, err := p.admin(http.MethodGet, "/audit/checkpoints", "")
		if err != nil {
			t.Fatal(err)
		}
		key := body["verifier_key"].(string)
		p.kill(t)
		if first < 8 || last <= first+4 {
			t.Fatalf("checkpoints at %d and %d: too few records to tamper with", first, last)
		}
		t.Logf("log of %d records, checkpoints at %d and %d", last, first, last)

		verify := func(t *testing.T, args ...string) (string, int) {
			t.Helper()
			return auditRun(t, bin, append([]string{"verify", "--key", key}, args...)...)
		}
		if out, code := verify(t, "--config", cfg); code != 0 || !strings.Contains(out, fmt.Sprintf("audit log OK: %d records, 4 signed checkpoints", last)) {
			// Two checkpoints, each in the store and in the witness file.
			t.Fatalf("untouched log: exit %d: %s", code, out)
		}
		export := filepath.Join(dir, "export.jsonl")
		if out, code := auditRun(t, bin, "export", "--config", cfg, "--out", export); code != 0 {
			t.Fatalf("export: %d %s", code, out)
		}
		witness := filepath.Join(dir, "data", "audit-witness.txt")
		if out, code := verify(t, "--file", export, "--witness", witness); code != 0 || !strings.Contains(out, "audit log OK") {
			t.Fatalf("export with the witness: exit %d: %s", code, out)
		}
		if out, code := auditRun(t, bin, "verify", "--file", export, "--witness", witness, "--key", otherKey(t, bin)); code == 0 || !strings.Contains(out, "does not verify with the key") {
			t.Errorf("checkpoints checked with another key: exit %d: %s", code, out)
		}

		db := openDB(t, b, dir)
		if b.name == "postgres" {
			// Whoever controls the database can drop what stands in
			// the way of an edit.
			execSQL(t, db, "ALTER TABLE event_actors DROP CONSTRAINT IF EXISTS event_actors_seq_fkey")
		}
		execSQL(t, db, "CREATE TABLE events_backup AS SELECT * FROM events",
			"CREATE TABLE checkpoints_backup AS SELECT * FROM audit_checkpoints")
		restore := func() {
			execSQL(t, db, "DELETE FROM events", "INSERT INTO events SELECT * FROM events_backup",
				"DELETE FROM audit_checkpoints", "INSERT INTO audit_checkpoints SELECT * FROM checkpoints_backup")
		}
		const k = 5
		cases := []struct {
			name  string
			sql   []string
			bad   int64
			words string
		}{
			{name: "flip-a-byte", sql: []string{fmt.Sprintf("UPDATE events SET action = 'token.exchangf' WHERE seq = %d", k)}, bad: k, words: "does not match its chain hash"},
			{name: "field-boundary-shift", sql: []string{fmt.Sprintf("UPDATE events SET performer = performer || 'x', on_behalf = substr(on_behalf, 2) WHERE seq = %d", k)}, bad: k, words: "does not match its chain hash"},
			{name: "delete", sql: []string{fmt.Sprintf("DELETE FROM events WHERE seq = %d", k)}, bad: k, words: "missing"},
			{name: "swap", sql: []string{
				fmt.Sprintf("UPDATE events SET seq = -1 WHERE seq = %d", k),
				fmt.Sprintf("UPDATE events SET seq = %d WHERE seq = %d", k, k+1),
				fmt.Sprintf("UPDATE events SET seq = %d WHERE seq = -1", k+1),
			}, bad: k, words: "does not match its chain hash"},
			{name: "insert", sql: []string{
				fmt.Sprintf("UPDATE events SET seq = seq + 1000000 WHERE seq >= %d", k),
				"UPDATE events SET seq = seq - 999999 WHERE seq >= 1000000",
				fmt.Sprintf("CREATE TABLE forged AS SELECT * FROM events_backup WHERE seq = %d", k-1),
				fmt.Sprintf("UPDATE forged SET seq = %d, id = 'evt_forged'", k),
				"INSERT INTO events SELECT * FROM forged",
				"DROP TABLE forged",
			}, bad: k, words: "chain hash"},
			{name: "truncate-tail", sql: []string{fmt.Sprintf("DELETE FROM events WHERE seq > %d", last-2)}, bad: last - 1, words: "tail was cut off"},
			{name: "roll-back-and-drop-checkpoints", sql: []string{
				fmt.Sprintf("DELETE FROM events WHERE seq > %d", first),
				fmt.Sprintf("DELETE FROM audit_checkpoints WHERE size > %d", first),
			}, bad: first + 1, words: "older log was swapped in"},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				execSQL(t, db, tc.sql...)
				defer restore()
				out, code := verify(t, "--config", cfg)
				want := fmt.Sprintf("FAILED at record %d", tc.bad)
				if code != 1 || !strings.Contains(out, want) || !strings.Contains(out, tc.words) {
					t.Errorf("exit %d: %s\nwant exit 1, %q and %q", code, out, want, tc.words)
				}
			})
		}
		t.Run("edit-and-relink", func(t *testing.T) {
			// The whole chain recomputed after an edit, as anyone can
			// (the chain has no secret): only the signed checkpoints
			// catch it.
			forged := filepath.Join(dir, "forged.jsonl")
			relink(t, export, forged, k)
			out, code := verify(t, "--file", forged, "--witness", witness)
			if code != 1 || !strings.Contains(out, "FAILED at record 1:") || !strings.Contains(out, fmt.Sprintf("checkpoint at size %d", first)) {
				t.Errorf("exit %d: %s", code, out)
			}
		})
		if out, code := verify(t, "--config", cfg); code != 0 {
			t.Fatalf("after the restore: exit %d: %s", code, out)
		}
	})
}

// relink copies the export src to dst with record k edited and every hash
// from it on recomputed.
func relink(t *testing.T, src, dst string, k int64) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	var out bytes.Buffer
	prev := auditchain.Genesis
	sc := bufio.NewScanner(in)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var ev store.Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Seq == k {
			ev.Result = "refused"
		}
		h := auditchain.Next(prev, ev)
		ev.Hash, prev = h[:], h
		b, _ := json.Marshal(ev)
		out.Write(append(b, '\n'))
	}
	if err := os.WriteFile(dst, out.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}

// otherKey is the verifier key of a checkpoint key that signed nothing.
func otherKey(t *testing.T, _ string) string {
	t.Helper()
	skey, err := auditlog.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	vkey, err := auditlog.VerifierKey(skey)
	if err != nil {
		t.Fatal(err)
	}
	return vkey
}
