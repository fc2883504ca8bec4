package config

import (
	"fmt"
	"slices"

	"github.com/mandate-dev/mandate/internal/directory"
)

// Registration policies (Registration.Policy).
const (
	RegistrationOpen              = "open"
	RegistrationApprovedRedirects = "approved_redirects"
	RegistrationAdminOnly         = "admin_only"
)

// Defaults of the registration section.
const (
	DefaultRegistrationPolicy = RegistrationAdminOnly
	// DefaultRegistrationsPerHour is how many clients one remote address
	// may register an hour.
	DefaultRegistrationsPerHour = 10
)

// Registration configures Dynamic Client Registration (RFC 7591) at
// POST /register: who may register an OAuth client, such as an MCP
// client, without an administrator creating it. A registered client is
// never trusted by default: it holds no delegations, no scopes beyond
// Scopes, and may use only the authorization code and refresh token
// grants, so it acts for a person only after that person's consent.
type Registration struct {
	// Policy is who may register: "admin_only" (the default: the admin
	// token or a signed-in administrator's token only), "approved_redirects"
	// (anyone, for the redirect URIs listed in RedirectURIs only) or
	// "open" (anyone, any redirect URI the agents' rules accept).
	Policy string `yaml:"policy"`
	// RedirectURIs are the redirect URIs a client may register under
	// approved_redirects: compared exactly, but for the port of an http
	// loopback URI. Required with that policy, refused with the others.
	RedirectURIs []string `yaml:"redirect_uris"`
	// MaxClients, when not 0, is the most clients that registration may
	// hold at once, counting those admitted from their metadata
	// documents; an administrator's registrations are not bound by it.
	MaxClients int `yaml:"max_clients"`
	// Scopes is the ceiling: a registered client may ask for these scopes
	// and no others, and one that asks for none gets all of them. Empty:
	// a registered client holds no scopes until an administrator gives
	// it some.
	Scopes []string `yaml:"scopes"`
	// PerHour is how many clients one remote address may register an
	// hour (1 to 100000, default 10); more are answered 429. A client
	// admitted from its metadata document counts as a registration of the
	// address that first asked the authorization endpoint for it; past
	// the rate, a new document is not fetched and the request is refused.
	PerHour int `yaml:"per_hour"`
	// MetadataDocuments lets a client whose client_id is an https URL
	// describe itself in a Client ID Metadata Document, which Mandate
	// fetches (public addresses only) at the authorization endpoint; the
	// policy admits it as if it had registered (open or
	// approved_redirects). Off by default.
	MetadataDocuments bool `yaml:"metadata_documents"`
	// MetadataDocumentsLoopback, for development and tests only, lets
	// documents be fetched from loopback addresses too (an MCP client on
	// the same machine). It needs MetadataDocuments and a server whose
	// issuer and listen address are both on loopback (LoopbackOnly), and
	// is refused otherwise. Off by default.
	MetadataDocumentsLoopback bool `yaml:"metadata_documents_loopback"`
}

// applyDefaults fills the registration section.
func (r *Registration) applyDefaults() {
	if r.Policy == "" {
		r.Policy = DefaultRegistrationPolicy
	}
	if r.PerHour == 0 {
		r.PerHour = DefaultRegistrationsPerHour
	}
}

// validateRegistration checks the registration section.
func (c *Config) validateRegistration(p *problems) {
	r := c.Registration
	policies := []string{RegistrationAdminOnly, RegistrationApprovedRedirects, RegistrationOpen}
	if !slices.Contains(policies, r.Policy) {
		p.add("registration.policy", "%q is not one of admin_only, approved_redirects, open", r.Policy)
	}
	switch {
	case r.Policy == RegistrationApprovedRedirects && len(r.RedirectURIs) == 0:
		p.add("registration.redirect_uris", "approved_redirects needs at least one")
	case r.Policy != RegistrationApprovedRedirects && len(r.RedirectURIs) > 0:
		p.add("registration.redirect_uris", "is used with policy approved_redirects only")
	}
	p.addAll("registration", directory.CheckRedirectURIs("redirect_uris", r.RedirectURIs))
	p.addAll("registration", directory.CheckScopes("scopes", r.Scopes, false))
	if r.MaxClients < 0 {
		p.add("registration.max_clients", "must be 0 (no limit) or more")
	}
	if r.PerHour < 1 || r.PerHour > MaxRate {
		p.add("registration.per_hour", "must be from 1 to %s", fmt.Sprint(MaxRate))
	}
	// Fetching from loopback opens the server's own machine to whoever
	// names a client_id: only a server no other machine can reach may.
	switch {
	case r.MetadataDocumentsLoopback && !r.MetadataDocuments:
		p.add("registration.metadata_documents_loopback", "needs metadata_documents: true")
	case r.MetadataDocumentsLoopback && !c.LoopbackOnly():
		p.add("registration.metadata_documents_loopback", "is for development only: the issuer and listen address must both be on loopback")
	}
}
