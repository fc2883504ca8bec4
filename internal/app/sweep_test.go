package app

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mandate-dev/mandate/internal/store"
)

// batches is a store.Sweeper that answers with its results in turn and
// records the cutoffs it was asked.
type batches struct {
	results []store.Swept
	errs    []error
	asked   []store.SweepCutoffs
}

func (b *batches) Sweep(_ context.Context, c store.SweepCutoffs, _ int) (store.Swept, error) {
	i := len(b.asked)
	b.asked = append(b.asked, c)
	if i < len(b.errs) && b.errs[i] != nil {
		return store.Swept{}, b.errs[i]
	}
	if i < len(b.results) {
		return b.results[i], nil
	}
	return store.Swept{}, nil
}

func TestSweeper(t *testing.T) {
	now := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	newS := func(b *batches, leeway time.Duration) (*sweeper, *prometheus.Registry) {
		reg := prometheus.NewRegistry()
		return newSweeper(b, time.Minute, 10, leeway, 15*time.Minute, func() time.Time { return now },
			slog.New(slog.DiscardHandler), reg), reg
	}
	t.Run("ok/until-a-short-batch", func(t *testing.T) {
		b := &batches{results: []store.Swept{{Tokens: 10}, {Tokens: 4, Nonces: 6}, {Nonces: 1, Revocations: 2}}}
		s, reg := newS(b, time.Minute)
		got, err := s.sweep(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if want := (store.Swept{Tokens: 14, Nonces: 7, Revocations: 2}); got != want {
			t.Errorf("sweep = %+v, want %+v", got, want)
		}
		if len(b.asked) != 3 {
			t.Errorf("%d batches, want 3", len(b.asked))
		}
		if got := value(t, reg, "mandate_store_swept_rows_total"); got != 23 {
			t.Errorf("swept rows counter = %v, want 23", got)
		}
		// The default leeway (60 s) plus the margin is the grace of 2m;
		// entries that are not about one token go max_ttl later.
		want := store.SweepCutoffs{Tokens: now.Add(-2 * time.Minute), Nonces: now.Add(-2 * time.Minute),
			TokenRevocations: now.Add(-2 * time.Minute), OtherRevocations: now.Add(-17 * time.Minute),
			SignIn: now.Add(-2 * time.Minute)}
		if diff := cmp.Diff(want, b.asked[0]); diff != "" {
			t.Errorf("cutoffs (-want +got):\n%s", diff)
		}
	})
	t.Run("ok/grace-follows-a-long-leeway", func(t *testing.T) {
		b := &batches{}
		s, _ := newS(b, 5*time.Minute)
		if _, err := s.sweep(t.Context()); err != nil {
			t.Fatal(err)
		}
		if got, want := b.asked[0].Tokens, now.Add(-6*time.Minute); !got.Equal(want) {
			t.Errorf("token cutoff %v, want %v", got, want)
		}
	})
	t.Run("fail/store-error-counted-and-returned", func(t *testing.T) {
		boom := errors.New("boom")
		b := &batches{results: []store.Swept{{Tokens: 10}}, errs: []error{nil, boom}}
		s, reg := newS(b, time.Minute)
		got, err := s.sweep(t.Context())
		if !errors.Is(err, boom) {
			t.Fatalf("err = %v, want boom", err)
		}
		if got.Tokens != 10 {
			t.Errorf("sweep = %+v, want the first batch's 10 tokens", got)
		}
		if n := value(t, reg, "mandate_store_sweep_failures_total"); n != 1 {
			t.Errorf("failures = %v, want 1", n)
		}
		// The next sweep runs as if nothing happened.
		if _, err := s.sweep(t.Context()); err != nil {
			t.Errorf("next sweep: %v", err)
		}
	})
}

// value reads a metric from reg: the sum over its label sets.
func value(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return sum
}
