package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/mandate-dev/mandate/internal/audit"
	"github.com/mandate-dev/mandate/internal/config"
	"github.com/mandate-dev/mandate/internal/password"
	"github.com/mandate-dev/mandate/internal/store"
)

// runWithStdin runs the mandate command with stdin and returns its exit
// code and output.
func runWithStdin(stdin string, args ...string) (int, string, string) {
	var stdout, stderr bytes.Buffer
	root := newRoot(&stdout, &stderr)
	root.SetIn(strings.NewReader(stdin))
	code := Execute(context.Background(), root, args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// TestSetPassword: `mandate users set-password` reads the first line of a
// standard input that is not a terminal, stores its argon2id hash through
// the directory with a user.password record that holds neither, and
// refuses a short password, no input, an unknown user, without changing
// anything.
func TestSetPassword(t *testing.T) {
	f := newEpochFixture(t)
	const pw = "correct horse battery staple"
	stored := func() store.User {
		t.Helper()
		var u store.User
		f.with(func(s store.Store) {
			var err error
			if u, err = s.GetUser(t.Context(), "user:sam"); err != nil {
				t.Fatal(err)
			}
		})
		return u
	}

	code, stdout, stderr := runWithStdin(pw+"\r\nignored second line\n", "users", "set-password", "--config", "mandate.yaml", "user:sam")
	if code != 0 {
		t.Fatalf("set-password: exit %d: %s", code, stderr)
	}
	if want := "password of user:sam set (recorded as user.password, performed by \"cli\")\n"; stdout != want {
		t.Errorf("stdout = %q, want %q", stdout, want)
	}
	u := stored()
	if ok, err := password.Check(u.PasswordHash, pw); !ok || err != nil {
		t.Errorf("the stored hash does not check the password: %v, %v", ok, err)
	}
	f.with(func(s store.Store) {
		evs, err := s.QueryEvents(t.Context(), store.EventFilter{Action: audit.ActionUserPassword})
		if err != nil || len(evs) != 1 || evs[0].Performer != cliPerformer || evs[0].OnBehalf != "user:sam" {
			t.Fatalf("records = %+v, %v", evs, err)
		}
		if s := string(mustJSON(t, evs[0])); strings.Contains(s, "argon2") || strings.Contains(s, "horse") {
			t.Errorf("the record holds the password or its hash: %s", s)
		}
	})

	for _, tc := range []struct {
		name, stdin, id, want string
		code                  int
	}{
		{name: "fail/short", stdin: "eleven-char\n", id: "user:sam", code: 2, want: "11 characters, at least 12"},
		{name: "fail/short-in-characters", stdin: "ééééééééééé\n", id: "user:sam", code: 2, want: "11 characters"},
		{name: "fail/empty-line", stdin: "\n", id: "user:sam", code: 2, want: "0 characters"},
		{name: "fail/no-input", stdin: "", id: "user:sam", code: 2, want: "no password on standard input"},
		{name: "fail/too-long", stdin: strings.Repeat("x", 2000) + "\n", id: "user:sam", code: 2, want: "longer than 1024 bytes"},
		{name: "fail/not-utf8", stdin: "abcdefghijkl\xff\n", id: "user:sam", code: 2, want: "not valid UTF-8"},
		{name: "fail/unknown-user", stdin: "another long password\n", id: "user:\x1b[31mnobody", code: 1, want: "set the password of user:\x1b[31mnobody: user"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := stored()
			code, stdout, stderr := runWithStdin(tc.stdin, "users", "set-password", "--config", "mandate.yaml", tc.id)
			if code != tc.code || stdout != "" {
				t.Errorf("exit %d, stdout %q; want %d and nothing", code, stdout, tc.code)
			}
			if strings.Contains(stderr, "\x1b") {
				t.Errorf("stderr holds an escape sequence: %q", stderr)
			}
			if want := strings.ReplaceAll(tc.want, "\x1b", `\x1b`); !strings.Contains(stderr, want) {
				t.Errorf("stderr = %q, want %q", stderr, want)
			}
			if after := stored(); after.PasswordHash != before.PasswordHash {
				t.Error("a refused set-password changed the stored hash")
			}
		})
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestHashPassword: `mandate users hash-password` prints a hash the file
// accepts and that checks the password, and refuses a short one.
func TestHashPassword(t *testing.T) {
	const pw = "a password for the file"
	code, stdout, stderr := runWithStdin(pw+"\n", "users", "hash-password")
	if code != 0 {
		t.Fatalf("hash-password: exit %d: %s", code, stderr)
	}
	hash := strings.TrimSuffix(stdout, "\n")
	if ok, err := password.Check(hash, pw); !ok || err != nil {
		t.Errorf("the printed hash %q does not check: %v, %v", hash, ok, err)
	}
	if _, err := config.Parse([]byte("users:\n  - id: user:sam\n    password_hash: '"+hash+"'\n"), "m.yaml"); err != nil {
		t.Errorf("the file refuses the printed hash: %v", err)
	}
	if code, stdout, stderr := runWithStdin("too short\n", "users", "hash-password"); code != 2 || stdout != "" ||
		!strings.Contains(stderr, "at least 12") {
		t.Errorf("a short password: exit %d, %q, %q", code, stdout, stderr)
	}
}
