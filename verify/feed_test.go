package verify_test

import (
	"bytes"
	"context"
	"crypto"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mandate-dev/mandate/revocation"
	"github.com/mandate-dev/mandate/verify"
)

// The resource server's credentials at the issuer: characters that RFC 6749
// §2.3.1 has form-urlencoded before Basic authentication.
const (
	feedClientID = "rs:deploy api"
	feedSecret   = "s3cr:t/+%"
)

// feedServer is the issuer's revocation stream as the wire protocol says:
// a log of entries on one stream; a snapshot for a client without a
// position it can resume, the entries after the position it gave
// otherwise; heartbeats; Basic authentication with form-urlencoded
// credentials.
type feedServer struct {
	srv  *httptest.Server
	beat time.Duration

	mu        sync.Mutex
	stream    string
	notBefore int64
	log       []revocation.Entry
	status    int    // when not 0, every request is answered with it
	paused    bool   // connections stay open, nothing is sent
	inject    string // raw text sent once on the open connection
	dropGen   int    // connections opened before the last drop end
	wake      chan struct{}
	requests  []*feedRequest
	open      int // handlers running
}

// feedRequest is what the server saw of one connection and sent on it.
type feedRequest struct {
	query       string
	lastEventID string
	snapshot    bool
	sent        []int64
	injected    bool
}

func newFeedServer(t *testing.T) *feedServer {
	t.Helper()
	s := &feedServer{beat: 40 * time.Millisecond, stream: "s1", wake: make(chan struct{})}
	s.srv = httptest.NewServer(s)
	t.Cleanup(s.srv.Close)
	return s
}

func (s *feedServer) url() string { return s.srv.URL + "/revocations/stream" }

// changed wakes the open connections; s.mu is held.
func (s *feedServer) changed() {
	close(s.wake)
	s.wake = make(chan struct{})
}

func (s *feedServer) do(edit func(s *feedServer)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	edit(s)
	s.changed()
}

// add appends entries to the log, numbering them.
func (s *feedServer) add(entries ...revocation.Entry) {
	s.do(func(s *feedServer) {
		for _, e := range entries {
			e.Seq = int64(len(s.log)) + 1
			s.log = append(s.log, e)
		}
	})
}

func (s *feedServer) seq() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return int64(len(s.log))
}

func (s *feedServer) seen() []feedRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]feedRequest, len(s.requests))
	for i, r := range s.requests {
		out[i] = *r
		out[i].sent = slices.Clone(r.sent)
	}
	return out
}

func (s *feedServer) openConnections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.open
}

func sseEvent(typ, id string, v any) string {
	var b strings.Builder
	b.WriteString("event: " + typ + "\n")
	if id != "" {
		b.WriteString("id: " + id + "\n")
	}
	b.WriteString("data: " + mustJSON(v) + "\n\n")
	return b.String()
}

func (s *feedServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	req := &feedRequest{query: r.URL.RawQuery, lastEventID: r.Header.Get("Last-Event-ID")}
	s.requests = append(s.requests, req)
	id, secret, _ := r.BasicAuth()
	id, _ = url.QueryUnescape(id)
	secret, _ = url.QueryUnescape(secret)
	status := s.status
	switch {
	case status != 0:
	case id != feedClientID || secret != feedSecret || r.Header.Get("Accept") != "text/event-stream":
		status = http.StatusUnauthorized
	}
	if status != 0 {
		s.mu.Unlock()
		http.Error(w, strings.Repeat("refused ", 1<<10), status)
		return
	}
	s.open++
	defer func() { s.mu.Lock(); s.open--; s.mu.Unlock() }()
	stream, gen := s.stream, s.dropGen
	var out strings.Builder
	pos, ok := int64(0), false
	if held, seqText, found := strings.Cut(req.lastEventID, "/"); found && held == s.stream {
		pos, _ = strconv.ParseInt(seqText, 10, 64)
		ok = pos >= 0 && pos <= int64(len(s.log))
	}
	if !ok {
		pos = int64(len(s.log))
		req.snapshot = true
		out.WriteString(sseEvent(revocation.EventSnapshot, "", revocation.Snapshot{
			Stream: s.stream, Seq: pos, NotBefore: s.notBefore, Entries: slices.Clone(s.log),
		}))
	}
	s.mu.Unlock()

	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	rc := http.NewResponseController(w)
	tick := time.NewTicker(s.beat)
	defer tick.Stop()
	beat := false
	for {
		s.mu.Lock()
		if s.dropGen != gen {
			s.mu.Unlock()
			return
		}
		if !s.paused {
			if s.inject != "" {
				out.WriteString(s.inject)
				s.inject, req.injected = "", true
			}
			if stream == s.stream {
				for _, e := range s.log[pos:] {
					out.WriteString(sseEvent(revocation.EventRevocation, s.stream+"/"+strconv.FormatInt(e.Seq, 10), e))
					req.sent = append(req.sent, e.Seq)
				}
				pos = int64(len(s.log))
			}
			if beat {
				out.WriteString(sseEvent(revocation.EventHeartbeat, "", revocation.Heartbeat{Stream: s.stream, Seq: int64(len(s.log)), Time: time.Now().Unix()}))
				out.WriteString(": keep-alive\n\n")
			}
		}
		wake, paused := s.wake, s.paused
		s.mu.Unlock()
		beat = false
		if out.Len() > 0 && !paused {
			if _, err := w.Write([]byte(out.String())); err != nil {
				return
			}
			if err := rc.Flush(); err != nil {
				return
			}
			out.Reset()
		}
		select {
		case <-r.Context().Done():
			return
		case <-wake:
		case <-tick.C:
			beat = true
		}
	}
}

// feedConfig is a FeedConfig for srv.
func feedConfig(srv *feedServer, edit ...func(*verify.FeedConfig)) verify.FeedConfig {
	cfg := verify.FeedConfig{URL: srv.url(), ClientID: feedClientID, ClientSecret: feedSecret, MaxStaleness: 5 * time.Second}
	for _, e := range edit {
		e(&cfg)
	}
	return cfg
}

// startFeed subscribes to srv and waits for the first snapshot.
func startFeed(t *testing.T, ctx context.Context, srv *feedServer, edit ...func(*verify.FeedConfig)) *verify.Feed {
	t.Helper()
	feed, err := verify.NewFeed(ctx, feedConfig(srv, edit...))
	if err != nil {
		t.Fatal(err)
	}
	ready, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := feed.Ready(ready); err != nil {
		t.Fatal(err)
	}
	return feed
}

// eventually polls cond for up to five seconds.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// until is an Until for entries that outlive the test.
func until() int64 { return time.Now().Add(time.Hour).Unix() }

func TestNewFeedRefusesConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  verify.FeedConfig
		ok   bool
	}{
		{name: "ok/https", cfg: verify.FeedConfig{URL: "https://mandate.example/revocations/stream", ClientID: "rs", ClientSecret: "s"}, ok: true},
		{name: "ok/http-loopback", cfg: verify.FeedConfig{URL: "http://127.0.0.1:8080/revocations/stream", ClientID: "rs", ClientSecret: "s"}, ok: true},
		{name: "ok/http-localhost", cfg: verify.FeedConfig{URL: "http://localhost/revocations/stream", ClientID: "rs", ClientSecret: "s"}, ok: true},
		{name: "fail/no-url", cfg: verify.FeedConfig{ClientID: "rs", ClientSecret: "s"}},
		{name: "fail/http-remote", cfg: verify.FeedConfig{URL: "http://mandate.example/revocations/stream", ClientID: "rs", ClientSecret: "s"}},
		{name: "fail/userinfo", cfg: verify.FeedConfig{URL: "https://rs:s@mandate.example/revocations/stream", ClientID: "rs", ClientSecret: "s"}},
		{name: "fail/relative", cfg: verify.FeedConfig{URL: "/revocations/stream", ClientID: "rs", ClientSecret: "s"}},
		{name: "fail/no-client-id", cfg: verify.FeedConfig{URL: "https://mandate.example/revocations/stream", ClientSecret: "s"}},
		{name: "fail/no-secret", cfg: verify.FeedConfig{URL: "https://mandate.example/revocations/stream", ClientID: "rs"}},
		{name: "fail/negative-staleness", cfg: verify.FeedConfig{URL: "https://mandate.example/revocations/stream", ClientID: "rs", ClientSecret: "s", MaxStaleness: -time.Second}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			feed, err := verify.NewFeed(ctx, tc.cfg)
			if (err == nil) != tc.ok {
				t.Fatalf("NewFeed error = %v, want ok = %v", err, tc.ok)
			}
			if err == nil {
				cancel()
				<-verify.FeedDone(feed)
			}
		})
	}
}

// TestFeedRevokes proves each kind of entry, from the snapshot or the
// stream, reaches Verify; and that a token none hits is accepted.
func TestFeedRevokes(t *testing.T) {
	srv := newFeedServer(t)
	u := until()
	// In the snapshot.
	srv.add(
		revocation.Entry{Kind: revocation.KindToken, ID: "jti-revoked", Until: u},
		revocation.Entry{Kind: revocation.KindSubject, ID: "user:gone", Gen: 5, Until: u},
		revocation.Entry{Kind: revocation.KindKey, ID: "ec1", Until: u},
	)
	f := newFixture(t)
	feed := startFeed(t, t.Context(), srv)
	// On the stream, after the snapshot.
	srv.add(
		revocation.Entry{Kind: revocation.KindToken, ID: "jti-root", Until: u},
		revocation.Entry{Kind: revocation.KindAgent, ID: "agent:rogue", Gen: 5, Until: u},
		revocation.Entry{Kind: revocation.KindScope, ID: "user:sam", Scope: "deploy:delete", Gen: 5, Until: u},
		revocation.Entry{Kind: revocation.KindDelegation, ID: "dlg_revoked", Gen: 5, Until: u},
	)
	eventually(t, "the entries", func() bool { return feed.Seq() == 7 })
	if req := srv.seen()[0]; !req.snapshot || req.lastEventID != "" || !slices.Equal(req.sent, []int64{4, 5, 6, 7}) {
		t.Fatalf("first connection = %+v, want a snapshot then entries 4 to 7", req)
	}

	c := claims()
	rogue := map[string]any{"sub": "agent:argocd", "act": map[string]any{"sub": "agent:rogue"}}
	runCases(t, f.verifier(t, func(cfg *verify.Config) { cfg.Revocation = feed }), []verifyCase{
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
	srv := newFeedServer(t)
	const maxStale = 300 * time.Millisecond
	feed := startFeed(t, t.Context(), srv, func(c *verify.FeedConfig) { c.MaxStaleness = maxStale })
	f := newFixture(t)
	v := f.verifier(t, func(c *verify.Config) { c.Revocation = feed })
	tok := f.token(claims())
	h := v.Middleware(ok)
	if got := serve(t, h, request(tok)); got.Status != http.StatusOK {
		t.Fatalf("before: status %d", got.Status)
	}

	srv.do(func(s *feedServer) { s.paused = true })
	paused := time.Now()
	eventually(t, "staleness", func() bool {
		_, err := v.Verify(t.Context(), tok)
		return err != nil
	})
	if waited := time.Since(paused); waited < maxStale-2*srv.beat {
		t.Errorf("stale after %v, want about %v", waited, maxStale)
	}
	_, err := v.Verify(t.Context(), tok)
	if !errors.Is(err, verify.ErrRevocationUnavailable) || !errors.Is(err, verify.ErrRevocationStale) {
		t.Fatalf("Verify error = %v, want ErrRevocationUnavailable and ErrRevocationStale", err)
	}
	want := response{Status: 503, RetryAfter: "30", ContentType: "application/json", CacheControl: "no-store", Error: "temporarily_unavailable", Description: "the revocation state cannot be checked; retry later"}
	if diff := cmp.Diff(want, serve(t, h, request(tok))); diff != "" {
		t.Errorf("middleware while stale (-want +got):\n%s", diff)
	}
	if feed.Staleness() <= maxStale {
		t.Errorf("Staleness() = %v, want above %v", feed.Staleness(), maxStale)
	}

	// The silent connection is dropped and another opened (which the
	// paused server holds silent too).
	eventually(t, "a reconnection", func() bool { return len(srv.seen()) >= 2 })

	// An entry revoked while the feed was cut off is applied on recovery.
	srv.add(revocation.Entry{Kind: revocation.KindToken, ID: "jti-during-outage", Until: until()})
	srv.do(func(s *feedServer) { s.paused = false })
	eventually(t, "recovery", func() bool {
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

// TestFeedResumes: after a dropped connection the feed sends its position
// and receives only what it missed.
func TestFeedResumes(t *testing.T) {
	srv := newFeedServer(t)
	u := until()
	srv.add(revocation.Entry{Kind: revocation.KindToken, ID: "a", Until: u})
	feed := startFeed(t, t.Context(), srv)
	srv.add(revocation.Entry{Kind: revocation.KindToken, ID: "b", Until: u})
	eventually(t, "entry 2", func() bool { return feed.Seq() == 2 })

	srv.do(func(s *feedServer) {
		s.dropGen++
		s.log = append(s.log, revocation.Entry{Seq: 3, Kind: revocation.KindToken, ID: "c", Until: u})
	})
	eventually(t, "entry 3", func() bool { return feed.Seq() == 3 })
	got := srv.seen()
	if len(got) != 2 {
		t.Fatalf("%d connections, want 2", len(got))
	}
	want := feedRequest{query: "heartbeat=1.667s", lastEventID: "s1/2", sent: []int64{3}}
	if diff := cmp.Diff(want, got[1], cmp.AllowUnexported(feedRequest{})); diff != "" {
		t.Errorf("second connection (-want +got):\n%s", diff)
	}
	var metrics bytes.Buffer
	if err := feed.WriteMetrics(&metrics); err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{
		"# TYPE mandate_revocation_staleness_seconds gauge\nmandate_revocation_staleness_seconds ",
		"# HELP mandate_revocation_sequence ",
		"# TYPE mandate_revocation_sequence gauge\nmandate_revocation_sequence 3\n",
		"# TYPE mandate_revocation_entries gauge\nmandate_revocation_entries 3\n",
		"# TYPE mandate_revocation_reconnects_total counter\nmandate_revocation_reconnects_total 1\n",
	} {
		if !strings.Contains(metrics.String(), line) {
			t.Errorf("metrics lack %q:\n%s", line, metrics.String())
		}
	}
}

// TestFeedNewStream: a heartbeat naming another stream (the issuer's store
// was restored) makes the feed start again from a snapshot, and the new
// not-before epoch revokes every older token.
func TestFeedNewStream(t *testing.T) {
	srv := newFeedServer(t)
	srv.add(revocation.Entry{Kind: revocation.KindToken, ID: "a", Until: until()})
	feed := startFeed(t, t.Context(), srv)
	f := newFixture(t)
	v := f.verifier(t, func(c *verify.Config) { c.Revocation = feed })
	tok := f.token(claims())
	if _, err := v.Verify(t.Context(), tok); err != nil {
		t.Fatal(err)
	}
	srv.do(func(s *feedServer) {
		s.stream, s.notBefore = "s2", epoch.Unix()+1
		s.log = s.log[:0]
	})
	eventually(t, "the new stream's snapshot", func() bool {
		_, err := v.Verify(t.Context(), tok)
		return errors.Is(err, verify.ErrRevoked)
	})
	got := srv.seen()
	if len(got) != 2 || got[1].lastEventID != "" || !got[1].snapshot {
		t.Fatalf("connections = %+v, want a second one without Last-Event-ID, served a snapshot", got)
	}
	if feed.Seq() != 0 {
		t.Errorf("Seq() = %d, want 0 on the new stream", feed.Seq())
	}
}

// TestFeedUnauthorized: refused credentials leave the feed stale, so every
// token is refused with 503, and the feed keeps retrying with back-off.
func TestFeedUnauthorized(t *testing.T) {
	srv := newFeedServer(t)
	var logs syncBuffer
	feed, err := verify.NewFeed(t.Context(), feedConfig(srv, func(c *verify.FeedConfig) {
		c.ClientSecret = "wrong secret"
		c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	}))
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t)
	v := f.verifier(t, func(c *verify.Config) { c.Revocation = feed })
	eventually(t, "retries", func() bool { return len(srv.seen()) >= 3 })
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if err := feed.Ready(ctx); err == nil {
		t.Fatal("Ready succeeded with refused credentials")
	}
	_, err = v.Verify(t.Context(), f.token(claims()))
	if !errors.Is(err, verify.ErrRevocationUnavailable) || !errors.Is(err, verify.ErrRevocationStale) {
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
	if good := startFeed(t, t.Context(), srv); good.Seq() != 0 {
		t.Errorf("Seq() = %d", good.Seq())
	}
}

// syncBuffer is a bytes.Buffer safe for a logger and a test at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestFeedRefusesMalformed: data the feed cannot apply drops the
// connection; the next one asks for a snapshot; nothing invalid is held.
func TestFeedRefusesMalformed(t *testing.T) {
	u := until()
	entry := func(e revocation.Entry) string {
		return sseEvent(revocation.EventRevocation, "s1/"+strconv.FormatInt(e.Seq, 10), e)
	}
	for _, tc := range []struct {
		name   string
		inject string
	}{
		{name: "fail/entry-not-json", inject: "event: revocation\nid: s1/2\ndata: {\"seq\":2,\n\n"},
		{name: "fail/entry-duplicate-member", inject: "event: revocation\nid: s1/2\ndata: {\"seq\":2,\"kind\":\"token\",\"id\":\"x\",\"id\":\"y\",\"until\":9999999999}\n\n"},
		{name: "fail/entry-unknown-kind", inject: entry(revocation.Entry{Seq: 2, Kind: "everything", ID: "x", Until: u})},
		{name: "fail/entry-subject-without-gen", inject: entry(revocation.Entry{Seq: 2, Kind: revocation.KindSubject, ID: "user:sam", Until: u})},
		{name: "fail/entry-id-mismatch", inject: sseEvent(revocation.EventRevocation, "s1/3", revocation.Entry{Seq: 2, Kind: revocation.KindToken, ID: "x", Until: u})},
		{name: "fail/entry-without-id", inject: sseEvent(revocation.EventRevocation, "", revocation.Entry{Seq: 2, Kind: revocation.KindToken, ID: "x", Until: u})},
		{name: "fail/entry-too-large", inject: "event: revocation\nid: s1/2\ndata: " + strings.Repeat(" ", 65<<10) + "{}\n\n"},
		{name: "fail/heartbeat-not-json", inject: "event: heartbeat\ndata: nope\n\n"},
		{name: "fail/snapshot-invalid-entry", inject: sseEvent(revocation.EventSnapshot, "", revocation.Snapshot{Stream: "s1", Seq: 2, Entries: []revocation.Entry{{Seq: 2, Kind: "token", ID: "", Until: u}}})},
		{name: "fail/snapshot-bad-stream", inject: sseEvent(revocation.EventSnapshot, "", revocation.Snapshot{Stream: "s 1\r\nX-Evil: 1", Seq: 2})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newFeedServer(t)
			srv.add(revocation.Entry{Kind: revocation.KindToken, ID: "a", Until: u})
			feed := startFeed(t, t.Context(), srv)
			srv.do(func(s *feedServer) { s.inject = tc.inject })
			eventually(t, "a second connection", func() bool { return len(srv.seen()) >= 2 })
			eventually(t, "a current state", func() bool { return verify.FeedCurrent(feed) })
			got := srv.seen()
			if !got[0].injected || got[1].lastEventID != "" || !got[1].snapshot {
				t.Errorf("connections = %+v, want the second without Last-Event-ID, served a snapshot", got)
			}
			for _, e := range verify.FeedEntries(feed) {
				if err := e.Validate(); err != nil || e.ID != "a" {
					t.Errorf("holds %+v (%v), want only entry a", e, err)
				}
			}
		})
	}
}

// TestFeedStopsWithContext: the goroutine returns and closes the stream
// when its context ends, connected or backing off.
func TestFeedStopsWithContext(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
	}{
		{name: "ok/connected"},
		{name: "ok/backing-off", status: http.StatusServiceUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newFeedServer(t)
			srv.status = tc.status
			ctx, cancel := context.WithCancel(t.Context())
			feed, err := verify.NewFeed(ctx, feedConfig(srv))
			if err != nil {
				t.Fatal(err)
			}
			if tc.status == 0 {
				if err := feed.Ready(ctx); err != nil {
					t.Fatal(err)
				}
			} else {
				eventually(t, "a refusal", func() bool { return len(srv.seen()) >= 1 })
			}
			cancel()
			select {
			case <-verify.FeedDone(feed):
			case <-time.After(5 * time.Second):
				t.Fatal("the feed's goroutine did not return")
			}
			eventually(t, "the stream closed", func() bool { return srv.openConnections() == 0 })
			if err := feed.Ready(t.Context()); tc.status != 0 && err == nil {
				t.Error("Ready succeeded on a stopped feed without a snapshot")
			}
		})
	}
}

func TestParseSSE(t *testing.T) {
	for _, tc := range []struct {
		name string
		body string
		max  int
		want []verify.SSEEvent
		err  bool
	}{
		{name: "ok/lf", body: "event: snapshot\nid: s/1\ndata: {}\n\n", want: []verify.SSEEvent{{Type: "snapshot", ID: "s/1", Data: "{}"}}},
		{name: "ok/crlf", body: "event: heartbeat\r\ndata: a\r\n\r\n", want: []verify.SSEEvent{{Type: "heartbeat", Data: "a"}}},
		{name: "ok/cr", body: "event: heartbeat\rdata: a\r\r", want: []verify.SSEEvent{{Type: "heartbeat", Data: "a"}}},
		{name: "ok/multi-line-data", body: "data: a\ndata:b\ndata\n\n", want: []verify.SSEEvent{{Data: "a\nb\n"}}},
		{name: "ok/comments-and-unknown-fields", body: ": hi\nretry: 10\nfoo: bar\ndata: x\n\n:\n\n", want: []verify.SSEEvent{{Data: "x"}}},
		{name: "ok/bom", body: "\uFEFFdata: x\n\n", want: []verify.SSEEvent{{Data: "x"}}},
		{name: "ok/only-one-space-stripped", body: "data:  x \n\n", want: []verify.SSEEvent{{Data: " x "}}},
		{name: "ok/id-not-carried-over", body: "id: s/1\ndata: a\n\ndata: b\n\n", want: []verify.SSEEvent{{ID: "s/1", Data: "a"}, {Data: "b"}}},
		{name: "ok/id-with-nul-ignored", body: "id: s\x00/1\ndata: a\n\n", want: []verify.SSEEvent{{Data: "a"}}},
		{name: "ok/no-data-no-event", body: "event: heartbeat\n\n", want: nil},
		{name: "ok/unfinished-event-dropped", body: "data: a\n\ndata: b\n", want: []verify.SSEEvent{{Data: "a"}}},
		{name: "fail/line-too-long", body: "data: " + strings.Repeat("x", 100) + "\n\n", max: 64, err: true},
		{name: "fail/data-too-large", body: strings.Repeat("data: xxxxxxxx\n", 10) + "\n", max: 64, err: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			max := tc.max
			if max == 0 {
				max = 1 << 10
			}
			// Byte by byte too: a CRLF split across reads is one line end.
			for name, body := range map[string]io.Reader{
				"whole":    strings.NewReader(tc.body),
				"bytewise": iotest.OneByteReader(strings.NewReader(tc.body)),
			} {
				got, err := verify.ParseSSE(body, max)
				if (err != nil) != tc.err {
					t.Fatalf("%s: error = %v, want error %v", name, err, tc.err)
				}
				if diff := cmp.Diff(tc.want, got); !tc.err && diff != "" {
					t.Errorf("%s: events (-want +got):\n%s", name, diff)
				}
			}
		})
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

// FuzzFeedEvents feeds arbitrary bytes to the stream parser and the event
// handling of one connection: it must never panic, never hold an entry that
// does not validate, and never answer from a state it could not load.
func FuzzFeedEvents(f *testing.F) {
	now := func() time.Time { return epoch }
	snap := sseEvent(revocation.EventSnapshot, "", revocation.Snapshot{Stream: "s1", Seq: 2, Entries: []revocation.Entry{
		{Seq: 1, Kind: revocation.KindToken, ID: "a", Until: epoch.Unix() + 3600},
		{Seq: 2, Kind: revocation.KindScope, ID: "user:sam", Scope: "deploy:create", Gen: 3, Until: epoch.Unix() + 3600},
	}})
	for _, seed := range []string{
		snap,
		snap + sseEvent(revocation.EventRevocation, "s1/3", revocation.Entry{Seq: 3, Kind: revocation.KindAgent, ID: "agent:x", Gen: 2, Until: epoch.Unix() + 60}),
		snap + sseEvent(revocation.EventHeartbeat, "", revocation.Heartbeat{Stream: "s1", Seq: 9}),
		snap + sseEvent(revocation.EventHeartbeat, "", revocation.Heartbeat{Stream: "s2", Seq: 1}),
		snap + sseEvent(revocation.EventRevocation, "s2/3", revocation.Entry{Seq: 3, Kind: revocation.KindKey, ID: "k", Until: 1}),
		snap + "event: revocation\r\nid: s1/3\r\ndata: {\"seq\":3,\"kind\":\"subject\",\"id\":\"u\",\"until\":5}\r\n\r\n",
		"\uFEFF: comment\revent: snapshot\rdata: {\"stream\":\"s\",\"seq\":0,\"entries\":null}\r\r",
		"event: snapshot\ndata: {\"stream\":\"s\",\n\ndata: \"seq\":1}\n\n",
		"event: heartbeat\ndata: {}\n\n",
		"",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		feed, _ := verify.ConsumeFeed(body, now)
		for _, e := range verify.FeedEntries(feed) {
			if err := e.Validate(); err != nil {
				t.Fatalf("holds an invalid entry %+v: %v", e, err)
			}
		}
		_, err := feed.Revoked(t.Context(), &verify.Principal{JTI: "a", Subject: "user:sam", IssuedAt: epoch})
		if !verify.FeedCurrent(feed) && !errors.Is(err, verify.ErrRevocationStale) {
			t.Fatalf("answered from a state it could not load: %v", err)
		}
	})
}

// TestNewLoadedFeed checks the benchmarks' Feed, built without a server.
func TestNewLoadedFeed(t *testing.T) {
	feed, err := verify.NewLoadedFeed(revocation.Snapshot{Stream: "s", Seq: 1, Entries: []revocation.Entry{{Seq: 1, Kind: revocation.KindToken, ID: "jti-1", Until: epoch.Unix() + 60}}}, func() time.Time { return epoch })
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t)
	if _, err := f.verifier(t, func(c *verify.Config) { c.Revocation = feed }).Verify(t.Context(), f.token(claims())); !errors.Is(err, verify.ErrRevoked) {
		t.Fatalf("Verify error = %v, want ErrRevoked", err)
	}
}

// TestFeedKeepsEntriesByItsOwnClock: entries whose until the issuer's clock
// (an hour behind) put in the past are kept KeepAtLeast after they arrive,
// through the Feed's collections, so nothing is revived (THREATS T56 c).
func TestFeedKeepsEntriesByItsOwnClock(t *testing.T) {
	srv := newFeedServer(t)
	behind := time.Now().Add(-time.Hour + 17*time.Minute).Unix()
	srv.add(revocation.Entry{Kind: revocation.KindToken, ID: "jti-in-snapshot", Until: behind})
	var offset atomic.Int64
	now := func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	f := newFixture(t)
	feed := startFeed(t, t.Context(), srv, func(c *verify.FeedConfig) { c.Now = now })
	srv.add(revocation.Entry{Kind: revocation.KindToken, ID: "jti-on-stream", Until: behind})
	eventually(t, "the entry", func() bool { return feed.Seq() == 2 })
	// Sixteen minutes on, past every collection interval, the entries are
	// still held; the tokens they name are still refused.
	offset.Store(int64(16 * time.Minute))
	srv.add(revocation.Entry{Kind: revocation.KindToken, ID: "jti-late", Until: until() + 3600})
	eventually(t, "the next entry", func() bool { return feed.Seq() == 3 })
	v := f.verifier(t, func(cfg *verify.Config) { cfg.Revocation = feed; cfg.Now = now })
	for _, jti := range []string{"jti-in-snapshot", "jti-on-stream"} {
		c := with(claims(), "jti", jti, "iat", now().Add(-time.Minute).Unix(), "nbf", remove, "exp", now().Add(5*time.Minute).Unix())
		if _, err := v.Verify(t.Context(), f.token(c)); !errors.Is(err, verify.ErrRevoked) {
			t.Errorf("%s after 16 minutes: %v, want ErrRevoked", jti, err)
		}
	}
}
