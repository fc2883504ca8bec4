package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/spf13/cobra"

	"github.com/mandate-dev/mandate/cmd/mandate-bench/internal/loadgen"
	"github.com/mandate-dev/mandate/internal/config"
	"github.com/mandate-dev/mandate/internal/server"
)

// benchGrantBare is the bench's scale reference: the exchange request sent
// to loadgen.NewBare instead of to Mandate.
const benchGrantBare = "bare"

// newBenchBareCmd is `mandate-bench bare-server`, which `mandate-bench
// --grant bare` starts as a child process: the bare token endpoint on
// --listen, for the clients and the identity provider of the bench's
// configuration file. Hidden: it is a part of the benchmark, not a server.
func newBenchBareCmd() *cobra.Command {
	var path, listen string
	cmd := &cobra.Command{
		Use:    "bare-server",
		Short:  "Serve the bare token endpoint that `mandate-bench --grant bare` measures",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runBareServer(cmd.Context(), path, listen)
		},
	}
	cmd.Flags().StringVar(&path, "config", "", "the bench's configuration file")
	cmd.Flags().StringVar(&listen, "listen", "", "loopback address to listen on")
	_ = cmd.MarkFlagRequired("config")
	_ = cmd.MarkFlagRequired("listen")
	return cmd
}

func runBareServer(ctx context.Context, path, listen string) error {
	cfg, err := config.Load(path)
	if err != nil {
		return err
	}
	if len(cfg.IdentityProviders) == 0 {
		return errors.New("bare-server: the configuration has no identity provider")
	}
	idp := cfg.IdentityProviders[0]
	keys, err := fetchJWKS(ctx, idp.JWKSURI)
	if err != nil {
		return err
	}
	clients := map[string]string{}
	for _, a := range cfg.Agents {
		if s, err := a.ResolveSecret(); err == nil && s != "" {
			clients[a.ID] = s
		}
	}
	h, err := loadgen.NewBare(loadgen.BareConfig{
		Issuer: "http://" + listen, Clients: clients,
		IdPIssuer: idp.Issuer, IdPAudience: idp.Audience, IdPKeys: keys,
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := server.NewHTTPServer(listen, h)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// fetchJWKS reads the JWK Set at uri once.
func fetchJWKS(ctx context.Context, uri string) (jose.JSONWebKeySet, error) {
	var set jose.JSONWebKeySet
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, uri, nil)
	if err != nil {
		return set, fmt.Errorf("bare-server: JWKS request: %w", err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return set, fmt.Errorf("bare-server: fetching the JWKS: %w", err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return set, fmt.Errorf("bare-server: fetching the JWKS: %s", res.Status)
	}
	if err := json.NewDecoder(io.LimitReader(res.Body, 1<<20)).Decode(&set); err != nil {
		return set, fmt.Errorf("bare-server: reading the JWKS: %w", err)
	}
	return set, nil
}

// startBareServer starts `mandate-bench bare-server` from this executable,
// on the server's CPU, and waits until it answers.
func startBareServer(ctx context.Context, dir string, f benchFlags) (*loadgen.Process, string, error) {
	port, err := freePort()
	if err != nil {
		return nil, "", err
	}
	addr := "127.0.0.1:" + port
	return startChild(ctx, dir, "bare.log", "http://"+addr, f,
		"bare-server", "--config", filepath.Join(dir, "mandate.yaml"), "--listen", addr)
}

// startChild starts this executable with args, pinned to the server's CPU
// unless --no-pin, its output in DIR/logName, and waits for base/healthz.
func startChild(ctx context.Context, dir, logName, base string, f benchFlags, args ...string) (*loadgen.Process, string, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, "", fmt.Errorf("finding this executable: %w", err)
	}
	log, err := os.Create(filepath.Join(dir, logName))
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", logName, err)
	}
	// The child holds its own descriptor; ours is only needed to start it.
	defer log.Close()
	cpu := -1
	if !f.noPin {
		cpu = f.serverCPU
	}
	p, err := loadgen.Start(loadgen.ProcessConfig{Path: exe, Args: args, CPU: cpu, Log: log})
	if err != nil {
		return nil, "", err
	}
	if err := p.WaitHealthy(ctx, base+"/healthz", 30*time.Second); err != nil {
		_ = p.Stop(5 * time.Second)
		return nil, "", fmt.Errorf("%w\n%s", err, p.LogTail(2000))
	}
	return p, base, nil
}
