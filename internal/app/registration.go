package app

import (
	"fmt"
	"time"

	"github.com/mandate-dev/mandate/internal/cimd"
	"github.com/mandate-dev/mandate/internal/config"
	"github.com/mandate-dev/mandate/internal/directory"
	"github.com/mandate-dev/mandate/internal/ratelimit"
	"github.com/mandate-dev/mandate/internal/registration"
	"github.com/mandate-dev/mandate/internal/store/cache"
)

// newRegistration is Dynamic Client Registration as the file's
// registration section says, and its rate limit per remote address.
func newRegistration(cfg *config.Config, cached *cache.Store, now func() time.Time) (*registration.Registrar, *ratelimit.Limiter) {
	r := cfg.Registration
	registrar := &registration.Registrar{
		Directory: &directory.Directory{Store: cached, Now: now}, Agents: cached,
		Policy: registration.Policy{Mode: r.Policy, RedirectURIs: r.RedirectURIs, MaxClients: r.MaxClients, Scopes: r.Scopes},
	}
	perHour := max(r.PerHour, 1)
	return registrar, ratelimit.New(float64(perHour)/3600, perHour, limiterKeys, now)
}

// newDocuments is the fetcher of Client ID Metadata Documents when
// registration.metadata_documents is on (env.Documents in tests), nil
// otherwise.
func newDocuments(cfg *config.Config, env Env) (*cimd.Fetcher, error) {
	if env.Documents != nil {
		return env.Documents, nil
	}
	if !cfg.Registration.MetadataDocuments {
		return nil, nil
	}
	// The loopback switch is for development only; config.Validate
	// refuses it on a server another machine can reach.
	f, err := cimd.New(cimd.Config{AllowLoopback: cfg.Registration.MetadataDocumentsLoopback})
	if err != nil {
		return nil, fmt.Errorf("client metadata documents: %w", err)
	}
	return f, nil
}
