package cli

import (
	"runtime/debug"
	"testing"
)

// TestTuneGC: `mandate serve` raises the collector's target to
// defaultGCPercent, unless GOGC is set in the environment, which wins.
func TestTuneGC(t *testing.T) {
	orig := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(orig) })
	for _, tc := range []struct {
		name    string
		env     map[string]string
		changed bool
		want    int
	}{
		{"ok/default", map[string]string{}, true, defaultGCPercent},
		{"ok/gogc-set", map[string]string{"GOGC": "100"}, false, 100},
		{"ok/gogc-off", map[string]string{"GOGC": "off"}, false, 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			debug.SetGCPercent(100)
			changed := tuneGC(func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok })
			if got := debug.SetGCPercent(100); changed != tc.changed || got != tc.want {
				t.Errorf("tuneGC: changed %v, GC percent %d; want %v, %d", changed, got, tc.changed, tc.want)
			}
		})
	}
}
