package cli

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/mandate-dev/mandate/internal/app"
	"github.com/mandate-dev/mandate/internal/audit"
	"github.com/mandate-dev/mandate/internal/directory"
	"github.com/mandate-dev/mandate/internal/password"
	"github.com/mandate-dev/mandate/internal/termsafe"
)

// Bounds of a password set from the command line: at least
// minPasswordLen characters; a line longer than maxPasswordLen bytes is
// refused rather than read on without end.
const (
	minPasswordLen = 12
	maxPasswordLen = 1024
)

func newUsersCmd(stdout, stderr io.Writer) *cobra.Command {
	cmd := &cobra.Command{Use: "users", Short: "Set people's local passwords, or hash one for the configuration file"}
	cmd.AddCommand(newSetPasswordCmd(stdout, stderr, time.Now), newHashPasswordCmd(stdout, stderr))
	return cmd
}

// newHashPasswordCmd is `mandate users hash-password`: the hash for a
// file's users[].password_hash.
func newHashPasswordCmd(stdout, stderr io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "hash-password",
		Short: "Print the argon2id hash of a password read from standard input, for users[].password_hash",
		Long: `Read a password from standard input as set-password does (typed twice without
echo at a terminal, else the first line; at least 12 characters) and print its argon2id
hash in the PHC string format, for a configuration file's users[].password_hash. It
touches no store.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pw, err := readNewPassword(cmd.InOrStdin(), stderr, "Password to hash: ")
			if err != nil {
				return err
			}
			hash, err := password.Hash(pw)
			if err != nil {
				return err
			}
			fmt.Fprintln(stdout, hash)
			return nil
		},
	}
}

// newSetPasswordCmd is `mandate users set-password`; now is the clock of
// the change's record.
func newSetPasswordCmd(stdout, stderr io.Writer, now func() time.Time) *cobra.Command {
	var sf storeFlags
	cmd := &cobra.Command{
		Use:   "set-password [flags] USER-ID",
		Short: "Set a person's local password, read from standard input",
		Long: `Set the local password the person USER-ID signs in with, and exit.

The password is read from standard input: typed twice, without echo, when it is a
terminal; otherwise the first line (for a script: printf '%s\n' "$PW" | mandate users
set-password ...). It must be at least 12 characters. Only its argon2id hash is stored,
and the change is recorded in the audit trail (action user.password, performed by
"cli"), which never holds the password or its hash. The person's sessions and tokens
are left as they are.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id := args[0]
			cfg, err := sf.load()
			if err != nil {
				return err
			}
			pw, err := readNewPassword(cmd.InOrStdin(), stderr, "New password for "+termsafe.String(id)+": ")
			if err != nil {
				return err
			}
			hash, err := password.Hash(pw)
			if err != nil {
				return err
			}
			s, err := app.OpenStore(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			defer s.Close()
			dir := &directory.Directory{Store: s, Now: now}
			if _, err := dir.SetPassword(cmd.Context(), directory.Performer{ID: cliPerformer}, id, hash); err != nil {
				return fmt.Errorf("set the password of %s: %w", id, err)
			}
			fmt.Fprintf(stdout, "password of %s set (recorded as %s, performed by %q)\n",
				termsafe.String(id), audit.ActionUserPassword, cliPerformer)
			return nil
		},
	}
	sf.add(cmd)
	return cmd
}

// readNewPassword reads a new password from in: twice without echo from a
// terminal (asking with ask on prompt), else its first line. It refuses a
// password shorter than minPasswordLen characters, longer than
// maxPasswordLen bytes, or not UTF-8.
func readNewPassword(in io.Reader, prompt io.Writer, ask string) (string, error) {
	var pw string
	if f, ok := in.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		first, err := readHidden(f, prompt, ask)
		if err != nil {
			return "", err
		}
		again, err := readHidden(f, prompt, "Again: ")
		if err != nil {
			return "", err
		}
		if first != again {
			return "", usage("the two passwords differ; nothing was changed")
		}
		pw = first
	} else {
		line, err := readLine(in)
		if err != nil {
			return "", err
		}
		pw = line
	}
	switch n := utf8.RuneCountInString(pw); {
	case !utf8.ValidString(pw):
		return "", usage("the password is not valid UTF-8")
	case n < minPasswordLen:
		return "", usage(fmt.Sprintf("the password has %d characters, at least %d are needed", n, minPasswordLen))
	}
	return pw, nil
}

// readHidden prompts and reads one line from the terminal f without echo.
func readHidden(f *os.File, prompt io.Writer, text string) (string, error) {
	fmt.Fprint(prompt, text)
	b, err := term.ReadPassword(int(f.Fd()))
	fmt.Fprintln(prompt)
	if err != nil {
		return "", fmt.Errorf("read the password: %w", err)
	}
	if len(b) > maxPasswordLen {
		return "", usage(fmt.Sprintf("the password is longer than %d bytes", maxPasswordLen))
	}
	return string(b), nil
}

// readLine reads the first line of in, without its line break (\n or
// \r\n); end of input ends the line too, but no input at all is refused.
func readLine(in io.Reader) (string, error) {
	r := bufio.NewReaderSize(io.LimitReader(in, maxPasswordLen+3), maxPasswordLen+3)
	line, err := r.ReadBytes('\n')
	switch {
	case err != nil && !errors.Is(err, io.EOF):
		return "", fmt.Errorf("read the password from standard input: %w", err)
	case len(line) == 0:
		return "", usage("no password on standard input")
	}
	line = bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r"))
	if len(line) > maxPasswordLen {
		return "", usage(fmt.Sprintf("the password is longer than %d bytes", maxPasswordLen))
	}
	return string(line), nil
}
