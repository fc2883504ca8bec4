// Command mcpserver runs the example MCP server (package mcpserver) behind
// a Mandate, for MCP clients to sign people in with:
//
//	go run ./cmd/mandate serve --dev
//	go run ./examples/mcpserver/cmd/mcpserver
//
// It serves the MCP endpoint at http://127.0.0.1:8090/mcp (--listen), the
// resource `serve --dev` registers, checks every call with verify against
// the issuer (--issuer, default http://127.0.0.1:8080) and logs one audit
// record per request on its standard error. Its deploy tool hands the
// work on to the deploy API at --deploy-api, by token exchange as the
// agent --client-id with --client-secret; without --deploy-api it answers
// that it has nowhere to hand it. With --reporter-secret (the secret of
// --reporter-id, a client of Mandate with the scope audit:report) it
// follows Mandate's revocation feed, so that a token revoked there is
// refused here within a second, and forwards its records to Mandate's audit
// log; without, a revoked token is refused here only when it expires.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/mandate-dev/mandate/agent"
	"github.com/mandate-dev/mandate/examples/mcpserver"
	"github.com/mandate-dev/mandate/verify"
	"github.com/mandate-dev/mandate/verify/feed"
	"github.com/mandate-dev/mandate/verify/forward"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "mcpserver:", err)
		}
		os.Exit(2)
	}
}

// report subscribes vc to the issuer's revocation feed and sends its
// records to the issuer's audit log, as the resource-server client id;
// the function returned stops both.
func report(ctx context.Context, vc *verify.Config, issuer, id, secret string, logger *slog.Logger) (func(), error) {
	fctx, stopFeed := context.WithCancel(ctx)
	f, err := feed.New(fctx, feed.Config{URL: issuer + "/revocations/stream", ClientID: id, ClientSecret: secret, Logger: logger})
	if err != nil {
		stopFeed()
		return nil, fmt.Errorf("revocation feed: %w", err)
	}
	ready, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := f.Ready(ready); err != nil {
		stopFeed()
		return nil, fmt.Errorf("revocation feed of %s (is --reporter-secret right?): %w", issuer, err)
	}
	fwd, err := forward.New(ctx, forward.Config{URL: issuer + "/audit/ingest", ClientID: id, ClientSecret: secret, Logger: logger})
	if err != nil {
		stopFeed()
		return nil, fmt.Errorf("records: %w", err)
	}
	vc.Revocation, vc.Records = f, fwd
	return func() {
		closing, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = fwd.Close(closing)
		stopFeed()
	}, nil
}

// run parses args and serves until ctx ends.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("mcpserver", flag.ContinueOnError)
	fs.SetOutput(stderr)
	issuer := fs.String("issuer", "http://127.0.0.1:8080", "the issuer of the tokens: Mandate's URL")
	listen := fs.String("listen", "127.0.0.1:8090", "the address to listen on")
	resource := fs.String("resource", "", "the MCP endpoint's URL, the resource registered at Mandate (default http://LISTEN/mcp)")
	deployAPI := fs.String("deploy-api", "", "the deploy API the deploy tool hands work on to (optional; needs --client-secret)")
	clientID := fs.String("client-id", "agent:example_mcp", "this server's agent at Mandate, which exchanges tokens for the deploy API")
	clientSecret := fs.String("client-secret", "", "the agent's secret")
	reporterID := fs.String("reporter-id", "rs:example_mcp", "this server's resource-server client at Mandate, which follows the revocation feed and reports records")
	reporterSecret := fs.String("reporter-secret", "", "the reporter's secret (without it: no revocation feed, no records sent to Mandate)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *resource == "" {
		*resource = "http://" + *listen + mcpserver.Path
	}
	origin, err := url.Parse(*resource)
	if err != nil || origin.Host == "" {
		return fmt.Errorf("--resource %q is not an absolute URL", *resource)
	}
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	vc := verify.Config{
		Issuer: *issuer, Audience: *resource, Algorithms: []string{"EdDSA", "ES256", "RS256"},
		Resource: mcpserver.Metadata(), Logger: logger,
	}
	if *reporterSecret != "" {
		closeReporter, err := report(ctx, &vc, *issuer, *reporterID, *reporterSecret, logger)
		if err != nil {
			return err
		}
		defer closeReporter()
	} else {
		fmt.Fprintln(stderr, "mcpserver: no --reporter-secret: tokens revoked at Mandate are refused here only when they expire")
	}
	v, err := verify.New(ctx, vc)
	if err != nil {
		return fmt.Errorf("is Mandate running at %s? %w", *issuer, err)
	}
	cfg := mcpserver.Config{Verifier: v, DeployAPI: *deployAPI}
	if *deployAPI != "" {
		if *clientSecret == "" {
			return errors.New("--deploy-api needs --client-secret, the secret of --client-id at Mandate")
		}
		if cfg.Agent, err = agent.New(agent.Config{TokenURL: *issuer + "/token", ClientID: *clientID, ClientSecret: *clientSecret}); err != nil {
			return err
		}
	}
	h, err := mcpserver.New(cfg)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shut)
	}()
	fmt.Fprintf(stdout, "The example MCP server is at %s, behind Mandate at %s (its metadata: %s://%s%s).\n",
		*resource, *issuer, origin.Scheme, origin.Host, v.MetadataPath())
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
