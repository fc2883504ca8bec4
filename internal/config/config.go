package config

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
)

// Defaults, applied by ApplyDefaults to fields left empty or zero.
const (
	DefaultListen          = "127.0.0.1:8080"
	DefaultIssuer          = "http://127.0.0.1:8080"
	DefaultDataDir         = "./mandate-data"
	DefaultTTL             = 10 * time.Minute
	DefaultMaxTTL          = 15 * time.Minute
	DefaultSigningAlg      = "EdDSA"
	DefaultLeeway          = 60 * time.Second
	DefaultKeyPublishDelay = 5 * time.Minute
	DefaultMaxDepth        = 4
	// DefaultIngestPerReporter is RateLimits.IngestPerReporter's default:
	// 20 batches a second, up to 10,000 records a second in batches of
	// 500 (4,000 in verify's default batches of 200).
	DefaultIngestPerReporter = 20
)

// Config is the whole configuration file. Every field is optional; the
// zero value after ApplyDefaults is a server on 127.0.0.1:8080 with an SQLite
// store under ./mandate-data, no admin API, no users, agents or policies.
type Config struct {
	// Issuer is the server's URL: the `iss` of every token, and the base of
	// every endpoint. An absolute http(s) URL without query, fragment, user
	// info or trailing slash; https unless the host is a loopback address
	// (127.0.0.0/8, ::1, localhost). Default: http://127.0.0.1:PORT, PORT
	// taken from Listen (http://127.0.0.1:8080).
	Issuer string `yaml:"issuer"`
	// Listen is the HOST:PORT the HTTP server binds. An empty host means every
	// interface. Default: 127.0.0.1:8080.
	Listen string `yaml:"listen"`
	// DataDir holds the SQLite database and the signing keys (files 0600).
	// Relative paths are relative to the working directory. Default:
	// ./mandate-data.
	DataDir string `yaml:"data_dir"`
	// Store selects the storage backend: empty for the SQLite file
	// DATA_DIR/mandate.db, "sqlite:PATH", or a PostgreSQL URL
	// ("postgres://USER@HOST:PORT/DB?sslmode=verify-full") for several
	// instances on one database. The password may be in the URL, in
	// StorePasswordFile, or in the PGPASSWORD environment variable; it is
	// never printed.
	Store string `yaml:"store"`
	// StorePasswordFile is a file holding the PostgreSQL password; it wins
	// over the URL and PGPASSWORD.
	StorePasswordFile string `yaml:"store_password_file"`
	// StoreSchema is the PostgreSQL schema that holds Mandate's tables,
	// created if missing: a lower-case identifier. Default "mandate".
	StoreSchema string `yaml:"store_schema"`
	// AllowAsyncCommit lets Mandate start on a PostgreSQL server that does
	// not flush commits to disk (synchronous_commit=off or fsync=off), which
	// can lose acknowledged revocations on a crash. Default false: refuse.
	AllowAsyncCommit bool `yaml:"allow_async_commit"`
	// Admin holds the bearer token for /admin and /audit. When neither token
	// nor token_file is set, the admin API is disabled.
	Admin Admin `yaml:"admin"`
	// Tokens sets lifetimes and signing of issued tokens.
	Tokens Tokens `yaml:"tokens"`
	// Delegation sets the global limits on delegation chains.
	Delegation DelegationLimits `yaml:"delegation"`
	// Audit sets the audit log's signed checkpoints.
	Audit Audit `yaml:"audit"`
	// Storage sets how the server deletes what has expired from the store.
	Storage Storage `yaml:"storage"`
	// RateLimits bounds how often one caller is served at /token,
	// /introspect and /revoke. Off by default.
	RateLimits RateLimits `yaml:"rate_limits"`
	// Tracing sends OpenTelemetry traces to a collector. Off by default.
	Tracing Tracing `yaml:"tracing"`
	// IdentityProviders are the issuers whose tokens Mandate accepts as a
	// person's subject_token.
	IdentityProviders []IdentityProvider `yaml:"identity_providers"`
	// Users are the people (subjects) and the permissions they hold. They are
	// created in the store when absent; once stored, the store is
	// authoritative.
	Users []User `yaml:"users"`
	// Agents are the OAuth clients that act on behalf of users. Created in the
	// store when absent, like Users.
	Agents []Agent `yaml:"agents"`
	// Delegations are standing grants made by an administrator. Created in the
	// store when absent, like Users.
	Delegations []Delegation `yaml:"delegations"`
	// Policies are CEL rules checked on every token exchange, in order.
	Policies []Policy `yaml:"policies"`
	// Scopes say what scopes allow, in words, on the consent page.
	// Optional: a scope without one is shown by its name alone.
	Scopes []Scope `yaml:"scopes"`
	// SignIn configures people's sessions and password attempts.
	SignIn SignIn `yaml:"sign_in"`
	// Resources are the resources people's tokens are addressed to, such
	// as MCP servers (resources.go). Optional; once one is registered, an
	// authorization request must name a registered resource or none.
	Resources []Resource `yaml:"resources"`
	// Registration is Dynamic Client Registration at POST /register.
	Registration Registration `yaml:"registration"`

	// Source is the file the configuration was read from, named in
	// validation errors; set by Load and Parse, empty for Dev. Not a YAML key.
	Source string `yaml:"-"`
}

// Admin configures the admin API's bearer token. Token and TokenFile are
// mutually exclusive; when both are empty the admin API is disabled. The token
// must be at least 32 bytes (8 on a loopback-only server, see LoopbackOnly).
type Admin struct {
	// Token is the bearer token itself.
	Token string `yaml:"token"`
	// TokenFile is a file holding the token; surrounding white space is
	// ignored. Relative paths are relative to the working directory.
	TokenFile string `yaml:"token_file"`
}

// Resolve returns the admin token, reading TokenFile if it is set. It returns
// "" and no error when the admin API is disabled, and an error when both
// Token and TokenFile are set or the file cannot be read or is empty. The
// error never contains the token.
func (a Admin) Resolve() (string, error) {
	return resolveSecret(a.Token, a.TokenFile, "token", "token_file")
}

// String never prints the token.
func (a Admin) String() string {
	return fmt.Sprintf("{Token:%s TokenFile:%s}", redact(a.Token), a.TokenFile)
}

// GoString never prints the token.
func (a Admin) GoString() string { return "config.Admin" + a.String() }

// Tokens configures issued tokens.
type Tokens struct {
	// TTL is the lifetime of an issued token; never above MaxTTL. Default 10m.
	TTL Duration `yaml:"ttl"`
	// MaxTTL caps every lifetime; at most 24h. Default 15m.
	MaxTTL Duration `yaml:"max_ttl"`
	// SigningAlg is the JWS algorithm of new signing keys: EdDSA (default),
	// ES256 or RS256.
	SigningAlg string `yaml:"signing_alg"`
	// Leeway is the clock skew allowed when checking exp, nbf and iat of
	// incoming tokens; at most 5m. Default 60s.
	Leeway Duration `yaml:"leeway"`
	// KeyPublishDelay is how long a rotated-in signing key is published in
	// the JWKS before it signs, so verifiers' caches learn it first; from 1m
	// (longer than a verifier's 30 s refetch cooldown) to 24h. Default 5m.
	KeyPublishDelay Duration `yaml:"key_publish_delay"`
}

// Audit configures the tamper-evident audit log's checkpoints.
type Audit struct {
	// CheckpointEvery is how often the server signs a checkpoint of the
	// log (its size, Merkle root and chain head) when it grew; 1s to 1h.
	// Default 10s.
	CheckpointEvery Duration `yaml:"checkpoint_every"`
	// WitnessFile is a file every signed checkpoint is appended to: a copy
	// kept outside the database, against which `mandate audit verify`
	// detects a cut-off or rolled-back log. Relative paths are relative to
	// the working directory. Default DATA_DIR/audit-witness.txt; "off"
	// disables it.
	WitnessFile string `yaml:"witness_file"`
	// Retention is how long records stay in the database: older ones are
	// moved to archive segments in ArchiveDir, which end in signed
	// checkpoints and still verify as one chain with the live log. A
	// duration such as "2160h" or a number of days such as "90d"; 0 or
	// empty, the default, keeps every record in the database. Set it on
	// one instance of several.
	Retention Duration `yaml:"retention"`
	// ArchiveDir is the directory of the archive segments. Relative paths
	// are relative to the working directory. Default DATA_DIR/archive.
	ArchiveDir string `yaml:"archive_dir"`
}

// ArchivePath returns the directory of the audit archive segments.
func (c *Config) ArchivePath() string {
	if c.Audit.ArchiveDir == "" {
		return filepath.Join(c.DataDir, "archive")
	}
	return c.Audit.ArchiveDir
}

// Storage configures the background sweep that deletes, from the store,
// what can no longer be presented: token rows past their expiry and the
// verifiers' leeway, expired nonces (private_key_jwt jti) and revocation
// feed entries no longer in force. Audit records are not swept.
type Storage struct {
	// SweepEvery is how often the sweep runs; 1s to 1h. Default 1m.
	SweepEvery Duration `yaml:"sweep_every"`
	// SweepBatch is the most rows one transaction of the sweep deletes;
	// the sweep runs batches, each sized to hold the write lock for about
	// 5 ms within this bound and followed by a pause, until one comes back
	// short. 1 to 10000, default 1000.
	SweepBatch int `yaml:"sweep_batch"`
}

// Defaults of Storage.
const (
	DefaultSweepEvery = time.Minute
	DefaultSweepBatch = 1000
)

// RateLimits are per-caller request rates at /token, /introspect and
// /revoke, checked before any signature, hash or database work (THREATS
// T78), and per reporter at /audit/ingest. A caller over its rate is
// answered 429 with Retry-After; each rate allows bursts of twice as many
// requests. For PerClient and PerIP 0, the default, is no limit.
type RateLimits struct {
	// PerClient is the requests a second one client_id may send, whether
	// or not it authenticates; 0 to 100000.
	PerClient float64 `yaml:"per_client"`
	// PerIP is the requests a second one remote address may send; 0 to
	// 100000. Behind a proxy every caller has the proxy's address (the
	// X-Forwarded-For header is not trusted), so set it only when callers
	// connect directly.
	PerIP float64 `yaml:"per_ip"`
	// IngestPerReporter is the batches a second one reporter (a client
	// with audit:report) may send to POST /audit/ingest, checked once it
	// has authenticated; 1 to 100000, default 20 (bursts of 40). Unlike
	// the others it is always on: each batch is a commit.
	IngestPerReporter float64 `yaml:"ingest_per_reporter"`
}

// MaxRate is the largest rate RateLimits accepts.
const MaxRate = 100_000

// DefaultCheckpointEvery is Audit.CheckpointEvery's default.
const DefaultCheckpointEvery = 10 * time.Second

// WitnessPath returns the audit witness file's path, "" when disabled.
func (c *Config) WitnessPath() string {
	switch c.Audit.WitnessFile {
	case "off":
		return ""
	case "":
		return filepath.Join(c.DataDir, "audit-witness.txt")
	}
	return c.Audit.WitnessFile
}

// DelegationLimits are the global limits on delegation chains.
type DelegationLimits struct {
	// MaxDepth is the most actors a chain may hold, 1 to 10. Default 4.
	MaxDepth int `yaml:"max_depth"`
}

// IdentityProvider is a trusted issuer of people's tokens (JWKSURI and
// Audience), a provider people sign in through (Login), or both.
type IdentityProvider struct {
	// Issuer must equal the `iss` of its tokens; https unless loopback.
	Issuer string `yaml:"issuer"`
	// JWKSURI is where its public keys are fetched; https unless loopback.
	// Required, with Audience, unless Login is set: then both or neither
	// (without them its tokens are not accepted as a subject_token).
	JWKSURI string `yaml:"jwks_uri"`
	// Audience is the `aud` its tokens must carry. Required as JWKSURI is.
	Audience string `yaml:"audience"`
	// Algorithms are the JWS algorithms accepted from it; asymmetric ones
	// only. Default [RS256, ES256, EdDSA].
	Algorithms []string `yaml:"algorithms"`
	// Login, when set, lets people sign in at Mandate through this
	// provider. Optional.
	Login *Login `yaml:"login"`
}

// User is a person (a subject) and the permissions they hold now.
type User struct {
	// ID is the subject identifier, e.g. "user:sam": non-empty, at most 256
	// bytes, no white space or control characters, unique among users and
	// agents.
	ID string `yaml:"id"`
	// Permissions are the scopes the user holds (at most 64).
	Permissions []string `yaml:"permissions"`
	// Limits are RFC 9396 authorization_details the user holds, at most 8,
	// each an object with a string "type", e.g.
	// {type: expense_approval, max_amount: 1000, currency: USD}. An
	// exchange grants details only within them: a "max_" number no higher,
	// a list no longer, any other field equal.
	Limits []map[string]any `yaml:"limits"`
	// PasswordHash is the argon2id hash of the person's password for
	// signing in, in the PHC string format
	// ($argon2id$v=19$m=19456,t=2,p=1$salt$hash, the form `mandate users
	// hash-password` prints), with at most 256 MiB (m=262144), 10 passes
	// and 16 lanes. Empty leaves the stored password as it is: people
	// usually set their own.
	PasswordHash string `yaml:"password_hash"`
	// Roles are the person's roles in Mandate itself, each admin or
	// auditor; none by default.
	Roles []string `yaml:"roles"`
}

// LimitsJSON returns the limits as a JSON array, or nil when there are none.
func (u User) LimitsJSON() (json.RawMessage, error) {
	if len(u.Limits) == 0 {
		return nil, nil
	}
	b, err := json.Marshal(u.Limits)
	if err != nil {
		return nil, fmt.Errorf("user %q limits: %w", u.ID, err)
	}
	return b, nil
}

// Agent is an OAuth client that acts on behalf of users. It needs at least
// one credential: Secret or SecretFile (not both) for client_secret_basic and
// client_secret_post, and/or JWKS or JWKSURI (not both) for private_key_jwt;
// unless it is Public, and then it has none.
type Agent struct {
	// ID is the client_id and the `act.sub` of its tokens, e.g.
	// "agent:infrabot"; same rules as User.ID. Agent ids are valid audiences.
	ID string `yaml:"id"`
	// Secret is the client secret: at least 32 bytes (8 on a loopback-only
	// server).
	Secret string `yaml:"secret"`
	// SecretFile is a file holding the client secret; surrounding white space
	// is ignored.
	SecretFile string `yaml:"secret_file"`
	// JWKS is an inline JWK Set ({"keys": [...]}) of the agent's public keys
	// for private_key_jwt; private and symmetric keys are refused.
	JWKS map[string]any `yaml:"jwks"`
	// JWKSURI is where the agent's public keys are fetched; https unless
	// loopback.
	JWKSURI string `yaml:"jwks_uri"`
	// Scopes are the most the agent may ever hold (at most 64).
	Scopes []string `yaml:"scopes"`
	// DelegateTo names the agents it may hand its delegation on to (known
	// agents, not itself).
	DelegateTo []string `yaml:"delegate_to"`
	// MaxDepth, when not 0, is the agent's own chain-depth limit (1 to 10);
	// the tightest of all limits applies.
	MaxDepth int `yaml:"max_depth"`
	// Resources are the resource identifiers (token audiences, such as
	// "https://expense.example") the client serves as a resource server.
	// A client with the audit:report scope may forward verifiers' records
	// to POST /audit/ingest only for these audiences and its own id; a
	// record for another audience is refused. Optional (at most 64, each
	// as an audience is written): without it a reporter reports for its
	// own id only, as when the id is the audience.
	Resources []string `yaml:"resources"`
	// RedirectURIs are where the authorization endpoint may send a person
	// back to the agent with a code: at most 16, each https or http to a
	// loopback address (whose port may then differ), compared exactly.
	// Optional: an agent without any cannot ask people for consent.
	RedirectURIs []string `yaml:"redirect_uris"`
	// Public makes the agent a public client (token_endpoint_auth_method
	// "none", such as an app on a person's device or an MCP client that
	// cannot keep a secret): it has no secret, jwks or jwks_uri, presents
	// only its client_id, and may use the authorization code grant (PKCE
	// S256, as always) and the refresh token grant, nothing else.
	Public bool `yaml:"public"`
	// Disabled refuses the agent everywhere, in any chain.
	Disabled bool `yaml:"disabled"`
}

// ResolveSecret returns the client secret, reading SecretFile if it is set,
// or "" when the agent has neither. The error never contains the secret.
func (a Agent) ResolveSecret() (string, error) {
	return resolveSecret(a.Secret, a.SecretFile, "secret", "secret_file")
}

// JWKSJSON returns the inline JWK Set as JSON, or nil when there is none.
func (a Agent) JWKSJSON() (json.RawMessage, error) {
	if a.JWKS == nil {
		return nil, nil
	}
	b, err := json.Marshal(a.JWKS)
	if err != nil {
		return nil, fmt.Errorf("agent %q jwks: %w", a.ID, err)
	}
	return b, nil
}

// String never prints the secret.
func (a Agent) String() string {
	return fmt.Sprintf("{ID:%s Secret:%s SecretFile:%s JWKS:%t JWKSURI:%s Scopes:%v DelegateTo:%v MaxDepth:%d Resources:%v RedirectURIs:%v Public:%t Disabled:%t}",
		a.ID, redact(a.Secret), a.SecretFile, a.JWKS != nil, a.JWKSURI, a.Scopes, a.DelegateTo, a.MaxDepth, a.Resources, a.RedirectURIs, a.Public, a.Disabled)
}

// GoString never prints the secret.
func (a Agent) GoString() string { return "config.Agent" + a.String() }

// Delegation is a standing grant: Subject lets Actor use Scopes for
// Audiences until Expires.
type Delegation struct {
	// ID identifies the delegation (the `delegation_id` claim). Optional;
	// when empty it is derived from Subject and Actor (see DelegationID).
	ID string `yaml:"id"`
	// Subject is a known user.
	Subject string `yaml:"subject"`
	// Actor is a known agent.
	Actor string `yaml:"actor"`
	// Scopes granted (1 to 64). They need not be among the subject's
	// permissions: an exchange grants only the intersection.
	Scopes []string `yaml:"scopes"`
	// Audiences the tokens may be addressed to; empty means any.
	Audiences []string `yaml:"audiences"`
	// MaxDepth, when not 0, limits chains under this delegation (1 to 10).
	MaxDepth int `yaml:"max_depth"`
	// Expires ends the delegation; zero means never. A past time is accepted
	// and leaves the delegation inactive.
	Expires time.Time `yaml:"expires"`
}

// Policy is a CEL rule: when If holds (empty: always), Require must hold,
// or the exchange is refused with reason "policy_denied:NAME".
type Policy struct {
	// Name is unique and non-empty; it is the reason a denial gives.
	Name string `yaml:"name"`
	// If selects the requests the policy applies to; a bool CEL expression.
	If string `yaml:"if"`
	// Require must hold for the selected requests; a bool CEL expression.
	// Required.
	Require string `yaml:"require"`
	// Description is for people; Mandate does not read it.
	Description string `yaml:"description"`
}

// Duration is a time.Duration written in YAML as "10m", "90s" or "1h30m".
type Duration time.Duration

// Std returns d as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// String formats d like time.Duration.
func (d Duration) String() string { return time.Duration(d).String() }

// UnmarshalYAML accepts a Go duration string such as "10m", or a whole
// number of days such as "90d"; a bare number is refused because its unit
// would be a guess.
func (d *Duration) UnmarshalYAML(node ast.Node) error {
	fe := &FieldError{Problem: `want a duration such as "10m" or "90s"`}
	if tok := node.GetToken(); tok != nil && tok.Position != nil {
		fe.Line, fe.Column = tok.Position.Line, tok.Position.Column
	}
	str, ok := node.(*ast.StringNode)
	if !ok {
		return fe
	}
	v, err := parseDuration(strings.TrimSpace(str.Value))
	if err != nil {
		fe.Problem += ", not " + strconv.Quote(str.Value)
		return fe
	}
	*d = Duration(v)
	return nil
}

// parseDuration is time.ParseDuration, and a whole number of days ("90d").
func parseDuration(s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseInt(days, 10, 64)
		if err != nil || n < 0 || n > math.MaxInt64/int64(24*time.Hour) {
			return 0, fmt.Errorf("not a number of days: %q", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	return time.ParseDuration(s)
}

// parseTime decodes a YAML time strictly: RFC 3339 or a date (midnight UTC).
// The YAML library's own decoding turns a value it cannot parse into the zero
// time, which for an expiry would mean "never".
func parseTime(t *time.Time, data []byte) error {
	var s string
	if err := yaml.Unmarshal(data, &s); err != nil {
		return fmt.Errorf("want a time such as 2027-01-01T00:00:00Z: %w", err)
	}
	s = strings.TrimSpace(s)
	if s == "" {
		*t = time.Time{}
		return nil
	}
	for _, layout := range []string{time.RFC3339Nano, time.DateOnly} {
		if v, err := time.Parse(layout, s); err == nil {
			*t = v
			return nil
		}
	}
	return fmt.Errorf("want a time such as 2027-01-01T00:00:00Z or 2027-01-01, not %q", s)
}

// MarshalYAML writes d as a duration string.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

func resolveSecret(value, file, valueKey, fileKey string) (string, error) {
	switch {
	case value != "" && file != "":
		return "", fmt.Errorf("set %s or %s, not both", valueKey, fileKey)
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("read %s: %w", fileKey, err)
		}
		s := strings.TrimSpace(string(b))
		if s == "" {
			return "", fmt.Errorf("%s %s is empty", fileKey, file)
		}
		return s, nil
	}
	return value, nil
}

func redact(s string) string {
	if s == "" {
		return `""`
	}
	return "[redacted]"
}
