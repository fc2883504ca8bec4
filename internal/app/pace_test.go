package app

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mandate-dev/mandate/internal/config"
)

func TestNextBatch(t *testing.T) {
	for _, tc := range []struct {
		name    string
		n, most int
		took    time.Duration
		want    int
	}{
		{name: "ok/long-halves", n: 1000, most: 1000, took: 3 * sweepHold, want: 500},
		{name: "ok/short-doubles", n: 100, most: 1000, took: sweepHold / 4, want: 200},
		{name: "ok/short-stops-at-most", n: 800, most: 1000, took: 0, want: 1000},
		{name: "ok/about-right-stays", n: 300, most: 1000, took: sweepHold * 3 / 4, want: 300},
		{name: "ok/long-stops-at-least", n: minSweepBatch, most: 1000, took: time.Second, want: minSweepBatch},
		{name: "ok/most-below-least", n: 5, most: 5, took: time.Second, want: 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := nextBatch(tc.n, tc.took, tc.most); got != tc.want {
				t.Errorf("nextBatch(%d, %v, %d) = %d, want %d", tc.n, tc.took, tc.most, got, tc.want)
			}
		})
	}
}

func TestPacerWait(t *testing.T) {
	p := pacer{share: 0.25, least: time.Millisecond}
	start := time.Now()
	if err := p.wait(t.Context(), 20*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	// A step of 20 ms at a quarter of the time: 60 ms of rest.
	if took := time.Since(start); took < 60*time.Millisecond {
		t.Errorf("rested %v, want at least 60ms", took)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := p.wait(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Errorf("wait on a cancelled context = %v, want context.Canceled", err)
	}
}

// TestArchiverDeleteHold: the archive's deletes are sized by the write
// lock on SQLite only; on PostgreSQL they keep whole batches.
func TestArchiverDeleteHold(t *testing.T) {
	for _, tc := range []struct {
		store string
		want  time.Duration
	}{
		{store: "", want: sweepHold},
		{store: "sqlite:/tmp/x/mandate.db", want: sweepHold},
		{store: "postgres://u@127.0.0.1/db", want: 0},
		{store: "postgresql://u@127.0.0.1/db", want: 0},
	} {
		a := newArchiver(&config.Config{Store: tc.store}, nil, Env{}, time.Now, nil)
		if a.DeleteHold != tc.want {
			t.Errorf("store %q: DeleteHold = %v, want %v", tc.store, a.DeleteHold, tc.want)
		}
	}
}
