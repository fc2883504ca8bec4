package loadgen

import (
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(i+1) * time.Millisecond
	}
	tests := []struct {
		name   string
		sorted []time.Duration
		q      float64
		want   time.Duration
	}{
		{name: "ok/empty", sorted: nil, q: 50, want: 0},
		{name: "ok/one-sample-p50", sorted: []time.Duration{7}, q: 50, want: 7},
		{name: "ok/one-sample-p99", sorted: []time.Duration{7}, q: 99, want: 7},
		{name: "ok/hundred-p50", sorted: hundred, q: 50, want: 50 * time.Millisecond},
		{name: "ok/hundred-p90", sorted: hundred, q: 90, want: 90 * time.Millisecond},
		{name: "ok/hundred-p99", sorted: hundred, q: 99, want: 99 * time.Millisecond},
		{name: "ok/hundred-p100", sorted: hundred, q: 100, want: 100 * time.Millisecond},
		{name: "ok/hundred-p0-is-min", sorted: hundred, q: 0, want: time.Millisecond},
		{name: "ok/hundred-above-100-is-max", sorted: hundred, q: 150, want: 100 * time.Millisecond},
		{name: "ok/four-p50-lower-middle", sorted: []time.Duration{1, 2, 3, 4}, q: 50, want: 2},
		{name: "ok/four-p51-upper-middle", sorted: []time.Duration{1, 2, 3, 4}, q: 51, want: 3},
		{name: "ok/ten-p99-is-max", sorted: hundred[:10], q: 99, want: 10 * time.Millisecond},
		{name: "ok/thousand-p99.9", sorted: thousand(), q: 99.9, want: 999},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Percentile(tt.sorted, tt.q); got != tt.want {
				t.Errorf("Percentile(%d samples, %v) = %v, want %v", len(tt.sorted), tt.q, got, tt.want)
			}
		})
	}
}

func thousand() []time.Duration {
	s := make([]time.Duration, 1000)
	for i := range s {
		s[i] = time.Duration(i + 1)
	}
	return s
}

func TestSummarize(t *testing.T) {
	// Unsorted on purpose: Summarize sorts.
	samples := []time.Duration{5, 1, 4, 2, 3, 10, 9, 8, 7, 6}
	got := Summarize(samples)
	want := Latency{Min: 1, Mean: 5, P50: 5, P90: 9, P99: 10, Max: 10}
	if got != want {
		t.Errorf("Summarize = %+v, want %+v", got, want)
	}
	if (Summarize(nil) != Latency{}) {
		t.Error("Summarize(nil) is not the zero Latency")
	}
}
