package bench

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/mandate-dev/mandate/internal/archive"
	"github.com/mandate-dev/mandate/internal/store"
)

// archiveFlags are the flags of `mandate-bench archive`.
type archiveFlags struct {
	retention time.Duration
	dir       string
	origin    string
	grace     time.Duration
	sizes     bool
}

// newArchiveCmd is `mandate-bench archive`.
func newArchiveCmd(stdout io.Writer) *cobra.Command {
	var (
		sf storeFlags
		f  archiveFlags
	)
	cmd := &cobra.Command{
		Use:   "archive",
		Short: "Run one audit retention pass and a sweep over a store at full speed, and measure its size before and after",
		Long: `Move the audit records older than --retention out of a store into archive
segments in --archive-dir, as a server's retention pass does, then delete the
expired token rows and the other swept rows, as its sweep does; and print the
store's size on disk, per table, before and after.

A server paces both (each step is followed by a rest nine times as long), so
that they hold up no request; this command runs them back to back, for a
store no server runs on: to measure what a pass frees on a large log. The
store must hold a checkpoint over the records to archive (see
"mandate-bench checkpoint", whose --origin this command's must match).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.retention <= 0 || f.dir == "" {
				return fmt.Errorf("give --retention (more than zero) and --archive-dir")
			}
			cfg, s, err := sf.open(cmd.Context())
			if err != nil {
				return err
			}
			defer s.Close()
			measure := func(what string) {
				if !f.sizes {
					return
				}
				sz := measureSize(cmd.Context(), cfg)
				var tables int64
				for _, t := range sz.Tables {
					tables += t.Bytes
				}
				fmt.Fprintf(stdout, "%s: tables and indexes %.1f MB\n", what, float64(tables)/1e6)
				printSize(stdout, sz, 0)
			}
			measure("before")
			if err := runArchivePass(cmd.Context(), s, f, stdout); err != nil {
				return err
			}
			measure("after")
			return nil
		},
	}
	sf.add(cmd)
	cmd.Flags().DurationVar(&f.retention, "retention", 0, "archive the records older than this")
	cmd.Flags().StringVar(&f.dir, "archive-dir", "", "the directory of the archive segments")
	cmd.Flags().StringVar(&f.origin, "origin", checkpointOrigin, "the name of the log in the segments' checkpoints (a server uses its issuer)")
	cmd.Flags().DurationVar(&f.grace, "grace", 2*time.Minute, "sweep token rows and nonces this long after their expiry")
	cmd.Flags().BoolVar(&f.sizes, "sizes", true, "measure the store's size per table before and after (reads every page)")
	return cmd
}

// runArchivePass runs one unpaced archive pass over s and sweeps it until
// nothing more is due.
func runArchivePass(ctx context.Context, s store.Store, f archiveFlags, w io.Writer) error {
	start := time.Now()
	a := &archive.Archiver{Store: s, Archive: archive.Dir{Path: f.dir}, Origin: f.origin, Retention: f.retention, Now: time.Now}
	res, err := a.Pass(ctx)
	if err != nil {
		return fmt.Errorf("archive pass: %w", err)
	}
	took := time.Since(start)
	fmt.Fprintf(w, "archive pass: %d segments, %d records deleted, archived through seq %d, in %s (%.0f records/s)\n",
		len(res.Segments), res.Deleted, res.Archived, took.Round(time.Millisecond), float64(res.Deleted)/took.Seconds())
	start = time.Now()
	cut := time.Now().Add(-f.grace)
	var total store.Swept
	for {
		n, err := s.Sweep(ctx, store.SweepCutoffs{Tokens: cut, Nonces: cut, TokenRevocations: cut, SignIn: cut}, store.MaxSweepLimit)
		if err != nil {
			return fmt.Errorf("sweep: %w", err)
		}
		total.Tokens += n.Tokens
		total.Nonces += n.Nonces
		total.Revocations += n.Revocations
		total.SignIn += n.SignIn
		if n.Total() < store.MaxSweepLimit {
			break
		}
	}
	fmt.Fprintf(w, "sweep: %d token rows, %d nonces, %d feed entries, %d sign-in rows, in %s\n",
		total.Tokens, total.Nonces, total.Revocations, total.SignIn, time.Since(start).Round(time.Millisecond))
	return nil
}
