package config

import (
	"fmt"
	"time"
)

// Defaults of the sign_in section.
const (
	DefaultSessionIdle        = 30 * time.Minute
	DefaultSessionMax         = 12 * time.Hour
	DefaultAttemptsPerAccount = 5
	DefaultAttemptsPerAddress = 30
)

// SignIn configures people's sessions on Mandate's pages and the limits on
// password attempts.
type SignIn struct {
	// SessionIdle ends a session unused this long. Default 30m.
	SessionIdle Duration `yaml:"session_idle"`
	// SessionMax ends a session this long after sign-in, used or not.
	// Default 12h.
	SessionMax Duration `yaml:"session_max"`
	// AttemptsPerAccount and AttemptsPerAddress are how many password
	// attempts a minute one account and one remote address may make;
	// more are answered 429 before any hashing. Defaults 5 and 30.
	AttemptsPerAccount int `yaml:"attempts_per_account"`
	AttemptsPerAddress int `yaml:"attempts_per_address"`
}

// Scope says what a scope allows, in words, for the consent page.
type Scope struct {
	// Name is the scope, such as deploy:create.
	Name string `yaml:"name"`
	// Description is shown beside it, such as "Create deployments".
	Description string `yaml:"description"`
}

// ScopeDescriptions maps each described scope to its description: the
// top-level scopes', then those of the resources' catalogues that the top
// level does not describe (the first resource's wins).
func (c *Config) ScopeDescriptions() map[string]string {
	out := make(map[string]string, len(c.Scopes))
	for _, s := range c.Scopes {
		out[s.Name] = s.Description
	}
	for _, r := range c.Resources {
		for _, s := range r.Scopes {
			if _, ok := out[s.Name]; !ok && s.Description != "" {
				out[s.Name] = s.Description
			}
		}
	}
	return out
}

// applyDefaults fills the sign_in section.
func (s *SignIn) applyDefaults() {
	if s.SessionIdle == 0 {
		s.SessionIdle = Duration(DefaultSessionIdle)
	}
	if s.SessionMax == 0 {
		s.SessionMax = Duration(DefaultSessionMax)
	}
	if s.AttemptsPerAccount == 0 {
		s.AttemptsPerAccount = DefaultAttemptsPerAccount
	}
	if s.AttemptsPerAddress == 0 {
		s.AttemptsPerAddress = DefaultAttemptsPerAddress
	}
}

// validateSignIn checks the sign_in section and the scope descriptions.
func (c *Config) validateSignIn(p *problems) {
	s := c.SignIn
	if s.SessionIdle < Duration(time.Minute) || s.SessionIdle > s.SessionMax {
		p.add("sign_in.session_idle", "must be at least 1m and at most session_max")
	}
	if s.SessionMax > Duration(30*24*time.Hour) {
		p.add("sign_in.session_max", "must be at most 720h")
	}
	if s.AttemptsPerAccount < 1 || s.AttemptsPerAccount > 1000 {
		p.add("sign_in.attempts_per_account", "must be from 1 to 1000")
	}
	if s.AttemptsPerAddress < 1 || s.AttemptsPerAddress > 100000 {
		p.add("sign_in.attempts_per_address", "must be from 1 to 100000")
	}
	seen := map[string]int{}
	for i, sc := range c.Scopes {
		f := fmt.Sprintf("scopes[%d]", i)
		if sc.Name == "" || hasSpaceOrControl(sc.Name) {
			p.add(f+".name", "must be a scope: not empty, no white space or control characters")
		}
		if j, ok := seen[sc.Name]; ok {
			p.add(f+".name", "duplicates scopes[%d]", j)
		}
		seen[sc.Name] = i
		if len(sc.Description) > 200 {
			p.add(f+".description", "must be at most 200 bytes")
		}
	}
}
