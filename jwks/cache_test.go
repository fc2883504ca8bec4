package jwks

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// clock is a settable test clock, safe for concurrent use.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Unix(1_750_000_000, 0)} }

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

// server is a JWKS endpoint whose answer the test changes.
type server struct {
	*httptest.Server
	hits   atomic.Int64
	mu     sync.Mutex
	status int
	body   []byte
}

func newServer(t *testing.T) *server {
	t.Helper()
	s := &server{status: http.StatusOK}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		s.hits.Add(1)
		s.mu.Lock()
		status, body := s.status, s.body
		s.mu.Unlock()
		w.WriteHeader(status)
		_, _ = w.Write(body)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *server) set(status int, body []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status, s.body = status, body
}

func ecKey(t testing.TB, kid string) (jose.JSONWebKey, []byte) {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub := jose.JSONWebKey{Key: &priv.PublicKey, KeyID: kid, Algorithm: "ES256", Use: "sig"}
	b, err := pub.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return pub, b
}

func setOf(keys ...[]byte) []byte {
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = string(k)
	}
	return []byte(`{"keys":[` + strings.Join(parts, ",") + `]}`)
}

func newCache(t *testing.T, s *server, clk *clock) *Cache {
	t.Helper()
	c, err := New(Config{URI: s.URL, Client: s.Client(), Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestCacheFetchesOnFirstUse(t *testing.T) {
	s, clk := newServer(t), newClock()
	_, k1 := ecKey(t, "k1")
	s.set(http.StatusOK, setOf(k1))
	c := newCache(t, s, clk)
	if got := s.hits.Load(); got != 0 {
		t.Fatalf("New fetched %d times, want 0", got)
	}
	for range 10 {
		k, err := c.Key(t.Context(), "k1")
		if err != nil || k.KeyID != "k1" {
			t.Fatalf("Key(k1) = %v, %v", k.KeyID, err)
		}
	}
	if got := s.hits.Load(); got != 1 {
		t.Fatalf("fetches = %d, want 1", got)
	}
}

func TestCacheCooldownUnderRandomKidFlood(t *testing.T) {
	s, clk := newServer(t), newClock()
	_, k1 := ecKey(t, "k1")
	s.set(http.StatusOK, setOf(k1))
	c := newCache(t, s, clk)
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Go(func() {
			_, err := c.Key(t.Context(), fmt.Sprintf("random-%d", i))
			if !errors.Is(err, ErrUnknownKey) {
				t.Errorf("Key(random) error = %v, want ErrUnknownKey", err)
			}
		})
	}
	wg.Wait()
	if got := s.hits.Load(); got != 1 {
		t.Fatalf("fetches during flood = %d, want 1", got)
	}
	clk.Advance(29 * time.Second)
	_, _ = c.Key(t.Context(), "random-x")
	if got := s.hits.Load(); got != 1 {
		t.Fatalf("fetches within cooldown = %d, want 1", got)
	}
	clk.Advance(2 * time.Second)
	_, _ = c.Key(t.Context(), "random-y")
	if got := s.hits.Load(); got != 2 {
		t.Fatalf("fetches after cooldown = %d, want 2", got)
	}
}

func TestCacheRefetchFindsRotatedKey(t *testing.T) {
	s, clk := newServer(t), newClock()
	_, k1 := ecKey(t, "k1")
	_, k2 := ecKey(t, "k2")
	s.set(http.StatusOK, setOf(k1))
	c := newCache(t, s, clk)
	if _, err := c.Key(t.Context(), "k1"); err != nil {
		t.Fatal(err)
	}
	s.set(http.StatusOK, setOf(k1, k2))
	clk.Advance(DefaultCooldown)
	if _, err := c.Key(t.Context(), "k2"); err != nil {
		t.Fatalf("Key(k2) after rotation: %v", err)
	}
}

func TestCacheKeepsLastGoodSetOnFailure(t *testing.T) {
	s, clk := newServer(t), newClock()
	_, k1 := ecKey(t, "k1")
	s.set(http.StatusOK, setOf(k1))
	c := newCache(t, s, clk)
	if _, err := c.Key(t.Context(), "k1"); err != nil {
		t.Fatal(err)
	}
	s.set(http.StatusInternalServerError, []byte("down"))
	clk.Advance(DefaultMaxAge + time.Second) // stale: the next lookup refetches
	if _, err := c.Key(t.Context(), "k1"); err != nil {
		t.Fatalf("Key(k1) with the server down: %v", err)
	}
	if got := s.hits.Load(); got != 2 {
		t.Fatalf("fetches = %d, want 2 (one refresh attempt)", got)
	}
	clk.Advance(DefaultCooldown)
	_, err := c.Key(t.Context(), "k2")
	if !errors.Is(err, ErrFetch) {
		t.Fatalf("unknown kid with the server down: error = %v, want ErrFetch", err)
	}
	if _, err := c.Key(t.Context(), "k1"); err != nil {
		t.Fatalf("Key(k1) after a failed refetch: %v", err)
	}
}

// TestCacheDropsRevokedKeys: a key Config.Revoked reports is never
// returned, however it would be: from the set held, from the set kept after
// a failed refetch (which no longer holds it, looked up or not), and from a
// later set that still lists it (THREATS T103).
func TestCacheDropsRevokedKeys(t *testing.T) {
	s, clk := newServer(t), newClock()
	_, k1 := ecKey(t, "k1")
	_, k2 := ecKey(t, "k2")
	_, k3 := ecKey(t, "k3")
	s.set(http.StatusOK, setOf(k1, k2, k3))
	var revoked sync.Map
	c, err := New(Config{URI: s.URL, Client: s.Client(), Now: clk.Now, Revoked: func(kid string) bool {
		_, ok := revoked.Load(kid)
		return ok
	}})
	if err != nil {
		t.Fatal(err)
	}
	held := func(kid string) bool {
		c.mu.RLock()
		defer c.mu.RUnlock()
		_, ok := c.keys[kid]
		return ok
	}
	for _, kid := range []string{"k1", "k2", "k3"} {
		if _, err := c.Key(t.Context(), kid); err != nil {
			t.Fatalf("Key(%s): %v", kid, err)
		}
	}
	revoked.Store("k1", true)
	revoked.Store("k3", true)
	if _, err := c.Key(t.Context(), "k1"); !errors.Is(err, ErrRevokedKey) {
		t.Errorf("held: Key(k1) error = %v, want ErrRevokedKey", err)
	}
	// The set goes stale and the refetch fails: the set kept is purged of
	// k3, which nobody asked for since it was revoked.
	s.set(http.StatusInternalServerError, []byte("down"))
	clk.Advance(DefaultMaxAge + time.Second)
	if _, err := c.Key(t.Context(), "k2"); err != nil {
		t.Fatalf("Key(k2) with the server down: %v", err)
	}
	if got := s.hits.Load(); got != 2 {
		t.Fatalf("fetches = %d, want 2 (one failed refresh)", got)
	}
	if held("k1") || held("k3") || !held("k2") {
		t.Errorf("set kept after a failed refetch: k1 %v, k2 %v, k3 %v; want k2 only", held("k1"), held("k2"), held("k3"))
	}
	for _, kid := range []string{"k1", "k3"} {
		if _, err := c.Key(t.Context(), kid); !errors.Is(err, ErrRevokedKey) {
			t.Errorf("after a failed refetch: Key(%s) error = %v, want ErrRevokedKey", kid, err)
		}
	}
	// A stale copy of the set lists them again.
	s.set(http.StatusOK, setOf(k1, k2, k3))
	clk.Advance(DefaultMaxAge + time.Second)
	if _, err := c.Key(t.Context(), "k2"); err != nil {
		t.Fatal(err)
	}
	if got := s.hits.Load(); got != 3 || held("k1") || held("k3") {
		t.Errorf("after a refetch listing them: fetches %d (want 3), k1 held %v, k3 held %v", got, held("k1"), held("k3"))
	}
	if _, err := c.Key(t.Context(), "k3"); !errors.Is(err, ErrRevokedKey) {
		t.Errorf("after a refetch listing it: Key(k3) error = %v, want ErrRevokedKey", err)
	}
}

func TestCacheFirstFetchFailure(t *testing.T) {
	s, clk := newServer(t), newClock()
	s.set(http.StatusBadGateway, nil)
	c := newCache(t, s, clk)
	if _, err := c.Key(t.Context(), "k1"); !errors.Is(err, ErrFetch) {
		t.Fatalf("error = %v, want ErrFetch", err)
	}
}

func TestCacheRefusesBadSets(t *testing.T) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	privJWK, err := jose.JSONWebKey{Key: priv, KeyID: "k1", Algorithm: "ES256"}.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	_, k1 := ecKey(t, "k1")
	_, k1b := ecKey(t, "k1")
	tests := []struct {
		name string
		body []byte
	}{
		{name: "fail/private-ec-key", body: setOf(privJWK)},
		{name: "fail/symmetric-key", body: []byte(`{"keys":[{"kty":"oct","kid":"k1","k":"c2VjcmV0"}]}`)},
		{name: "fail/duplicate-kid", body: setOf(k1, k1b)},
		{name: "fail/duplicate-member", body: []byte(`{"keys":[],"keys":[` + string(k1) + `]}`)},
		{name: "fail/case-variant-member", body: []byte(`{"keys":[],"KEYS":[` + string(k1) + `]}`)},
		{name: "fail/not-json", body: []byte(`<html>`)},
		{name: "fail/oversized", body: append(setOf(k1)[:len(setOf(k1))-1], []byte(`,"pad":"`+strings.Repeat("a", DefaultMaxBody)+`"}`)...)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, clk := newServer(t), newClock()
			s.set(http.StatusOK, tc.body)
			c := newCache(t, s, clk)
			_, err := c.Key(t.Context(), "k1")
			if !errors.Is(err, ErrFetch) || !errors.Is(err, ErrInvalidSet) {
				t.Fatalf("error = %v, want ErrFetch wrapping ErrInvalidSet", err)
			}
		})
	}
}

func TestCacheDoesNotFollowRedirects(t *testing.T) {
	canary := newServer(t)
	_, k1 := ecKey(t, "k1")
	canary.set(http.StatusOK, setOf(k1))
	redirect := httptest.NewServer(http.RedirectHandler(canary.URL, http.StatusFound))
	t.Cleanup(redirect.Close)
	c, err := New(Config{URI: redirect.URL, Now: newClock().Now})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Key(t.Context(), "k1"); !errors.Is(err, ErrFetch) {
		t.Fatalf("error = %v, want ErrFetch", err)
	}
	if got := canary.hits.Load(); got != 0 {
		t.Fatalf("redirect target hits = %d, want 0", got)
	}
}

func TestCacheTimeout(t *testing.T) {
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { <-release }))
	t.Cleanup(slow.Close)
	t.Cleanup(func() { close(release) })
	c, err := New(Config{URI: slow.URL, Timeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := c.Key(context.Background(), "k1"); !errors.Is(err, ErrFetch) {
		t.Fatalf("error = %v, want ErrFetch", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("fetch took %v despite the timeout", d)
	}
}

func TestCheckURI(t *testing.T) {
	tests := []struct {
		uri string
		ok  bool
	}{
		{uri: "https://idp.example/jwks", ok: true},
		{uri: "http://127.0.0.1:8080/jwks", ok: true},
		{uri: "http://[::1]/jwks", ok: true},
		{uri: "http://localhost/jwks", ok: true},
		{uri: "http://idp.example/jwks"},
		{uri: "http://169.254.169.254/latest"},
		{uri: "ftp://idp.example/jwks"},
		{uri: "https://user:pw@idp.example/jwks"},
		{uri: "https://idp.example/jwks#frag"},
		{uri: "/jwks"},
		{uri: ""},
	}
	for _, tc := range tests {
		if err := CheckURI(tc.uri); (err == nil) != tc.ok {
			t.Errorf("CheckURI(%q) = %v, want ok=%v", tc.uri, err, tc.ok)
		}
	}
}

func TestParseSetSkipsUnusableKeys(t *testing.T) {
	_, k1 := ecKey(t, "k1")
	var enc map[string]any
	if err := json.Unmarshal(k1, &enc); err != nil {
		t.Fatal(err)
	}
	enc["kid"], enc["use"] = "enc1", "enc"
	encKey, _ := json.Marshal(enc)
	delete(enc, "use")
	delete(enc, "kid")
	noKid, _ := json.Marshal(enc)
	set, err := ParseSet(setOf(k1, encKey, noKid, []byte(`{"kty":"XYZ","kid":"weird"}`)))
	if err != nil {
		t.Fatal(err)
	}
	if len(set) != 1 {
		t.Fatalf("kept %d keys, want only k1", len(set))
	}
	if _, err := set.Key(t.Context(), "k1"); err != nil {
		t.Fatal(err)
	}
}
