package bench

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/mandate-dev/mandate/internal/cli"
)

// Main runs the mandate-bench command with args and returns the process
// exit code: 0 on success, 2 for a usage error, 1 otherwise.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return cli.Execute(ctx, newRoot(stdout, stderr), args, stdout, stderr)
}

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	root := newBenchCmd(stdout)
	root.SilenceUsage, root.SilenceErrors = true, true
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return cli.ExitCode(2, err)
	})
	root.AddCommand(newBenchBareCmd(), newServeCmd(stdout, stderr), newFillCmd(stdout), newQuestionsCmd(stdout),
		newCheckpointCmd(stdout), newArchiveCmd(stdout))
	return root
}

// newServeCmd is `mandate-bench serve ARGS`: `mandate serve ARGS`, run from
// this executable, which the benchmark starts as its child process, so that
// `go run ./cmd/mandate-bench` needs no mandate binary beside it and the
// server measured is the one built from the same tree. Hidden: it is a part
// of the benchmark.
func newServeCmd(stdout, stderr io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:                "serve",
		Short:              "Run `mandate serve` with these arguments (the server the benchmark starts)",
		Hidden:             true,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if code := cli.Main(cmd.Context(), append([]string{"serve"}, args...), stdout, stderr); code != 0 {
				return cli.ExitCode(code, fmt.Errorf("mandate serve %s: exit status %d", strings.Join(args, " "), code))
			}
			return nil
		},
	}
}
