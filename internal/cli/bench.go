package cli

import (
	"errors"
	"io"

	"github.com/spf13/cobra"
)

func newBenchCmd(stdout io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:    "bench",
		Short:  "Drive /token over loopback and report throughput, latency and server CPU per request",
		Hidden: true,
		RunE: func(*cobra.Command, []string) error {
			_ = stdout
			return errors.New("bench: not built yet")
		},
	}
}
