package cli

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/mandate-dev/mandate/internal/app"
	"github.com/mandate-dev/mandate/internal/config"
	"github.com/mandate-dev/mandate/internal/directory"
)

// cliPerformer is the performer of the audit records that commands run on
// the store directly write (advance-epoch, keys rotate and revoke).
const cliPerformer = directory.PerformerCLI

func newStoreCmd(stdout io.Writer) *cobra.Command {
	cmd := &cobra.Command{Use: "store", Short: "Maintain the store: the not-before epoch after a restore"}
	cmd.AddCommand(newAdvanceEpochCmd(stdout, time.Now))
	return cmd
}

// newAdvanceEpochCmd is `mandate store advance-epoch`; now is the clock that
// gives the default --at and bounds it.
func newAdvanceEpochCmd(stdout io.Writer, now func() time.Time) *cobra.Command {
	var path, at string
	cmd := &cobra.Command{
		Use:   "advance-epoch",
		Short: "Refuse every token issued before now (or --at): run it after restoring the store from a backup",
		Long: `Advance the store's not-before epoch, and exit.

Every token issued before the epoch is refused from then on, by introspection and
by token exchange, on every instance: a restored backup does not know of the
revocations made after it was taken, and this is what keeps the tokens they revoked
from coming back. Run it after restoring the store and before starting
any instance. Instances already running pick the new epoch up within a second.

The epoch never moves back: a time earlier than the current epoch leaves it as it is.
--at defaults to now and must not be in the future, since a future epoch would also
refuse every token issued until then. The change is recorded in the audit trail
(action store.epoch_advanced, performed by "cli").`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			t := now().UTC()
			if at != "" {
				parsed, err := time.Parse(time.RFC3339Nano, at)
				if err != nil {
					return &exitError{code: 2, err: fmt.Errorf("--at: want an RFC 3339 time such as 2026-03-04T05:06:07Z: %w", err)}
				}
				if parsed.After(t) {
					return &exitError{code: 2, err: fmt.Errorf("--at %s is in the future: the epoch never moves back, "+
						"and a future one refuses every token issued until then", at)}
				}
				t = parsed.UTC()
			}
			cfg, err := config.Load(path)
			if err != nil {
				return err
			}
			s, err := app.OpenStore(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			defer s.Close()
			dir := &directory.Directory{Store: s, Now: now}
			got, err := dir.AdvanceNotBefore(cmd.Context(), directory.Performer{ID: cliPerformer}, t)
			if err != nil {
				return fmt.Errorf("advance the not-before epoch: %w", err)
			}
			if got.IsZero() {
				return errors.New("advance the not-before epoch: the store reports no epoch after the advance")
			}
			if got.After(t.Truncate(time.Microsecond)) {
				fmt.Fprintf(stdout, "the not-before epoch was already later: %s (unchanged)\n", got.Format(time.RFC3339Nano))
				return nil
			}
			fmt.Fprintf(stdout, "not-before epoch: %s; every token issued before it is refused\n", got.Format(time.RFC3339Nano))
			return nil
		},
	}
	cmd.Flags().StringVar(&path, "config", "", "configuration file (YAML)")
	cmd.Flags().StringVar(&at, "at", "", "the epoch, RFC 3339 (default now)")
	_ = cmd.MarkFlagRequired("config")
	return cmd
}
