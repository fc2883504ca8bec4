package audit_test

import (
	"context"
	"errors"
	"sync"
	"testing"

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
