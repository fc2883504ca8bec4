package app

import (
	"fmt"
	"time"

	"github.com/mandate-dev/mandate/internal/cimd"
	"github.com/mandate-dev/mandate/internal/config"
	"github.com/mandate-dev/mandate/internal/directory"
	"github.com/mandate-dev/mandate/internal/exchange"
	"github.com/mandate-dev/mandate/internal/pages"
	"github.com/mandate-dev/mandate/internal/ratelimit"
	"github.com/mandate-dev/mandate/internal/registration"
	"github.com/mandate-dev/mandate/internal/server"
	"github.com/mandate-dev/mandate/internal/signin"
	"github.com/mandate-dev/mandate/internal/store"
	"github.com/mandate-dev/mandate/internal/store/cache"
	"github.com/mandate-dev/mandate/internal/upstream"
)

// newSignIn is people's sign-in and consent, and the pages that show
// them: sessions, codes and refresh tokens in the store itself (never
// cached), people and agents read through the cache, delegations written
// through the directory.
func newSignIn(cfg *config.Config, raw store.Store, cached *cache.Store, grant *exchange.Grant, rec signin.Recorder, now func() time.Time) (*signin.Service, *pages.Renderer, error) {
	r, err := pages.New()
	if err != nil {
		return nil, nil, fmt.Errorf("pages: %w", err)
	}
	perMinute := func(n int) *ratelimit.Limiter { return ratelimit.New(float64(n)/60, n, limiterKeys, now) }
	return &signin.Service{
		Store: raw, Reader: cached, Log: raw, Directory: &directory.Directory{Store: cached, Now: now}, Grant: grant, Audit: rec,
		Issuer: cfg.Issuer, Now: now,
		SessionIdle: cfg.SignIn.SessionIdle.Std(), SessionMax: cfg.SignIn.SessionMax.Std(),
		AccountLimit: perMinute(cfg.SignIn.AttemptsPerAccount), AddressLimit: perMinute(cfg.SignIn.AttemptsPerAddress),
		Grants: raw,
	}, r, nil
}

// newUpstream is the identity providers people sign in through (those
// with a login section), all calling back to the issuer's
// server.CallbackPath. Each is built on first use, not here, so that a
// provider down when Mandate starts stops only sign-in through it, and is
// asked again later.
func newUpstream(cfg *config.Config) (*upstream.Set, error) {
	set, err := upstream.NewLazySet(cfg, cfg.Issuer+server.CallbackPath, nil)
	if err != nil {
		return nil, fmt.Errorf("identity providers: %w", err)
	}
	return set, nil
}

// frontDoor is what people and MCP clients meet: sign-in and consent, the
// pages, the identity providers, client registration and metadata
// documents.
type frontDoor struct {
	people        *signin.Service
	pages         *pages.Renderer
	providers     *upstream.Set
	registrar     *registration.Registrar
	registerLimit *ratelimit.Limiter
	documents     *cimd.Fetcher
}

// newFrontDoor builds the front door of cfg.
func newFrontDoor(cfg *config.Config, raw store.Store, cached *cache.Store, grant *exchange.Grant, rec signin.Recorder,
	now func() time.Time, env Env) (frontDoor, error) {
	var d frontDoor
	var err error
	if d.people, d.pages, err = newSignIn(cfg, raw, cached, grant, rec, now); err != nil {
		return d, err
	}
	if d.providers, err = newUpstream(cfg); err != nil {
		return d, err
	}
	d.registrar, d.registerLimit = newRegistration(cfg, cached, now)
	d.documents, err = newDocuments(cfg, env)
	return d, err
}
