package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/mandate-dev/mandate/internal/termsafe"
)

// exitError carries an exit code other than 1.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// Main runs the mandate command with args and returns the process exit
// code: 0 on success, 2 for a usage error, 1 otherwise.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRoot(stdout, stderr)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	// A message may quote what a file, a store or a server held: each of
	// its lines is escaped, the line breaks between them kept.
	lines := strings.Split(err.Error(), "\n")
	for i, l := range lines {
		lines[i] = termsafe.String(l)
	}
	fmt.Fprintln(stderr, "mandate:", strings.Join(lines, "\n"))
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return 1
}

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "mandate",
		Short:         "On-behalf-of authorization for AI agents (RFC 8693 token exchange)",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return &exitError{code: 2, err: err}
	})
	root.AddCommand(
		newServeCmd(stdout, stderr),
		newConfigCmd(stdout),
		newKeysCmd(stdout),
		newMigrateCmd(stdout),
		newDemoCmd(stdout),
		newStoreCmd(stdout),
		newBenchCmd(stdout),
		newAuditCmd(stdout),
	)
	return root
}
