package registration

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"

	"github.com/mandate-dev/mandate/internal/directory"
	"github.com/mandate-dev/mandate/internal/store"
	"github.com/mandate-dev/mandate/oauth"
)

// Policies: who may register a client.
const (
	// PolicyOpen lets anyone register a client, with any redirect URI the
	// directory accepts.
	PolicyOpen = "open"
	// PolicyApprovedRedirects lets anyone register a client whose every
	// redirect URI is on the configured list.
	PolicyApprovedRedirects = "approved_redirects"
	// PolicyAdminOnly lets only an administrator register a client; the
	// default.
	PolicyAdminOnly = "admin_only"
)

// Policies returns the policy names, PolicyAdminOnly first.
func Policies() []string { return []string{PolicyAdminOnly, PolicyApprovedRedirects, PolicyOpen} }

// Reasons recorded in oauth.Error.Reason (and so in the audit trail) for a
// refused registration.
const (
	ReasonAdminOnly      = "registration_admin_only"
	ReasonRedirectURI    = "registration_redirect_uri"
	ReasonNotApproved    = "registration_redirect_not_approved"
	ReasonMetadata       = "registration_metadata_invalid"
	ReasonScope          = "registration_scope_beyond_ceiling"
	ReasonTooManyClients = "registration_max_clients"
	ReasonMalformed      = "registration_request_malformed"
)

// RFC 7591 §3.2.2 error codes.
const (
	ErrInvalidRedirectURI    oauth.ErrorCode = "invalid_redirect_uri"
	ErrInvalidClientMetadata oauth.ErrorCode = "invalid_client_metadata"
)

// Policy is the configuration of registration.
type Policy struct {
	// Mode is PolicyOpen, PolicyApprovedRedirects or PolicyAdminOnly;
	// empty means PolicyAdminOnly.
	Mode string
	// RedirectURIs are the redirect URIs a client may register under
	// PolicyApprovedRedirects: compared exactly, but for the port of an
	// http loopback URI (RFC 8252 §7.3).
	RedirectURIs []string
	// MaxClients, when positive, is the most clients registration may
	// hold at once (those an administrator registered and those admitted
	// from their metadata documents included).
	MaxClients int
	// Scopes is the ceiling: a client may ask for these scopes and no
	// others, and one that asks for none gets them all. Empty means a
	// registered client holds no scopes until an administrator gives it
	// some.
	Scopes []string
}

// Metadata is the client metadata of a registration request (RFC 7591
// §2). Fields the server does not know are ignored, as §2 asks.
type Metadata struct {
	RedirectURIs            []string `json:"redirect_uris"`
	TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method,omitempty"`
	GrantTypes              []string `json:"grant_types,omitempty"`
	ResponseTypes           []string `json:"response_types,omitempty"`
	ClientName              string   `json:"client_name,omitempty"`
	Scope                   string   `json:"scope,omitempty"`
}

// Response is the client information response (RFC 7591 §3.2.1).
type Response struct {
	ClientID string `json:"client_id"`
	// ClientSecret is given once, to a confidential client only.
	ClientSecret string `json:"client_secret,omitempty"`
	// ClientIDIssuedAt is in seconds since the epoch.
	ClientIDIssuedAt int64 `json:"client_id_issued_at"`
	// ClientSecretExpiresAt is 0 (the secret does not expire) when a
	// secret is given.
	ClientSecretExpiresAt *int64 `json:"client_secret_expires_at,omitempty"`
	Metadata
}

// Request is one registration: the metadata and who sends it.
type Request struct {
	Metadata Metadata
	// Admin is true when the request carried the admin token or an
	// administrator's token: the policy's redirect list and MaxClients do
	// not bind it.
	Admin bool
	// Performer is who the audit record names.
	Performer directory.Performer
}

// Registrar registers clients. Directory and Agents are required; it is
// safe for concurrent use once built, and must not be copied. MaxClients
// is checked before the client is created, under a lock of this process:
// only registrations at several instances at once may pass it, by a few.
type Registrar struct {
	Directory *directory.Directory
	// Agents lists the stored agents, for MaxClients.
	Agents interface {
		ListAgents(ctx context.Context) ([]store.Agent, error)
	}
	Policy Policy
	// NewID returns a new client_id; nil means "agent:" and 24 random hex
	// digits.
	NewID func() string

	// mu makes counting the clients for MaxClients and creating one a
	// single step in this process, so that concurrent registrations cannot
	// pass it; instances of a cluster still may, by a few.
	mu sync.Mutex
}

// Mode is the policy in force: Policy.Mode, or PolicyAdminOnly.
func (r *Registrar) Mode() string {
	if r == nil || r.Policy.Mode == "" {
		return PolicyAdminOnly
	}
	return r.Policy.Mode
}

// Open reports whether a client may register without an administrator's
// token, which is when discovery advertises the registration endpoint.
func (r *Registrar) Open() bool { return r.Mode() != PolicyAdminOnly }

// Register checks req against the policy and the metadata rules and
// creates the client through the directory (recorded as agent.created,
// registration "dcr"). A refusal is an *oauth.Error: invalid_token (401)
// for an anonymous request under admin_only, invalid_redirect_uri and
// invalid_client_metadata (400, RFC 7591 §3.2.2), access_denied (403)
// when MaxClients is reached; a store that cannot answer is
// temporarily_unavailable (503).
func (r *Registrar) Register(ctx context.Context, req Request) (Response, error) {
	if !req.Admin && !r.Open() {
		return Response{}, &oauth.Error{Code: oauth.ErrInvalidToken, Reason: ReasonAdminOnly,
			Description: "registration needs an administrator's bearer token"}
	}
	m, err := r.normalize(req.Metadata, req.Admin)
	if err != nil {
		return Response{}, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.checkCount(ctx, req.Admin); err != nil {
		return Response{}, err
	}
	a := store.Agent{
		ID: r.newID(), RedirectURIs: m.RedirectURIs, Scopes: scopeList(m.Scope), Name: m.ClientName,
		Public: m.TokenEndpointAuthMethod == oauth.AuthMethodNone, Registration: store.RegistrationDCR,
	}
	created, secret, err := r.Directory.CreateAgent(ctx, req.Performer, a)
	if err != nil {
		return Response{}, domainError(err)
	}
	out := Response{ClientID: created.ID, ClientIDIssuedAt: created.CreatedAt.Unix(), Metadata: m}
	if secret != "" {
		var never int64
		out.ClientSecret, out.ClientSecretExpiresAt = secret, &never
	}
	return out, nil
}

// normalize checks m and fills in the defaults of RFC 7591 §2:
// grant_types authorization_code, response_types code,
// token_endpoint_auth_method client_secret_basic, scope the ceiling.
func (r *Registrar) normalize(m Metadata, admin bool) (Metadata, error) {
	if len(m.RedirectURIs) == 0 {
		return m, redirectError(ReasonRedirectURI, "redirect_uris is required", nil)
	}
	if err := directory.CheckRedirectURIs("redirect_uris", m.RedirectURIs); err != nil {
		return m, redirectError(ReasonRedirectURI, err.Error(), err)
	}
	if r.Mode() == PolicyApprovedRedirects && !admin {
		for _, u := range m.RedirectURIs {
			if !slices.ContainsFunc(r.Policy.RedirectURIs, func(ok string) bool { return approved(ok, u) }) {
				return m, redirectError(ReasonNotApproved, "redirect URI "+u+" is not one this server approves", nil)
			}
		}
	}
	if m.TokenEndpointAuthMethod == "" {
		m.TokenEndpointAuthMethod = oauth.AuthMethodSecretBasic
	}
	switch m.TokenEndpointAuthMethod {
	case oauth.AuthMethodNone, oauth.AuthMethodSecretBasic, oauth.AuthMethodSecretPost:
	default:
		return m, metadataError(ReasonMetadata, "token_endpoint_auth_method must be none, client_secret_basic or client_secret_post", nil)
	}
	if len(m.GrantTypes) == 0 {
		m.GrantTypes = []string{oauth.GrantAuthorizationCode}
	}
	for _, g := range m.GrantTypes {
		if g != oauth.GrantAuthorizationCode && g != oauth.GrantRefreshToken {
			return m, metadataError(ReasonMetadata, "grant_types may hold only authorization_code and refresh_token", nil)
		}
	}
	if !slices.Contains(m.GrantTypes, oauth.GrantAuthorizationCode) {
		return m, metadataError(ReasonMetadata, "grant_types must include authorization_code", nil)
	}
	if len(m.ResponseTypes) == 0 {
		m.ResponseTypes = []string{"code"}
	}
	if len(m.ResponseTypes) != 1 || m.ResponseTypes[0] != "code" {
		return m, metadataError(ReasonMetadata, "response_types must be code", nil)
	}
	m.ClientName = strings.TrimSpace(m.ClientName)
	if err := directory.CheckClientName("client_name", m.ClientName); err != nil {
		return m, metadataError(ReasonMetadata, err.Error(), err)
	}
	return r.checkScope(m)
}

// checkScope keeps the scope within the ceiling.
func (r *Registrar) checkScope(m Metadata) (Metadata, error) {
	if m.Scope == "" {
		m.Scope = strings.Join(r.Policy.Scopes, " ")
		return m, nil
	}
	scopes := scopeList(m.Scope)
	if err := directory.CheckScopes("scope", scopes, false); err != nil {
		return m, metadataError(ReasonMetadata, err.Error(), err)
	}
	for _, s := range scopes {
		if !slices.Contains(r.Policy.Scopes, s) {
			return m, metadataError(ReasonScope, "scope "+s+" is beyond what a registered client may hold", nil)
		}
	}
	m.Scope = strings.Join(scopes, " ")
	return m, nil
}

// checkCount refuses a registration past MaxClients: the clients that
// registered themselves or were admitted from their metadata documents.
// The caller holds r.mu.
func (r *Registrar) checkCount(ctx context.Context, admin bool) error {
	if r.Policy.MaxClients <= 0 || admin {
		return nil
	}
	agents, err := r.Agents.ListAgents(ctx)
	if err != nil {
		return oauth.Unavailable("store_unavailable", err)
	}
	n := 0
	for _, a := range agents {
		if a.Registration == store.RegistrationDCR || a.Registration == store.RegistrationCIMD {
			n++
		}
	}
	if n >= r.Policy.MaxClients {
		return &oauth.Error{Code: oauth.ErrAccessDenied, Reason: ReasonTooManyClients,
			Description: "this server registers no more clients"}
	}
	return nil
}

func (r *Registrar) newID() string {
	if r.NewID != nil {
		return r.NewID()
	}
	var b [12]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return "agent:" + hex.EncodeToString(b[:])
}

// approved reports whether the redirect URI u matches the approved one:
// equal, or both http to the same loopback host, path and query, with any
// port (RFC 8252 §7.3: a native app's port is chosen when it runs).
func approved(ok, u string) bool {
	if ok == u {
		return true
	}
	a, err1 := url.Parse(ok)
	b, err2 := url.Parse(u)
	if err1 != nil || err2 != nil || a.Scheme != "http" || b.Scheme != "http" {
		return false
	}
	ip := net.ParseIP(a.Hostname())
	return ip != nil && ip.IsLoopback() && a.Hostname() == b.Hostname() &&
		a.Path == b.Path && a.RawQuery == b.RawQuery && a.Fragment == "" && b.Fragment == ""
}

// scopeList splits a space-separated scope value.
func scopeList(scope string) []string { return strings.Fields(scope) }

func redirectError(reason, description string, cause error) *oauth.Error {
	return oauth.New(ErrInvalidRedirectURI, reason, description, cause)
}

func metadataError(reason, description string, cause error) *oauth.Error {
	return oauth.New(ErrInvalidClientMetadata, reason, description, cause)
}

// domainError maps a directory refusal: a record the directory refuses is
// invalid_client_metadata (the id is the server's, so a conflict is a
// server error); anything else is the store's, and refuses with 503.
func domainError(err error) error {
	switch {
	case errors.Is(err, directory.ErrInvalid):
		return metadataError(ReasonMetadata, err.Error(), err)
	case errors.Is(err, directory.ErrConflict):
		return oauth.ServerError("client_id_taken", fmt.Errorf("registration: %w", err))
	}
	return oauth.Unavailable("store_unavailable", err)
}
