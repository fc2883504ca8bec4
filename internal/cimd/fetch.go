package cimd

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Defaults of Config.
const (
	DefaultMaxBytes    = 5 << 10 // the draft's advice (§6.6): 5 kilobytes
	DefaultTimeout     = 5 * time.Second
	DefaultMinTTL      = time.Minute
	DefaultMaxTTL      = 24 * time.Hour
	DefaultNegativeTTL = 5 * time.Second
	DefaultMaxEntries  = 1000
	DefaultMaxFetches  = 32
)

// Sentinel errors of Lookup besides ErrInvalidURL, ErrForbiddenAddress and
// ErrInvalidDocument, each wrapped with detail.
var (
	// ErrFetch: the document could not be had (connection, TLS, time
	// limit, a status other than 200, a redirect, a content type other
	// than JSON).
	ErrFetch = errors.New("cimd: fetching the client metadata document failed")
	// ErrTooLarge: the document is larger than Config.MaxBytes.
	ErrTooLarge = errors.New("cimd: client metadata document too large")
	// ErrBusy: Config.MaxFetches fetches of other URLs are under way.
	// It is not cached.
	ErrBusy = errors.New("cimd: too many client metadata documents being fetched")
)

// Config configures a Fetcher. The zero value, with RootCAs nil (the
// system's roots), is the production setting.
type Config struct {
	// RootCAs are the roots a document's TLS certificate must chain to;
	// nil means the system's.
	RootCAs *x509.CertPool
	// AllowLoopback lets documents be fetched from loopback addresses
	// (127.0.0.0/8, ::1). For tests and development only: in production a
	// client_id must never reach the server's own host.
	AllowLoopback bool
	// Resolver resolves host names; nil means net.DefaultResolver. Every
	// address it returns is checked, and checked again at connect time.
	Resolver Resolver
	// MaxBytes bounds a document's body; a larger one is refused, not cut.
	// Default DefaultMaxBytes.
	MaxBytes int64
	// Timeout bounds one fetch from the first DNS query to the last byte
	// of the body. Default DefaultTimeout.
	Timeout time.Duration
	// MinTTL and MaxTTL bound how long a fetched document is kept,
	// whatever its Cache-Control or Expires header says; without either
	// header it is kept MinTTL. Defaults DefaultMinTTL, DefaultMaxTTL.
	MinTTL, MaxTTL time.Duration
	// NegativeTTL is how long a failure (fetch or validation) is kept, so
	// that requests naming a failing client do not hammer its host.
	// Default DefaultNegativeTTL.
	NegativeTTL time.Duration
	// MaxEntries bounds the cache; the least recently used entry goes
	// first. Default DefaultMaxEntries.
	MaxEntries int
	// MaxFetches bounds the fetches under way at once, so that requests
	// naming many different URLs cannot make the server a scanner of
	// other hosts at the requests' rate. Default DefaultMaxFetches.
	MaxFetches int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Fetcher looks up clients by their metadata document URL. It is safe for
// concurrent use; concurrent lookups of one URL share one fetch.
type Fetcher struct {
	cfg    Config
	client http.Client
	cache  *cache

	mu       sync.Mutex
	inflight map[string]*call // at most cfg.MaxFetches
}

// call is one fetch that lookups of the same URL wait for.
type call struct {
	done   chan struct{}
	client Client
	err    error
}

// New returns a Fetcher with cfg's zero fields set to their defaults. It
// fails on negative limits or MinTTL above MaxTTL.
func New(cfg Config) (*Fetcher, error) {
	if cfg.MaxBytes < 0 || cfg.Timeout < 0 || cfg.MinTTL < 0 || cfg.MaxTTL < 0 || cfg.NegativeTTL < 0 || cfg.MaxEntries < 0 || cfg.MaxFetches < 0 {
		return nil, errors.New("cimd: limits must not be negative")
	}
	cfg.MaxBytes = orDefault(cfg.MaxBytes, DefaultMaxBytes)
	cfg.Timeout = orDefault(cfg.Timeout, DefaultTimeout)
	cfg.MinTTL = orDefault(cfg.MinTTL, DefaultMinTTL)
	cfg.MaxTTL = orDefault(cfg.MaxTTL, DefaultMaxTTL)
	cfg.NegativeTTL = orDefault(cfg.NegativeTTL, DefaultNegativeTTL)
	cfg.MaxEntries = orDefault(cfg.MaxEntries, DefaultMaxEntries)
	cfg.MaxFetches = orDefault(cfg.MaxFetches, DefaultMaxFetches)
	if cfg.MinTTL > cfg.MaxTTL {
		return nil, errors.New("cimd: MinTTL is above MaxTTL")
	}
	if cfg.Resolver == nil {
		cfg.Resolver = net.DefaultResolver
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	d := newDialer(addressPolicy{allowLoopback: cfg.AllowLoopback}, cfg.Resolver, cfg.Timeout)
	f := &Fetcher{
		cfg:      cfg,
		cache:    newCache(cfg.MaxEntries),
		inflight: map[string]*call{},
	}
	f.client = http.Client{
		Transport: &http.Transport{
			Proxy:                  nil, // a proxy would connect for us, past the address checks
			DialContext:            d.DialContext,
			TLSClientConfig:        &tls.Config{RootCAs: cfg.RootCAs, MinVersion: tls.VersionTLS12},
			TLSHandshakeTimeout:    cfg.Timeout,
			ResponseHeaderTimeout:  cfg.Timeout,
			MaxResponseHeaderBytes: 16 << 10,
			MaxIdleConns:           16,
			IdleConnTimeout:        30 * time.Second,
			ForceAttemptHTTP2:      true,
		},
		// Draft §5: the document is served at its URL, with 200; a
		// redirect is not followed (its target would be a document of
		// another URL, and a hop past the address checks' intent).
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       cfg.Timeout,
	}
	return f, nil
}

func orDefault[T int | int64 | time.Duration](v, def T) T {
	if v == 0 {
		return def
	}
	return v
}

// Lookup returns the client whose client_id is clientID, from the cache or
// by fetching its document. Errors wrap ErrInvalidURL (no fetch is made),
// ErrForbiddenAddress, ErrFetch, ErrTooLarge or ErrInvalidDocument; such a
// failure is kept for Config.NegativeTTL and returned again meanwhile.
// ErrBusy (not kept) says that Config.MaxFetches other fetches are under
// way. The Client returned shares nothing with the cache. A fetch runs to
// its own time limit even when ctx ends first, so that other lookups
// waiting for it are not failed by one caller leaving.
func (f *Fetcher) Lookup(ctx context.Context, clientID string) (Client, error) {
	if err := CheckURL(clientID); err != nil {
		return Client{}, err
	}
	if c, err, ok := f.cache.get(clientID, f.cfg.Now()); ok {
		return c.clone(), err
	}
	f.mu.Lock()
	cl, running := f.inflight[clientID]
	if !running {
		// A fetch may have ended since the look above.
		if c, err, ok := f.cache.get(clientID, f.cfg.Now()); ok {
			f.mu.Unlock()
			return c.clone(), err
		}
	}
	if !running && len(f.inflight) >= f.cfg.MaxFetches {
		f.mu.Unlock()
		return Client{}, fmt.Errorf("%w: %d", ErrBusy, f.cfg.MaxFetches)
	}
	if !running {
		cl = &call{done: make(chan struct{})}
		f.inflight[clientID] = cl
		go f.run(context.WithoutCancel(ctx), clientID, cl)
	}
	f.mu.Unlock()
	select {
	case <-cl.done:
		return cl.client.clone(), cl.err
	case <-ctx.Done():
		return Client{}, fmt.Errorf("cimd: lookup of %s: %w", clientID, ctx.Err())
	}
}

// isJSON reports whether a Content-Type is application/json or a more
// specific application/…+json (draft §5: any other is an error).
func isJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return false
	}
	sub, ok := strings.CutPrefix(mt, "application/")
	return ok && (sub == "json" || strings.HasSuffix(sub, "+json") && len(sub) > len("+json"))
}

// HTTPClient returns an HTTP client with the Fetcher's rules (public
// addresses only, checked at connect time; no redirects; the time limit),
// for other documents a client's metadata points at, such as its jwks_uri.
// It does not bound the body: its reader must.
func (f *Fetcher) HTTPClient() *http.Client {
	c := f.client
	return &c
}

// run fetches clientID's document for call cl and caches the outcome.
func (f *Fetcher) run(ctx context.Context, clientID string, cl *call) {
	c, ttl, err := f.fetch(ctx, clientID)
	if err != nil {
		ttl = f.cfg.NegativeTTL
	}
	f.cache.put(clientID, c, err, f.cfg.Now().Add(ttl))
	cl.client, cl.err = c, err
	f.mu.Lock()
	delete(f.inflight, clientID)
	f.mu.Unlock()
	close(cl.done)
}

// fetch gets and validates the document of clientID and says how long it
// may be kept.
func (f *Fetcher) fetch(ctx context.Context, clientID string) (Client, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, f.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, clientID, nil)
	if err != nil {
		return Client{}, 0, fmt.Errorf("%w: %w", ErrFetch, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := f.client.Do(req)
	if err != nil {
		if errors.Is(err, ErrForbiddenAddress) {
			return Client{}, 0, fmt.Errorf("cimd: %s: %w", clientID, err)
		}
		return Client{}, 0, fmt.Errorf("%w: %w", ErrFetch, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Client{}, 0, fmt.Errorf("%w: status %d (redirects are not followed)", ErrFetch, resp.StatusCode)
	}
	if !isJSON(resp.Header.Get("Content-Type")) {
		return Client{}, 0, fmt.Errorf("%w: content type %q, want application/json", ErrFetch, truncate(resp.Header.Get("Content-Type")))
	}
	if resp.ContentLength > f.cfg.MaxBytes {
		return Client{}, 0, fmt.Errorf("%w: %d bytes, at most %d", ErrTooLarge, resp.ContentLength, f.cfg.MaxBytes)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, f.cfg.MaxBytes+1))
	if err == nil && ctx.Err() != nil {
		// The time limit closed the connection, and a server that saw it
		// close ended its answer: the body may read as whole but is cut.
		err = ctx.Err()
	}
	if err != nil {
		return Client{}, 0, fmt.Errorf("%w: reading the body: %w", ErrFetch, err)
	}
	if int64(len(body)) > f.cfg.MaxBytes {
		return Client{}, 0, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, f.cfg.MaxBytes)
	}
	c, err := Parse(clientID, body)
	if err != nil {
		return Client{}, 0, err
	}
	return c, f.ttl(resp.Header), nil
}
