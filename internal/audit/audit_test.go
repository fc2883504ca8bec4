package audit_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"

	"github.com/mandate-dev/mandate/internal/audit"
	"github.com/mandate-dev/mandate/internal/store"
)

// committer commits nothing and fails with err.
type committer struct{ err error }

func (c committer) Commit(context.Context, store.Batch) error { return c.err }

// TestOnCommitted: both hooks see every commit attempt, OnCommitted with
// what it carried, its error and a duration.
func TestOnCommitted(t *testing.T) {
	boom := errors.New("disk full")
	tests := []struct {
		name   string
		err    error
		tokens []store.IssuedToken
		want   audit.Commit // without Duration
	}{
		{name: "ok/event-and-token", tokens: []store.IssuedToken{{JTI: "j1"}}, want: audit.Commit{Events: 1, Tokens: 1}},
		{name: "ok/event-only", want: audit.Commit{Events: 1}},
		{name: "fail/commit-error", err: boom, want: audit.Commit{Events: 1, Err: boom}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var (
				mu        sync.Mutex
				commits   []audit.Commit
				onCommitN []int
			)
			r := audit.NewRecorder(committer{err: tc.err}, audit.Config{
				OnCommit: func(n int, _ error) { mu.Lock(); onCommitN = append(onCommitN, n); mu.Unlock() },
				OnCommitted: func(c audit.Commit) {
					mu.Lock()
					commits = append(commits, c)
					mu.Unlock()
				},
			})
			err := r.Record(context.Background(), audit.Event{Action: audit.ActionTokenIssue}, tc.tokens...)
			r.Close()
			if !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
				t.Fatalf("Record = %v, want %v", err, tc.err)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(commits) != 1 || commits[0].Duration < 0 {
				t.Fatalf("OnCommitted calls: %+v", commits)
			}
			got := commits[0]
			got.Duration = 0
			if diff := cmp.Diff(tc.want, got, cmp.Comparer(func(a, b error) bool { return errors.Is(a, b) })); diff != "" {
				t.Errorf("commit (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff([]int{1}, onCommitN); diff != "" {
				t.Errorf("OnCommit counts (-want +got):\n%s", diff)
			}
		})
	}
}

// capture commits nothing and keeps the events of the last batch.
type capture struct {
	mu     sync.Mutex
	events []store.Event
}

func (c *capture) Commit(_ context.Context, b store.Batch) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.events = append(c.events, b.Events...)
	return nil
}

// TestBound is THREATS T85's "stored as sent, bounded": a value a caller
// sent is kept exactly when it is valid UTF-8 without NUL and at most
// MaxFieldBytes; otherwise NUL and each invalid byte become U+FFFD and it
// is cut at a character, with the size it had. Record applies it.
func TestBound(t *testing.T) {
	long := strings.Repeat("a", audit.MaxFieldBytes-1) + "é" + "tail" // é straddles the bound
	for _, tc := range []struct {
		name, in, want string
	}{
		{name: "ok/plain", in: "/admin/users/x", want: "/admin/users/x"},
		{name: "ok/controls-and-bidi-kept", in: "x\n\r\t\x1b[2J\u202e\u0085", want: "x\n\r\t\x1b[2J\u202e\u0085"},
		{name: "ok/exactly-the-bound", in: strings.Repeat("b", audit.MaxFieldBytes), want: strings.Repeat("b", audit.MaxFieldBytes)},
		{name: "bound/nul", in: "a\x00b", want: "a\uFFFDb"},
		{name: "bound/each-invalid-byte", in: "a\xff\xfeb\xc3", want: "a\uFFFD\uFFFDb\uFFFD"},
		{name: "bound/long-cut-at-a-character", in: long,
			want: strings.Repeat("a", audit.MaxFieldBytes-1) + "…[" + strconv.Itoa(len(long)) + " bytes]"},
		{name: "bound/long-with-nul", in: "\x00" + strings.Repeat("c", 5000),
			want: "\uFFFD" + strings.Repeat("c", audit.MaxFieldBytes-3) + "…[5001 bytes]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			chain := []string{"agent:a", tc.in}
			ev := audit.Event{Resource: tc.in, Audience: tc.in, ClientID: tc.in, Chain: chain}
			audit.Bound(&ev)
			if ev.Resource != tc.want || ev.Audience != tc.want || ev.ClientID != tc.want || ev.Chain[1] != tc.want || ev.Chain[0] != "agent:a" {
				t.Errorf("Bound: resource %q, chain %q; want %q", ev.Resource, ev.Chain, tc.want)
			}
			if chain[1] != tc.in {
				t.Errorf("Bound changed the caller's chain")
			}
		})
	}
	c := &capture{}
	r := audit.NewRecorder(c, audit.Config{})
	if err := r.Record(context.Background(), audit.Event{Action: audit.ActionAdminAuth, Resource: "/admin/" + strings.Repeat("x", 60_000)}); err != nil {
		t.Fatal(err)
	}
	r.Close()
	if len(c.events) != 1 || !strings.HasSuffix(c.events[0].Resource, "…[60007 bytes]") || len(c.events[0].Resource) > audit.MaxFieldBytes+20 {
		t.Errorf("Record stored %d bytes of a 60,007-byte path", len(c.events[0].Resource))
	}
}

// FuzzBound: whatever the value, Bound keeps valid UTF-8 without NUL of
// bounded size, and keeps a value already within the bounds exactly.
func FuzzBound(f *testing.F) {
	for _, s := range []string{"", "agent:x", "a\x00b", "\xff", strings.Repeat("é", 600), strings.Repeat("z", 2000) + "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ev := audit.Event{Resource: s}
		audit.Bound(&ev)
		got := ev.Resource
		if !utf8.ValidString(got) || strings.ContainsRune(got, 0) || len(got) > audit.MaxFieldBytes+32 {
			t.Fatalf("Bound(%q) = %q", s, got)
		}
		if len(s) <= audit.MaxFieldBytes && utf8.ValidString(s) && !strings.ContainsRune(s, 0) && got != s {
			t.Fatalf("Bound(%q) = %q: changed a value within the bounds", s, got)
		}
	})
}
