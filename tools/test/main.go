// Command test runs Mandate's tests (go test, with the arguments given, or
// ./... without any), shows what go test shows, and ends with one line that
// names every skipped test's reason and how many tests it skipped, so that
// nothing is skipped unseen (a PostgreSQL not configured, a browser not
// installed). Its exit status is go test's.
//
//	go run ./tools/test            # every package
//	go run ./tools/test ./verify   # some
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"regexp"
	"sort"
	"strings"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// event is one line of go test -json (cmd/test2json).
type event struct {
	Action  string
	Package string
	Test    string
	Output  string
}

// run runs go test -json with args and writes its text and the summary.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		args = []string{"./..."}
	}
	cmd := exec.CommandContext(ctx, "go", append([]string{"test", "-json"}, args...)...)
	cmd.Stderr = stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		fmt.Fprintln(stderr, "test:", err)
		return 2
	}
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(stderr, "test:", err)
		return 2
	}
	skips, err := relay(out, stdout)
	werr := cmd.Wait()
	if err != nil {
		fmt.Fprintln(stderr, "test: reading go test -json:", err)
	}
	fmt.Fprintln(stdout, summary(skips))
	var exit *exec.ExitError
	switch {
	case errors.As(werr, &exit):
		return exit.ExitCode()
	case werr != nil || err != nil:
		return 2
	}
	return 0
}

// relay writes what go test writes without -json (a test's output only
// when it fails, each package's result line) and returns the skipped
// tests' reasons, each with how many it skipped.
func relay(r io.Reader, w io.Writer) (map[string]int, error) {
	skips := map[string]int{}
	// What each running test wrote, by package and test, kept until it
	// ends: written out if it fails; a t.Skip message is the last line
	// before its "--- SKIP".
	held := map[string][]string{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 16*1024*1024)
	for sc.Scan() {
		var ev event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			fmt.Fprintln(w, sc.Text()) // not an event: the build's own words
			continue
		}
		key := ev.Package + " " + ev.Test
		switch {
		case ev.Action == "output" && ev.Test == "":
			if ev.Output != "PASS\n" {
				fmt.Fprint(w, ev.Output)
			}
		case ev.Action == "output":
			held[key] = append(held[key], ev.Output)
		case ev.Action == "fail" && ev.Test != "":
			for _, line := range held[key] {
				fmt.Fprint(w, line)
			}
			delete(held, key)
		case ev.Action == "skip" && ev.Test != "":
			skips[reason(lastMessage(held[key]))]++
			delete(held, key)
		case ev.Action == "pass" && ev.Test != "":
			delete(held, key)
		}
	}
	return skips, sc.Err()
}

// lastMessage is the last line a test wrote itself, not go test's own
// "=== RUN" or "--- SKIP" lines.
func lastMessage(lines []string) string {
	for i := len(lines) - 1; i >= 0; i-- {
		l := lines[i]
		if !strings.HasPrefix(strings.TrimSpace(l), "---") && !strings.HasPrefix(l, "=== ") {
			return l
		}
	}
	return ""
}

// location is the "file_test.go:42: " that t.Skip puts before its message.
var location = regexp.MustCompile(`^\s*[\w.-]+\.go:\d+: `)

// reason is a skip message without its location, at most 160 bytes.
func reason(line string) string {
	s := strings.TrimSpace(location.ReplaceAllString(line, ""))
	if s == "" {
		return "no reason given"
	}
	if len(s) > 160 {
		s = s[:157] + "..."
	}
	return s
}

// summary is the last line: every reason with its count, most first.
func summary(skips map[string]int) string {
	if len(skips) == 0 {
		return "skipped: nothing"
	}
	reasons := make([]string, 0, len(skips))
	total := 0
	for r, n := range skips {
		reasons = append(reasons, r)
		total += n
	}
	sort.Slice(reasons, func(i, j int) bool {
		if skips[reasons[i]] != skips[reasons[j]] {
			return skips[reasons[i]] > skips[reasons[j]]
		}
		return reasons[i] < reasons[j]
	})
	parts := make([]string, len(reasons))
	for i, r := range reasons {
		parts[i] = fmt.Sprintf("%d × %s", skips[r], r)
	}
	return fmt.Sprintf("skipped %d tests: %s", total, strings.Join(parts, "; "))
}
