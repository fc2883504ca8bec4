package auditlog_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mandate-dev/mandate/internal/auditlog"
	"github.com/mandate-dev/mandate/internal/store"
	"github.com/mandate-dev/mandate/internal/store/sqlite"
)

func appendEvents(t *testing.T, s store.Store, n int) {
	t.Helper()
	evs := make([]store.Event, n)
	for i := range evs {
		evs[i] = store.Event{ID: "evt", Action: "token.exchange", Result: "granted"}
	}
	if err := s.Commit(context.Background(), store.Batch{Events: evs}); err != nil {
		t.Fatal(err)
	}
}

func openStore(t testing.TB) store.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "m.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestCheckpointer: checkpoints are signed with the store's key, extend one
// another, go to the witness file, and a log that does not chain is not
// checkpointed.
func TestCheckpointer(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	witness := filepath.Join(t.TempDir(), "w", "witness.txt")
	c := &auditlog.Checkpointer{Store: s, Origin: "https://mandate.example", Witness: witness}
	if cp, err := c.Checkpoint(ctx); err != nil || cp.Size != 0 {
		t.Fatalf("checkpoint of the empty log = %+v, %v; want nothing stored", cp, err)
	}
	appendEvents(t, s, 5)
	first, err := c.Checkpoint(ctx)
	if err != nil || first.Size != 5 {
		t.Fatalf("first checkpoint = size %d, %v", first.Size, err)
	}
	appendEvents(t, s, 3)
	second, err := c.Checkpoint(ctx)
	if err != nil || second.Size != 8 {
		t.Fatalf("second checkpoint = size %d, %v", second.Size, err)
	}
	if again, err := c.Checkpoint(ctx); err != nil || again.Size != 8 {
		t.Errorf("checkpoint of a log that did not grow = %d, %v", again.Size, err)
	}
	vkey, err := c.VerifierKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(witness)
	if err != nil {
		t.Fatal(err)
	}
	notes := auditlog.SplitNotes(string(b))
	if len(notes) != 2 {
		t.Fatalf("witness holds %d notes, want 2", len(notes))
	}
	for i, want := range []int64{5, 8} {
		cp, err := auditlog.Open(notes[i], vkey)
		if err != nil || cp.Size != want || cp.Origin != "https://mandate.example" {
			t.Errorf("witness note %d = %+v, %v", i, cp, err)
		}
	}
}

// racing is the store as another instance sees it: just before this
// instance stores its checkpoint, the other one stores a longer one.
type racing struct {
	store.Store
	before func()
}

func (r *racing) AddCheckpoint(ctx context.Context, c store.Checkpoint) error {
	if f := r.before; f != nil {
		r.before = nil
		f()
	}
	return r.Store.AddCheckpoint(ctx, c)
}

// TestCheckpointersRace: two instances checkpointing at once both succeed;
// the longer checkpoint covers the shorter, which is not stored.
func TestCheckpointersRace(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	other := &auditlog.Checkpointer{Store: s, Origin: "o"}
	appendEvents(t, s, 4)
	r := &racing{Store: s, before: func() {
		appendEvents(t, s, 2)
		if cp, err := other.Checkpoint(ctx); err != nil || cp.Size != 6 {
			t.Errorf("the other instance's checkpoint = %d, %v", cp.Size, err)
		}
	}}
	mine := &auditlog.Checkpointer{Store: r, Origin: "o"}
	cp, err := mine.Checkpoint(ctx)
	if err != nil || cp.Size != 6 {
		t.Fatalf("checkpoint that lost the race = size %d, %v; want the other's (6) and no error", cp.Size, err)
	}
}

// TestCheckpointerRefusesABrokenLog: a record edited under the
// checkpointer stops it, naming the record.
func TestCheckpointerRefusesABrokenLog(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	appendEvents(t, s, 3)
	evs, err := s.EventsAfter(ctx, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	evs[1].Action = "forged"
	broken := &edited{Store: s, evs: evs}
	c := &auditlog.Checkpointer{Store: broken, Origin: "o"}
	if _, err := c.Checkpoint(ctx); err == nil || !strings.Contains(err.Error(), "record 2") {
		t.Errorf("checkpoint of a broken log = %v, want a refusal naming record 2", err)
	}
	if _, err := s.LatestCheckpoint(ctx); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a broken log was checkpointed: %v", err)
	}
}

// edited serves a log with one record changed, as a tampered database
// would.
type edited struct {
	store.Store
	evs []store.Event
}

func (e *edited) EventsAfter(_ context.Context, after int64, _ int) ([]store.Event, error) {
	return e.evs[after:], nil
}

// TestCheckpointerReadsAhead: Read checks the records appended since the
// last read, in pages, and signs nothing; the next checkpoint starts where
// it stopped. A record edited after it was read does not change what is
// signed, and a replay of the edited log fails against that checkpoint.
func TestCheckpointerReadsAhead(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	appendEvents(t, s, 300) // more than two pages
	c := &auditlog.Checkpointer{Store: s, Origin: "o"}
	if n, err := c.Read(ctx); err != nil || n != 300 {
		t.Fatalf("Read = %d, %v; want 300", n, err)
	}
	if _, err := s.LatestCheckpoint(ctx); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Read stored a checkpoint: %v", err)
	}
	var evs []store.Event
	if err := store.EachEvent(ctx, s, 0, func(ev store.Event) error { evs = append(evs, ev); return nil }); err != nil {
		t.Fatal(err)
	}
	forged := slices.Clone(evs)
	forged[149].Action = "forged"
	c.Store = &edited{Store: s, evs: forged}
	cp, err := c.Checkpoint(ctx)
	if err != nil || cp.Size != 300 || string(cp.Head) != string(evs[299].Hash) {
		t.Fatalf("checkpoint after the edit = size %d head %x, %v; want 300 and the head read before it", cp.Size, cp.Head, err)
	}
	vkey, err := c.VerifierKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	opened, err := auditlog.Open(cp.Note, vkey)
	if err != nil {
		t.Fatal(err)
	}
	for name, log := range map[string][]store.Event{"as written": evs, "edited": forged} {
		r := auditlog.NewReplay([]auditlog.Checkpoint{opened})
		for _, ev := range log {
			r.Add(ev)
		}
		res := r.Finish()
		if ok := name == "as written"; res.OK() != ok || res.Checkpoints != map[bool]int{true: 1}[ok] {
			t.Errorf("replay of the log %s = %+v", name, res)
		}
	}
}

// reads counts the records a Checkpointer read.
type reads struct {
	store.Store
	n atomic.Int64
}

func (r *reads) EventsAfter(ctx context.Context, after int64, limit int) ([]store.Event, error) {
	evs, err := r.Store.EventsAfter(ctx, after, limit)
	r.n.Add(int64(len(evs)))
	return evs, err
}

// TestCheckpointerRunReadsBetweenCheckpoints: Run reads new records every
// ReadEvery, long before the next checkpoint is due.
func TestCheckpointerRunReadsBetweenCheckpoints(t *testing.T) {
	s := openStore(t)
	r := &reads{Store: s}
	c := &auditlog.Checkpointer{Store: r, Origin: "o", Every: time.Hour, ReadEvery: 5 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); c.Run(ctx) }()
	defer func() { cancel(); <-done }()
	appendEvents(t, s, 7)
	for deadline := time.Now().Add(10 * time.Second); r.n.Load() < 7; {
		if time.Now().After(deadline) {
			t.Fatalf("Run read %d records in 10 s, want 7", r.n.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := s.LatestCheckpoint(context.Background()); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Run checkpointed before Every: %v", err)
	}
}

// TestCheckpointerCheckpointsDuringReads: checkpoints asked for while Run
// reads ahead (and lets go of the checkpointer between pages) cover the log
// as it grows, and the last one matches a replay of the whole log.
func TestCheckpointerCheckpointsDuringReads(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	c := &auditlog.Checkpointer{Store: s, Origin: "o", Every: time.Hour, ReadEvery: time.Millisecond}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); c.Run(runCtx) }()
	var last store.Checkpoint
	for i := range 10 {
		appendEvents(t, s, 200)
		cp, err := c.Checkpoint(ctx)
		if err != nil || cp.Size != int64(200*(i+1)) {
			t.Fatalf("checkpoint %d = size %d, %v; want %d", i, cp.Size, err, 200*(i+1))
		}
		last = cp
	}
	cancel()
	<-done
	vkey, err := c.VerifierKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	opened, err := auditlog.Open(last.Note, vkey)
	if err != nil {
		t.Fatal(err)
	}
	r := auditlog.NewReplay([]auditlog.Checkpoint{opened})
	if err := store.EachEvent(ctx, s, 0, func(ev store.Event) error { r.Add(ev); return nil }); err != nil {
		t.Fatal(err)
	}
	if res := r.Finish(); !res.OK() || res.Checkpoints != 1 || res.Records != 2000 {
		t.Errorf("replay against the last checkpoint = %+v", res)
	}
}

// pages records the page sizes a Checkpointer asked for.
type pages struct {
	store.Store
	limits []int
}

func (p *pages) EventsAfter(ctx context.Context, after int64, limit int) ([]store.Event, error) {
	p.limits = append(p.limits, limit)
	return p.Store.EventsAfter(ctx, after, limit)
}

// TestCheckpointerReadPage: reads go in pages of ReadPage, 16 by default,
// to the end of the log.
func TestCheckpointerReadPage(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	appendEvents(t, s, 100)
	for _, c := range []struct {
		page, want, calls int
	}{{0, 16, 7}, {7, 7, 15}, {256, 256, 1}} {
		p := &pages{Store: s}
		ck := &auditlog.Checkpointer{Store: p, Origin: "o", ReadPage: c.page}
		if n, err := ck.Read(ctx); err != nil || n != 100 {
			t.Fatalf("ReadPage %d: Read = %d, %v", c.page, n, err)
		}
		if len(p.limits) != c.calls || p.limits[0] != c.want {
			t.Errorf("ReadPage %d: pages asked for %v, want %d of %d", c.page, p.limits, c.calls, c.want)
		}
	}
}
