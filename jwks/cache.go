package jwks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Defaults for Config.
const (
	DefaultCooldown = 30 * time.Second
	DefaultTimeout  = 5 * time.Second
	DefaultMaxBody  = 256 << 10
	DefaultMaxAge   = 15 * time.Minute
)

// Config configures a Cache. Only URI is required.
type Config struct {
	// URI is where the set is published: https://, or http:// when the host
	// is a loopback address or "localhost" (development and tests).
	URI string
	// Client makes the requests; nil means a fresh http.Client. The Cache
	// uses a copy that never follows redirects (a redirect could point the
	// fetch at an internal address).
	Client *http.Client
	// Cooldown is the least time between two fetches; default 30 s (RFC
	// 8725 §3.10 and THREATS.md T05: an unknown kid is not a fetch on
	// demand for whoever sends one).
	Cooldown time.Duration
	// Timeout bounds one fetch; default 5 s.
	Timeout time.Duration
	// MaxBody caps the response body in bytes; default 256 KiB.
	MaxBody int64
	// MaxAge is how long a good set is used before it is refetched (on the
	// next lookup, subject to Cooldown); default 15 min. A failed refetch
	// keeps the old set, less the keys Revoked reports.
	MaxAge time.Duration
	// Revoked, when set, reports whether the owner of the set has revoked
	// the key kid (a feed.Feed knows). Key never returns such a key
	// (ErrRevokedKey), however long ago it was revoked: it is dropped from
	// the set held on the lookup that asks for it, from the set kept after
	// a failed refetch, and from every set fetched later (a stale copy of
	// the set may still list it). It is called on every lookup and must be
	// fast and safe for concurrent use.
	Revoked func(kid string) bool
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Cache is a JWK Set fetched on first use and kept in memory. It is safe for
// concurrent use; at most one fetch runs at a time.
type Cache struct {
	cfg    Config
	client http.Client

	fetchMu sync.Mutex // held while fetching; serializes fetches

	mu          sync.RWMutex
	keys        Static
	fetchedAt   time.Time // last successful fetch
	attemptedAt time.Time // last fetch attempt, successful or not
	lastErr     error     // error of the last attempt, nil if it succeeded
}

// New returns a Cache for cfg.URI. It fetches nothing yet. It refuses a URI
// that is not absolute https:// (or http:// on loopback), or that carries
// user information or a fragment.
func New(cfg Config) (*Cache, error) {
	if err := CheckURI(cfg.URI); err != nil {
		return nil, err
	}
	if cfg.Cooldown <= 0 {
		cfg.Cooldown = DefaultCooldown
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = DefaultMaxBody
	}
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = DefaultMaxAge
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	c := &Cache{cfg: cfg}
	if cfg.Client != nil {
		c.client = *cfg.Client
	}
	c.client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return c, nil
}

// CheckURI reports whether raw may be fetched for keys: an absolute https://
// URL, or http:// whose host is a loopback address or "localhost"; no user
// information, no fragment.
func CheckURI(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("jwks: invalid URI: %w", err)
	}
	if u.Host == "" || u.User != nil || u.Fragment != "" || u.Opaque != "" {
		return errors.New("jwks: URI must be absolute, without user information or fragment")
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if IsLoopback(u.Hostname()) {
			return nil
		}
		return errors.New("jwks: http:// is allowed for loopback hosts only")
	default:
		return errors.New("jwks: URI scheme must be https")
	}
}

// IsLoopback reports whether host is "localhost" or a loopback IP literal.
func IsLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Key returns the public key with the given kid. A kid missing from the
// cached set triggers a fetch unless one was attempted within the cooldown.
// Errors: ErrRevokedKey when Config.Revoked reports kid; ErrUnknownKey when
// the current set (fetched successfully) has no such key; ErrFetch when the
// set could not be fetched and the key is not cached (the caller answers
// 503, not 401).
func (c *Cache) Key(ctx context.Context, kid string) (jose.JSONWebKey, error) {
	if c.revoked(kid) {
		c.mu.Lock()
		delete(c.keys, kid)
		c.mu.Unlock()
		return jose.JSONWebKey{}, ErrRevokedKey
	}
	now := c.cfg.Now()
	k, ok, stale := c.lookup(kid, now)
	if ok {
		if stale && c.fetchMu.TryLock() {
			// Refresh an old set on the caller's path, but never make a
			// caller with a known key wait for someone else's fetch.
			c.fetchLocked(ctx, now)
			c.fetchMu.Unlock()
		}
		return k, nil
	}
	c.fetchMu.Lock()
	defer c.fetchMu.Unlock()
	// Another caller may have fetched while this one waited.
	if k, ok, _ := c.lookup(kid, now); ok {
		return k, nil
	}
	if c.mayFetch(now) {
		c.fetchLocked(ctx, now)
		if k, ok, _ := c.lookup(kid, now); ok {
			return k, nil
		}
	}
	c.mu.RLock()
	lastErr := c.lastErr
	c.mu.RUnlock()
	if lastErr != nil {
		return jose.JSONWebKey{}, lastErr
	}
	return jose.JSONWebKey{}, ErrUnknownKey
}

// lookup reads the cached set; stale reports that the set is older than
// MaxAge and a fetch is allowed.
func (c *Cache) lookup(kid string, now time.Time) (jose.JSONWebKey, bool, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	k, ok := c.keys[kid]
	stale := now.Sub(c.fetchedAt) >= c.cfg.MaxAge && c.mayFetchLocked(now)
	return k, ok, stale
}

func (c *Cache) mayFetch(now time.Time) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.mayFetchLocked(now)
}

func (c *Cache) mayFetchLocked(now time.Time) bool {
	return c.attemptedAt.IsZero() || now.Sub(c.attemptedAt) >= c.cfg.Cooldown || now.Before(c.attemptedAt)
}

// revoked reports whether Config.Revoked reports kid.
func (c *Cache) revoked(kid string) bool {
	return c.cfg.Revoked != nil && c.cfg.Revoked(kid)
}

// fetchLocked fetches the set and installs it; on failure the previous set
// stays, less the keys revoked since. Revoked keys never enter the set. The
// caller holds fetchMu.
func (c *Cache) fetchLocked(ctx context.Context, now time.Time) {
	set, err := c.fetch(ctx)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.attemptedAt = now
	if err != nil {
		c.lastErr = fmt.Errorf("%w: %w", ErrFetch, err)
		set = c.keys
	} else {
		c.keys, c.fetchedAt, c.lastErr = set, now, nil
	}
	for kid := range set {
		if c.revoked(kid) {
			delete(set, kid)
		}
	}
}

// fetch performs one bounded GET. The caller's cancellation does not abort
// it: the result serves every waiting caller and counts against the
// cooldown, so one impatient client must not spoil it.
func (c *Cache) fetch(ctx context.Context) (Static, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.cfg.URI, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return nil, fmt.Errorf("status %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, c.cfg.MaxBody+1))
	if err != nil {
		return nil, err
	}
	if int64(len(body)) > c.cfg.MaxBody {
		return nil, fmt.Errorf("%w: body exceeds %d bytes", ErrInvalidSet, c.cfg.MaxBody)
	}
	return ParseSet(body)
}
