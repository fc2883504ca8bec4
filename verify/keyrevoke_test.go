package verify_test

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mandate-dev/mandate/revocation"
	"github.com/mandate-dev/mandate/verify"
	"github.com/mandate-dev/mandate/verify/feed"
	"github.com/mandate-dev/mandate/verify/internal/feedtest"
)

// jwksServer publishes a key set whose answer the test changes.
type jwksServer struct {
	*httptest.Server
	mu     sync.Mutex
	status int
	body   string
}

func newJWKSServer(t *testing.T, body string) *jwksServer {
	t.Helper()
	s := &jwksServer{status: http.StatusOK, body: body}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		s.mu.Lock()
		status, body := s.status, s.body
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		fmt.Fprint(w, body)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) set(status int, body string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status, s.body = status, body
}

// TestRevokedKeyNeverReturns (THREATS T103): a signing key revoked through
// the rf stays refused however long ago that was. A key that leaked signs
// new tokens at will, so its tokens are refused after the rf's entry has
// passed its until and been collected while the JWKS cannot be fetched (the
// key cache keeps its last set), after a new snapshot that no longer lists
// the entry, and when a stale copy of the JWKS lists the key again. Tokens
// of the issuer's other key keep passing throughout.
func TestRevokedKeyNeverReturns(t *testing.T) {
	f := newFixture(t)
	var offset atomic.Int64
	now := func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	advance := func(d time.Duration) { offset.Add(int64(d)) }
	published := `{"keys":[` + jwk(f.keys["ed1"]) + `,` + jwk(f.keys["ec1"]) + `]}`
	keys := newJWKSServer(t, published)
	srv := feedtest.New(t)
	rf := feedtest.Start(t, t.Context(), srv, func(c *feed.Config) { c.Now = now })
	v, err := verify.New(t.Context(), verify.Config{
		Issuer: issuer, Audience: audience, Algorithms: []string{"EdDSA", "ES256"},
		JWKSURI: keys.URL, HTTPClient: keys.Client(), Revocation: rf, Now: now,
	})
	if err != nil {
		t.Fatal(err)
	}
	// A verifier with keys of its own (a jwks.Static that never drops
	// ed1) has only the Feed to refuse them.
	own := f.verifier(t, func(c *verify.Config) { c.Revocation, c.Now = rf, now })
	var n atomic.Int64
	// fresh returns a token signed now: with the revoked key, it is what
	// whoever holds the leaked key can mint at any time.
	fresh := func(kid string) string {
		c := with(claims(), "jti", fmt.Sprintf("jti-%d", n.Add(1)),
			"iat", now().Unix(), "nbf", now().Unix(), "exp", now().Add(10*time.Minute).Unix())
		if kid == "ec1" {
			return compact(ecHeader(), mustJSON(c), esSigner(f.ec, crypto.SHA256))
		}
		return f.token(c)
	}
	// heard waits until the rf has heard the issuer by the moved clock.
	heard := func() {
		t.Helper()
		feedtest.Eventually(t, "a heartbeat by the moved clock", func() bool { return rf.Staleness() < time.Second })
	}
	check := func(when string) {
		t.Helper()
		if _, err := v.Verify(t.Context(), fresh("ed1")); !errors.Is(err, verify.ErrRevoked) {
			t.Errorf("%s: a token under the revoked key: error = %v, want ErrRevoked", when, err)
		}
		if _, err := v.Verify(t.Context(), fresh("ec1")); err != nil {
			t.Errorf("%s: a token under the other key: %v", when, err)
		}
		if _, err := own.Verify(t.Context(), fresh("ed1")); !errors.Is(err, verify.ErrRevoked) {
			t.Errorf("%s: a token under the revoked key, at a verifier with its own keys: error = %v, want ErrRevoked", when, err)
		}
	}

	if _, err := v.Verify(t.Context(), fresh("ed1")); err != nil {
		t.Fatalf("before the revocation: %v", err)
	}
	if _, err := v.Verify(t.Context(), fresh("ec1")); err != nil {
		t.Fatalf("before the revocation: %v", err)
	}
	// The issuer revokes ed1: its entry lives max_ttl plus the slack, as
	// the server's hub makes it.
	srv.Add(revocation.Entry{Kind: revocation.KindKey, ID: "ed1", Until: now().Add(17 * time.Minute).Unix()})
	feedtest.Eventually(t, "the key entry", func() bool { return rf.Seq() == 1 })
	check("at once")

	// The JWKS goes down. Hours pass: the entry's until, the Feed's own
	// floor and the key cache's age all run out, and the Feed collects the
	// entry; every refetch of the key set fails.
	keys.set(http.StatusServiceUnavailable, "down")
	advance(3 * time.Hour)
	heard()
	feedtest.Eventually(t, "the entry collected", func() bool { return feedtest.Entries(rf) == 0 })
	check("entry collected, JWKS unreachable")
	advance(time.Minute) // past the refetch cooldown: another failed fetch
	heard()
	check("after a second failed refetch")

	// The issuer starts a new stream whose snapshot no longer lists the
	// entry (its own copy aged out too).
	srv.Do(func(s *feedtest.Server) { s.Stream, s.Log = "s2", nil })
	feedtest.Eventually(t, "the new stream's snapshot", func() bool {
		seen := srv.Seen()
		return len(seen) >= 2 && seen[len(seen)-1].Snapshot && current(t, rf)
	})
	heard()
	check("after a snapshot without the entry")

	// A stale copy of the key set (an HTTP cache in front of the issuer)
	// lists ed1 again, and the cache refetches it.
	keys.set(http.StatusOK, published)
	advance(time.Hour)
	heard()
	check("with a stale JWKS listing the key")
	if _, err := v.Verify(context.Background(), fresh("ed1")); !errors.Is(err, verify.ErrRevoked) {
		t.Errorf("the revoked key after the refetch: %v, want ErrRevoked", err)
	}
}
