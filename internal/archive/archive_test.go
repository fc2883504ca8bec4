package archive_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/mandate-dev/mandate/internal/archive"
	"github.com/mandate-dev/mandate/internal/auditlog"
	"github.com/mandate-dev/mandate/internal/store"
	"github.com/mandate-dev/mandate/internal/store/sqlite"
)

var now = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

// fixture is a SQLite store holding n records, the first old of them 100
// days old and the rest a minute old, checkpointed.
func fixture(t testing.TB, n, old int) (*sqlite.Store, *auditlog.Checkpointer) {
	t.Helper()
	ctx := t.Context()
	s, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "mandate.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	appendEvents(t, s, n, old)
	cp := &auditlog.Checkpointer{Store: s, Origin: "https://mandate.test", Now: func() time.Time { return now }}
	if _, err := cp.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	return s, cp
}

func appendEvents(t testing.TB, s store.Store, n, old int) {
	t.Helper()
	evs, err := s.EventsAfter(t.Context(), 0, store.MaxPageLimit)
	if err != nil {
		t.Fatal(err)
	}
	have := len(evs)
	var batch []store.Event
	for i := range n {
		at := now.Add(-time.Minute)
		if i < old {
			at = now.Add(-100 * 24 * time.Hour).Add(time.Duration(i) * time.Second)
		}
		batch = append(batch, store.Event{ID: fmt.Sprintf("ev-%d", have+i+1), Time: at, Action: "token.issue",
			Result: "granted", Performer: "agent:a", OnBehalf: "user:alice"})
	}
	if err := s.Commit(t.Context(), store.Batch{Events: batch}); err != nil {
		t.Fatal(err)
	}
}

func archiver(s *sqlite.Store, dir string) *archive.Archiver {
	return &archive.Archiver{Store: s, Archive: archive.Dir{Path: dir}, Origin: "https://mandate.test",
		Retention: 90 * 24 * time.Hour, SegmentSize: 4, DeleteBatch: 3, Now: func() time.Time { return now }}
}

func verify(t *testing.T, s store.Store, dir string) archive.Report {
	t.Helper()
	ctx := t.Context()
	skey, err := s.CheckpointKey(ctx, auditlog.NewKey)
	if err != nil {
		t.Fatal(err)
	}
	vkey, err := auditlog.VerifierKey(skey)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := store.AllCheckpoints(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	var opened []auditlog.Checkpoint
	for _, c := range cs {
		o, err := auditlog.Open(c.Note, vkey)
		if err != nil {
			t.Fatal(err)
		}
		opened = append(opened, o)
	}
	rep, err := archive.Verify(ctx, archive.Dir{Path: dir}, vkey, opened,
		func(ctx context.Context, after int64, fn func(store.Event) error) error {
			return store.EachEvent(ctx, s, after, fn)
		})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func TestPassArchivesDeletesAndVerifiesAcrossTheCut(t *testing.T) {
	s, cp := fixture(t, 14, 10)
	dir := filepath.Join(t.TempDir(), "archive")
	res, err := archiver(s, dir).Pass(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	want := []string{archive.Name(1, 4), archive.Name(5, 8), archive.Name(9, 10)}
	if !slices.Equal(res.Segments, want) || res.Archived != 10 || res.Deleted != 10 {
		t.Fatalf("Pass = %+v, want segments %v through 10, 10 deleted", res, want)
	}
	live, err := s.EventsAfter(t.Context(), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(live) != 4 || live[0].Seq != 11 {
		t.Fatalf("the live log holds %d records from %d, want 4 from 11", len(live), live[0].Seq)
	}
	// The log goes on and is checkpointed after the cut.
	appendEvents(t, s, 3, 0)
	if _, err := cp.Checkpoint(t.Context()); err != nil {
		t.Fatalf("Checkpoint after the cut: %v", err)
	}
	rep := verify(t, s, dir)
	if !rep.OK() || rep.Records != 17 || rep.Segments != 3 {
		t.Fatalf("Verify = %+v, want OK, 17 records, 3 segments", rep)
	}
	// A second pass finds nothing older than the retention.
	res, err = archiver(s, dir).Pass(t.Context())
	if err != nil || len(res.Segments) != 0 {
		t.Fatalf("second Pass = %+v, %v; want nothing archived", res, err)
	}
}

func TestPassKeepsTheNewestAndTheUncheckpointed(t *testing.T) {
	s, _ := fixture(t, 6, 6)
	appendEvents(t, s, 0, 0)
	dir := t.TempDir()
	res, err := archiver(s, dir).Pass(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if res.Archived != 5 {
		t.Fatalf("Pass archived through %d, want 5: the newest record stays", res.Archived)
	}
	// Old records appended after the latest checkpoint stay until one
	// covers them.
	s2, _ := fixture(t, 3, 3)
	appendEvents(t, s2, 5, 5)
	res, err = archiver(s2, t.TempDir()).Pass(t.Context())
	if err != nil || res.Archived != 3 {
		t.Fatalf("Pass = %+v, %v; want archived through 3, the checkpoint", res, err)
	}
}

// TestPassResumes stops a pass at each stage (the context ends there, as a
// process killed there would) and checks that the next pass finishes it:
// every record once, in the archives or in the store.
func TestPassResumes(t *testing.T) {
	for _, stage := range []string{archive.StageWritten, archive.StageMarked} {
		t.Run("ok/stopped-"+stage, func(t *testing.T) {
			s, _ := fixture(t, 14, 10)
			dir := t.TempDir()
			a := archiver(s, dir)
			ctx, cancel := context.WithCancel(t.Context())
			a.Pause = func(_ context.Context, at string) {
				if at == stage {
					cancel()
				}
			}
			a.Store = stopAfterCancel{s, ctx}
			if _, err := a.Pass(ctx); err == nil {
				t.Fatal("the stopped pass returned no error")
			}
			res, err := archiver(s, dir).Pass(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if res.Archived != 10 {
				t.Fatalf("the next pass archived through %d, want 10", res.Archived)
			}
			live, err := s.EventsAfter(t.Context(), 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			if len(live) != 4 || live[0].Seq != 11 {
				t.Fatalf("the live log holds %d records from %d, want 4 from 11", len(live), live[0].Seq)
			}
			if rep := verify(t, s, dir); !rep.OK() || rep.Records != 14 {
				t.Fatalf("Verify = %+v", rep)
			}
		})
	}
}

// stopAfterCancel fails every change once ctx ends, as a killed process
// makes none.
type stopAfterCancel struct {
	*sqlite.Store
	ctx context.Context
}

func (s stopAfterCancel) MarkArchived(ctx context.Context, from int64, a store.ArchivedLog) error {
	if err := s.ctx.Err(); err != nil {
		return err
	}
	return s.Store.MarkArchived(ctx, from, a)
}

func (s stopAfterCancel) DeleteArchivedEvents(ctx context.Context, through int64, limit int) (int, error) {
	if err := s.ctx.Err(); err != nil {
		return 0, err
	}
	return s.Store.DeleteArchivedEvents(ctx, through, limit)
}

func TestDirNeverOverwrites(t *testing.T) {
	d := archive.Dir{Path: filepath.Join(t.TempDir(), "a")}
	ctx := t.Context()
	name := archive.Name(1, 2)
	if err := d.Put(ctx, name, []byte("one")); err != nil {
		t.Fatal(err)
	}
	if err := d.Put(ctx, name, []byte("two")); err == nil {
		t.Fatal("a second Put of one name succeeded")
	}
	if b, err := d.Get(ctx, name); err != nil || string(b) != "one" {
		t.Fatalf("Get = %q, %v; want the first", b, err)
	}
	if err := d.Put(ctx, "../escape", nil); err == nil {
		t.Fatal("Put of a name that is not a segment's succeeded")
	}
	if names, err := d.List(ctx); err != nil || !slices.Equal(names, []string{name}) {
		t.Fatalf("List = %v, %v", names, err)
	}
}

// TestPassPaced runs a pass with every step resting and the delete
// batches sized by their time: it archives and deletes the same records,
// and rests after each segment and each delete batch.
func TestPassPaced(t *testing.T) {
	s, _ := fixture(t, 14, 10)
	a := archiver(s, filepath.Join(t.TempDir(), "archive"))
	a.DeleteBatch, a.DeleteHold = 100, time.Nanosecond // every batch is too long: the least size
	var rests []time.Duration
	a.Rest = func(ctx context.Context, took time.Duration) error {
		rests = append(rests, took)
		return ctx.Err()
	}
	res, err := a.Pass(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if res.Archived != 10 || res.Deleted != 10 || len(res.Segments) != 3 {
		t.Fatalf("Pass = %+v, want 3 segments through 10, 10 deleted", res)
	}
	// Three segments, each read, written and checked with a rest after
	// each, and each one's records deleted in one batch of at most 16
	// (then an empty batch, which does not rest).
	if len(rests) != 12 {
		t.Errorf("%d rests, want 12 (3 per segment, 3 delete batches)", len(rests))
	}
}

// TestPassKeepsItsCutoff: a pass takes the records older than the
// retention when it starts, and no more however long it runs: a paced pass
// that chased the records aging meanwhile would write one small segment
// after another.
func TestPassKeepsItsCutoff(t *testing.T) {
	s, _ := fixture(t, 14, 10)
	a := archiver(s, filepath.Join(t.TempDir(), "archive"))
	calls := 0
	a.Now = func() time.Time {
		calls++
		if calls == 1 {
			return now
		}
		// Later, every record but the newest would be old enough.
		return now.Add(a.Retention + time.Hour)
	}
	res, err := a.Pass(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if res.Archived != 10 {
		t.Fatalf("Pass archived through %d, want 10: the records old at its start", res.Archived)
	}
}
