package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/mandate-dev/mandate/internal/directory"
	"github.com/mandate-dev/mandate/internal/policy"
	"github.com/mandate-dev/mandate/internal/store"
)

// Limits Validate enforces. Those of users, agents and delegations are the
// directory's, whose rules the file's records follow: the file is one way
// of stating them, the admin API another.
const (
	MaxIDLen        = directory.MaxIDLen
	MaxScopeLen     = directory.MaxScopeLen
	MaxListLen      = directory.MaxListLen
	MaxDepthLimit   = directory.MaxDepth
	MinSecretLen    = 32
	MinDevSecretLen = 8 // on a loopback-only server, see Config.LoopbackOnly
	MaxTTLLimit     = 24 * time.Hour
	MaxLeeway       = 5 * time.Minute
	MaxPublishDelay = 24 * time.Hour
	// MinPublishDelay is the least key_publish_delay: longer than a
	// verifier's JWKS refetch cooldown (30 s) plus the time every instance
	// takes to publish a new key, so that no verifier refuses the first
	// tokens of a new key (internal/token's MinPublishDelay, which the
	// keyring also keeps after an emergency revocation).
	MinPublishDelay = time.Minute
)

// SigningAlgs returns the values Tokens.SigningAlg accepts.
func SigningAlgs() []string { return []string{"EdDSA", "ES256", "RS256"} }

// DefaultIdentityProviderAlgs returns IdentityProvider.Algorithms' default.
func DefaultIdentityProviderAlgs() []string { return []string{"RS256", "ES256", "EdDSA"} }

// IdentityProviderAlgs returns the algorithms an identity provider may be
// trusted with: asymmetric only, never "none" nor an HMAC.
func IdentityProviderAlgs() []string {
	return []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
}

// FieldError is one problem in a configuration: the file, the field (a path
// such as "agents[1].scopes[0]", empty for the file as a whole), the line and
// column where the file holds it (set by Parse and Load; 0 when unknown), and
// why. It never holds a secret.
type FieldError struct {
	File    string
	Field   string
	Line    int
	Column  int
	Problem string
}

// Error reads like `mandate.yaml: agents[1].secret: must be at least 32 bytes`.
func (e *FieldError) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			fmt.Fprintf(&b, ":%d:%d", e.Line, e.Column)
		}
		b.WriteString(": ")
	}
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Problem)
	return b.String()
}

// problems collects FieldErrors.
type problems struct {
	file string
	errs []error
}

func (p *problems) add(field, format string, args ...any) {
	p.errs = append(p.errs, &FieldError{File: p.file, Field: field, Problem: fmt.Sprintf(format, args...)})
}

// addAll adds each problem the directory found in err (directory.Problems)
// under the field prefix, the path of the record in the file.
func (p *problems) addAll(prefix string, err error) {
	for _, e := range directory.Problems(err) {
		field := prefix
		if e.Field != "" {
			field += "." + e.Field
		}
		p.add(field, "%s", e.Problem)
	}
}

// Validate checks c, defaults applied, and returns every problem at once:
// errors.Join of *FieldError, or nil. It reads token_file and secret_file to
// check the secrets they hold, and compiles the policies.
func (c *Config) Validate() error {
	p := &problems{file: c.Source}
	c.validateServer(p)
	c.validateTokens(p)
	c.validateIdentityProviders(p)
	users, agents := c.validatePrincipals(p)
	c.validateDelegations(p, users, agents)
	c.validatePolicies(p)
	c.validateTracing(p)
	c.validateSignIn(p)
	c.validateResources(p)
	c.validateRegistration(p)
	return errors.Join(p.errs...)
}

func (c *Config) validateServer(p *problems) {
	if err := checkURL(c.Issuer); err != nil {
		p.add("issuer", "%v", err)
	} else if strings.HasSuffix(c.Issuer, "/") {
		p.add("issuer", "must not end with a slash (endpoints are appended to it)")
	}
	if host, port, err := net.SplitHostPort(c.Listen); err != nil {
		p.add("listen", "want HOST:PORT such as 127.0.0.1:8080: %v", err)
	} else {
		if !isPort(port) {
			p.add("listen", "port %q is not a number from 0 to 65535", port)
		}
		if hasSpaceOrControl(host) {
			p.add("listen", "host contains white space or control characters")
		}
	}
	if strings.TrimSpace(c.DataDir) == "" {
		p.add("data_dir", "must not be empty")
	}
	switch store := c.Store; {
	case store == "":
	case strings.HasPrefix(store, "sqlite:"):
		if strings.TrimPrefix(store, "sqlite:") == "" {
			p.add("store", "sqlite: needs a file path, as in sqlite:/var/lib/mandate/mandate.db")
		}
	case c.IsPostgres():
		if u, err := url.Parse(store); err != nil || u.Host == "" {
			p.add("store", "not a valid postgres:// URL")
		}
		if c.StoreSchema != "" && !validSchema(c.StoreSchema) {
			p.add("store_schema", "must be a lower-case identifier of at most 55 characters")
		}
		if c.StorePasswordFile != "" {
			if _, err := resolveSecret("", c.StorePasswordFile, "store", "store_password_file"); err != nil {
				p.add("store_password_file", "%v", err)
			}
		}
	default:
		// The value is not echoed: a store DSN may hold a password.
		p.add("store", "unknown store; leave it empty, or use sqlite:PATH or postgres://HOST/DB")
	}
	minLen := c.minSecretLen()
	token, err := c.Admin.Resolve()
	switch {
	case err != nil:
		p.add("admin", "%v", err)
	case token != "" && len(token) < minLen:
		p.add(adminField(c.Admin), "must be at least %d bytes, is %d%s", minLen, len(token), c.devHint())
	case hasSpaceOrControl(token):
		p.add(adminField(c.Admin), "must not contain white space or control characters")
	}
}

func adminField(a Admin) string {
	if a.TokenFile != "" {
		return "admin.token_file"
	}
	return "admin.token"
}

func (c *Config) minSecretLen() int {
	if c.LoopbackOnly() {
		return MinDevSecretLen
	}
	return MinSecretLen
}

func (c *Config) devHint() string {
	if c.LoopbackOnly() {
		return ""
	}
	return fmt.Sprintf(" (%d suffice when issuer and listen are both loopback)", MinDevSecretLen)
}

func (c *Config) validateTokens(p *problems) {
	t := c.Tokens
	positive := func(field string, d Duration, most time.Duration) bool {
		switch {
		case d <= 0:
			p.add(field, "must be positive, is %s", d)
		case d.Std() > most:
			p.add(field, "must be at most %s, is %s", most, d)
		default:
			return true
		}
		return false
	}
	ttlOK := positive("tokens.ttl", t.TTL, MaxTTLLimit)
	maxOK := positive("tokens.max_ttl", t.MaxTTL, MaxTTLLimit)
	if ttlOK && maxOK && t.TTL > t.MaxTTL {
		p.add("tokens.ttl", "%s is above tokens.max_ttl %s", t.TTL, t.MaxTTL)
	}
	positive("tokens.leeway", t.Leeway, MaxLeeway)
	if d := t.KeyPublishDelay.Std(); d < MinPublishDelay || d > MaxPublishDelay {
		p.add("tokens.key_publish_delay", "must be from 1m (longer than a verifier's 30 s JWKS refetch cooldown) to 24h, is %s", t.KeyPublishDelay)
	}
	if algs := SigningAlgs(); !slices.Contains(algs, t.SigningAlg) {
		p.add("tokens.signing_alg", "%q is not one of %s", t.SigningAlg, strings.Join(algs, ", "))
	}
	if d := c.Audit.CheckpointEvery.Std(); d < time.Second || d > time.Hour {
		p.add("audit.checkpoint_every", "must be from 1s to 1h, is %s", c.Audit.CheckpointEvery)
	}
	if d := c.Storage.SweepEvery.Std(); d < time.Second || d > time.Hour {
		p.add("storage.sweep_every", "must be from 1s to 1h, is %s", c.Storage.SweepEvery)
	}
	if n := c.Storage.SweepBatch; n < 1 || n > store.MaxSweepLimit {
		p.add("storage.sweep_batch", "must be from 1 to %d rows, is %d", store.MaxSweepLimit, n)
	}
	if d := c.Audit.Retention.Std(); d != 0 && d < time.Second {
		p.add("audit.retention", "must be 0 (keep every record) or at least 1s, is %s", c.Audit.Retention)
	}
	for _, r := range []struct {
		field string
		v     float64
	}{{"rate_limits.per_client", c.RateLimits.PerClient}, {"rate_limits.per_ip", c.RateLimits.PerIP}} {
		if !(r.v >= 0 && r.v <= MaxRate) { // also refuses NaN
			p.add(r.field, "must be from 0 (no limit) to %d requests a second, is %v", MaxRate, r.v)
		}
	}
	if v := c.RateLimits.IngestPerReporter; !(v >= 1 && v <= MaxRate) {
		p.add("rate_limits.ingest_per_reporter", "must be from 1 to %d batches a second, is %v", MaxRate, v)
	}
	if d := c.Delegation.MaxDepth; d < 1 || d > MaxDepthLimit {
		p.add("delegation.max_depth", "must be from 1 to %d, is %d", MaxDepthLimit, d)
	}
}

func (c *Config) validateIdentityProviders(p *problems) {
	seen, names := map[string]int{}, map[string]int{}
	for i, idp := range c.IdentityProviders {
		f := fmt.Sprintf("identity_providers[%d]", i)
		if err := checkURL(idp.Issuer); err != nil {
			p.add(f+".issuer", "%v", err)
		} else if j, dup := seen[idp.Issuer]; dup {
			p.add(f+".issuer", "duplicates identity_providers[%d]", j)
		} else {
			seen[idp.Issuer] = i
		}
		// A provider people only sign in through need not be trusted
		// for subject tokens; one that is needs both keys.
		loginOnly := idp.Login != nil && idp.JWKSURI == "" && idp.Audience == ""
		if idp.Login != nil {
			c.validateLogin(p, f, idp, names)
		}
		if idp.JWKSURI == "" && !loginOnly {
			p.add(f+".jwks_uri", "is required")
		} else if idp.JWKSURI != "" {
			if err := checkURL(idp.JWKSURI); err != nil {
				p.add(f+".jwks_uri", "%v", err)
			}
		}
		if idp.Audience == "" && !loginOnly {
			p.add(f+".audience", "is required: the aud its tokens must carry")
		} else if idp.Audience != "" {
			if err := directory.CheckID(idp.Audience); err != nil {
				p.add(f+".audience", "%v", err)
			}
		}
		algs, allowed := map[string]bool{}, IdentityProviderAlgs()
		for j, alg := range idp.Algorithms {
			af := fmt.Sprintf("%s.algorithms[%d]", f, j)
			switch {
			case !slices.Contains(allowed, alg):
				p.add(af, "%q is not an asymmetric JWS algorithm (%s)", alg, strings.Join(allowed, ", "))
			case algs[alg]:
				p.add(af, "%q is listed twice", alg)
			}
			algs[alg] = true
		}
	}
}

// validatePrincipals checks users and agents and returns the known ids.
// What a user or an agent may hold is the directory's rule; the file adds
// that ids are unique in it, and its secrets.
func (c *Config) validatePrincipals(p *problems) (users, agents map[string]int) {
	users = map[string]int{}
	for i, u := range c.Users {
		f := fmt.Sprintf("users[%d]", i)
		checkID(p, f+".id", u.ID, users, "users")
		limits, err := u.LimitsJSON()
		if err != nil {
			p.add(f+".limits", "%v", err)
		}
		p.addAll(f, directory.ValidateUser(store.User{ID: u.ID, Permissions: u.Permissions, Limits: limits,
			PasswordHash: u.PasswordHash, Roles: u.Roles}))
	}
	agents = map[string]int{}
	for i, a := range c.Agents {
		f := fmt.Sprintf("agents[%d]", i)
		checkID(p, f+".id", a.ID, agents, "agents")
		if j, clash := users[a.ID]; clash && a.ID != "" {
			p.add(f+".id", "is also users[%d].id: a subject must name one principal", j)
		}
		c.validateCredentials(p, f, a)
		p.addAll(f, directory.CheckScopes("scopes", a.Scopes, false))
		p.addAll(f, directory.CheckDepth("max_depth", a.MaxDepth))
		p.addAll(f, directory.CheckResources("resources", a.Resources))
		p.addAll(f, directory.CheckRedirectURIs("redirect_uris", a.RedirectURIs))
	}
	// delegate_to after every agent's own fields. An agent missing from
	// the file may exist in the store (admin API); Warnings reports it.
	for i, a := range c.Agents {
		p.addAll(fmt.Sprintf("agents[%d]", i), directory.CheckDelegateTo(a.ID, a.DelegateTo))
	}
	return users, agents
}

// Warnings returns what is allowed but probably not meant: a delegate_to
// naming an agent that is not in the file (it must then exist in the store),
// two logins whose user_id templates start alike (a person at one provider
// could be given the id of a person at the other), and a placeholder admin
// token. Call it after Validate; log each one.
func (c *Config) Warnings() []error {
	p := &problems{file: c.Source}
	agents := map[string]bool{}
	for _, a := range c.Agents {
		agents[a.ID] = true
	}
	for i, a := range c.Agents {
		for j, to := range a.DelegateTo {
			if !agents[to] {
				p.add(fmt.Sprintf("agents[%d].delegate_to[%d]", i, j), "%q is not an agent in this file; it must exist in the store", to)
			}
		}
	}
	c.loginWarnings(p)
	c.resourceWarnings(p)
	if strings.Contains(strings.ToLower(c.Admin.Token), "change-me") {
		p.add("admin.token", "is a placeholder; set a random value (openssl rand -hex 32)")
	}
	return p.errs
}

// validateCredentials checks an agent's secret (the file's: secret or
// secret_file, long enough) and then its credentials as the directory does
// (directory.CheckCredentials: one at least, jwks or jwks_uri, not both).
func (c *Config) validateCredentials(p *problems, f string, a Agent) {
	hasSecret := a.Secret != "" || a.SecretFile != ""
	if hasSecret {
		secret, err := a.ResolveSecret()
		field := f + ".secret"
		if a.SecretFile != "" {
			field = f + ".secret_file"
		}
		minLen := c.minSecretLen()
		switch {
		case err != nil:
			p.add(f, "%v", err)
		case len(secret) < minLen:
			p.add(field, "must be at least %d bytes, is %d%s", minLen, len(secret), c.devHint())
		}
	}
	jwks, err := a.JWKSJSON()
	if err != nil {
		p.add(f+".jwks", "%v", err)
	}
	p.addAll(f, directory.CheckCredentials(a.Public, hasSecret, jwks, a.JWKSURI))
}

// validateDelegations checks delegations: what one grants is the
// directory's rule; the file adds that ids are unique in it and that the
// subject and the actor are its own user and agent.
func (c *Config) validateDelegations(p *problems, users, agents map[string]int) {
	ids := map[string]int{}
	for i, d := range c.Delegations {
		f := fmt.Sprintf("delegations[%d]", i)
		checkID(p, f+".id", d.ID, ids, "delegations")
		if _, ok := users[d.Subject]; !ok {
			p.add(f+".subject", "%q is not a configured user", d.Subject)
		}
		if _, ok := agents[d.Actor]; !ok {
			p.add(f+".actor", "%q is not a configured agent", d.Actor)
		}
		p.addAll(f, directory.ValidateDelegation(store.Delegation{Scopes: d.Scopes, Audiences: d.Audiences, MaxDepth: d.MaxDepth}))
	}
}

func (c *Config) validatePolicies(p *problems) {
	_, err := policy.New(c.PolicyRules())
	if err == nil {
		return
	}
	var joined interface{ Unwrap() []error }
	if !errors.As(err, &joined) {
		p.add("policies", "%v", err)
		return
	}
	for _, e := range joined.Unwrap() {
		var re *policy.RuleError
		if errors.As(e, &re) {
			p.add(fmt.Sprintf("policies[%d].%s", re.Index, re.Field), "%s", re.Problem)
		} else {
			p.add("policies", "%v", e)
		}
	}
}

// checkURL is the directory's rule for a URL Mandate is named by or
// fetches from.
func checkURL(s string) error { return directory.CheckURL(s) }

// parseURL and isLoopbackHost are the directory's (LoopbackOnly).
func parseURL(s string) (*url.URL, error) { return directory.ParseURL(s) }

func isLoopbackHost(host string) bool { return directory.IsLoopbackHost(host) }

// checkID checks an id (directory.CheckID) and that the file gives it to
// one record of its kind only.
func checkID(p *problems, field, id string, seen map[string]int, kind string) {
	if err := directory.CheckID(id); err != nil {
		p.add(field, "%v", err)
		return
	}
	if j, dup := seen[id]; dup {
		p.add(field, "%q duplicates %s[%d]", id, kind, j)
		return
	}
	seen[id] = len(seen)
}

func hasSpaceOrControl(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) })
}

// validSchema reports whether s is a plain lower-case SQL identifier short
// enough for PostgreSQL's 63-byte names with a suffix.
func validSchema(s string) bool {
	if len(s) == 0 || len(s) > 55 || (s[0] >= '0' && s[0] <= '9') {
		return false
	}
	for _, c := range s {
		if !(c == '_' || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
			return false
		}
	}
	return true
}
