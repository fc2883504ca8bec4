package verify_test

import (
	"context"
	"crypto"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mandate-dev/mandate/revocation"
	"github.com/mandate-dev/mandate/verify"
	"github.com/mandate-dev/mandate/verify/feed"
	"github.com/mandate-dev/mandate/verify/internal/feedtest"
)

// TestFeedRevokes proves each kind of entry, from the snapshot or the
// stream, reaches Verify; and that a token none hits is accepted.
func TestFeedRevokes(t *testing.T) {
	srv := feedtest.New(t)
	u := feedtest.Until()
	// In the snapshot.
	srv.Add(
		revocation.Entry{Kind: revocation.KindToken, ID: "jti-revoked", Until: u},
		revocation.Entry{Kind: revocation.KindSubject, ID: "user:gone", Gen: 5, Until: u},
		revocation.Entry{Kind: revocation.KindKey, ID: "ec1", Until: u},
	)
	f := newFixture(t)
	rf := feedtest.Start(t, t.Context(), srv)
	// On the stream, after the snapshot.
	srv.Add(
		revocation.Entry{Kind: revocation.KindToken, ID: "jti-root", Until: u},
		revocation.Entry{Kind: revocation.KindAgent, ID: "agent:rogue", Gen: 5, Until: u},
		revocation.Entry{Kind: revocation.KindScope, ID: "user:sam", Scope: "deploy:delete", Gen: 5, Until: u},
		revocation.Entry{Kind: revocation.KindDelegation, ID: "dlg_revoked", Gen: 5, Until: u},
	)
	feedtest.Eventually(t, "the entries", func() bool { return rf.Seq() == 7 })
	if req := srv.Seen()[0]; !req.Snapshot || req.LastEventID != "" || !slices.Equal(req.Sent, []int64{4, 5, 6, 7}) {
		t.Fatalf("first connection = %+v, want a snapshot then entries 4 to 7", req)
	}

	c := claims()
	rogue := map[string]any{"sub": "agent:argocd", "act": map[string]any{"sub": "agent:rogue"}}
	runCases(t, f.verifier(t, func(cfg *verify.Config) { cfg.Revocation = rf }), []verifyCase{
		{name: "ok/not-hit", token: f.token(c)},
		{name: "ok/gen-absent-no-generation-entry", token: f.token(with(c, "gen", remove))},
		{name: "fail/jti", token: f.token(with(c, "jti", "jti-revoked")), want: verify.ErrRevoked},
		{name: "fail/parent-jti-in-exchanged-from", token: f.token(with(c, "exchanged_from", []string{"jti-mid", "jti-root"})), want: verify.ErrRevoked},
		{name: "ok/exchanged-from-not-revoked", token: f.token(with(c, "exchanged_from", []string{"jti-mid", "jti-other"}))},
		{name: "fail/agent-in-chain-gen-below", token: f.token(with(c, "act", rogue, "gen", 4)), want: verify.ErrRevoked},
		{name: "fail/agent-in-chain-gen-absent", token: f.token(with(c, "act", rogue)), want: verify.ErrRevoked},
		{name: "ok/agent-in-chain-minted-after", token: f.token(with(c, "act", rogue, "gen", 5))},
		{name: "fail/subject", token: f.token(with(c, "sub", "user:gone", "gen", 4)), want: verify.ErrRevoked},
		{name: "ok/subject-minted-after", token: f.token(with(c, "sub", "user:gone", "gen", 5))},
		{name: "fail/scope", token: f.token(with(c, "scope", "deploy:create deploy:delete", "gen", 4)), want: verify.ErrRevoked},
		{name: "ok/scope-not-held", token: f.token(with(c, "scope", "deploy:create", "gen", 4))},
		{name: "ok/scope-of-another-subject", token: f.token(with(c, "sub", "user:kim", "scope", "deploy:delete", "gen", 4))},
		{name: "fail/delegation", token: f.token(with(c, "delegation_id", "dlg_revoked")), want: verify.ErrRevoked},
		{name: "ok/delegation-minted-after", token: f.token(with(c, "delegation_id", "dlg_revoked", "gen", 6))},
		{name: "fail/key-kid", token: compact(ecHeader(), mustJSON(c), esSigner(f.ec, crypto.SHA256)), want: verify.ErrRevoked},
	})
}

// TestFeedFailsClosedWhenStale: a silent issuer makes every token 503
// after MaxStaleness, never allowed; it recovers without a restart.
func TestFeedFailsClosedWhenStale(t *testing.T) {
	srv := feedtest.New(t)
	const maxStale = 300 * time.Millisecond
	rf := feedtest.Start(t, t.Context(), srv, func(c *feed.Config) { c.MaxStaleness = maxStale })
	f := newFixture(t)
	v := f.verifier(t, func(c *verify.Config) { c.Revocation = rf })
	tok := f.token(claims())
	h := v.Middleware(ok)
	if got := serve(t, h, request(tok)); got.Status != http.StatusOK {
		t.Fatalf("before: status %d", got.Status)
	}

	srv.Do(func(s *feedtest.Server) { s.Paused = true })
	paused := time.Now()
	feedtest.Eventually(t, "staleness", func() bool {
		_, err := v.Verify(t.Context(), tok)
		return err != nil
	})
	if waited := time.Since(paused); waited < maxStale-2*srv.Beat {
		t.Errorf("stale after %v, want about %v", waited, maxStale)
	}
	_, err := v.Verify(t.Context(), tok)
	if !errors.Is(err, verify.ErrRevocationUnavailable) || !errors.Is(err, feed.ErrStale) {
		t.Fatalf("Verify error = %v, want ErrRevocationUnavailable and ErrRevocationStale", err)
	}
	want := response{Status: 503, RetryAfter: "30", ContentType: "application/json", CacheControl: "no-store", Error: "temporarily_unavailable", Description: "the revocation state cannot be checked; retry later"}
	if diff := cmp.Diff(want, serve(t, h, request(tok))); diff != "" {
		t.Errorf("middleware while stale (-want +got):\n%s", diff)
	}
	if rf.Staleness() <= maxStale {
		t.Errorf("Staleness() = %v, want above %v", rf.Staleness(), maxStale)
	}

	// The silent connection is dropped and another opened (which the
	// paused server holds silent too).
	feedtest.Eventually(t, "a reconnection", func() bool { return len(srv.Seen()) >= 2 })

	// An entry revoked while the rf was cut off is applied on recovery.
	srv.Add(revocation.Entry{Kind: revocation.KindToken, ID: "jti-during-outage", Until: feedtest.Until()})
	srv.Do(func(s *feedtest.Server) { s.Paused = false })
	feedtest.Eventually(t, "recovery", func() bool {
		_, err := v.Verify(t.Context(), tok)
		return err == nil
	})
	if got := serve(t, h, request(tok)); got.Status != http.StatusOK {
		t.Errorf("after recovery: status %d", got.Status)
	}
	if _, err := v.Verify(t.Context(), f.token(with(claims(), "jti", "jti-during-outage"))); !errors.Is(err, verify.ErrRevoked) {
		t.Errorf("token revoked during the outage: error = %v, want ErrRevoked", err)
	}
}

// TestFeedNewStream: a heartbeat naming another stream (the issuer's store
// was restored) makes the rf start again from a snapshot, and the new
// not-before epoch revokes every older token.
func TestFeedNewStream(t *testing.T) {
	srv := feedtest.New(t)
	srv.Add(revocation.Entry{Kind: revocation.KindToken, ID: "a", Until: feedtest.Until()})
	rf := feedtest.Start(t, t.Context(), srv)
	f := newFixture(t)
	v := f.verifier(t, func(c *verify.Config) { c.Revocation = rf })
	tok := f.token(claims())
	if _, err := v.Verify(t.Context(), tok); err != nil {
		t.Fatal(err)
	}
	srv.Do(func(s *feedtest.Server) {
		s.Stream, s.NotBefore = "s2", epoch.Unix()+1
		s.Log = s.Log[:0]
	})
	feedtest.Eventually(t, "the new stream's snapshot", func() bool {
		_, err := v.Verify(t.Context(), tok)
		return errors.Is(err, verify.ErrRevoked)
	})
	got := srv.Seen()
	if len(got) != 2 || got[1].LastEventID != "" || !got[1].Snapshot {
		t.Fatalf("connections = %+v, want a second one without Last-Event-ID, served a snapshot", got)
	}
	if rf.Seq() != 0 {
		t.Errorf("Seq() = %d, want 0 on the new stream", rf.Seq())
	}
}

// TestFeedUnauthorized: refused credentials leave the rf stale, so every
// token is refused with 503, and the rf keeps retrying with back-off.
func TestFeedUnauthorized(t *testing.T) {
	srv := feedtest.New(t)
	var logs feedtest.SyncBuffer
	rf, err := feed.New(t.Context(), feedtest.Config(srv, func(c *feed.Config) {
		c.ClientSecret = "wrong secret"
		c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	}))
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t)
	v := f.verifier(t, func(c *verify.Config) { c.Revocation = rf })
	feedtest.Eventually(t, "retries", func() bool { return len(srv.Seen()) >= 3 })
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if err := rf.Ready(ctx); err == nil {
		t.Fatal("Ready succeeded with refused credentials")
	}
	_, err = v.Verify(t.Context(), f.token(claims()))
	if !errors.Is(err, verify.ErrRevocationUnavailable) || !errors.Is(err, feed.ErrStale) {
		t.Fatalf("Verify error = %v, want ErrRevocationUnavailable and ErrRevocationStale", err)
	}
	if got := serve(t, v.Middleware(ok), request(f.token(claims()))); got.Status != 503 || got.RetryAfter != "30" {
		t.Errorf("middleware: status %d, Retry-After %q; want 503, 30", got.Status, got.RetryAfter)
	}
	if l := logs.String(); !strings.Contains(l, "status 401") || strings.Contains(l, "wrong") || strings.Contains(l, "refused refused") {
		t.Errorf("logs = %q, want the status and neither the secret nor the body", l)
	}
	// Refusals stop being refusals when the issuer accepts the credentials:
	// the same Feed with the right secret (a second subscriber) loads.
	if good := feedtest.Start(t, t.Context(), srv); good.Seq() != 0 {
		t.Errorf("Seq() = %d", good.Seq())
	}
}

// TestVerifyRevocationClaims covers the claims a Feed checks.
func TestVerifyRevocationClaims(t *testing.T) {
	f := newFixture(t)
	v := f.verifier(t)
	c := claims()
	runCases(t, v, []verifyCase{
		{name: "ok/exchanged-from-five", token: f.token(with(c, "exchanged_from", []string{"a", "b", "c", "d", "e"}))},
		{name: "ok/exchanged-from-null", token: f.token(with(c, "exchanged_from", nil))},
		{name: "ok/gen-zero", token: f.token(with(c, "gen", 0))},
		{name: "fail/exchanged-from-six", token: f.token(with(c, "exchanged_from", []string{"a", "b", "c", "d", "e", "f"})), want: verify.ErrClaims},
		{name: "fail/exchanged-from-string", token: f.token(with(c, "exchanged_from", "a")), want: verify.ErrClaims},
		{name: "fail/exchanged-from-number", token: f.token(with(c, "exchanged_from", []any{"a", 1})), want: verify.ErrClaims},
		{name: "fail/exchanged-from-empty-string", token: f.token(with(c, "exchanged_from", []string{""})), want: verify.ErrClaims},
		{name: "fail/exchanged-from-nested", token: f.token(with(c, "exchanged_from", []any{[]string{"a"}})), want: verify.ErrClaims},
		{name: "fail/gen-negative", token: f.token(with(c, "gen", -1)), want: verify.ErrClaims},
		{name: "fail/gen-fraction", token: f.token(with(c, "gen", 1.5)), want: verify.ErrClaims},
		{name: "fail/gen-string", token: f.token(with(c, "gen", "1")), want: verify.ErrClaims},
		{name: "fail/gen-null", token: f.token(with(c, "gen", nil)), want: verify.ErrClaims},
		{name: "fail/gen-19-digits", token: f.token(with(c, "gen", uint64(1e18))), want: verify.ErrClaims},
	})
	p, err := v.Verify(t.Context(), f.token(with(c, "exchanged_from", []string{"jti-0", "jti-\u00e9\\"}, "gen", 42)))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"jti-0", "jti-\u00e9\\"}, p.ExchangedFrom); diff != "" || p.Generation != 42 || p.KeyID != "ed1" {
		t.Errorf("ExchangedFrom (-want +got):\n%s\nGeneration = %d, KeyID = %q", diff, p.Generation, p.KeyID)
	}
	p, err = v.Verify(t.Context(), f.token(with(c, "exchanged_from", []string{"jti-0", "jti-1"})))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"jti-0", "jti-1"}, p.ExchangedFrom); diff != "" || p.Generation != 0 {
		t.Errorf("ExchangedFrom (-want +got):\n%s\nGeneration = %d", diff, p.Generation)
	}
}

// TestNewLoadedFeed checks the benchmarks' Feed, loaded from a snapshot.
func TestNewLoadedFeed(t *testing.T) {
	rf, err := feedtest.Loaded(t, revocation.Snapshot{Stream: "s", Seq: 1, Entries: []revocation.Entry{{Seq: 1, Kind: revocation.KindToken, ID: "jti-1", Until: epoch.Unix() + 60}}}, func() time.Time { return epoch })
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t)
	if _, err := f.verifier(t, func(c *verify.Config) { c.Revocation = rf }).Verify(t.Context(), f.token(claims())); !errors.Is(err, verify.ErrRevoked) {
		t.Fatalf("Verify error = %v, want ErrRevoked", err)
	}
}

// TestFeedKeepsEntriesByItsOwnClock: entries whose until the issuer's clock
// (an hour behind) put in the past are kept KeepAtLeast after they arrive,
// through the Feed's collections, so nothing is revived (THREATS T56 c).
func TestFeedKeepsEntriesByItsOwnClock(t *testing.T) {
	srv := feedtest.New(t)
	behind := time.Now().Add(-time.Hour + 17*time.Minute).Unix()
	srv.Add(revocation.Entry{Kind: revocation.KindToken, ID: "jti-in-snapshot", Until: behind})
	var offset atomic.Int64
	now := func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	f := newFixture(t)
	rf := feedtest.Start(t, t.Context(), srv, func(c *feed.Config) { c.Now = now })
	srv.Add(revocation.Entry{Kind: revocation.KindToken, ID: "jti-on-stream", Until: behind})
	feedtest.Eventually(t, "the entry", func() bool { return rf.Seq() == 2 })
	// Sixteen minutes on, past every collection interval, the entries are
	// still held; the tokens they name are still refused.
	offset.Store(int64(16 * time.Minute))
	srv.Add(revocation.Entry{Kind: revocation.KindToken, ID: "jti-late", Until: feedtest.Until() + 3600})
	feedtest.Eventually(t, "the next entry", func() bool { return rf.Seq() == 3 })
	v := f.verifier(t, func(cfg *verify.Config) { cfg.Revocation = rf; cfg.Now = now })
	for _, jti := range []string{"jti-in-snapshot", "jti-on-stream"} {
		c := with(claims(), "jti", jti, "iat", now().Add(-time.Minute).Unix(), "nbf", remove, "exp", now().Add(5*time.Minute).Unix())
		if _, err := v.Verify(t.Context(), f.token(c)); !errors.Is(err, verify.ErrRevoked) {
			t.Errorf("%s after 16 minutes: %v, want ErrRevoked", jti, err)
		}
	}
}

// current reports whether f answers from its state: loaded, current and
// not stale.
func current(t *testing.T, f *feed.Feed) bool {
	_, err := f.Revoked(t.Context(), &verify.Principal{IssuedAt: time.Now()})
	return !errors.Is(err, feed.ErrStale)
}
