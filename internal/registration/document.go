package registration

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/mandate-dev/mandate/internal/cimd"
	"github.com/mandate-dev/mandate/internal/directory"
	"github.com/mandate-dev/mandate/internal/store"
	"github.com/mandate-dev/mandate/oauth"
)

// ErrDocumentRefused is a Client ID Metadata Document client the policy
// does not admit: registration is admin_only, a redirect URI is not
// approved, the document asks for private_key_jwt (not accepted yet), or
// its id names a client an administrator registered, or the policy's
// MaxClients is reached.
var ErrDocumentRefused = errors.New("registration: the client's metadata document is not admitted")

// AdmitDocument makes the client a metadata document describes one
// Mandate knows, as the policy allows a client registering itself: the
// policy must be open or approved_redirects (each redirect URI approved),
// and the client is public, holds the scope ceiling and no delegation, and
// is recorded as registered by "cimd". A new client counts towards
// MaxClients as a registered one does. A client stored before from its
// document is brought up to date (its redirect URIs and name); an id an
// administrator or the file registered is refused. It returns the client
// as stored.
func (r *Registrar) AdmitDocument(ctx context.Context, p directory.Performer, c cimd.Client, existing *store.Agent) (store.Agent, error) {
	if !r.Open() || c.AuthMethod != cimd.AuthNone {
		return store.Agent{}, ErrDocumentRefused
	}
	if r.Mode() == PolicyApprovedRedirects {
		for _, u := range c.RedirectURIs {
			if !slices.ContainsFunc(r.Policy.RedirectURIs, func(ok string) bool { return approved(ok, u) }) {
				return store.Agent{}, ErrDocumentRefused
			}
		}
	}
	if existing == nil {
		r.mu.Lock()
		defer r.mu.Unlock()
		if err := r.checkCount(ctx, false); err != nil {
			if oauth.As(err).Reason == ReasonTooManyClients {
				return store.Agent{}, fmt.Errorf("%w: %w", ErrDocumentRefused, err)
			}
			return store.Agent{}, err
		}
		a := store.Agent{ID: c.ID, RedirectURIs: c.RedirectURIs, Scopes: slices.Clone(r.Policy.Scopes), Name: c.Name,
			Public: true, Registration: store.RegistrationCIMD}
		created, _, err := r.Directory.CreateAgent(ctx, p, a)
		return created, err
	}
	if existing.Registration != store.RegistrationCIMD {
		return store.Agent{}, ErrDocumentRefused
	}
	if slices.Equal(existing.RedirectURIs, c.RedirectURIs) {
		return *existing, nil
	}
	uris := slices.Clone(c.RedirectURIs)
	return r.Directory.UpdateAgent(ctx, p, c.ID, directory.AgentChange{RedirectURIs: &uris})
}
