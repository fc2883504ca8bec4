package resource

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
)

// Scope is one scope of a resource's catalogue, with what it allows in
// words for the consent page.
type Scope struct {
	Name        string
	Description string
}

// Resource is a registered resource.
type Resource struct {
	// URI is the canonical URI: the aud of every token for it.
	URI string
	// Name is shown to people on the consent page; the URI when empty.
	Name string
	// Scopes is the catalogue of scopes the resource understands.
	Scopes []Scope
	// DefaultScopes are asked when an authorization request asks for no
	// scope.
	DefaultScopes []string
	// Agents are the clients that may receive tokens for the resource;
	// empty means any client the person approves.
	Agents []string
	// Agent is the agent the resource's server is: the tokens for the
	// resource are addressed to it, and it may exchange them for HandOn.
	Agent string
	// HandOn are the audiences Agent may exchange the resource's tokens
	// for, as the person approved them on the consent page.
	HandOn []string
	// Default makes it the resource of an authorization request that
	// names none (clients that leave resource out); at most one.
	Default bool
}

// Allows reports whether the client may receive tokens for r.
func (r Resource) Allows(clientID string) bool {
	return len(r.Agents) == 0 || slices.Contains(r.Agents, clientID)
}

// DisplayName is Name, or the URI when the resource has no name.
func (r Resource) DisplayName() string {
	if r.Name != "" {
		return r.Name
	}
	return r.URI
}

// Registry is the set of registered resources, found by URI.
type Registry struct {
	byKey map[string]Resource
	list  []Resource
	dflt  string // the default resource's key, "" for none
}

// New builds a registry of rs. Two resources with the same canonical URI
// are an error; the URIs themselves are checked by the configuration.
func New(rs []Resource) (*Registry, error) {
	reg := &Registry{byKey: make(map[string]Resource, len(rs))}
	for _, r := range rs {
		k := key(r.URI)
		if _, dup := reg.byKey[k]; dup {
			return nil, fmt.Errorf("resource: %q is registered twice", r.URI)
		}
		if r.Default && reg.dflt != "" {
			return nil, fmt.Errorf("resource: %q and %q are both the default", reg.dflt, r.URI)
		}
		if r.Default {
			reg.dflt = k
		}
		r.Scopes, r.DefaultScopes, r.Agents = slices.Clone(r.Scopes), slices.Clone(r.DefaultScopes), slices.Clone(r.Agents)
		r.HandOn = slices.Clone(r.HandOn)
		reg.byKey[k] = r
		reg.list = append(reg.list, r)
	}
	return reg, nil
}

// Empty reports whether no resource is registered; true for nil.
func (g *Registry) Empty() bool { return g == nil || len(g.list) == 0 }

// Lookup finds the resource uri names. The scheme and the host are
// compared without case, a default port (443 for https, 80 for http) and
// an empty path ("/") are as if absent; the path is compared exactly.
// false when nothing matches, or g is nil.
func (g *Registry) Lookup(uri string) (Resource, bool) {
	if g.Empty() || uri == "" {
		return Resource{}, false
	}
	r, ok := g.byKey[key(uri)]
	return r, ok
}

// Default returns the resource of a request that names none; false when
// none is the default, or g is nil.
func (g *Registry) Default() (Resource, bool) {
	if g.Empty() || g.dflt == "" {
		return Resource{}, false
	}
	return g.byKey[g.dflt], true
}

// All returns the registered resources in the order they were given.
func (g *Registry) All() []Resource {
	if g == nil {
		return nil
	}
	return slices.Clone(g.list)
}

// Scopes returns every scope of every catalogue, sorted, once each.
func (g *Registry) Scopes() []string {
	var out []string
	for _, r := range g.All() {
		for _, s := range r.Scopes {
			out = append(out, s.Name)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Key is the form Lookup compares URIs in: two URIs with the same key
// name one resource.
func Key(uri string) string { return key(uri) }

// key is the form URIs are compared in (RFC 3986 §6.2.2, §6.2.3): scheme
// and host lower-case, no default port, "/" for an empty path. A string
// that does not parse is its own key.
func key(uri string) string {
	u, err := url.Parse(uri)
	if err != nil || !u.IsAbs() || u.Opaque != "" {
		return uri
	}
	u.Scheme = strings.ToLower(u.Scheme)
	u.Host = strings.ToLower(u.Host)
	switch {
	case u.Scheme == "https" && u.Port() == "443", u.Scheme == "http" && u.Port() == "80":
		u.Host = strings.TrimSuffix(u.Host, ":"+u.Port())
	}
	if u.Path == "" && u.RawPath == "" {
		u.Path = "/"
	}
	return u.String()
}

// Canonical reports whether uri is written in the form Lookup compares in
// (scheme and host lower-case, no default port), with a path of "/" and
// an empty path alike.
func Canonical(uri string) bool {
	k := key(uri)
	return k == uri || k == uri+"/"
}
