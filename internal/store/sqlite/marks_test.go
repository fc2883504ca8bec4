package sqlite_test

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/mandate-dev/mandate/internal/store"
	"github.com/mandate-dev/mandate/internal/store/storetest"
)

// TestTimeMarksOfExistingRecords: the time marks of the records written
// before migration 17 (out of time order, as a log holds them) bound its
// time windows exactly, and the append carries on from them. From 18 (a
// database with the marks and events_resource, before the deferred
// indexes of 19 and 20), the records are indexed by migration 19 and every
// window, the resource's too, is still exact.
func TestTimeMarksOfExistingRecords(t *testing.T) {
	for _, tt := range []struct {
		from, marks int
	}{{from: 16, marks: 5}, {from: 18, marks: 0}} {
		t.Run(fmt.Sprintf("from%d", tt.from), func(t *testing.T) { testMarksOfExisting(t, tt.from, tt.marks) })
	}
}

func testMarksOfExisting(t *testing.T, from, want int) {
	path := filepath.Join(t.TempDir(), "mandate.db")
	applyUpTo(t, path, from)
	db := rawDB(t, path)
	evs := storetest.WindowEvents(6200)
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range evs[:5200] {
		chain, err := json.Marshal(e.Chain)
		if err != nil {
			t.Fatal(err)
		}
		var at any
		if !e.Time.IsZero() {
			at = e.Time.UnixMicro()
		}
		// What the build before wrote, but for the chain hash, which no
		// query reads.
		if _, err := tx.Exec(`INSERT INTO events (hash, id, time, request_id, action, result, reason, detail,
			performer, on_behalf, chain, client_id, scopes, requested, audience, resource, delegation_id, jti, parent_jti)
			VALUES (zeroblob(32), ?, ?, '', ?, ?, '', '', ?, ?, ?, ?, '[]', '[]', '', ?, '', '', '')`,
			e.ID, at, e.Action, e.Result, e.Performer, e.OnBehalf, string(chain), e.ClientID, e.Resource); err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(`INSERT INTO event_actors (actor, seq) VALUES (?, last_insert_rowid())`, e.Performer); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}

	s := openAt(t, path)
	var marks int
	if err := db.QueryRow("SELECT count(*) FROM event_time_marks").Scan(&marks); err != nil || marks != want {
		t.Fatalf("%d marks, %v; want %d", marks, err, want)
	}
	if err := s.Commit(t.Context(), store.Batch{Events: evs[5200:]}); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	storetest.CheckTimeWindows(t, s)
}
