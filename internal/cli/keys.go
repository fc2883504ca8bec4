package cli

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/mandate-dev/mandate/internal/app"
	"github.com/mandate-dev/mandate/internal/audit"
	"github.com/mandate-dev/mandate/internal/auditchain"
	"github.com/mandate-dev/mandate/internal/config"
	"github.com/mandate-dev/mandate/internal/store"
	"github.com/mandate-dev/mandate/internal/token"
)

func newKeysCmd(stdout io.Writer) *cobra.Command {
	cmd := &cobra.Command{Use: "keys", Short: "List, rotate and revoke signing keys"}
	k := &keysCmd{stdout: stdout}
	for _, c := range []*cobra.Command{k.list(), k.rotate(), k.revoke()} {
		k.store.add(c)
		cmd.AddCommand(c)
	}
	return cmd
}

// keysCmd is what the subcommands of `mandate keys` share: which store
// and where they print.
type keysCmd struct {
	store  storeFlags
	stdout io.Writer
}

// withKeyring opens the store and the keyring the configuration names and
// calls fn with them.
func (k *keysCmd) withKeyring(ctx context.Context, fn func(*token.Keyring, store.Store) error) error {
	cfg, err := k.store.load()
	if err != nil {
		return err
	}
	s, err := app.OpenStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer s.Close()
	kr, err := token.NewKeyring(ctx, s, token.KeyringConfig{
		Alg:          cfg.Tokens.SigningAlg,
		PublishDelay: cfg.Tokens.KeyPublishDelay.Std(),
		RetireAfter:  cfg.Tokens.MaxTTL.Std() + cfg.Tokens.Leeway.Std(),
	})
	if err != nil {
		return err
	}
	return fn(kr, s)
}

func (k *keysCmd) list() *cobra.Command {
	return &cobra.Command{
		Use: "list", Short: "List signing keys and their states", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return k.withKeyring(cmd.Context(), func(_ *token.Keyring, s store.Store) error {
				keys, err := s.ListKeys(cmd.Context())
				if err != nil {
					return err
				}
				tw := tabwriter.NewWriter(k.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "KID\tALG\tSTATE\tACTIVATE AT\tRETIRE AT")
				for _, key := range keys {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", cell(key.KID), cell(key.Alg), cell(key.State), stamp(key.ActivateAt), stamp(key.RetireAt))
				}
				return tw.Flush()
			})
		},
	}
}

func (k *keysCmd) rotate() *cobra.Command {
	return &cobra.Command{
		Use:   "rotate",
		Short: "Publish a new key now; it signs after key_publish_delay, and the old one is kept until its tokens expire",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return k.withKeyring(cmd.Context(), func(kr *token.Keyring, _ store.Store) error {
				key, err := kr.Rotate(cmd.Context(), keyEvent(audit.ActionKeyCreated, ""))
				if err != nil {
					return err
				}
				fmt.Fprintf(k.stdout, "key %s (%s) published; it signs from %s\n", cell(key.KID), cell(key.Alg), stamp(key.ActivateAt))
				return nil
			})
		},
	}
}

func (k *keysCmd) revoke() *cobra.Command {
	revoke := &cobra.Command{
		Use:   "revoke KID",
		Short: "Withdraw a compromised key at once: it leaves the JWKS and its tokens stop verifying",
		Long: `Withdraw a compromised key at once: it leaves the JWKS, its tokens stop verifying,
and no server on the store signs with it once this command has returned (every
signature is checked against the store before the token leaves the server).

If it was the signing key, a next key published for at least a minute signs
in its place at once. Without one, no key signs (the server answers /token
with 503) until a next key, the pending one or one generated now, has been
published for a minute: a verifier may wait 30 s before it fetches the JWKS
again. To replace a key without a pause, run "mandate keys rotate" first and
revoke a minute later.`,
		// A kid is base64url and may start with "-", which reads as a flag.
		Example: "  mandate keys revoke --config mandate.yaml -- KID\n  mandate keys revoke --dev -- KID",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return k.withKeyring(cmd.Context(), func(kr *token.Keyring, _ store.Store) error {
				if err := kr.RevokeKey(cmd.Context(), args[0], keyEvent(audit.ActionKeyRevoked, args[0])); err != nil {
					return err
				}
				fmt.Fprintf(k.stdout, "key %s revoked\n", cell(args[0]))
				if kid, from, ok := kr.Waiting(); ok {
					// No key may sign before verifiers can know it: say so,
					// since /token answers 503 meanwhile.
					fmt.Fprintf(k.stdout, "no key signs until %s, when key %s has been published long enough for verifiers to know it; until then the server cannot issue tokens (503)\n", stamp(from), cell(kid))
				}
				return nil
			})
		},
	}
	revoke.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return &exitError{code: 2, err: fmt.Errorf("%w (a kid that begins with \"-\" goes after \"--\": mandate keys revoke --config FILE -- KID)", err)}
	})
	return revoke
}

// keyEvent is the audit record of a key change made by `mandate keys`,
// committed with the change (THREATS T66); kid is "" for a new key, whose
// kid the keyring fills in.
func keyEvent(action, kid string) audit.Event {
	return audit.Event{
		ID:        audit.NewID("evt_"),
		Time:      auditchain.Time(time.Now()),
		Action:    action,
		Result:    audit.ResultOK,
		Performer: cliPerformer,
		Resource:  kid,
	}
}

// storeFlags name the store a command opens: the one of a configuration
// file (--config), or the one a `serve --dev` keeps in its data directory
// (--dev, with --data-dir when it was given one).
type storeFlags struct {
	config, dataDir string
	dev             bool
}

// add gives c the flags.
func (sf *storeFlags) add(c *cobra.Command) {
	c.Flags().StringVar(&sf.config, "config", "", "configuration file (YAML)")
	c.Flags().BoolVar(&sf.dev, "dev", false, "the store of `mandate serve --dev` (run where it ran)")
	c.Flags().StringVar(&sf.dataDir, "data-dir", "", "with --dev: the data directory `serve --dev --data-dir` was given (default ./mandate-dev)")
}

// load reads the configuration the flags name.
func (sf *storeFlags) load() (*config.Config, error) {
	switch {
	case sf.dev && sf.config != "":
		return nil, usage("--dev and --config exclude each other")
	case sf.dataDir != "" && !sf.dev:
		return nil, usage("--data-dir goes with --dev")
	case sf.dev:
		return openDevConfig(sf.dataDir)
	case sf.config == "":
		return nil, usage("give --config FILE, or --dev for the store of `mandate serve --dev`")
	}
	return config.Load(sf.config)
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}
