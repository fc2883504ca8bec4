package archive_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/mandate-dev/mandate/internal/archive"
)

// BenchmarkPass archives 10,000 records per iteration: its time per
// record is the pass's CPU and I/O per record archived.
func BenchmarkPass(b *testing.B) {
	for b.Loop() {
		b.StopTimer()
		s, _ := fixture(b, 10001, 10000)
		a := &archive.Archiver{Store: s, Archive: archive.Dir{Path: filepath.Join(b.TempDir(), "archive")}, Origin: "https://mandate.test",
			Retention: 90 * 24 * time.Hour, Now: func() time.Time { return now }}
		b.StartTimer()
		res, err := a.Pass(b.Context())
		if err != nil || res.Deleted != 10000 {
			b.Fatal(res, err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*10000), "µs/record")
}
