package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/mandate-dev/mandate/internal/auditchain"
	"github.com/mandate-dev/mandate/internal/store"
)

// testAuditArchive checks the archived mark and the deletion of archived
// records: the mark only moves forward, from where it is, to a record the
// store holds with that hash, never to the newest; only records below it
// are deleted, in batches; the live log goes on chaining after a cut.
func testAuditArchive(t *testing.T, open func(t *testing.T) store.Store) {
	s, ctx := open(t), t.Context()
	appendEvents := func(from, n int) {
		t.Helper()
		var evs []store.Event
		for i := range n {
			ev := newEvent(fmt.Sprintf("ev-%d", from+i), "test.archive")
			// The chains a token exchange writes: the performer alone (a
			// store may keep it in a compact form), or with the agents
			// before it.
			switch (from + i) % 3 {
			case 1:
				ev.Chain = []string{ev.Performer}
			case 2:
				ev.ClientID, ev.Chain = "agent:hop", []string{"agent:hop", ev.Performer}
			}
			evs = append(evs, ev)
		}
		if err := s.Commit(ctx, store.Batch{Events: evs}); err != nil {
			t.Fatalf("Commit: %v", err)
		}
	}
	appendEvents(1, 10)
	all := VerifyChain(t, s)
	mark := func(size int) store.ArchivedLog {
		return store.ArchivedLog{Size: int64(size), Head: all[size-1].Hash, Tree: []byte(`{"n":0}`)}
	}

	if a, err := s.ArchivedLog(ctx); err != nil || a.Size != 0 {
		t.Fatalf("ArchivedLog of a fresh store = %+v, %v; want the zero mark", a, err)
	}
	if _, err := s.DeleteArchivedEvents(ctx, 1, 10); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("fail/delete-unarchived: DeleteArchivedEvents = %v, want ErrConflict", err)
	}
	if err := s.MarkArchived(ctx, 0, mark(4)); err != nil {
		t.Fatalf("MarkArchived(0 → 4): %v", err)
	}
	if err := s.MarkArchived(ctx, 0, mark(4)); err != nil {
		t.Fatalf("ok/retry: MarkArchived(0 → 4) again: %v", err)
	}
	bad := mark(6)
	bad.Head = all[4].Hash
	for _, c := range []struct {
		name string
		from int64
		to   store.ArchivedLog
	}{
		{name: "fail/not-from-the-mark", from: 0, to: mark(5)},
		{name: "fail/backwards", from: 4, to: mark(3)},
		{name: "fail/the-newest-stays", from: 4, to: mark(10)},
		{name: "fail/head-not-the-record's", from: 4, to: bad},
		{name: "fail/no-tree", from: 4, to: store.ArchivedLog{Size: 6, Head: all[5].Hash}},
		{name: "fail/no-such-record", from: 4, to: store.ArchivedLog{Size: 99, Head: all[5].Hash, Tree: []byte(`{}`)}},
	} {
		if err := s.MarkArchived(ctx, c.from, c.to); !errors.Is(err, store.ErrConflict) {
			t.Errorf("%s: MarkArchived = %v, want ErrConflict", c.name, err)
		}
	}
	got, err := s.ArchivedLog(ctx)
	if err != nil {
		t.Fatalf("ArchivedLog: %v", err)
	}
	if diff := cmp.Diff(mark(4), got); diff != "" {
		t.Fatalf("ArchivedLog (-want +got):\n%s", diff)
	}
	if _, err := s.DeleteArchivedEvents(ctx, 5, 10); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("fail/delete-past-the-mark: DeleteArchivedEvents(5) = %v, want ErrConflict", err)
	}
	for _, want := range []int{3, 1, 0} {
		n, err := s.DeleteArchivedEvents(ctx, 4, 3)
		if err != nil || n != want {
			t.Fatalf("DeleteArchivedEvents(4, 3) = %d, %v; want %d", n, err, want)
		}
	}
	live, err := s.EventsAfter(ctx, 0, 0)
	if err != nil {
		t.Fatalf("EventsAfter: %v", err)
	}
	if len(live) != 6 || live[0].Seq != 5 {
		t.Fatalf("after the cut the log holds %d records from %d, want 6 from 5", len(live), live[0].Seq)
	}
	if evs := mustEvents(t, s); len(evs) != 6 {
		t.Fatalf("QueryEvents after the cut: %d records, want 6", len(evs))
	}
	if evs, err := s.QueryEvents(ctx, store.EventFilter{Actor: "admin:root"}); err != nil || len(evs) != 6 {
		t.Fatalf("QueryEvents by actor after the cut: %d records, %v; want 6", len(evs), err)
	}

	// Everything but the newest is archived and deleted: the next append
	// still chains on from it.
	if err := s.MarkArchived(ctx, 4, mark(9)); err != nil {
		t.Fatalf("MarkArchived(4 → 9): %v", err)
	}
	if n, err := s.DeleteArchivedEvents(ctx, 9, 0); err != nil || n != 5 {
		t.Fatalf("DeleteArchivedEvents(9) = %d, %v; want 5", n, err)
	}
	appendEvents(11, 2)
	live, err = s.EventsAfter(ctx, 0, 0)
	if err != nil {
		t.Fatalf("EventsAfter: %v", err)
	}
	if len(live) != 3 || live[0].Seq != 10 {
		t.Fatalf("the live log holds %d records from %d, want 3 from 10", len(live), live[0].Seq)
	}
	// The seqs go on from the newest record, never from the records
	// left, and the archived records and the live ones make one chain.
	verifyAcross(t, append(all[:9:9], live...), 12)
}

// verifyAcross checks that evs, the archived records and then the live
// ones, are the seqs 1 to n in order, each chained to the one before from
// auditchain.Genesis, as a verifier reading the archive and then the store
// would.
func verifyAcross(t *testing.T, evs []store.Event, n int) {
	t.Helper()
	if len(evs) != n {
		t.Fatalf("%d records across the archive and the live log, want %d", len(evs), n)
	}
	head := auditchain.Genesis
	for i, e := range evs {
		if e.Seq != int64(i+1) {
			t.Fatalf("record %s has seq %d, want %d: a seq was skipped or handed out again", e.ID, e.Seq, i+1)
		}
		next := auditchain.Next(head, e)
		if !bytes.Equal(e.Hash, next[:]) {
			t.Fatalf("record %d does not chain on from the one before", e.Seq)
		}
		head = next
	}
}
