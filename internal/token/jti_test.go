package token

import (
	"regexp"
	"testing"
	"time"
)

func TestNewJTI(t *testing.T) {
	shape := regexp.MustCompile(`^[0-9a-f]{44}$`)
	t0 := time.UnixMilli(1_790_000_000_000)
	a, b := NewJTI(t0), NewJTI(t0)
	later := NewJTI(t0.Add(time.Millisecond))
	for _, j := range []string{a, b, later} {
		if !shape.MatchString(j) {
			t.Fatalf("NewJTI = %q, want 44 lowercase hex digits", j)
		}
	}
	if a == b {
		t.Errorf("two jtis of the same millisecond are equal: %q", a)
	}
	if a[:12] != "01a0c4506c00" || a[:12] != b[:12] {
		t.Errorf("time prefixes %q, %q: want the unix milliseconds 01a0c4506c00", a[:12], b[:12])
	}
	if !(later > a && later > b) {
		t.Errorf("a jti of a later millisecond (%q) does not sort after %q and %q", later, a, b)
	}
}
