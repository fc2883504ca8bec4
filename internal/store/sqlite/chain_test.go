package sqlite_test

import (
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/mandate-dev/mandate/internal/store"
	"github.com/mandate-dev/mandate/internal/store/sqlite"
	"github.com/mandate-dev/mandate/internal/store/storetest"
)

// applyUpTo makes the database at path as a build with migrations up to and
// including version did, from the migration files; on a database it made
// before, it applies the migrations after the last it applied.
func applyUpTo(t *testing.T, path string, version int) {
	t.Helper()
	files, err := filepath.Glob("migrations/*.sql")
	if err != nil || len(files) == 0 {
		t.Fatalf("migrations: %v, %d files", err, len(files))
	}
	sort.Strings(files)
	db := rawDB(t, path)
	if _, err := db.Exec(`CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	var applied int
	if err := db.QueryRow("SELECT coalesce(max(version), 0) FROM schema_migrations").Scan(&applied); err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		v, err := strconv.Atoi(strings.SplitN(filepath.Base(f), "_", 2)[0])
		if err != nil {
			t.Fatal(err)
		}
		if v > version || v <= applied {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(string(b)); err != nil {
			t.Fatalf("apply %s: %v", f, err)
		}
		if _, err := db.Exec("INSERT INTO schema_migrations VALUES (?, ?, 0)", v, filepath.Base(f)); err != nil {
			t.Fatal(err)
		}
	}
}

// applyMigration applies the one migration version to db, as migrate does
// (without the Go step of chainMigration).
func applyMigration(t *testing.T, db *sql.DB, version int) {
	t.Helper()
	files, err := filepath.Glob(fmt.Sprintf("migrations/%04d_*.sql", version))
	if err != nil || len(files) != 1 {
		t.Fatalf("migration %d: %v, %d files", version, err, len(files))
	}
	b, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(string(b)); err != nil {
		t.Fatalf("apply %s: %v", files[0], err)
	}
	if _, err := db.Exec("INSERT INTO schema_migrations VALUES (?, ?, 0)", version, filepath.Base(files[0])); err != nil {
		t.Fatal(err)
	}
}

// TestChainExistingRecords: records written by a build from before the
// hash chain are chained, in seq order, when a build with it opens the
// file; the chain then carries on; and an append without a hash (an old
// build still writing to the file) is refused.
func TestChainExistingRecords(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mandate.db")
	applyUpTo(t, path, 5)
	db := rawDB(t, path)
	const old = 2500 // more than one page of chainExisting
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	for i := range old {
		// What the old build wrote: AUTOINCREMENT seqs, no hash.
		if _, err := tx.Exec(`INSERT INTO events (id, time, request_id, action, result, reason, detail, performer,
			on_behalf, chain, client_id, scopes, requested, audience, resource, context, delegation_id, jti, parent_jti)
			VALUES (?, ?, '', 'token.issue', 'ok', '', '', 'agent:a', 'user:sam', '["agent:a"]', 'agent:a', '["s"]', '[]',
			'aud', '', ?, '', ?, '')`, "old-"+strconv.Itoa(i), 1795000000000000+int64(i), `{"i":`+strconv.Itoa(i)+`}`,
			"jti-"+strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}

	s := openAt(t, path)
	if v, err := s.SchemaVersion(t.Context()); err != nil || v < 6 {
		t.Fatalf("SchemaVersion = %d, %v; want 6 or more", v, err)
	}
	if got := storetest.VerifyChain(t, s); len(got) != old || got[old-1].ID != "old-"+strconv.Itoa(old-1) {
		t.Fatalf("%d records chained, want the %d old ones", len(got), old)
	}
	if err := s.Commit(t.Context(), store.Batch{Events: []store.Event{{ID: "new", Action: "token.issue"}}}); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	if got := storetest.VerifyChain(t, s); len(got) != old+1 || got[old].ID != "new" {
		t.Errorf("%d records after a new one, want %d", len(got), old+1)
	}

	_, err = db.Exec(`INSERT INTO events (id, time, request_id, action, result, reason, detail, performer,
		on_behalf, chain, client_id, scopes, requested, audience, resource, context, delegation_id, jti, parent_jti)
		VALUES ('unchained', NULL, '', 'x', 'ok', '', '', '', '', '[]', '', '[]', '[]', '', '', NULL, '', '', '')`)
	if err == nil || !strings.Contains(err.Error(), "hash") {
		t.Errorf("an append without a hash: err = %v, want a refusal", err)
	}
	if got := storetest.VerifyChain(t, s); len(got) != old+1 {
		t.Errorf("%d records after the refused append, want %d", len(got), old+1)
	}
}

// TestChainMigrationOfEmptyLog: a database with no events starts the chain
// at Genesis with Seq 1.
func TestChainMigrationOfEmptyLog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mandate.db")
	applyUpTo(t, path, 5)
	s, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	if err := s.Commit(t.Context(), store.Batch{Events: []store.Event{{ID: "first", Action: "a"}}}); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	if got := storetest.VerifyChain(t, s); len(got) != 1 {
		t.Errorf("%d records, want 1", len(got))
	}
}
