// Command mandate-bench is Mandate's load tool, apart from the product
// binary: it starts a real `mandate serve` (built into it) and drives its
// token endpoint, or measures how fast revocations propagate, or fills an
// audit log and times the forensic questions on it. See
// `mandate-bench --help` and docs/benchmarks.md.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/mandate-dev/mandate/cmd/mandate-bench/internal/bench"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := bench.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
