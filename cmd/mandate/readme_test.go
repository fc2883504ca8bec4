//go:build unix

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mandate-dev/mandate/internal/config"
)

// The README's walkthrough is run as written: every shell block of "Five
// minutes with InfraBot", in order, against a real `serve --dev`, and each
// answer must show what the block's "# →" lines say it shows. A README
// that drifts from the server fails here.

const (
	readmePath = "../../README.md"
	// walkthroughHeading starts the section whose blocks are run.
	walkthroughHeading = "## Five minutes with InfraBot"
	// readmeAddr is the address the README's commands use; the test's
	// server listens elsewhere and the blocks are rewritten to it.
	readmeAddr = "127.0.0.1:8080"
	// expectMark starts a line under a command that says what its answer
	// shows: fragments, in order, separated by an ellipsis.
	expectMark = "# →"
)

// readmeBlock is one shell block of the walkthrough.
type readmeBlock struct {
	line int    // the line of README.md the block starts on
	code string // its text, indentation removed
	// shows are the fragments its answer must show, in order.
	shows []string
}

// walkthroughSection returns the walkthrough's text and the line it starts on.
func walkthroughSection(t *testing.T, readme string) (string, int) {
	t.Helper()
	i := strings.Index(readme, walkthroughHeading)
	if i < 0 {
		t.Fatalf("README.md has no %q section", walkthroughHeading)
	}
	section := readme[i:]
	if j := strings.Index(section[len(walkthroughHeading):], "\n## "); j >= 0 {
		section = section[:len(walkthroughHeading)+j]
	}
	return section, strings.Count(readme[:i], "\n") + 1
}

// readmeBlocks returns the ```sh blocks of section, which starts on line
// first of the file.
func readmeBlocks(section string, first int) []readmeBlock {
	var (
		blocks []readmeBlock
		cur    *readmeBlock
		indent string
	)
	for n, line := range strings.Split(section, "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case cur == nil && trimmed == "```sh":
			cur = &readmeBlock{line: first + n}
			indent = line[:len(line)-len(strings.TrimLeft(line, " "))]
		case cur != nil && trimmed == "```":
			blocks = append(blocks, *cur)
			cur = nil
		case cur != nil:
			cur.code += strings.TrimPrefix(line, indent) + "\n"
			if rest, ok := strings.CutPrefix(trimmed, expectMark); ok {
				for _, f := range strings.Split(rest, "…") {
					if f = strings.TrimSpace(f); f != "" {
						cur.shows = append(cur.shows, f)
					}
				}
			}
		}
	}
	return blocks
}

// showsInOrder returns the first of fragments that answer does not show
// after the ones before it, and whether all were shown.
func showsInOrder(answer string, fragments []string) (string, bool) {
	rest := answer
	for _, f := range fragments {
		i := strings.Index(rest, f)
		if i < 0 {
			return f, false
		}
		rest = rest[i+len(f):]
	}
	return "", true
}

// assignedVars are the shell variables the blocks set, which later blocks
// read: they are carried from one block's shell to the next.
func assignedVars(blocks []readmeBlock) []string {
	re := regexp.MustCompile(`(?m)^\s*([A-Z][A-Z0-9_]*)=`)
	var names []string
	for _, b := range blocks {
		for _, m := range re.FindAllStringSubmatch(b.code, -1) {
			if !slices.Contains(names, m[1]) {
				names = append(names, m[1])
			}
		}
	}
	return names
}

// forTest rewrites a block's commands to the test's binary and address.
func forTest(code, bin, addr string) string {
	code = strings.ReplaceAll(code, readmeAddr, addr)
	code = strings.ReplaceAll(code, "go run ./cmd/mandate ", bin+" ")
	return regexp.MustCompile(`(^|[\s;|&(])\./mandate\s`).ReplaceAllStringFunc(code, func(m string) string {
		return strings.Replace(m, "./mandate", bin, 1)
	})
}

func TestReadmeExpectationsMatchInOrder(t *testing.T) {
	section := "## Five minutes with InfraBot\n\n1. x\n\n   ```sh\n   curl a\n   # → {\"a\":1 … \"b\":2\n   ```\n"
	blocks := readmeBlocks(section, 10)
	if len(blocks) != 1 || blocks[0].line != 14 || blocks[0].code != "curl a\n# → {\"a\":1 … \"b\":2\n" {
		t.Fatalf("blocks = %+v", blocks)
	}
	for _, tc := range []struct {
		name, answer string
		ok           bool
	}{
		{name: "ok/in-order", answer: `{"a":1,"x":0,"b":2}`, ok: true},
		{name: "fail/missing", answer: `{"a":1}`},
		{name: "fail/out-of-order", answer: `{"b":2,"a":1}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, ok := showsInOrder(tc.answer, blocks[0].shows); ok != tc.ok {
				t.Errorf("showsInOrder(%s, %q) = %v, want %v", tc.answer, blocks[0].shows, ok, tc.ok)
			}
		})
	}
}

// TestReadmeCast checks the walkthrough's table of the dev cast against
// the configuration `serve --dev` runs.
func TestReadmeCast(t *testing.T) {
	b, err := os.ReadFile(readmePath)
	if err != nil {
		t.Fatal(err)
	}
	section, _ := walkthroughSection(t, string(b))
	dev := config.Dev(t.TempDir())
	var want []string
	for _, u := range dev.Users {
		want = append(want, fmt.Sprintf("| `%s` | holds `%s` |", u.ID, strings.Join(u.Permissions, " ")))
	}
	for _, a := range dev.Agents {
		row := fmt.Sprintf("| `%s` | may hold `%s`", a.ID, strings.Join(a.Scopes, " "))
		for _, to := range a.DelegateTo {
			row += fmt.Sprintf("; may hand on to `%s`", to)
		}
		want = append(want, row+" |")
	}
	for _, d := range dev.Delegations {
		if d.Subject != "user:sam" || d.Actor != "agent:infrabot" {
			t.Fatalf("the dev cast has a delegation %s → %s the README does not describe", d.Subject, d.Actor)
		}
		want = append(want, fmt.Sprintf("| delegation | Sam lets InfraBot use `%s` |", strings.Join(d.Scopes, " ")))
	}
	for _, p := range dev.Policies {
		want = append(want, fmt.Sprintf("| policy `%s` |", p.Name))
	}
	for _, w := range want {
		if !strings.Contains(section, w) {
			t.Errorf("README.md's cast table lacks %q (the dev cast, config.Dev)", w)
		}
	}
}

// devServer is a `mandate serve --dev` run by the README test.
type devServer struct {
	cmd            *exec.Cmd
	stdout, stderr *syncBuffer
}

// syncBuffer is a bytes.Buffer a process writes while the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startDev runs `serve --dev` with args in dir on addr and waits until it
// answers /healthz.
func startDev(t *testing.T, bin, dir, addr string, args ...string) *devServer {
	t.Helper()
	s := &devServer{stdout: &syncBuffer{}, stderr: &syncBuffer{}}
	s.cmd = exec.Command(bin, append([]string{"serve", "--dev", "--listen", addr}, args...)...)
	s.cmd.Dir = dir
	s.cmd.Stdout, s.cmd.Stderr = s.stdout, s.stderr
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = s.cmd.Process.Kill()
		_ = s.cmd.Wait()
		if t.Failed() {
			t.Logf("serve --dev %s: stdout:\n%s\nwarnings and errors:\n%s", strings.Join(args, " "), s.stdout, warnings(s.stderr.String()))
		}
	})
	client := &http.Client{Timeout: 2 * time.Second}
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if resp, err := client.Get("http://" + addr + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s
			}
		}
	}
	t.Fatalf("serve --dev did not become healthy")
	return nil
}

// stop ends the server with SIGINT, as Ctrl-C does, and waits for it.
func (s *devServer) stop(t *testing.T) {
	t.Helper()
	if err := s.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Wait(); err != nil {
		t.Fatalf("serve --dev exited with %v", err)
	}
}

// runBlock runs one block with bash in dir, reading the variables earlier
// blocks set from state and writing them back. A block that follows a
// stream (curl -N) runs until the timeout, which is then no failure.
func runBlock(t *testing.T, dir, state, code string, vars []string) string {
	t.Helper()
	script := fmt.Sprintf("source %q\n%s\ndeclare -p %s > %q.next 2>/dev/null; mv %q.next %q\n",
		state, code, strings.Join(vars, " "), state, state, state)
	streams := strings.Contains(code, "curl -sN")
	timeout := 30 * time.Second
	if streams {
		timeout = 3 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", script)
	cmd.Dir = dir
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	// The whole group is stopped at the timeout, curl included.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 2 * time.Second
	err := cmd.Run()
	if err != nil && !(streams && errors.Is(ctx.Err(), context.DeadlineExceeded)) {
		t.Errorf("bash: %v\n%s", err, out.String())
	}
	return out.String()
}

// TestReadmeWalkthrough runs the walkthrough's blocks against `serve --dev`.
func TestReadmeWalkthrough(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs real processes")
	}
	for _, tool := range []string{"bash", "curl", "sed"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("the README's commands need %s: %v", tool, err)
		}
	}
	raw, err := os.ReadFile(readmePath)
	if err != nil {
		t.Fatal(err)
	}
	blocks := readmeBlocks(walkthroughSection(t, string(raw)))
	if len(blocks) < 6 {
		t.Fatalf("found %d shell blocks in the walkthrough, want one per step at least", len(blocks))
	}
	bin := buildBinary(t)
	dir := t.TempDir()
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	srv := startDev(t, bin, dir, addr)

	// What the README promises of the start: a line at once, then the
	// admin token the first block reads from the data directory.
	token, err := os.ReadFile(filepath.Join(dir, "mandate-dev", "admin-token"))
	if err != nil {
		t.Fatal(err)
	}
	// The server may answer before its banner is written out.
	wantToken := "Admin token: " + strings.TrimSpace(string(token))
	out := srv.stdout.String()
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(out, wantToken) && time.Now().Before(deadline); out = srv.stdout.String() {
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.HasPrefix(out, "Starting Mandate in development mode") {
		t.Errorf("serve --dev does not start by saying so; its output starts %.80q", out)
	}
	if !strings.Contains(out, wantToken) {
		t.Errorf("serve --dev does not print the admin token of mandate-dev/admin-token")
	}

	state := filepath.Join(t.TempDir(), "state.sh")
	if err := os.WriteFile(state, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	vars := assignedVars(blocks)
	for _, b := range blocks {
		if len(b.shows) == 0 && !regexp.MustCompile(`^([A-Z_]+=.*\n)+$`).MatchString(b.code) {
			t.Errorf("README.md:%d: a block with commands says nothing of what they show (add a %q line)", b.line, expectMark)
		}
		answer := runBlock(t, dir, state, forTest(b.code, bin, addr), vars)
		if missing, ok := showsInOrder(answer, b.shows); !ok {
			t.Errorf("README.md:%d: the answer does not show %q where the README says it does\nblock:\n%s\nanswer:\n%s",
				b.line, missing, b.code, answer)
		}
	}
	if t.Failed() {
		return
	}
	readmeRestarts(t, bin, dir, addr, srv)
}

// readmeRestarts checks what the README says of a restart after the
// walkthrough changed Sam's permissions, of --reset, and of a port in use.
func readmeRestarts(t *testing.T, bin, dir, addr string, srv *devServer) {
	t.Run("port-in-use", func(t *testing.T) {
		other := t.TempDir()
		cmd := exec.Command(bin, "serve", "--dev", "--listen", addr)
		cmd.Dir = other
		out, err := cmd.CombinedOutput()
		if err == nil {
			t.Fatal("a second serve --dev on the same address started")
		}
		if !strings.Contains(string(out), addr+" is already in use") || !strings.Contains(string(out), "--listen") {
			t.Errorf("a port in use is reported as:\n%s\nwant the address and --listen", out)
		}
		if _, err := os.Stat(filepath.Join(other, "mandate-dev")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("a serve --dev that could not listen left a data directory behind (%v)", err)
		}
	})
	srv.stop(t)
	kept := startDev(t, bin, dir, addr)
	kept.stop(t)
	if log := kept.stderr.String(); !strings.Contains(log, "differs from the dev cast") || !strings.Contains(log, "--dev --reset") {
		t.Errorf("a restarted serve --dev does not warn that the store differs and point to --reset:\n%s", warnings(log))
	}
	fresh := startDev(t, bin, dir, addr, "--reset")
	fresh.stop(t)
	if !strings.Contains(fresh.stdout.String(), "removing the dev data directory ./mandate-dev") {
		t.Errorf("serve --dev --reset does not say it removes the data directory:\n%s", fresh.stdout)
	}
	if strings.Contains(fresh.stderr.String(), "differs") {
		t.Errorf("after --reset the store still differs from the dev cast:\n%s", warnings(fresh.stderr.String()))
	}
}
