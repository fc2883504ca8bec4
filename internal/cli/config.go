package cli

import (
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/mandate-dev/mandate/internal/app"
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
		Long: `Validate the file and report every problem; exit 1 when it is invalid.

Warnings do not fail the check: what is allowed but probably not meant, and
every file that holds a secret (the configuration itself when a secret is
written in it, a secret or password file, the SQLite database, which holds
the signing keys) that group or others may read, with the chmod that fixes it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(path)
			if err != nil {
				return err
			}
			for _, w := range append(cfg.Warnings(), cfg.ReadableSecrets()...) {
				fmt.Fprintln(cmd.ErrOrStderr(), "warning:", termsafe.String(w.Error()))
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
			s, err := app.OpenStore(cmd.Context(), cfg)
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
