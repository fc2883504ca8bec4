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
	return Execute(ctx, newRoot(stdout, stderr), args, stdout, stderr)
}

// Execute runs root, a command tree of this kind (mandate, mandate-bench),
// with args and returns the process exit code: 0 on success, the code of an
// ExitCode error, 1 otherwise. An error is written to stderr after the
// root's name, each of its lines escaped.
func Execute(ctx context.Context, root *cobra.Command, args []string, stdout, stderr io.Writer) int {
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	fmt.Fprintln(stderr, root.Name()+":", strings.Join(errorLines(err), "\n"))
	return ExitStatus(err)
}

// ExitCode is err, making Execute return code (2 for a usage error).
func ExitCode(code int, err error) error { return &exitError{code: code, err: err} }

// ExitStatus is the exit code Execute returns for err: 0 for nil, the code
// of an ExitCode error, 1 otherwise.
func ExitStatus(err error) int {
	var ee *exitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.code
	}
	return 1
}

// errorLines is err as the lines of its message: a message may quote what
// a file, a store or a server held, so each line is escaped (termsafe) and
// a line break inside a message is too; the errors of errors.Join (every
// problem of a configuration) each start a line.
func errorLines(err error) []string {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var lines []string
		for _, e := range j.Unwrap() {
			lines = append(lines, errorLines(e)...)
		}
		return lines
	}
	return []string{termsafe.String(err.Error())}
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
		newUsersCmd(stdout, stderr),
		newAuditCmd(stdout),
		newVersionCmd(stdout),
	)
	return root
}
