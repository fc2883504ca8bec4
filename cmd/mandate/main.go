// Command mandate is the Mandate authorization server and its admin and
// audit command line. See `mandate --help`. The load tool is a command of
// its own, cmd/mandate-bench.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/mandate-dev/mandate/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
