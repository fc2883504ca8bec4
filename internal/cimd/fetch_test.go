package cimd

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// clock is a settable Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// docServer is an HTTPS server on loopback whose answer a test sets.
type docServer struct {
	*httptest.Server
	hits   atomic.Int64
	mu     sync.Mutex
	handle http.HandlerFunc
}

func newDocServer(t *testing.T) *docServer {
	t.Helper()
	s := &docServer{}
	s.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		s.mu.Lock()
		h := s.handle
		s.mu.Unlock()
		h(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

// set makes the server answer with h.
func (s *docServer) set(h http.HandlerFunc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.handle = h
}

// serve makes the server answer every request with body and the headers
// given as name, value pairs.
func (s *docServer) serve(body []byte, header ...string) {
	s.set(func(w http.ResponseWriter, _ *http.Request) {
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	})
}

// roots trusts the server's certificate.
func (s *docServer) roots() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(s.Certificate())
	return pool
}

// doc is a valid document for id, with members changed by mod (a nil
// value deletes the member).
func doc(t testing.TB, id string, mod map[string]any) []byte {
	t.Helper()
	m := map[string]any{
		"client_id":                  id,
		"client_name":                "Example MCP client",
		"redirect_uris":              []string{"http://127.0.0.1:33418/callback", "https://client.example/callback"},
		"token_endpoint_auth_method": "none",
		"grant_types":                []string{"authorization_code", "refresh_token"},
		"response_types":             []string{"code"},
	}
	for k, v := range mod {
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// mapResolver resolves names from a map.
type mapResolver map[string][]netip.Addr

func (r mapResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if a, ok := r[host]; ok {
		return a, nil
	}
	return nil, fmt.Errorf("no such host %s", host)
}

func addrs(ss ...string) []netip.Addr {
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddr(s)
	}
	return out
}

func newFetcher(t *testing.T, s *docServer, clk *clock, mod func(*Config)) *Fetcher {
	t.Helper()
	cfg := Config{RootCAs: s.roots(), AllowLoopback: true, Now: clk.Now, Resolver: mapResolver{}}
	if mod != nil {
		mod(&cfg)
	}
	f, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func newClock() *clock { return &clock{t: time.Unix(1_750_000_000, 0)} }

func TestLookupOK(t *testing.T) {
	s := newDocServer(t)
	id := s.URL + "/client.json"
	var accept string
	s.set(func(w http.ResponseWriter, r *http.Request) {
		accept = r.Header.Get("Accept")
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(doc(t, id, nil))
	})
	f := newFetcher(t, s, newClock(), nil)
	got, err := f.Lookup(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	want := Client{
		ID:           id,
		RedirectURIs: []string{"http://127.0.0.1:33418/callback", "https://client.example/callback"},
		Name:         "Example MCP client",
		AuthMethod:   AuthNone,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("client (-want +got):\n%s", diff)
	}
	if accept != "application/json" {
		t.Errorf("Accept = %q, want application/json", accept)
	}
}

func TestLookupByName(t *testing.T) {
	// The test certificate names example.com; the resolver sends it to
	// the test server on loopback.
	s := newDocServer(t)
	port := s.URL[strings.LastIndex(s.URL, ":")+1:]
	id := "https://example.com:" + port + "/client.json"
	s.serve(doc(t, id, nil))
	f := newFetcher(t, s, newClock(), func(c *Config) {
		c.Resolver = mapResolver{"example.com": addrs("127.0.0.1")}
	})
	if _, err := f.Lookup(t.Context(), id); err != nil {
		t.Fatal(err)
	}
}

func TestLookupRefusals(t *testing.T) {
	big := strings.Repeat("x", DefaultMaxBytes)
	tests := []struct {
		name string
		// handler answers for the document at id.
		handler func(t *testing.T, id string) http.HandlerFunc
		want    error
	}{
		{"fail/client-id-mismatch", body(func(t *testing.T, id string) []byte {
			return doc(t, id+"?other", nil)
		}), ErrInvalidDocument},
		{"fail/client-id-case", body(func(t *testing.T, id string) []byte {
			return doc(t, strings.Replace(id, "client", "Client", 1), nil)
		}), ErrInvalidDocument},
		{"fail/missing-redirect-uris", body(func(t *testing.T, id string) []byte {
			return doc(t, id, map[string]any{"redirect_uris": nil})
		}), ErrInvalidDocument},
		{"fail/client-secret", body(func(t *testing.T, id string) []byte {
			return doc(t, id, map[string]any{"client_secret": "s3cret"})
		}), ErrInvalidDocument},
		{"fail/duplicate-member", body(func(t *testing.T, id string) []byte {
			d := doc(t, id, nil)
			return append([]byte(`{"client_id":"https://evil.example/c",`), d[1:]...)
		}), ErrInvalidDocument},
		{"fail/too-large", body(func(t *testing.T, id string) []byte {
			return doc(t, id, map[string]any{"padding": big})
		}), ErrTooLarge},
		{"fail/too-large-chunked", func(t *testing.T, id string) http.HandlerFunc {
			return func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				for range 10 {
					_, _ = w.Write([]byte(big[:1000]))
					w.(http.Flusher).Flush()
				}
			}
		}, ErrTooLarge},
		{"fail/not-found", func(*testing.T, string) http.HandlerFunc {
			return func(w http.ResponseWriter, _ *http.Request) { http.NotFound(w, nil) }
		}, ErrFetch},
		{"fail/content-type-html", func(t *testing.T, id string) http.HandlerFunc {
			return func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "text/html")
				_, _ = w.Write(doc(t, id, nil))
			}
		}, ErrFetch},
		{"fail/content-type-missing", func(t *testing.T, id string) http.HandlerFunc {
			return func(w http.ResponseWriter, _ *http.Request) {
				w.Header()["Content-Type"] = nil // no sniffing
				_, _ = w.Write(doc(t, id, nil))
			}
		}, ErrFetch},
		{"fail/redirect-loop", func(_ *testing.T, id string) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, id, http.StatusFound) }
		}, ErrFetch},
		{"fail/redirect-to-document", func(t *testing.T, id string) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				if r.URL.Path == "/moved.json" {
					_, _ = w.Write(doc(t, id, nil))
					return
				}
				http.Redirect(w, r, "/moved.json", http.StatusMovedPermanently)
			}
		}, ErrFetch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newDocServer(t)
			id := s.URL + "/client.json"
			s.set(tt.handler(t, id))
			f := newFetcher(t, s, newClock(), nil)
			_, err := f.Lookup(t.Context(), id)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Lookup error = %v, want %v", err, tt.want)
			}
			if n := s.hits.Load(); n != 1 {
				t.Errorf("server saw %d requests, want 1 (no redirect followed)", n)
			}
		})
	}
}

// body makes a handler that serves the document made by mk.
func body(mk func(t *testing.T, id string) []byte) func(t *testing.T, id string) http.HandlerFunc {
	return func(t *testing.T, id string) http.HandlerFunc {
		b := mk(t, id)
		return func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json; charset=utf-8")
			_, _ = w.Write(b)
		}
	}
}

func TestLookupTooSlow(t *testing.T) {
	tests := []struct {
		name    string
		handler func(t *testing.T, id string, release <-chan struct{}) http.HandlerFunc
	}{
		{"fail/slow-headers", func(_ *testing.T, _ string, release <-chan struct{}) http.HandlerFunc {
			return func(http.ResponseWriter, *http.Request) { <-release }
		}},
		{"fail/slow-body", func(t *testing.T, id string, release <-chan struct{}) http.HandlerFunc {
			d := doc(t, id, nil)
			return func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				// A byte at a time, each well within the limit, the whole
				// well past it.
				for _, b := range d {
					_, _ = w.Write([]byte{b})
					w.(http.Flusher).Flush()
					select {
					case <-release:
						return
					case <-time.After(50 * time.Millisecond):
					}
				}
			}
		}},
		// A server that stops when the fetcher's time limit closes the
		// connection ends its answer cleanly: the body may read as whole,
		// cut short, and must still be a fetch failure, not an invalid
		// document.
		{"fail/slow-body-server-gives-up", func(t *testing.T, id string, release <-chan struct{}) http.HandlerFunc {
			d := doc(t, id, nil)
			return func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				for _, b := range d {
					_, _ = w.Write([]byte{b})
					w.(http.Flusher).Flush()
					select {
					case <-release:
						return
					case <-r.Context().Done():
						return
					case <-time.After(50 * time.Millisecond):
					}
				}
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newDocServer(t)
			release := make(chan struct{})
			t.Cleanup(func() { close(release) }) // runs before the server's Close
			id := s.URL + "/client.json"
			s.set(tt.handler(t, id, release))
			f := newFetcher(t, s, newClock(), func(c *Config) { c.Timeout = 300 * time.Millisecond })
			start := time.Now()
			_, err := f.Lookup(t.Context(), id)
			if !errors.Is(err, ErrFetch) {
				t.Fatalf("Lookup error = %v, want ErrFetch", err)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("Lookup took %v, want about the 300ms limit", d)
			}
		})
	}
}

func TestLookupRefusesPrivateAddresses(t *testing.T) {
	s := newDocServer(t)
	port := s.URL[strings.LastIndex(s.URL, ":")+1:]
	resolver := mapResolver{
		"internal.example": addrs("10.0.0.1"),
		"mapped.example":   addrs("::ffff:10.0.0.1"),
		"loopback.example": addrs("127.0.0.1"),
		"metadata.example": addrs("169.254.169.254"),
	}
	tests := []struct {
		name string
		id   string
	}{
		{"fail/loopback-literal", s.URL + "/client.json"},
		{"fail/loopback-mapped-literal", "https://[::ffff:127.0.0.1]:" + port + "/client.json"},
		{"fail/loopback-v6-literal", "https://[::1]:" + port + "/client.json"},
		{"fail/name-to-private", "https://internal.example:" + port + "/client.json"},
		{"fail/name-to-mapped-private", "https://mapped.example/client.json"},
		{"fail/name-to-loopback", "https://loopback.example:" + port + "/client.json"},
		{"fail/name-to-cloud-metadata", "https://metadata.example/client.json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s.serve(doc(t, tt.id, nil))
			before := s.hits.Load()
			f := newFetcher(t, s, newClock(), func(c *Config) {
				c.AllowLoopback = false
				c.Resolver = resolver
			})
			_, err := f.Lookup(t.Context(), tt.id)
			if !errors.Is(err, ErrForbiddenAddress) {
				t.Fatalf("Lookup error = %v, want ErrForbiddenAddress", err)
			}
			if n := s.hits.Load() - before; n != 0 {
				t.Errorf("server saw %d requests, want none", n)
			}
		})
	}
}

func TestLookupRefusesBadURLWithoutFetching(t *testing.T) {
	s := newDocServer(t)
	f := newFetcher(t, s, newClock(), nil)
	for _, id := range []string{"http://127.0.0.1/client.json", s.URL, s.URL + "/a#b", "my-agent"} {
		if _, err := f.Lookup(t.Context(), id); !errors.Is(err, ErrInvalidURL) {
			t.Errorf("Lookup(%q) error = %v, want ErrInvalidURL", id, err)
		}
	}
	if n := s.hits.Load(); n != 0 {
		t.Errorf("server saw %d requests, want none", n)
	}
}

func TestLookupCaches(t *testing.T) {
	tests := []struct {
		name   string
		header []string
		fresh  time.Duration // still cached this long after the fetch
	}{
		{"ok/max-age", []string{"Cache-Control", "public, max-age=600"}, 600 * time.Second},
		{"ok/max-age-less-age", []string{"Cache-Control", "max-age=600", "Age", "200"}, 400 * time.Second},
		{"ok/expires", []string{"Expires", "Thu, 19 Jun 2025 16:06:40 GMT", "Date", "Thu, 19 Jun 2025 15:06:40 GMT"}, time.Hour},
		{"ok/max-age-below-min", []string{"Cache-Control", "max-age=5"}, DefaultMinTTL},
		{"ok/no-store-kept-min", []string{"Cache-Control", "no-store"}, DefaultMinTTL},
		{"ok/no-header-kept-min", nil, DefaultMinTTL},
		{"ok/max-age-above-max", []string{"Cache-Control", "max-age=31536000"}, DefaultMaxTTL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newDocServer(t)
			id := s.URL + "/client.json"
			s.serve(doc(t, id, nil), tt.header...)
			clk := newClock()
			f := newFetcher(t, s, clk, nil)
			lookup := func(wantHits int64) {
				t.Helper()
				if _, err := f.Lookup(t.Context(), id); err != nil {
					t.Fatal(err)
				}
				if n := s.hits.Load(); n != wantHits {
					t.Fatalf("server saw %d requests, want %d", n, wantHits)
				}
			}
			lookup(1)
			clk.Advance(tt.fresh - time.Second)
			lookup(1)
			clk.Advance(time.Second)
			lookup(2)
		})
	}
}

func TestLookupNegativeCache(t *testing.T) {
	s := newDocServer(t)
	id := s.URL + "/client.json"
	s.set(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) })
	clk := newClock()
	f := newFetcher(t, s, clk, nil)
	for range 3 {
		if _, err := f.Lookup(t.Context(), id); !errors.Is(err, ErrFetch) {
			t.Fatalf("Lookup error = %v, want ErrFetch", err)
		}
	}
	if n := s.hits.Load(); n != 1 {
		t.Fatalf("server saw %d requests during an outage, want 1", n)
	}
	s.serve(doc(t, id, nil))
	clk.Advance(DefaultNegativeTTL)
	if _, err := f.Lookup(t.Context(), id); err != nil {
		t.Fatalf("Lookup after the outage: %v", err)
	}
	if n := s.hits.Load(); n != 2 {
		t.Errorf("server saw %d requests, want 2", n)
	}
}

func TestLookupEvictsLeastRecentlyUsed(t *testing.T) {
	s := newDocServer(t)
	s.set(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(doc(t, "https://"+r.Host+r.URL.Path, nil))
	})
	f := newFetcher(t, s, newClock(), func(c *Config) { c.MaxEntries = 2 })
	for _, p := range []string{"/a", "/b", "/a", "/c", "/a", "/b"} {
		if _, err := f.Lookup(t.Context(), s.URL+p); err != nil {
			t.Fatal(err)
		}
	}
	// /a, /b, (a cached), /c evicts /b, (a cached), /b evicts /c.
	if n := s.hits.Load(); n != 4 {
		t.Errorf("server saw %d requests, want 4", n)
	}
	if n := f.cache.len(); n != 2 {
		t.Errorf("cache holds %d entries, want 2", n)
	}
}

func TestLookupSharesOneFetch(t *testing.T) {
	s := newDocServer(t)
	id := s.URL + "/client.json"
	release := make(chan struct{})
	d := doc(t, id, nil)
	s.set(func(w http.ResponseWriter, _ *http.Request) {
		<-release
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(d)
	})
	f := newFetcher(t, s, newClock(), nil)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			_, err := f.Lookup(t.Context(), id)
			errs <- err
		})
	}
	for s.hits.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond)
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := s.hits.Load(); n != 1 {
		t.Errorf("server saw %d requests, want 1", n)
	}
}

func TestLookupCallerCancelDoesNotPoisonCache(t *testing.T) {
	s := newDocServer(t)
	id := s.URL + "/client.json"
	release := make(chan struct{})
	d := doc(t, id, nil)
	s.set(func(w http.ResponseWriter, _ *http.Request) {
		<-release
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(d)
	})
	f := newFetcher(t, s, newClock(), nil)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := f.Lookup(ctx, id); !errors.Is(err, context.Canceled) {
		t.Fatalf("Lookup error = %v, want context.Canceled", err)
	}
	close(release)
	if _, err := f.Lookup(t.Context(), id); err != nil {
		t.Fatalf("Lookup after a caller left: %v", err)
	}
}

func TestNewRefusesBadLimits(t *testing.T) {
	for _, cfg := range []Config{
		{MaxBytes: -1},
		{Timeout: -time.Second},
		{MinTTL: time.Hour, MaxTTL: time.Minute},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) = nil error", cfg)
		}
	}
}

func TestIsJSON(t *testing.T) {
	for ct, want := range map[string]bool{
		"application/json":                 true,
		"application/json; charset=utf-8":  true,
		"Application/JSON":                 true,
		"application/client-metadata+json": true,
		"application/+json":                false,
		"text/json":                        false,
		"text/html":                        false,
		"application/jsonp":                false,
		"":                                 false,
		"application/json; =":              false,
	} {
		if got := isJSON(ct); got != want {
			t.Errorf("isJSON(%q) = %v, want %v", ct, got, want)
		}
	}
}

func TestFreshness(t *testing.T) {
	now := time.Unix(1_750_000_000, 0)
	tests := []struct {
		name   string
		header http.Header
		want   time.Duration
		ok     bool
	}{
		{"ok/none", http.Header{}, 0, false},
		{"ok/max-age", http.Header{"Cache-Control": {"max-age=60"}}, time.Minute, true},
		{"ok/max-age-wins-over-expires", http.Header{"Cache-Control": {"max-age=60"}, "Expires": {"Thu, 01 Jan 2099 00:00:00 GMT"}}, time.Minute, true},
		{"ok/no-cache", http.Header{"Cache-Control": {"max-age=60, no-cache"}}, 0, true},
		{"ok/quoted", http.Header{"Cache-Control": {`max-age="60"`}}, time.Minute, true},
		{"fail/invalid-max-age", http.Header{"Cache-Control": {"max-age=soon"}}, 0, true},
		{"fail/negative-max-age", http.Header{"Cache-Control": {"max-age=-5"}}, 0, true},
		{"ok/age-past-max-age", http.Header{"Cache-Control": {"max-age=60"}, "Age": {"120"}}, 0, true},
		{"fail/invalid-expires", http.Header{"Expires": {"0"}}, 0, true},
		{"ok/expires-without-date", http.Header{"Expires": {now.Add(time.Hour).UTC().Format(http.TimeFormat)}}, time.Hour, true},
		{"ok/expires-past", http.Header{"Expires": {now.Add(-time.Hour).UTC().Format(http.TimeFormat)}}, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := freshness(tt.header, now)
			if got != tt.want || ok != tt.ok {
				t.Errorf("freshness = %v, %v; want %v, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestLookupBoundsConcurrentFetches(t *testing.T) {
	s := newDocServer(t)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	s.set(func(w http.ResponseWriter, r *http.Request) {
		<-release
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(doc(t, "https://"+r.Host+r.URL.Path, nil))
	})
	f := newFetcher(t, s, newClock(), func(c *Config) { c.MaxFetches = 1 })
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go func() { _, _ = f.Lookup(ctx, s.URL+"/a") }()
	for s.hits.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	if _, err := f.Lookup(t.Context(), s.URL+"/b"); !errors.Is(err, ErrBusy) {
		t.Fatalf("Lookup while busy = %v, want ErrBusy", err)
	}
	if n := f.cache.len(); n != 0 {
		t.Errorf("cache holds %d entries, want none (busy is not kept)", n)
	}
}

func TestHTTPClientKeepsTheRules(t *testing.T) {
	s := newDocServer(t)
	s.set(func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/elsewhere", http.StatusFound) })
	f := newFetcher(t, s, newClock(), nil)
	resp, err := f.HTTPClient().Get(s.URL + "/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Errorf("status = %d, want the redirect itself", resp.StatusCode)
	}
	strict := newFetcher(t, s, newClock(), func(c *Config) { c.AllowLoopback = false })
	if _, err := strict.HTTPClient().Get(s.URL + "/jwks.json"); !errors.Is(err, ErrForbiddenAddress) {
		t.Errorf("Get on loopback = %v, want ErrForbiddenAddress", err)
	}
}

func TestLookupReturnsACopy(t *testing.T) {
	s := newDocServer(t)
	id := s.URL + "/client.json"
	s.serve(doc(t, id, nil))
	f := newFetcher(t, s, newClock(), nil)
	c, err := f.Lookup(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	c.RedirectURIs[0] = "https://evil.example/cb"
	again, err := f.Lookup(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	if again.RedirectURIs[0] == "https://evil.example/cb" {
		t.Error("changing a returned client changed the cache")
	}
}
