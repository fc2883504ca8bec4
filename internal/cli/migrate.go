package cli

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/mandate-dev/mandate/internal/app"
	"github.com/mandate-dev/mandate/internal/config"
)

func newMigrateCmd(stdout io.Writer) *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Apply the store's schema migrations and exit",
		Long: `Apply the store's schema migrations and exit.

mandate serve migrates at start, under a lock, so several instances may start at
once. Operators who run schema changes themselves (with a role that has DDL rights)
run this first and give the servers a role without them.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(path)
			if err != nil {
				return err
			}
			if err := app.Migrate(cmd.Context(), cfg); err != nil {
				return err
			}
			fmt.Fprintln(stdout, "the store schema is up to date")
			return nil
		},
	}
	cmd.Flags().StringVar(&path, "config", "", "configuration file (YAML)")
	_ = cmd.MarkFlagRequired("config")
	return cmd
}
