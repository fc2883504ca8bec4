package config

import (
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/mandate-dev/mandate/internal/directory"
)

// Login lets people sign in at Mandate through an identity provider's
// OpenID Connect authorization endpoint (code flow with PKCE). Mandate finds
// the provider's endpoints and keys at ISSUER/.well-known/openid-configuration.
type Login struct {
	// Name is shown on the sign-in page, e.g. "Example SSO": 1 to 64 bytes
	// of printable text, unique among the providers with a login.
	// Required.
	Name string `yaml:"name"`
	// ClientID is Mandate's client_id at the provider. Required; no white
	// space, at most 256 bytes.
	ClientID string `yaml:"client_id"`
	// ClientSecretFile is a file holding Mandate's client secret at the
	// provider; surrounding white space is ignored. Empty for a public
	// client (PKCE only). The secret is never written in this file.
	ClientSecretFile string `yaml:"client_secret_file"`
	// Scopes are those asked of the provider; they must hold "openid".
	// "offline_access" is added when RecheckEvery is set. Default
	// [openid, profile, email].
	Scopes []string `yaml:"scopes"`
	// UserID is how a Mandate person id is made from the claims: literal
	// text and at least one {claim}, e.g. "user:{preferred_username}". A
	// claim is read from the ID token, then from the userinfo response when
	// the ID token lacks it; it must be a string, and the id made must be a
	// valid id (no white space or control characters, at most 256 bytes).
	// {email} is used only when email_verified is true. Required.
	UserID string `yaml:"user_id"`
	// Permissions map claims to Mandate permissions: a person holds the
	// union of the grants of every rule that matches, and nothing more (at
	// most 64 rules). A rule on the email claim matches only when
	// email_verified is true.
	Permissions []ClaimRule `yaml:"permissions"`
	// Roles map claims to Mandate roles (admin, auditor), as Permissions
	// does (at most 64 rules).
	Roles []ClaimRule `yaml:"roles"`
	// RecheckEvery is how often Mandate asks the provider again about
	// each person who signed in through it, by redeeming the refresh token
	// of their sign-in (kept sealed in the store): their permissions and
	// roles follow the provider's answer, and a refusal (the person
	// removed or disabled) revokes every delegation they made. 0 (the
	// default) asks only at sign-in; else at least 1m.
	RecheckEvery Duration `yaml:"recheck_every"`
}

// MinRecheckEvery is the least Login.RecheckEvery other than 0.
const MinRecheckEvery = time.Minute

// RequestedScopes returns the scopes to ask of the provider: Scopes (or
// the default), with offline_access added when RecheckEvery is set.
func (l *Login) RequestedScopes() []string {
	scopes := l.Scopes
	if len(scopes) == 0 {
		scopes = DefaultLoginScopes()
	}
	if l.RecheckEvery > 0 && !slices.Contains(scopes, "offline_access") {
		scopes = append(slices.Clone(scopes), "offline_access")
	}
	return scopes
}

// ClaimRule grants what Grant lists to a person whose claims match When.
type ClaimRule struct {
	// When is the condition on one claim. Required.
	When ClaimMatch `yaml:"when"`
	// Grant lists the permissions (or roles) granted; 1 to 64.
	Grant []string `yaml:"grant"`
}

// ClaimMatch is a condition on one top-level claim of the ID token (or of
// the userinfo response when the ID token lacks it). Exactly one of Equals
// and Contains is set.
type ClaimMatch struct {
	// Claim names the claim, e.g. "groups". Required.
	Claim string `yaml:"claim"`
	// Equals matches a string claim equal to it.
	Equals string `yaml:"equals"`
	// Contains matches a list claim holding it as an item, or a string
	// claim equal to it (a provider may send a one-item list as a string).
	Contains string `yaml:"contains"`
}

// Matches reports whether claims (a decoded JSON object) meet m. A claim of
// another type than the condition expects never matches.
func (m ClaimMatch) Matches(claims map[string]any) bool {
	v, ok := claims[m.Claim]
	if !ok {
		return false
	}
	if m.Equals != "" {
		s, ok := v.(string)
		return ok && s == m.Equals
	}
	switch v := v.(type) {
	case string:
		return v == m.Contains
	case []any:
		return slices.ContainsFunc(v, func(item any) bool { s, ok := item.(string); return ok && s == m.Contains })
	case []string:
		return slices.Contains(v, m.Contains)
	}
	return false
}

// ResolveClientSecret returns the client secret, read from
// ClientSecretFile, or "" for a public client. The error never contains
// the secret.
func (l Login) ResolveClientSecret() (string, error) {
	return resolveSecret("", l.ClientSecretFile, "client_secret", "client_secret_file")
}

// Limits of a login section.
const (
	// MaxLoginNameLen is the longest Login.Name, in bytes.
	MaxLoginNameLen = 64
	// MaxClaimRules is the most rules Login.Permissions or Login.Roles
	// holds.
	MaxClaimRules = 64
)

// Roles returns the roles a person may hold in Mandate itself.
func Roles() []string { return []string{"admin", "auditor"} }

// DefaultLoginScopes returns Login.Scopes' default.
func DefaultLoginScopes() []string { return []string{"openid", "profile", "email"} }

// TemplatePart is one piece of a Login.UserID template: literal text, or
// the name of a claim whose value is put in its place.
type TemplatePart struct {
	// Text is literal text when Claim is empty.
	Text string
	// Claim names a claim.
	Claim string
}

// ParseUserIDTemplate splits a Login.UserID template into its parts. The
// literal text may hold no white space, control characters or braces; a
// claim name is 1 to 64 letters, digits, '_', '-' or '.'; at least one
// claim is named. The error says what is wrong.
func ParseUserIDTemplate(tmpl string) ([]TemplatePart, error) {
	var parts []TemplatePart
	claims := 0
	rest := tmpl
	for rest != "" {
		i := strings.IndexAny(rest, "{}")
		if i < 0 {
			i = len(rest)
		}
		if lit := rest[:i]; lit != "" {
			if strings.ContainsFunc(lit, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) {
				return nil, fmt.Errorf("contains white space or control characters")
			}
			parts = append(parts, TemplatePart{Text: lit})
		}
		rest = rest[i:]
		if rest == "" {
			break
		}
		if rest[0] == '}' {
			return nil, fmt.Errorf("has a '}' without its '{'")
		}
		end := strings.IndexByte(rest, '}')
		if end < 0 {
			return nil, fmt.Errorf("has a '{' without its '}'")
		}
		name := rest[1:end]
		if !validClaimName(name) {
			return nil, fmt.Errorf("{%s} is not a claim name (1 to 64 letters, digits, '_', '-' or '.')", sanitize(name))
		}
		parts = append(parts, TemplatePart{Claim: name})
		claims++
		rest = rest[end+1:]
	}
	if claims == 0 {
		return nil, fmt.Errorf("names no claim, so everyone would be one person; write e.g. \"user:{preferred_username}\"")
	}
	return parts, nil
}

func validClaimName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '.') {
			return false
		}
	}
	return true
}

// sanitize makes s safe to quote in a problem: control characters are
// escaped and it is cut to 64 bytes.
func sanitize(s string) string {
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	q := fmt.Sprintf("%q", s)
	return q[1 : len(q)-1]
}

// validateLogin checks idp.Login (f is the provider's field path); names
// holds the login names seen so far.
func (c *Config) validateLogin(p *problems, f string, idp IdentityProvider, names map[string]int) {
	l := idp.Login
	f += ".login"
	switch {
	case l.Name == "":
		p.add(f+".name", "is required: the name shown on the sign-in page")
	case len(l.Name) > MaxLoginNameLen:
		p.add(f+".name", "is %d bytes, at most %d allowed", len(l.Name), MaxLoginNameLen)
	case strings.ContainsFunc(l.Name, unicode.IsControl):
		p.add(f+".name", "contains control characters")
	default:
		if j, dup := names[l.Name]; dup {
			p.add(f+".name", "%q is also the name of identity_providers[%d]", l.Name, j)
		} else {
			names[l.Name] = len(names)
		}
	}
	if l.ClientID == "" {
		p.add(f+".client_id", "is required: Mandate's client_id at the provider")
	} else if err := directory.CheckID(l.ClientID); err != nil {
		p.add(f+".client_id", "%v", err)
	}
	if l.ClientSecretFile != "" {
		if _, err := l.ResolveClientSecret(); err != nil {
			p.add(f+".client_secret_file", "%v", err)
		}
	}
	p.addAll(f, directory.CheckScopes("scopes", l.Scopes, true))
	if !slices.Contains(l.Scopes, "openid") {
		p.add(f+".scopes", "must hold openid")
	}
	if d := l.RecheckEvery.Std(); d != 0 && d < MinRecheckEvery {
		p.add(f+".recheck_every", "must be 0 (off) or at least 1m, is %s", l.RecheckEvery)
	}
	if l.UserID == "" {
		p.add(f+".user_id", "is required: how a person id is made from the claims, e.g. \"user:{preferred_username}\"")
	} else if _, err := ParseUserIDTemplate(l.UserID); err != nil {
		p.add(f+".user_id", "%v", err)
	}
	validateRules(p, f+".permissions", l.Permissions, func(rf string, grants []string) {
		p.addAll(rf, directory.CheckScopes("grant", grants, true))
	})
	validateRules(p, f+".roles", l.Roles, func(rf string, grants []string) {
		if len(grants) == 0 {
			p.add(rf+".grant", "must grant at least one role")
		}
		seen := map[string]bool{}
		for j, g := range grants {
			gf := fmt.Sprintf("%s.grant[%d]", rf, j)
			switch {
			case !slices.Contains(Roles(), g):
				p.add(gf, "%q is not a role (%s)", sanitize(g), strings.Join(Roles(), ", "))
			case seen[g]:
				p.add(gf, "%q is listed twice", g)
			}
			seen[g] = true
		}
	})
}

// loginWarnings warns of two logins whose user_id templates have the same
// literal text before their first claim: nothing keeps the ids they make
// apart, so each provider can sign in the other's people.
func (c *Config) loginWarnings(p *problems) {
	prefixes := map[string]int{}
	for i, idp := range c.IdentityProviders {
		if idp.Login == nil {
			continue
		}
		parts, err := ParseUserIDTemplate(idp.Login.UserID)
		if err != nil {
			continue
		}
		prefix := ""
		if parts[0].Claim == "" {
			prefix = parts[0].Text
		}
		if j, dup := prefixes[prefix]; dup {
			p.add(fmt.Sprintf("identity_providers[%d].login.user_id", i),
				"makes ids as identity_providers[%d] does (%q before the first claim): either provider can sign in as the other's people; start each template with its own text, such as \"acme:\"", j, prefix)
			continue
		}
		prefixes[prefix] = i
	}
}

// validateRules checks rules at field; checkGrants checks the grants of
// the rule at rf.
func validateRules(p *problems, field string, rules []ClaimRule, checkGrants func(rf string, grants []string)) {
	if len(rules) > MaxClaimRules {
		p.add(field, "has %d rules, at most %d allowed", len(rules), MaxClaimRules)
	}
	for i, r := range rules {
		rf := fmt.Sprintf("%s[%d]", field, i)
		w := r.When
		switch {
		case w.Claim == "":
			p.add(rf+".when.claim", "is required: the claim the rule reads")
		case !validClaimName(w.Claim):
			p.add(rf+".when.claim", "is not a claim name (1 to 64 letters, digits, '_', '-' or '.')")
		}
		if (w.Equals == "") == (w.Contains == "") {
			p.add(rf+".when", "set one of equals and contains")
		}
		checkGrants(rf, r.Grant)
	}
}
