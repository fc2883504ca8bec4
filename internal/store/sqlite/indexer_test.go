package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mandate-dev/mandate/internal/store"
)

// TestDeferredIndexAnswers: QueryEvents gives the same answer, page by
// page, whether some or all of the records are indexed (by the indexer or
// by a bulk write itself), and that answer is the records the filter
// matches, newest first.
func TestDeferredIndexAnswers(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "mandate.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.indexer.stop() // the test moves the index head itself
	s.indexer = nil

	base := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	var all []store.Event
	for i := range 300 {
		a, b := fmt.Sprintf("agent:a%d", i%5), fmt.Sprintf("agent:b%d", i%3)
		e := store.Event{
			ID: fmt.Sprintf("evt_%03d", i), Time: base.Add(time.Duration(i) * time.Second),
			Action: []string{"token.exchange", "token.issue", "token.revoke"}[i%3], Result: []string{"granted", "refused"}[i%2],
			Performer: b, ClientID: a, OnBehalf: fmt.Sprintf("user:u%d", i%4), Chain: []string{a, b, "agent:deep"}[:i%4%3+1],
			DelegationID: []string{"", "dlg_1", "dlg_2"}[i%3], JTI: fmt.Sprintf("j%d", i%50), ParentJTI: []string{"", "j7"}[i%7/6],
			Resource: []string{"", "res/1", "", "res/2", ""}[i%5],
		}
		if i%11 == 0 {
			e.Chain, e.Performer = nil, "" // names only its client
		}
		all = append(all, e)
	}
	// Lone commits and groups, whose records wait for the indexer, and
	// one bulk write, which indexes the records before it and its own.
	bulk := 0
	for i, k := 0, 0; i < len(all); k++ {
		n := min([]int{1, 1, 1, 10, 1, 1}[k%6], len(all)-i)
		if i >= 100 && bulk == 0 {
			n = inlineIndexAt + 2
			bulk = i + n
		}
		if err := s.Commit(ctx, store.Batch{Events: all[i : i+n]}); err != nil {
			t.Fatal(err)
		}
		i += n
	}
	var head int64
	if err := s.r.QueryRowContext(ctx, "SELECT seq FROM event_index_head").Scan(&head); err != nil || head != int64(bulk) {
		t.Fatalf("index head after the commits = %d, %v; want %d, the end of the bulk write", head, err, bulk)
	}
	filters := []store.EventFilter{
		{},
		{Actor: "agent:a1"}, {Actor: "agent:b2"}, {Actor: "agent:deep"}, {Actor: "agent:none"},
		{Subject: "user:u1"}, {Action: "token.revoke"}, {JTI: "j7"}, {DelegationID: "dlg_2"},
		{Actor: "agent:a2", Subject: "user:u3", Result: "refused"},
		{Actor: "agent:deep", JTI: "j7"},
		{Subject: "user:u2", Since: base.Add(100 * time.Second), Until: base.Add(200 * time.Second)},
		{Resource: "res/1"}, {Resource: "res/2", Result: "granted"}, {Resource: "res/none"},
		{Resource: "res/2", Since: base.Add(150 * time.Second)}, {Since: base.Add(250 * time.Second)},
	}
	pages := func(f store.EventFilter) []string {
		var ids []string
		f.Limit = 7
		for {
			evs, err := s.QueryEvents(ctx, f)
			if err != nil {
				t.Fatalf("QueryEvents %+v: %v", f, err)
			}
			for _, e := range evs {
				ids = append(ids, e.ID)
			}
			if len(evs) < f.Limit {
				return ids
			}
			f.BeforeSeq = evs[len(evs)-1].Seq
		}
	}
	want := make([][]string, len(filters))
	for i, f := range filters {
		for j := len(all) - 1; j >= 0; j-- {
			if matches(f, all[j]) {
				want[i] = append(want[i], all[j].ID)
			}
		}
	}
	for _, step := range []int{0, 130, 1, 1000} {
		if step > 0 {
			if _, err := s.indexEvents(ctx, step); err != nil {
				t.Fatal(err)
			}
		}
		for i, f := range filters {
			if diff := cmp.Diff(want[i], pages(f)); diff != "" {
				t.Errorf("after indexing %d more: %+v (-want +got):\n%s", step, f, diff)
			}
		}
	}
	if err := s.r.QueryRowContext(ctx, "SELECT seq FROM event_index_head").Scan(&head); err != nil || head != 300 {
		t.Errorf("index head = %d, %v; want 300", head, err)
	}
}

// matches is EventFilter's meaning, for the fields the test sets.
func matches(f store.EventFilter, e store.Event) bool {
	switch {
	case f.Actor != "" && f.Actor != e.Performer && f.Actor != e.ClientID && !slices.Contains(e.Chain, f.Actor),
		f.Subject != "" && f.Subject != e.OnBehalf,
		f.Action != "" && f.Action != e.Action,
		f.Result != "" && f.Result != e.Result,
		f.JTI != "" && f.JTI != e.JTI && f.JTI != e.ParentJTI,
		f.DelegationID != "" && f.DelegationID != e.DelegationID,
		f.Resource != "" && f.Resource != e.Resource,
		!f.Since.IsZero() && e.Time.Before(f.Since),
		!f.Until.IsZero() && !e.Time.Before(f.Until):
		return false
	}
	return true
}

// TestIndexerRuns: the background indexer reaches every record the
// commits append.
func TestIndexerRuns(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "mandate.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := range 50 {
		e := store.Event{ID: fmt.Sprintf("e%d", i), Action: "token.issue", Performer: "agent:a"}
		if err := s.Commit(ctx, store.Batch{Events: []store.Event{e}}); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		var head, actors int64
		if err := s.r.QueryRowContext(ctx, "SELECT (SELECT seq FROM event_index_head), (SELECT count(*) FROM event_actors)").
			Scan(&head, &actors); err != nil {
			t.Fatal(err)
		}
		if head == 50 && actors == 50 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("index head %d, %d actor rows; want 50 and 50", head, actors)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestSweepFindsPendingTokens: a token committed with the record that
// names it has no tokens row, and so is outside the sweep's expiry index,
// until that record is indexed (migration 23); Sweep indexes the pending
// records first, so it still deletes the token once it has expired, and
// leaves a live one.
func TestSweepFindsPendingTokens(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "mandate.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.indexer.stop()
	s.indexer = nil
	now := time.Now()
	var b store.Batch
	for i, exp := range []time.Duration{time.Minute, time.Hour} {
		jti := fmt.Sprintf("t%d", i)
		b.Tokens = append(b.Tokens, store.IssuedToken{JTI: jti, GrantType: "client_credentials", IssuedAt: now, ExpiresAt: now.Add(exp)})
		b.Events = append(b.Events, store.Event{ID: "e" + jti, Action: "token.issue", JTI: jti})
	}
	if err := s.Commit(ctx, b); err != nil {
		t.Fatal(err)
	}
	var pending int
	if err := s.r.QueryRowContext(ctx, "SELECT count(*) FROM events WHERE token IS NOT NULL AND jti NOT IN (SELECT jti FROM tokens)").Scan(&pending); err != nil || pending != 2 {
		t.Fatalf("%d tokens outside the expiry index after the commit (%v), want 2", pending, err)
	}
	got, err := s.Sweep(ctx, store.SweepCutoffs{Tokens: now.Add(2 * time.Minute)}, 0)
	if err != nil || got != (store.Swept{Tokens: 1}) {
		t.Fatalf("Sweep = %+v, %v; want one token", got, err)
	}
	if _, err := s.GetToken(ctx, "t1"); err != nil {
		t.Errorf("the live token: %v", err)
	}
}

// TestIndexerCatchesUp: a tail longer than a batch (left while no indexer
// ran) is indexed batch after batch, not one batch a tick.
func TestIndexerCatchesUp(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "mandate.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.indexer.stop()
	const n = 3*indexBatch + 10
	for i := 0; i < n; i += 100 {
		var b store.Batch
		for j := i; j < min(i+100, n); j++ {
			b.Events = append(b.Events, store.Event{ID: fmt.Sprintf("e%d", j), Action: "token.issue", Performer: "agent:a"})
		}
		if err := s.Commit(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	s.indexer = s.startIndexer()
	for {
		var head int64
		if err := s.r.QueryRowContext(ctx, "SELECT seq FROM event_index_head").Scan(&head); err != nil {
			t.Fatal(err)
		}
		if head == n {
			break
		}
		if time.Since(start) > 10*time.Second {
			t.Fatalf("index head %d after 10 s, want %d", head, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// One tick to start, then the batches back to back.
	if d := time.Since(start); d > 3*indexPoll+time.Second {
		t.Errorf("caught up with %d records in %v", n, d)
	}
}
