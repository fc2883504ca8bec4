package loadgen

import (
	"math"
	"slices"
	"time"
)

// Latency summarises a set of request latencies.
type Latency struct {
	Min  time.Duration `json:"min_ns"`
	Mean time.Duration `json:"mean_ns"`
	P50  time.Duration `json:"p50_ns"`
	P90  time.Duration `json:"p90_ns"`
	P99  time.Duration `json:"p99_ns"`
	Max  time.Duration `json:"max_ns"`
}

// Summarize sorts samples in place and returns their summary; the zero
// Latency for no samples. Percentiles use the nearest-rank method: Pq is the
// smallest sample such that at least q% of the samples are less than or equal
// to it, so P99 of 100 samples is the 99th smallest and P100 is the maximum.
func Summarize(samples []time.Duration) Latency {
	if len(samples) == 0 {
		return Latency{}
	}
	slices.Sort(samples)
	var sum time.Duration
	for _, s := range samples {
		sum += s
	}
	return Latency{
		Min:  samples[0],
		Mean: sum / time.Duration(len(samples)),
		P50:  Percentile(samples, 50),
		P90:  Percentile(samples, 90),
		P99:  Percentile(samples, 99),
		Max:  samples[len(samples)-1],
	}
}

// Percentile returns the nearest-rank q-th percentile (0 < q ≤ 100) of
// sorted, which must be in ascending order; 0 when sorted is empty. q below
// or at 0 gives the minimum, above 100 the maximum.
func Percentile(sorted []time.Duration, q float64) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	// Nearest rank: ceil(q/100 × n), 1-based. The small epsilon keeps
	// q×n that is an exact integer in decimal (99% of 100) from rounding up
	// through a binary representation error.
	rank := int(math.Ceil(q/100*float64(n) - 1e-9))
	return sorted[min(max(rank, 1), n)-1]
}
