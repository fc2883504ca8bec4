package sqlite_test

import (
	"database/sql"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// schemaOf is the schema of the events table at path: its columns (name,
// type, NOT NULL, default, key) and the SQL of its indexes and triggers,
// by name.
func schemaOf(t *testing.T, db *sql.DB) (cols []string, objects map[string]string) {
	t.Helper()
	rows, err := db.Query("SELECT name, type, \"notnull\", coalesce(dflt_value, 'NULL'), pk FROM pragma_table_info('events')")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var name, typ, dflt string
		var notNull, pk int
		if err := rows.Scan(&name, &typ, &notNull, &dflt, &pk); err != nil {
			t.Fatal(err)
		}
		cols = append(cols, fmt.Sprintf("%s %s notnull=%d default=%s pk=%d", name, typ, notNull, dflt, pk))
	}
	rows.Close()
	objects = map[string]string{}
	rows, err = db.Query("SELECT name, sql FROM sqlite_schema WHERE tbl_name = 'events' AND type IN ('index', 'trigger')")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var name, q string
		if err := rows.Scan(&name, &q); err != nil {
			t.Fatal(err)
		}
		objects[name] = q
	}
	return cols, objects
}

// eventRows is every column of every record but the last, indexed (which
// the background indexer may set meanwhile), in seq order, as text.
func eventRows(t *testing.T, db *sql.DB) []string {
	t.Helper()
	rows, err := db.Query("SELECT * FROM events ORDER BY seq")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		if cols[len(cols)-1] != "indexed" {
			t.Fatalf("the last column of events is %s, want indexed", cols[len(cols)-1])
		}
		out = append(out, fmt.Sprint(vals[:len(vals)-1]...))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestEventsRebuiltWithoutAutoincrement: migration 21 rebuilds events
// without AUTOINCREMENT and keeps everything else: the columns and their
// defaults, every index with its predicate, the trigger, each record (the
// indexed and the pending ones) column for column; the indexes hold what
// the table does, and no seq is kept in sqlite_sequence any more.
func TestEventsRebuiltWithoutAutoincrement(t *testing.T) {
	dir := t.TempDir()
	fresh := filepath.Join(dir, "fresh.db")
	applyUpTo(t, fresh, 20)
	wantCols, wantObjects := schemaOf(t, rawDB(t, fresh))

	path := filepath.Join(dir, "mandate.db")
	applyUpTo(t, path, 20)
	db := rawDB(t, path)
	// Records as migration 20's schema holds them: some indexed, the
	// newest pending; verifiers' records, resources, jtis.
	if _, err := db.Exec(`WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3000)
INSERT INTO events (id, time, request_id, action, result, reason, detail, performer, on_behalf, chain, client_id,
	scopes, requested, audience, resource, context, delegation_id, jti, parent_jti, hash, agent_version,
	authorization_details, operation, attributes, reported_by, indexed)
SELECT 'e' || x, 1795000000000000 + x, 'req' || x, CASE x % 3 WHEN 0 THEN 'request' ELSE 'token.exchange' END, 'granted',
	'', 'détail', 'agent:' || (x % 5), 'user:' || (x % 7), '["agent:' || (x % 5) || '"]', 'agent:' || (x % 5), '["s"]', '[]',
	'aud', CASE x % 4 WHEN 0 THEN 'res:' || x ELSE '' END, CASE x % 2 WHEN 0 THEN '{"x":1}' END, 'dlg' || (x % 3),
	'jti' || x, CASE x % 2 WHEN 0 THEN 'jti' || (x - 1) ELSE '' END, randomblob(32), 'v1', NULL, '', NULL,
	CASE x % 3 WHEN 0 THEN 'rs:api' ELSE '' END, x <= 2900 FROM c`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("UPDATE event_index_head SET seq = 2900"); err != nil {
		t.Fatal(err)
	}
	before := eventRows(t, db)

	// Migration 21 alone: migration 22 writes the rows in another form
	// (TestCompactRowsMigrated).
	applyMigration(t, db, 21)
	if diff := cmp.Diff(before, eventRows(t, db)); diff != "" {
		t.Errorf("records after the rebuild (-before +after):\n%s", diff)
	}
	var lost int
	if err := db.QueryRow("SELECT count(*) FROM events WHERE seq <= 2900 AND indexed = 0").Scan(&lost); err != nil || lost != 0 {
		t.Errorf("%d indexed records are no longer indexed after the rebuild (%v)", lost, err)
	}
	cols, objects := schemaOf(t, db)
	for i, c := range wantCols {
		if i == 0 {
			continue // seq: INTEGER PRIMARY KEY either way
		}
		if i >= len(cols) || cols[i] != c {
			t.Errorf("column %d after the rebuild: %q, want %q", i, cols[min(i, len(cols)-1)], c)
		}
	}
	if len(cols) != len(wantCols) || cols[0] != wantCols[0] {
		t.Errorf("columns after the rebuild: %q, want %q", cols, wantCols)
	}
	if diff := cmp.Diff(wantObjects, objects); diff != "" {
		t.Errorf("indexes and triggers after the rebuild (-want +got):\n%s", diff)
	}
	var table string
	if err := db.QueryRow("SELECT sql FROM sqlite_schema WHERE name = 'events'").Scan(&table); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(strings.ToUpper(table), "AUTOINCREMENT") {
		t.Errorf("events is still AUTOINCREMENT:\n%s", table)
	}
	var kept int
	if err := db.QueryRow("SELECT count(*) FROM sqlite_sequence WHERE name = 'events'").Scan(&kept); err != nil {
		t.Fatal(err)
	}
	if kept != 0 {
		t.Errorf("sqlite_sequence still holds a seq of events")
	}
	var check []string
	rows, err := db.Query("PRAGMA integrity_check")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			t.Fatal(err)
		}
		check = append(check, line)
	}
	if !slices.Equal(check, []string{"ok"}) {
		t.Errorf("integrity_check after the rebuild: %q", check)
	}
}
