package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/go-jose/go-jose/v4"

	"github.com/mandate-dev/mandate/internal/policy"
)

// Limits Validate enforces.
const (
	MaxIDLen        = 256
	MaxScopeLen     = 128
	MaxListLen      = 64
	MaxDepthLimit   = 10
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

// IdentityProviderAlgs returns the algorithms an identity provider may be
// trusted with: asymmetric only, never "none" nor an HMAC.
func IdentityProviderAlgs() []string {
	return []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
}

// FieldError is one problem in a configuration: the file, the field (a path
// such as "agents[1].scopes[0]", empty for the file as a whole), the position
// when the YAML decoder knows it, and why. It never holds a secret.
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
	seen := map[string]int{}
	for i, idp := range c.IdentityProviders {
		f := fmt.Sprintf("identity_providers[%d]", i)
		if err := checkURL(idp.Issuer); err != nil {
			p.add(f+".issuer", "%v", err)
		} else if j, dup := seen[idp.Issuer]; dup {
			p.add(f+".issuer", "duplicates identity_providers[%d]", j)
		} else {
			seen[idp.Issuer] = i
		}
		if idp.JWKSURI == "" {
			p.add(f+".jwks_uri", "is required")
		} else if err := checkURL(idp.JWKSURI); err != nil {
			p.add(f+".jwks_uri", "%v", err)
		}
		if idp.Audience == "" {
			p.add(f+".audience", "is required: the aud its tokens must carry")
		} else if err := checkName(idp.Audience, MaxIDLen); err != nil {
			p.add(f+".audience", "%v", err)
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
func (c *Config) validatePrincipals(p *problems) (users, agents map[string]int) {
	users = map[string]int{}
	for i, u := range c.Users {
		f := fmt.Sprintf("users[%d]", i)
		checkID(p, f+".id", u.ID, users, "users")
		checkScopes(p, f+".permissions", u.Permissions, false)
		checkLimits(p, f+".limits", u.Limits)
	}
	agents = map[string]int{}
	for i, a := range c.Agents {
		f := fmt.Sprintf("agents[%d]", i)
		checkID(p, f+".id", a.ID, agents, "agents")
		if j, clash := users[a.ID]; clash && a.ID != "" {
			p.add(f+".id", "is also users[%d].id: a subject must name one principal", j)
		}
		c.validateCredentials(p, f, a)
		checkScopes(p, f+".scopes", a.Scopes, false)
		checkDepth(p, f+".max_depth", a.MaxDepth)
		checkResources(p, f+".resources", a.Resources)
	}
	// delegate_to needs every agent known first.
	for i, a := range c.Agents {
		f := fmt.Sprintf("agents[%d].delegate_to", i)
		if len(a.DelegateTo) > MaxListLen {
			p.add(f, "has %d entries, at most %d allowed", len(a.DelegateTo), MaxListLen)
		}
		seen := map[string]bool{}
		for j, to := range a.DelegateTo {
			tf := fmt.Sprintf("%s[%d]", f, j)
			// An agent missing from the file may exist in the store (admin
			// API); Warnings reports it.
			switch err := checkName(to, MaxIDLen); {
			case err != nil:
				p.add(tf, "%v", err)
			case to == a.ID:
				p.add(tf, "an agent cannot delegate to itself")
			case seen[to]:
				p.add(tf, "%q is listed twice", to)
			}
			seen[to] = true
		}
	}
	return users, agents
}

// Warnings returns what is allowed but probably not meant: a delegate_to
// naming an agent that is not in the file (it must then exist in the store),
// and a placeholder admin token. Call it after Validate; log each one.
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
	if strings.Contains(strings.ToLower(c.Admin.Token), "change-me") {
		p.add("admin.token", "is a placeholder; set a random value (openssl rand -hex 32)")
	}
	return p.errs
}

func (c *Config) validateCredentials(p *problems, f string, a Agent) {
	hasSecret := a.Secret != "" || a.SecretFile != ""
	if !hasSecret && a.JWKS == nil && a.JWKSURI == "" {
		p.add(f, "needs a credential: secret or secret_file (client_secret_basic/post), or jwks or jwks_uri (private_key_jwt)")
	}
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
	if a.JWKS != nil && a.JWKSURI != "" {
		p.add(f, "set jwks or jwks_uri, not both")
	}
	if a.JWKS != nil {
		if err := checkJWKS(a.JWKS); err != nil {
			p.add(f+".jwks", "%v", err)
		}
	}
	if a.JWKSURI != "" {
		if err := checkURL(a.JWKSURI); err != nil {
			p.add(f+".jwks_uri", "%v", err)
		}
	}
}

// checkJWKS accepts a JWK Set of valid public asymmetric keys only: a private
// key in the config would be a secret the server has no use for, and a
// symmetric one would allow HMAC key confusion.
func checkJWKS(set map[string]any) error {
	raw, err := json.Marshal(set)
	if err != nil {
		return fmt.Errorf("not a JWK Set: %w", err)
	}
	var jwks jose.JSONWebKeySet
	if err := json.Unmarshal(raw, &jwks); err != nil {
		// go-jose's message may quote key material; keep only its kind.
		return errors.New("not a valid JWK Set (want {keys: [JWK, ...]} with public keys)")
	}
	if len(jwks.Keys) == 0 {
		return errors.New("holds no keys")
	}
	for i, k := range jwks.Keys {
		if _, symmetric := k.Key.([]byte); symmetric {
			return fmt.Errorf("keys[%d] is a symmetric key; private_key_jwt takes public keys only", i)
		}
		switch {
		case !k.Valid():
			return fmt.Errorf("keys[%d] is not a valid key", i)
		case !k.IsPublic():
			return fmt.Errorf("keys[%d] is a private key; give only the public key", i)
		}
	}
	return nil
}

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
		checkScopes(p, f+".scopes", d.Scopes, true)
		if len(d.Audiences) > MaxListLen {
			p.add(f+".audiences", "has %d entries, at most %d allowed", len(d.Audiences), MaxListLen)
		}
		seen := map[string]bool{}
		for j, aud := range d.Audiences {
			af := fmt.Sprintf("%s.audiences[%d]", f, j)
			if err := checkName(aud, MaxIDLen); err != nil {
				p.add(af, "%v", err)
			} else if seen[aud] {
				p.add(af, "%q is listed twice", aud)
			}
			seen[aud] = true
		}
		checkDepth(p, f+".max_depth", d.MaxDepth)
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

// checkURL accepts an absolute http(s) URL without user info, query or
// fragment, and http only on a loopback host.
func checkURL(s string) error {
	u, err := parseURL(s)
	if err != nil {
		return err
	}
	if u.Scheme == "http" && !isLoopbackHost(u.Hostname()) {
		return errors.New("must use https unless the host is a loopback address (127.0.0.0/8, ::1, localhost)")
	}
	return nil
}

func parseURL(s string) (*url.URL, error) {
	if s == "" {
		return nil, errors.New("is required")
	}
	if hasSpaceOrControl(s) {
		return nil, errors.New("contains white space or control characters")
	}
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return nil, errors.New("is not a URL")
	case u.Scheme != "https" && u.Scheme != "http":
		return nil, fmt.Errorf("want an absolute https:// URL, got scheme %q", u.Scheme)
	case u.Host == "" || u.Hostname() == "":
		return nil, errors.New("has no host")
	case u.User != nil:
		return nil, errors.New("must not contain user info")
	case u.RawQuery != "" || u.ForceQuery:
		return nil, errors.New("must not contain a query")
	case u.Fragment != "" || strings.Contains(s, "#"):
		return nil, errors.New("must not contain a fragment")
	}
	return u, nil
}

func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func checkID(p *problems, field, id string, seen map[string]int, kind string) {
	if err := checkName(id, MaxIDLen); err != nil {
		p.add(field, "%v", err)
		return
	}
	if j, dup := seen[id]; dup {
		p.add(field, "%q duplicates %s[%d]", id, kind, j)
		return
	}
	seen[id] = len(seen)
}

// checkScopes checks a list of scopes: at most MaxListLen, each a valid,
// distinct scope; required says whether the list may be empty.
func checkScopes(p *problems, field string, scopes []string, required bool) {
	switch {
	case required && len(scopes) == 0:
		p.add(field, "must list at least one scope")
	case len(scopes) > MaxListLen:
		p.add(field, "has %d scopes, at most %d allowed", len(scopes), MaxListLen)
	}
	seen := map[string]bool{}
	for i, s := range scopes {
		f := fmt.Sprintf("%s[%d]", field, i)
		if err := checkName(s, MaxScopeLen); err != nil {
			p.add(f, "%v", err)
		} else if seen[s] {
			p.add(f, "%q is listed twice", s)
		}
		seen[s] = true
	}
}

// checkName accepts a non-empty UTF-8 string of at most max bytes without
// white space or control characters: ids, scopes and audiences all travel in
// space-separated lists and log lines.
func checkName(s string, max int) error {
	switch {
	case s == "":
		return errors.New("must not be empty")
	case len(s) > max:
		return fmt.Errorf("is %d bytes, at most %d allowed", len(s), max)
	case !utf8.ValidString(s):
		return errors.New("is not valid UTF-8")
	case hasSpaceOrControl(s):
		return fmt.Errorf("%q contains white space or control characters", s)
	}
	return nil
}

// checkResources checks an agent's resource identifiers: audiences, each
// once.
func checkResources(p *problems, field string, resources []string) {
	if len(resources) > MaxListLen {
		p.add(field, "has %d entries, at most %d allowed", len(resources), MaxListLen)
	}
	seen := map[string]bool{}
	for j, r := range resources {
		rf := fmt.Sprintf("%s[%d]", field, j)
		if err := checkName(r, MaxIDLen); err != nil {
			p.add(rf, "%v", err)
		} else if seen[r] {
			p.add(rf, "%q is listed twice", r)
		}
		seen[r] = true
	}
}

func checkDepth(p *problems, field string, depth int) {
	if depth < 0 || depth > MaxDepthLimit {
		p.add(field, "must be from 0 (no own limit) to %d, is %d", MaxDepthLimit, depth)
	}
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

// checkLimits checks a user's authorization_details limits: at most 8
// objects, each with a non-empty string "type".
func checkLimits(p *problems, field string, limits []map[string]any) {
	if len(limits) > 8 {
		p.add(field, "at most 8 limits")
	}
	for i, l := range limits {
		if t, ok := l["type"].(string); !ok || t == "" {
			p.add(fmt.Sprintf("%s[%d].type", field, i), "a limit needs a type, as in expense_approval")
		}
	}
}
