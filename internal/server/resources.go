package server

import (
	"slices"

	"github.com/mandate-dev/mandate/oauth"
)

// describeResource names the registered resource of a consent page, and
// the registered resources its server may hand on to, and says its scopes
// in the resource's own words where its catalogue has them.
func (s *Server) describeResource(v *consentView) {
	for i, h := range v.HandOn {
		if res, ok := s.cfg.Resources.Lookup(h.ID); ok {
			v.HandOn[i].Name = res.Name
		}
	}
	res, ok := s.cfg.Resources.Lookup(v.Audience)
	if !ok {
		return
	}
	v.AudienceName = res.DisplayName()
	for i, sc := range v.Scopes {
		for _, c := range res.Scopes {
			if c.Name == sc.Name && c.Description != "" {
				v.Scopes[i].Description = c.Description
			}
		}
	}
}

// scopesSupported are the scopes discovery lists (RFC 8414 §2): those
// agents may be granted, the registered resources' catalogues and, when
// people sign in (every code comes with a refresh token), offline_access,
// which is accepted and granted as nothing.
func (s *Server) scopesSupported(agentScopes []string) []string {
	scopes := append(slices.Clone(agentScopes), s.cfg.Resources.Scopes()...)
	if s.cfg.SignIn != nil {
		scopes = append(scopes, oauth.ScopeOfflineAccess)
	}
	slices.Sort(scopes)
	return slices.Compact(scopes)
}
