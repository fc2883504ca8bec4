package config

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/mandate-dev/mandate/internal/policy"
)

// MaxFileSize is the largest configuration file Load reads.
const MaxFileSize = 1 << 20

// Load reads the file at path and returns its configuration, decoded
// strictly, with defaults applied and validated, as Parse does. Errors are
// *FieldError values, joined, naming path, the line, the field and why.
func Load(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("config: read %s: %w", path, err)
	}
	if len(data) > MaxFileSize {
		return nil, &FieldError{File: path, Problem: fmt.Sprintf("larger than %d bytes", MaxFileSize)}
	}
	return Parse(data, path)
}

// Parse decodes data as a configuration file named source (used in error
// messages only), applies defaults and validates it. Unknown and repeated
// keys, a second YAML document and values of the wrong type are refused. An
// empty document is the default configuration.
//
// Every problem is reported at once: the error joins *FieldError values,
// sorted by line, each naming source, the line and column where the file
// holds the field (or its nearest enclosing one; none for a field the file
// does not hold), the field and why. Decoding problems come first in this
// sense only: what remains of the file once the keys and values in error
// are set aside is validated too, except under a value set aside.
func Parse(data []byte, source string) (*Config, error) {
	c, d := decodeFile(data, source)
	if c == nil {
		return nil, d.err()
	}
	c.Source = source
	c.ApplyDefaults()
	d.addValidation(c.Validate())
	if err := d.err(); err != nil {
		return nil, err
	}
	return c, nil
}

// ApplyDefaults fills every empty or zero field that has a default, and
// derives the ids of delegations that have none. It is idempotent.
func (c *Config) ApplyDefaults() {
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.Issuer == "" {
		c.Issuer = DefaultIssuer
		if _, port, err := net.SplitHostPort(c.Listen); err == nil && isPort(port) && port != "0" {
			c.Issuer = "http://127.0.0.1:" + port
		}
	}
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir
	}
	t := &c.Tokens
	if t.TTL == 0 {
		t.TTL = Duration(DefaultTTL)
	}
	if t.MaxTTL == 0 {
		t.MaxTTL = Duration(DefaultMaxTTL)
	}
	if t.SigningAlg == "" {
		t.SigningAlg = DefaultSigningAlg
	}
	if t.Leeway == 0 {
		t.Leeway = Duration(DefaultLeeway)
	}
	if t.KeyPublishDelay == 0 {
		t.KeyPublishDelay = Duration(DefaultKeyPublishDelay)
	}
	if c.Delegation.MaxDepth == 0 {
		c.Delegation.MaxDepth = DefaultMaxDepth
	}
	if c.Audit.CheckpointEvery == 0 {
		c.Audit.CheckpointEvery = Duration(DefaultCheckpointEvery)
	}
	if c.Storage.SweepEvery == 0 {
		c.Storage.SweepEvery = Duration(DefaultSweepEvery)
	}
	if c.Storage.SweepBatch == 0 {
		c.Storage.SweepBatch = DefaultSweepBatch
	}
	if c.RateLimits.IngestPerReporter == 0 {
		c.RateLimits.IngestPerReporter = DefaultIngestPerReporter
	}
	c.Tracing.applyDefaults()
	c.SignIn.applyDefaults()
	c.Registration.applyDefaults()
	for i := range c.IdentityProviders {
		if len(c.IdentityProviders[i].Algorithms) == 0 {
			c.IdentityProviders[i].Algorithms = DefaultIdentityProviderAlgs()
		}
		if l := c.IdentityProviders[i].Login; l != nil && len(l.Scopes) == 0 {
			l.Scopes = DefaultLoginScopes()
		}
	}
	for i := range c.Delegations {
		if d := &c.Delegations[i]; d.ID == "" {
			d.ID = DelegationID(d.Subject, d.Actor)
		}
	}
}

func isPort(s string) bool {
	_, err := strconv.ParseUint(s, 10, 16)
	return err == nil
}

// DelegationID is the id given to a configured delegation that has none:
// "dlg_" and the first 16 hex digits of SHA-256(subject "\n" actor). It is
// stable across restarts, so the store recognises the delegation.
func DelegationID(subject, actor string) string {
	sum := sha256.Sum256([]byte(subject + "\n" + actor))
	return "dlg_" + hex.EncodeToString(sum[:8])
}

// SQLitePath is the SQLite database file the configuration selects:
// DATA_DIR/mandate.db when Store is empty, PATH for "sqlite:PATH", "" for
// any other store.
func (c *Config) SQLitePath() string {
	if c.Store == "" {
		return filepath.Join(c.DataDir, "mandate.db")
	}
	if p, ok := strings.CutPrefix(c.Store, "sqlite:"); ok {
		return p
	}
	return ""
}

// IsPostgres reports whether Store selects PostgreSQL.
func (c *Config) IsPostgres() bool {
	return strings.HasPrefix(c.Store, "postgres://") || strings.HasPrefix(c.Store, "postgresql://")
}

// LoopbackOnly reports whether both the issuer and the listen address are on
// loopback, so that no other machine can reach the server. Such a server
// accepts shorter secrets (8 bytes instead of 32), for development.
func (c *Config) LoopbackOnly() bool {
	host, _, err := net.SplitHostPort(c.Listen)
	if err != nil || !isLoopbackHost(host) {
		return false
	}
	u, err := parseURL(c.Issuer)
	return err == nil && isLoopbackHost(u.Hostname())
}

// PolicyRules returns the policies in the form policy.New takes.
func (c *Config) PolicyRules() []policy.Rule {
	rules := make([]policy.Rule, len(c.Policies))
	for i, p := range c.Policies {
		rules[i] = policy.Rule{Name: p.Name, If: p.If, Require: p.Require}
	}
	return rules
}

// DevPassword is user:sam's password in the dev cast (Dev), public like
// the dev agents' secrets; DevPasswordHash is its argon2id hash.
const (
	DevPassword = "sam-dev-password"
	// DevRedirectURI is where the dev cast's InfraBot receives codes: any
	// port of the loopback address, as a desktop or command-line agent
	// listens (RFC 8252).
	DevRedirectURI  = "http://127.0.0.1/callback"
	DevPasswordHash = "$argon2id$v=19$m=19456,t=2,p=1$eOOowOxv/eD0ni0tNiUuvA$Qq+Jp5fjwol26Poz4nW7GYTYVRQ9aD0llx/S+qj0H4M"
)

// DevMCPResource is the MCP server the dev cast registers as a resource,
// where `go run ./examples/mcpserver/cmd/mcpserver` serves by default;
// DevMCPAgent is its agent, and DevMCPReporter the client it follows the
// revocation feed and reports its records as, with DevMCPReporterSecret
// (public, as every dev secret).
const (
	DevMCPResource       = "http://127.0.0.1:8090/mcp"
	DevMCPAgent          = "agent:example_mcp"
	DevMCPReporter       = "rs:example_mcp"
	DevMCPReporterSecret = "example-mcp-reporter-dev-secret"
)

// Dev returns the configuration of `mandate serve --dev`, defaults applied:
// the InfraBot cast on 127.0.0.1:8080 with dataDir as the data directory.
// user:sam delegates to agent:infrabot, which may hand on to agent:argocd,
// which may hand on to agent:cleanup_agent; deploy:tag is held along the
// whole chain so that a three-hop token can carry it. Sam signs in with
// DevPassword and is an admin. The example MCP server is registered as a
// resource (DevMCPResource, its agent DevMCPAgent), and MCP clients may
// register themselves (open registration, metadata documents). The admin
// token is left empty: the caller generates one.
func Dev(dataDir string) *Config {
	c := &Config{
		Issuer:  DefaultIssuer,
		Listen:  DefaultListen,
		DataDir: dataDir,
		Users: []User{{
			ID: "user:sam",
			Permissions: []string{"monitoring:read", "deploy:create", "deploy:comment", "secrets:manage",
				"deploy:tag", "infrastructure:clean"},
			PasswordHash: DevPasswordHash,
			Roles:        []string{"admin"},
		}},
		Agents: []Agent{
			{
				ID:           "agent:infrabot",
				Secret:       "infrabot-dev-secret",
				Scopes:       []string{"monitoring:read", "deploy:comment", "deploy:create", "deploy:tag"},
				DelegateTo:   []string{"agent:argocd"},
				RedirectURIs: []string{DevRedirectURI},
			},
			{
				ID:         "agent:argocd",
				Secret:     "argocd-dev-secret",
				Scopes:     []string{"deploy:create", "deploy:tag", "monitoring:read"},
				DelegateTo: []string{"agent:cleanup_agent"},
			},
			{
				ID:     "agent:cleanup_agent",
				Secret: "cleanup-dev-secret",
				Scopes: []string{"deploy:tag", "infrastructure:clean"},
			},
			{
				ID:     DevMCPAgent,
				Secret: "example-mcp-dev-secret",
				Scopes: []string{"deploy:create"},
			},
			{
				// The example MCP server as a resource server: it
				// follows the revocation feed and reports its records.
				ID:        DevMCPReporter,
				Secret:    DevMCPReporterSecret,
				Scopes:    []string{"audit:report"},
				Resources: []string{DevMCPResource},
			},
		},
		Delegations: []Delegation{{
			Subject: "user:sam",
			Actor:   "agent:infrabot",
			Scopes:  []string{"monitoring:read", "deploy:create", "deploy:comment", "deploy:tag"},
		}},
		Scopes: []Scope{
			{Name: "monitoring:read", Description: "Read dashboards and metrics"},
			{Name: "deploy:create", Description: "Deploy services"},
			{Name: "deploy:comment", Description: "Comment on deployments"},
			{Name: "deploy:tag", Description: "Tag releases"},
			{Name: "secrets:manage", Description: "Read and change secrets"},
			{Name: "infrastructure:clean", Description: "Remove unused infrastructure"},
		},
		Policies: []Policy{{
			Name:        "prod-deploys-only-from-ci",
			Description: "Deployments to production come from the CI pipeline, never from a chat.",
			If:          `context.environment == "prod" && "deploy:create" in scopes`,
			Require:     `context.trigger == "ci_pipeline"`,
		}},
		Resources: []Resource{{
			URI:  DevMCPResource,
			Name: "Example MCP server",
			Scopes: []Scope{
				{Name: "monitoring:read", Description: "Read the services' metrics"},
				{Name: "deploy:create", Description: "Start deployments"},
			},
			DefaultScopes: []string{"monitoring:read"},
			Agent:         DevMCPAgent,
		}},
		// MCP clients register themselves, or describe themselves in a
		// metadata document: open, as the dev server is on loopback only.
		Registration: Registration{
			Policy:            RegistrationOpen,
			MetadataDocuments: true,
			Scopes:            []string{"monitoring:read", "deploy:create"},
		},
	}
	c.ApplyDefaults()
	return c
}
