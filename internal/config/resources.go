package config

import (
	"fmt"
	"slices"

	"github.com/mandate-dev/mandate/internal/directory"
	"github.com/mandate-dev/mandate/internal/resource"
)

// MaxResources is the most resources a file may register.
const MaxResources = 256

// Resource is a resource people's tokens are addressed to, such as an MCP
// server: tokens for it carry its URI as aud, only the agents it lists may
// receive them, and a client that asks for no scope is asked its default
// scopes.
type Resource struct {
	// URI is the canonical URI (RFC 8707 §2), such as
	// https://mcp.example/mcp: absolute, https unless the host is a
	// loopback address, no user info, query or fragment, the scheme and
	// the host in lower case and no default port. Required and unique.
	URI string `yaml:"uri"`
	// Name is shown to people on the consent page, at most 100 bytes.
	// Optional: the URI is shown instead.
	Name string `yaml:"name"`
	// Scopes is the catalogue of what the resource understands, each with
	// a description for the consent page (at most 64). Discovery lists
	// them in scopes_supported.
	Scopes []Scope `yaml:"scopes"`
	// DefaultScopes are asked when an authorization request for the
	// resource asks for none; each one in Scopes.
	DefaultScopes []string `yaml:"default_scopes"`
	// Agents are the clients that may receive tokens for the resource, at
	// the authorization endpoint and by token exchange; empty means any
	// client the person approves.
	Agents []string `yaml:"agents"`
	// Agent is the agent the resource's server is at this server: the
	// tokens addressed to the resource are addressed to it, so it may
	// exchange them, on the person's behalf, for HandOn. Optional.
	Agent string `yaml:"agent"`
	// HandOn are the audiences Agent may exchange the resource's tokens
	// for (at most 16); the consent page shows them and the person's
	// approval records them. Needs Agent.
	HandOn []string `yaml:"hand_on"`
	// Default makes it the resource of an authorization request that
	// names none, for clients that leave resource out; at most one.
	Default bool `yaml:"default"`
}

// ResourceRegistry returns the configured resources as the server checks
// them; nil when there are none. Call it after Validate.
func (c *Config) ResourceRegistry() (*resource.Registry, error) {
	if len(c.Resources) == 0 {
		return nil, nil
	}
	rs := make([]resource.Resource, 0, len(c.Resources))
	for _, r := range c.Resources {
		scopes := make([]resource.Scope, 0, len(r.Scopes))
		for _, s := range r.Scopes {
			scopes = append(scopes, resource.Scope{Name: s.Name, Description: s.Description})
		}
		rs = append(rs, resource.Resource{URI: r.URI, Name: r.Name, Scopes: scopes, DefaultScopes: r.DefaultScopes,
			Agents: r.Agents, Agent: r.Agent, HandOn: r.HandOn, Default: r.Default})
	}
	reg, err := resource.New(rs)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return reg, nil
}

// validateResources checks the resources: each URI canonical and once,
// each catalogue as the top-level scopes are, default scopes from the
// catalogue, agents well-formed (Warnings names those not in the file).
func (c *Config) validateResources(p *problems) {
	if len(c.Resources) > MaxResources {
		p.add("resources", "has %d entries, at most %d allowed", len(c.Resources), MaxResources)
	}
	seen := map[string]int{}
	dflt := -1
	for i, r := range c.Resources {
		f := fmt.Sprintf("resources[%d]", i)
		if r.Default && dflt >= 0 {
			p.add(f+".default", "resources[%d] is the default already", dflt)
		} else if r.Default {
			dflt = i
		}
		switch err := checkURL(r.URI); {
		case err != nil:
			p.add(f+".uri", "%v", err)
		case !resource.Canonical(r.URI):
			p.add(f+".uri", "must be canonical: the scheme and the host in lower case, no default port")
		case len(r.URI) > MaxIDLen:
			p.add(f+".uri", "must be at most %d bytes (it is the aud of its tokens)", MaxIDLen)
		default:
			// Two spellings of one URI are one resource.
			if j, dup := seen[resource.Key(r.URI)]; dup {
				p.add(f+".uri", "duplicates resources[%d]", j)
			}
			seen[resource.Key(r.URI)] = i
		}
		if len(r.Name) > 100 || hasControl(r.Name) {
			p.add(f+".name", "must be at most 100 bytes, without control characters")
		}
		c.validateCatalogue(p, f, r)
		p.addAll(f, directory.CheckResources("agents", r.Agents))
		validateHandOn(p, f, r)
	}
}

// validateHandOn checks a resource's agent and what it may hand on to:
// well-formed ids, at most MaxListLen audiences, none of them the
// resource itself, and none without an agent to hand them on.
func validateHandOn(p *problems, f string, r Resource) {
	if r.Agent != "" {
		p.addAll(f, directory.CheckResources("agent", []string{r.Agent}))
	}
	if len(r.HandOn) == 0 {
		return
	}
	if r.Agent == "" {
		p.add(f+".hand_on", "needs agent: the agent that exchanges the resource's tokens")
	}
	p.addAll(f, directory.CheckResources("hand_on", r.HandOn))
	for j, a := range r.HandOn {
		if resource.Key(a) == resource.Key(r.URI) {
			p.add(fmt.Sprintf("%s.hand_on[%d]", f, j), "is the resource itself")
		}
	}
}

// resourceWarnings reports a resource's agent that is not in the file: it
// must then exist in the store (admin API), or nobody receives tokens for
// the resource through that entry.
func (c *Config) resourceWarnings(p *problems) {
	agents := map[string]bool{}
	for _, a := range c.Agents {
		agents[a.ID] = true
	}
	for i, r := range c.Resources {
		for j, a := range r.Agents {
			if !agents[a] {
				p.add(fmt.Sprintf("resources[%d].agents[%d]", i, j), "%q is not an agent in this file; it must exist in the store", a)
			}
		}
		if r.Agent != "" && !agents[r.Agent] {
			p.add(fmt.Sprintf("resources[%d].agent", i), "%q is not an agent in this file; it must exist in the store", r.Agent)
		}
	}
}

// validateCatalogue checks a resource's scopes and default scopes.
func (c *Config) validateCatalogue(p *problems, f string, r Resource) {
	names := make([]string, 0, len(r.Scopes))
	for _, s := range r.Scopes {
		names = append(names, s.Name)
	}
	p.addAll(f, directory.CheckScopes("scopes", names, false))
	for j, s := range r.Scopes {
		if len(s.Description) > 200 {
			p.add(fmt.Sprintf("%s.scopes[%d].description", f, j), "must be at most 200 bytes")
		}
	}
	p.addAll(f, directory.CheckScopes("default_scopes", r.DefaultScopes, false))
	for j, d := range r.DefaultScopes {
		if !slices.Contains(names, d) {
			p.add(fmt.Sprintf("%s.default_scopes[%d]", f, j), "%q is not in the resource's scopes", d)
		}
	}
}

func hasControl(s string) bool {
	for _, r := range s {
		if r < ' ' || r == 0x7f {
			return true
		}
	}
	return false
}
