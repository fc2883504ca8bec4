package sqlite

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mandate-dev/mandate/internal/auditchain"
	"github.com/mandate-dev/mandate/internal/store"
)

// openQuiet opens a store at a new path without its background indexer,
// so that a test decides what is indexed.
func openQuiet(t *testing.T) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "mandate.db")
	s, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	s.indexer.stop()
	s.indexer = nil
	t.Cleanup(func() { s.Close() })
	return s, path
}

func appendN(t *testing.T, s *Store, from, n int) {
	t.Helper()
	var b store.Batch
	for i := range n {
		b.Events = append(b.Events, store.Event{ID: fmt.Sprintf("e%d", from+i), Action: "token.issue", Performer: "agent:a"})
	}
	if err := s.Commit(context.Background(), b); err != nil {
		t.Fatalf("Commit: %v", err)
	}
}

func allEvents(t *testing.T, s *Store) []store.Event {
	t.Helper()
	evs, err := s.EventsAfter(context.Background(), 0, store.MaxPageLimit)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// TestSeqGoesOnFromTheArchivedMark: with every record archived and
// deleted, the newest too (which MarkArchived never allows, but an
// archiver of another build, or a hand at the file, might), the next
// append numbers on from the archived mark and chains on from its head,
// so that no seq the archive holds is handed out again, across a reopen;
// the archived records and the new ones make one chain.
func TestSeqGoesOnFromTheArchivedMark(t *testing.T) {
	ctx := context.Background()
	s, path := openQuiet(t)
	appendN(t, s, 1, 5)
	archived := allEvents(t, s)
	if _, err := s.w.ExecContext(ctx, "INSERT INTO audit_archived (id, size, head, tree) VALUES (1, 5, ?, '{}')",
		archived[4].Hash); err != nil {
		t.Fatal(err)
	}
	if _, err := s.w.ExecContext(ctx, "DELETE FROM events"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	appendN(t, s, 6, 2)
	live := allEvents(t, s)
	head := auditchain.Genesis
	for i, e := range append(archived, live...) {
		if e.Seq != int64(i+1) {
			t.Fatalf("record %s has seq %d, want %d", e.ID, e.Seq, i+1)
		}
		next := auditchain.Next(head, e)
		if !bytes.Equal(e.Hash, next[:]) {
			t.Fatalf("record %d does not chain on from the one before", e.Seq)
		}
		head = next
	}
	if len(live) != 2 {
		t.Fatalf("%d live records, want 2", len(live))
	}
}

// TestAppendRefusesACutBelowTheIndexHead: records the indexer has indexed
// that are gone from the end of the log (cut by a hand at the file) fail
// the next append, which writes nothing. A record without a chain hash at
// the end fails it as well.
func TestAppendRefusesACutBelowTheIndexHead(t *testing.T) {
	ctx := context.Background()
	s, _ := openQuiet(t)
	appendN(t, s, 1, 10)
	if _, err := s.indexEvents(ctx, indexBatch); err != nil {
		t.Fatal(err)
	}
	if _, err := s.w.ExecContext(ctx, "DELETE FROM events WHERE seq > 7"); err != nil {
		t.Fatal(err)
	}
	err := s.Commit(ctx, store.Batch{Events: []store.Event{{ID: "after-the-cut", Action: "token.issue"}}})
	if err == nil || !strings.Contains(err.Error(), "cut") {
		t.Fatalf("an append after a cut below the index head: err = %v, want a refusal", err)
	}
	if evs := allEvents(t, s); len(evs) != 7 {
		t.Fatalf("%d records after the refused append, want 7", len(evs))
	}

	// The last record edited to have no chain hash.
	if _, err := s.w.ExecContext(ctx, "UPDATE event_index_head SET seq = 7"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.w.ExecContext(ctx, "UPDATE events SET hash = x'00' WHERE seq = 7"); err != nil {
		t.Fatal(err)
	}
	err = s.Commit(ctx, store.Batch{Events: []store.Event{{ID: "after-the-edit", Action: "token.issue"}}})
	if err == nil || !strings.Contains(err.Error(), "chain hash") {
		t.Fatalf("an append after an unchained record: err = %v, want a refusal", err)
	}
}
