package bench

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/mandate-dev/mandate/internal/auditlog"
	"github.com/mandate-dev/mandate/internal/store"
)

// checkpointOrigin names the log in the checkpoints `mandate-bench
// checkpoint` signs when --origin is not given.
const checkpointOrigin = "mandate-bench"

// newCheckpointCmd is `mandate-bench checkpoint`.
func newCheckpointCmd(stdout io.Writer) *cobra.Command {
	var (
		sf     storeFlags
		origin string
	)
	cmd := &cobra.Command{
		Use:   "checkpoint",
		Short: "Sign a checkpoint over the whole audit log of a store, as a server's checkpointer does",
		Long: `Read the whole audit log of a store, check that it chains, and sign and
store a checkpoint over it, as the checkpointer of a running server does every
few seconds (creating the store's checkpoint key if it has none).

A log that "mandate-bench fill" wrote has no checkpoint: a server started on it
would first read and check every record in the background, and its audit
retention archives only records a checkpoint covers. Checkpoint the filled
store once, then copy it (mandate-bench --copy-db) or run on it, so that the
server measured has nothing to catch up. See docs/benchmarks.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, s, err := sf.open(cmd.Context())
			if err != nil {
				return err
			}
			defer s.Close()
			return runCheckpoint(cmd.Context(), s, origin, stdout)
		},
	}
	sf.add(cmd)
	cmd.Flags().StringVar(&origin, "origin", checkpointOrigin, "the name of the log in the checkpoint (a server uses its issuer)")
	return cmd
}

// runCheckpoint signs a checkpoint over the whole log of s.
func runCheckpoint(ctx context.Context, s store.Store, origin string, stdout io.Writer) error {
	start := time.Now()
	c := &auditlog.Checkpointer{Store: s, Origin: origin, ReadPage: store.EachEventPage, Now: time.Now}
	cp, err := c.Checkpoint(ctx)
	if err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	took := time.Since(start)
	fmt.Fprintf(stdout, "checkpoint at %d records in %s (%.0f records/s)\n", cp.Size, took.Round(time.Millisecond),
		float64(cp.Size)/took.Seconds())
	return nil
}
