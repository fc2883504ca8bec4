package sqlite

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/mandate-dev/mandate/internal/store"
)

// TestBackgroundCheckpoint: the write connection leaves WAL checkpoints
// to the background checkpointer (it checkpoints by itself only past
// writerCheckpointPages), and the checkpointer copies what commits append
// into the database file while the store runs, so a commit does not pay
// for a checkpoint.
func TestBackgroundCheckpoint(t *testing.T) {
	s, err := Open(t.Context(), filepath.Join(t.TempDir(), "mandate.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var auto int
	if err := s.w.QueryRowContext(t.Context(), "PRAGMA wal_autocheckpoint").Scan(&auto); err != nil {
		t.Fatal(err)
	}
	if auto != writerCheckpointPages {
		t.Fatalf("the writer's wal_autocheckpoint is %d, want %d", auto, writerCheckpointPages)
	}
	for i := range 200 {
		ev := store.Event{ID: fmt.Sprintf("evt_%d", i), Time: time.Now(), Action: "token.issue", Result: "granted", JTI: fmt.Sprintf("j%d", i)}
		if err := s.Commit(t.Context(), store.Batch{Events: []store.Event{ev}}); err != nil {
			t.Fatal(err)
		}
	}
	start := s.ckpt.runs()
	deadline := time.Now().Add(10 * time.Second)
	for s.ckpt.runs() < start+2 {
		if time.Now().After(deadline) {
			t.Fatal("the background checkpointer did not run")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Everything appended is in the database file: a checkpoint now has
	// no frame left to copy.
	var busy, logPages, done int
	if err := s.w.QueryRowContext(t.Context(), "PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &logPages, &done); err != nil {
		t.Fatal(err)
	}
	if logPages == 0 || done != logPages {
		t.Errorf("after the background checkpoints: %d of %d WAL frames in the database file", done, logPages)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}
