package app

import (
	"time"

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
