package cli

import (
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/mandate-dev/mandate/internal/config"
	"github.com/mandate-dev/mandate/internal/provision"
	"github.com/mandate-dev/mandate/internal/termsafe"
)

func newConfigCmd(stdout io.Writer) *cobra.Command {
	cmd := &cobra.Command{Use: "config", Short: "Check a configuration file or apply it to the store"}
	var path string
	check := &cobra.Command{
		Use:   "check",
		Short: "Validate the file and report every problem",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if _, err := config.Load(path); err != nil {
				return err
			}
			fmt.Fprintln(stdout, termsafe.String(path)+": ok")
			return nil
		},
	}
	apply := &cobra.Command{
		Use:   "apply",
		Short: "Make the store's users, agents and delegations match the file",
		Long: `Make the store's users, agents and delegations match the file.

A normal start only creates what the store lacks: once stored, the store is
authoritative (an administrator's change survives restarts). apply overwrites
stored records that differ from the file, each change audited.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(path)
			if err != nil {
				return err
			}
			s, err := openStore(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			defer s.Close()
			report, err := provision.Sync(cmd.Context(), s, cfg, true, time.Now())
			for _, c := range report.Created {
				fmt.Fprintln(stdout, "created", termsafe.String(c))
			}
			for _, u := range report.Updated {
				fmt.Fprintln(stdout, "updated", termsafe.String(u))
			}
			if err == nil && len(report.Created)+len(report.Updated) == 0 {
				fmt.Fprintln(stdout, "the store already matches", termsafe.String(path))
			}
			return err
		},
	}
	for _, c := range []*cobra.Command{check, apply} {
		c.Flags().StringVar(&path, "config", "", "configuration file (YAML)")
		_ = c.MarkFlagRequired("config")
		cmd.AddCommand(c)
	}
	return cmd
}
