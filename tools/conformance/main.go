// Command conformance runs the official MCP conformance tool
// (@modelcontextprotocol/conformance) against Mandate as an MCP
// authorization server, and says whether every scenario passed. .ci/conformance
// installs Node, npm and the tool and calls it:
//
//	go run ./tools/conformance -mandate ./mandate -node NODE -tool DIR -work TMPDIR
//
// It starts the mandate binary on loopback with a configuration of its own
// (Sam with a password, a public MCP client, a registered MCP server
// resource, open registration), then runs the tool's `authorization`
// command once per client: the file's public client asking for the
// resource, and a client registered just before through Dynamic Client
// Registration asking for no resource and no scope. The tool's
// authorization code scenario prints the authorization URL and waits for a
// person to sign in; this command plays the person's browser through the
// real sign-in and consent pages (cookies, the forms' CSRF fields, no
// JavaScript), which send the code to the tool's callback. It prints the
// tool's version, the scenario count and every check, and exits 1 when a
// check did not succeed (a warning counts as a failure here), a scenario
// left no result, or the tool failed. Every process it starts is on
// 127.0.0.1 and is stopped before it returns.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// options are the command's flags.
type options struct {
	mandate, node, tool, work string
	timeout                   time.Duration
}

// run parses args, runs every client against Mandate and prints the
// verdict: 0 when every check of every scenario succeeded, 1 when one did
// not, 2 when the run could not be made.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("conformance", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	fs.StringVar(&o.mandate, "mandate", "", "the mandate binary (required)")
	fs.StringVar(&o.node, "node", "node", "the Node binary (22 or later)")
	fs.StringVar(&o.tool, "tool", "", "the installed package directory of @modelcontextprotocol/conformance (required)")
	fs.StringVar(&o.work, "work", "", "a directory for the configuration, data and results (default: a new temporary one, removed at the end)")
	fs.DurationVar(&o.timeout, "timeout", 150*time.Second, "the most the whole run may take")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if o.mandate == "" || o.tool == "" {
		fmt.Fprintln(stderr, "conformance: -mandate and -tool are required")
		return 2
	}
	if o.work == "" {
		dir, err := os.MkdirTemp("", "mandate-conformance-")
		if err != nil {
			fmt.Fprintln(stderr, "conformance:", err)
			return 2
		}
		defer os.RemoveAll(dir)
		o.work = dir
	} else {
		o.work = filepath.Join(o.work, "conformance")
		if err := os.MkdirAll(o.work, 0o700); err != nil {
			fmt.Fprintln(stderr, "conformance:", err)
			return 2
		}
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	results, err := runAll(ctx, o, stdout)
	if err != nil {
		fmt.Fprintln(stderr, "conformance:", err)
		return 2
	}
	if !report(stdout, results) {
		return 1
	}
	return 0
}
