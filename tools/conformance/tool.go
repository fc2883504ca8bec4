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
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// check is one check of the tool's checks.json.
type check struct {
	ID           string `json:"id"`
	Name         string `json:"name"`
	Description  string `json:"description"`
	Status       string `json:"status"`
	ErrorMessage string `json:"errorMessage"`
}

// scenarioResult is what one scenario left: its checks, none when it
// left no checks.json.
type scenarioResult struct {
	Scenario string
	Checks   []check
}

// clientRun is one run of the tool's authorization command for one client.
type clientRun struct {
	Client    string
	Scenarios []scenarioResult
	// Problem is what went wrong around the tool: it exited with an
	// error, or the browser could not sign in.
	Problem string
}

// results is the whole run.
type results struct {
	Version   string
	Scenarios []string
	Runs      []clientRun
}

// client is one way an MCP client comes to Mandate.
type client struct {
	what     string
	id       func(context.Context, *server) (string, error)
	resource bool
}

// deployment is one Mandate, with the clients run against it.
type deployment struct {
	what, name string
	// path is the issuer's path: empty, or /SEGMENT.
	path    string
	clients []client
}

// filePublic is the file's public client, asking for the registered
// resource.
func filePublic() client {
	return client{what: "the file's public client, with resource", resource: true,
		id: func(context.Context, *server) (string, error) { return publicClient, nil }}
}

// registered is a client that registers itself (RFC 7591) and names no
// resource and no scope, as some MCP clients do.
func registered() client {
	return client{what: "a client registered by Dynamic Client Registration, without resource or scope",
		id: func(ctx context.Context, s *server) (string, error) { return s.register(ctx) }}
}

// deployments are the runs: an issuer at the root with both clients, and
// an issuer with a path (its metadata at the path-inserted locations) with
// the file's client.
func deployments() []deployment {
	return []deployment{
		{what: "issuer at the root", name: "root", clients: []client{filePublic(), registered()}},
		{what: "issuer with a path", name: "path", path: "/mandate", clients: []client{filePublic()}},
	}
}

// runAll reads the tool's version and scenarios, then for each deployment
// starts Mandate and runs the tool once per client.
func runAll(ctx context.Context, o options, stdout io.Writer) (*results, error) {
	version, err := toolVersion(o.tool)
	if err != nil {
		return nil, err
	}
	scenarios, err := listScenarios(ctx, o)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(stdout, "@modelcontextprotocol/conformance %s: %d authorization server scenarios (%s)\n",
		version, len(scenarios), strings.Join(scenarios, ", "))
	r := &results{Version: version, Scenarios: scenarios}
	for _, d := range deployments() {
		runs, err := runDeployment(ctx, o, d, scenarios, len(r.Runs), stdout)
		if err != nil {
			return nil, err
		}
		r.Runs = append(r.Runs, runs...)
	}
	return r, nil
}

// runDeployment starts d's Mandate, runs the tool for each of its clients
// and stops it; n is the number of runs before, to number these.
func runDeployment(ctx context.Context, o options, d deployment, scenarios []string, n int, stdout io.Writer) ([]clientRun, error) {
	srv, err := startMandate(ctx, o, d.name, d.path)
	if err != nil {
		return nil, err
	}
	defer srv.stop()
	fmt.Fprintf(stdout, "\n== mandate serve, %s: issuer %s, resource %s\n", d.what, srv.issuer, srv.resource)
	var runs []clientRun
	for _, c := range d.clients {
		n++
		what := d.what + ", " + c.what
		out := filepath.Join(o.work, fmt.Sprintf("results-%d", n))
		run := clientRun{Client: what}
		if id, err := c.id(ctx, srv); err != nil {
			run.Problem = err.Error()
		} else {
			fmt.Fprintf(stdout, "\n== run %d: %s (%s)\n", n, what, id)
			run = runTool(ctx, o, srv, c, id, out, stdout)
			run.Client = what
		}
		run.Scenarios = collectResults(out, scenarios)
		runs = append(runs, run)
	}
	return runs, nil
}

// toolVersion is the version in the tool's package.json.
func toolVersion(dir string) (string, error) {
	raw, err := os.ReadFile(filepath.Join(dir, "package.json"))
	if err != nil {
		return "", fmt.Errorf("the conformance tool: %w", err)
	}
	var p struct {
		Name, Version string
	}
	if err := json.Unmarshal(raw, &p); err != nil || p.Name != "@modelcontextprotocol/conformance" {
		return "", fmt.Errorf("%s is not @modelcontextprotocol/conformance", dir)
	}
	return p.Version, nil
}

// listScenarios is the tool's list of authorization server scenarios.
func listScenarios(ctx context.Context, o options) ([]string, error) {
	out, err := exec.CommandContext(ctx, o.node, filepath.Join(o.tool, "dist", "index.js"), "list", "--authorization").CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("conformance list --authorization: %w: %s", err, out)
	}
	names := parseScenarioList(string(out))
	if len(names) == 0 {
		return nil, fmt.Errorf("conformance list --authorization listed no scenario: %s", out)
	}
	return names, nil
}

// parseScenarioList reads the names in `list` output: lines "  - NAME" or
// "  - NAME [spec versions]".
func parseScenarioList(out string) []string {
	var names []string
	for _, line := range strings.Split(out, "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "- ")
		if !ok {
			continue
		}
		if f := strings.Fields(rest); len(f) > 0 {
			names = append(names, f[0])
		}
	}
	return names
}

// runTool runs `conformance authorization` for client id, shows its
// output, and plays the person's browser when it prints the
// authorization URL. The tool waits minutes for a callback that will not
// come once sign-in failed, so a failed sign-in stops it.
func runTool(ctx context.Context, o options, srv *server, c client, id, out string, stdout io.Writer) clientRun {
	run := clientRun{Client: c.what}
	callback, err := freePort()
	if err != nil {
		run.Problem = err.Error()
		return run
	}
	args := []string{filepath.Join(o.tool, "dist", "index.js"), "authorization",
		"--url", srv.issuer, "--client-id", id, "--port", strconv.Itoa(callback), "--output-dir", out}
	if c.resource {
		args = append(args, "--resource", srv.resource)
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, o.node, args...)
	cmd.Dir = o.work
	cmd.WaitDelay = 5 * time.Second
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		run.Problem = err.Error()
		return run
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		run.Problem = fmt.Sprintf("start the tool: %v", err)
		return run
	}
	var (
		wg         sync.WaitGroup
		mu         sync.Mutex
		signInErrs []string
	)
	sc := bufio.NewScanner(pipe)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		fmt.Fprintln(stdout, "  | "+line)
		if !strings.HasPrefix(line, srv.issuer+"/") || !strings.Contains(line, "/authorize?") {
			continue
		}
		wg.Add(1)
		go func(authURL string) {
			defer wg.Done()
			back, err := newBrowser().signIn(ctx, authURL, person, personPassword)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				signInErrs = append(signInErrs, "sign-in and consent: "+err.Error())
				cancel()
				return
			}
			fmt.Fprintf(stdout, "  (the browser signed %s in, approved, and was sent back to %s)\n", person, redactCode(back))
		}(line)
	}
	wg.Wait()
	werr := cmd.Wait()
	var problems []string
	problems = append(problems, signInErrs...)
	var exit *exec.ExitError
	switch {
	case werr == nil:
	case errors.As(werr, &exit) && ctx.Err() == nil:
		problems = append(problems, fmt.Sprintf("the tool exited with status %d", exit.ExitCode()))
	case ctx.Err() != nil && len(signInErrs) == 0:
		problems = append(problems, "the tool did not finish in 60 s")
	case ctx.Err() == nil:
		problems = append(problems, fmt.Sprintf("the tool: %v", werr))
	}
	run.Problem = strings.Join(problems, "; ")
	return run
}

// redactCode is a redirect URL with its code cut short: a code is a
// credential until it is redeemed.
func redactCode(u string) string {
	i := strings.Index(u, "code=")
	if i < 0 {
		return u
	}
	j := strings.IndexByte(u[i:], '&')
	if j < 0 {
		j = len(u) - i
	}
	return u[:i] + "code=…" + u[i+j:]
}

// collectResults reads the checks.json of each scenario under dir: the
// tool writes one directory per scenario, named
// authorization-server-SCENARIO-TIMESTAMP. A scenario without one has no
// checks.
func collectResults(dir string, scenarios []string) []scenarioResult {
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		if e.IsDir() {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	var out []scenarioResult
	for _, s := range scenarios {
		r := scenarioResult{Scenario: s}
		for _, n := range names {
			rest, ok := strings.CutPrefix(n, "authorization-server-"+s+"-")
			if !ok || rest == "" || !('0' <= rest[0] && rest[0] <= '9') {
				continue
			}
			raw, err := os.ReadFile(filepath.Join(dir, n, "checks.json"))
			if err != nil {
				continue
			}
			var checks []check
			if json.Unmarshal(raw, &checks) == nil {
				r.Checks = append(r.Checks, checks...)
			}
		}
		out = append(out, r)
	}
	return out
}

// report prints every check of every run and the totals, and says whether
// everything passed: every scenario of every run left checks, each of
// them SUCCESS, and nothing went wrong around the tool.
func report(w io.Writer, r *results) bool {
	fmt.Fprintf(w, "\n== results: @modelcontextprotocol/conformance %s, %d scenarios, %d runs\n",
		r.Version, len(r.Scenarios), len(r.Runs))
	passed, total, ok := 0, 0, true
	for i, run := range r.Runs {
		fmt.Fprintf(w, "run %d: %s\n", i+1, run.Client)
		for _, s := range run.Scenarios {
			if len(s.Checks) == 0 {
				fmt.Fprintf(w, "  FAIL %s: no result\n", s.Scenario)
				total++
				ok = false
				continue
			}
			for _, c := range s.Checks {
				total++
				verdict := "PASS"
				if c.Status == "SUCCESS" {
					passed++
				} else {
					verdict, ok = "FAIL", false
				}
				line := fmt.Sprintf("  %s %s / %s (%s): %s", verdict, s.Scenario, c.ID, c.Status, c.Description)
				if c.ErrorMessage != "" {
					line += ": " + c.ErrorMessage
				}
				fmt.Fprintln(w, line)
			}
		}
		if run.Problem != "" {
			fmt.Fprintf(w, "  FAIL %s\n", run.Problem)
			ok = false
		}
	}
	verdict := "every check passed"
	if !ok {
		verdict = "FAILED"
	}
	fmt.Fprintf(w, "%d scenarios × %d runs: %d of %d checks passed: %s\n",
		len(r.Scenarios), len(r.Runs), passed, total, verdict)
	return ok
}
