package ratelimit_test

import (
	"testing"
	"time"

	"github.com/mandate-dev/mandate/internal/ratelimit"
)

// TestLimiter walks a limiter of 10 requests a second, bursts of 2, two keys
// at most, through a clock the test moves.
func TestLimiter(t *testing.T) {
	now := time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)
	l := ratelimit.New(10, 2, 2, func() time.Time { return now })
	for i, step := range []struct {
		name    string
		advance time.Duration
		key     string
		want    bool
	}{
		{"a: first of the burst", 0, "a", true},
		{"a: second of the burst", 0, "a", true},
		{"a: over the burst", 0, "a", false},
		{"a: still over, refusals take nothing", 0, "a", false},
		{"b: a key of its own", 0, "b", true},
		{"a: one refilled after 100 ms", 100 * time.Millisecond, "a", true},
		{"a: and only one", 0, "a", false},
		{"c: a third key shares the overflow bucket", 0, "c", true},
		{"d: so does a fourth", 0, "d", true},
		{"e: the overflow bucket is empty", 0, "e", false},
		{"b: known keys keep their own bucket", 0, "b", true},
		{"f: after 1 s idle keys are forgotten, a new key has a bucket", time.Second, "f", true},
		{"f: its own, of 2", 0, "f", true},
		{"f: over", 0, "f", false},
	} {
		now = now.Add(step.advance)
		if got := l.Allow(step.key); got != step.want {
			t.Fatalf("step %d (%s): Allow(%q) = %v, want %v", i, step.name, step.key, got, step.want)
		}
	}
	if n := l.Keys(); n > 2 {
		t.Errorf("tracks %d keys, want at most 2", n)
	}
}

// TestLimiterBoundedUnderAFlood: a million made-up keys leave the map at
// its bound.
func TestLimiterBoundedUnderAFlood(t *testing.T) {
	now := time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)
	l := ratelimit.New(100, 200, 1000, func() time.Time { return now })
	admitted := 0
	for i := range 1_000_000 {
		if i%10_000 == 0 {
			now = now.Add(time.Millisecond)
		}
		if l.Allow(string(rune(i))) {
			admitted++
		}
	}
	if n := l.Keys(); n != 1000 {
		t.Errorf("tracks %d keys, want 1000", n)
	}
	// 1000 keys of their own, each admitted once, then the overflow
	// bucket's burst and refill over 100 ms.
	if admitted > 1000+200+10+1 {
		t.Errorf("admitted %d of a flood of new keys", admitted)
	}
}
