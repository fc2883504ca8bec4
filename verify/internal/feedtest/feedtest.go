// Package feedtest is a fake of a Mandate issuer's revocation stream for
// the tests of verify and verify/feed: a log of entries on one stream, a
// snapshot for a subscriber without a position it can resume, the entries
// after the position it gave otherwise, heartbeats, and Basic
// authentication with form-urlencoded credentials. Tests change it under
// its lock with Do.
package feedtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mandate-dev/mandate/revocation"
	"github.com/mandate-dev/mandate/verify/feed"
)

// ClientID and Secret are the resource server's credentials at the issuer: characters that RFC 6749
// §2.3.1 has form-urlencoded before Basic authentication.
const (
	ClientID = "rs:deploy api"
	Secret   = "s3cr:t/+%"
)

// Server is the issuer's revocation stream as the wire protocol says:
// a log of entries on one stream; a snapshot for a client without a
// position it can resume, the entries after the position it gave
// otherwise; heartbeats; Basic authentication with form-urlencoded
// credentials.
type Server struct {
	srv *httptest.Server
	// Beat is the heartbeat interval.
	Beat time.Duration

	// The fields below are guarded by mu: change them in Do, or before the
	// first connection.
	mu sync.Mutex
	// Stream, NotBefore and Log are the feed served.
	Stream    string
	NotBefore int64
	Log       []revocation.Entry
	Status    int    // when not 0, every request is answered with it
	Paused    bool   // connections stay open, nothing is sent
	Inject    string // raw text sent once on the open connection
	DropGen   int    // connections opened before the last drop end
	wake      chan struct{}
	requests  []*Request
	open      int // handlers running
}

// Request is what the server saw of one connection and sent on it.
type Request struct {
	Query       string
	LastEventID string
	Snapshot    bool
	Sent        []int64
	Injected    bool
}

// New starts a Server on stream "s1" with a heartbeat every 40 ms; it is
// closed when the test ends.
func New(t testing.TB) *Server {
	t.Helper()
	s := &Server{Beat: 40 * time.Millisecond, Stream: "s1", wake: make(chan struct{})}
	s.srv = httptest.NewServer(s)
	t.Cleanup(s.srv.Close)
	return s
}

// URL is the stream's URL.
func (s *Server) URL() string { return s.srv.URL + "/revocations/stream" }

// changed wakes the open connections; s.mu is held.
func (s *Server) changed() {
	close(s.wake)
	s.wake = make(chan struct{})
}

// Do changes the server under its lock and wakes its connections.
func (s *Server) Do(edit func(s *Server)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	edit(s)
	s.changed()
}

// Add appends entries to the log, numbering them.
func (s *Server) Add(entries ...revocation.Entry) {
	s.Do(func(s *Server) {
		for _, e := range entries {
			e.Seq = int64(len(s.Log)) + 1
			s.Log = append(s.Log, e)
		}
	})
}

// Seq is the position of the log's last entry.
func (s *Server) Seq() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return int64(len(s.Log))
}

// Seen returns what the server saw of each connection, oldest first.
func (s *Server) Seen() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Request, len(s.requests))
	for i, r := range s.requests {
		out[i] = *r
		out[i].Sent = slices.Clone(r.Sent)
	}
	return out
}

// OpenConnections is the number of connections being served.
func (s *Server) OpenConnections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.open
}

// Event is one Server-Sent Event of type typ with id (none when empty)
// and v as JSON data.
func Event(typ, id string, v any) string {
	var b strings.Builder
	b.WriteString("event: " + typ + "\n")
	if id != "" {
		b.WriteString("id: " + id + "\n")
	}
	b.WriteString("data: " + mustJSON(v) + "\n\n")
	return b.String()
}

// ServeHTTP serves the stream.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	req := &Request{Query: r.URL.RawQuery, LastEventID: r.Header.Get("Last-Event-ID")}
	s.requests = append(s.requests, req)
	id, secret, _ := r.BasicAuth()
	id, _ = url.QueryUnescape(id)
	secret, _ = url.QueryUnescape(secret)
	status := s.Status
	switch {
	case status != 0:
	case id != ClientID || secret != Secret || r.Header.Get("Accept") != "text/event-stream":
		status = http.StatusUnauthorized
	}
	if status != 0 {
		s.mu.Unlock()
		http.Error(w, strings.Repeat("refused ", 1<<10), status)
		return
	}
	s.open++
	defer func() { s.mu.Lock(); s.open--; s.mu.Unlock() }()
	stream, gen := s.Stream, s.DropGen
	var out strings.Builder
	pos, ok := int64(0), false
	if held, seqText, found := strings.Cut(req.LastEventID, "/"); found && held == s.Stream {
		pos, _ = strconv.ParseInt(seqText, 10, 64)
		ok = pos >= 0 && pos <= int64(len(s.Log))
	}
	if !ok {
		pos = int64(len(s.Log))
		req.Snapshot = true
		out.WriteString(Event(revocation.EventSnapshot, "", revocation.Snapshot{
			Stream: s.Stream, Seq: pos, NotBefore: s.NotBefore, Entries: slices.Clone(s.Log),
		}))
	}
	s.mu.Unlock()
	s.serveStream(w, r, req, &out, pos, stream, gen)
}

// serveStream writes the stream from pos on, with the pending output out,
// until the client leaves or DropGen moves from gen.
func (s *Server) serveStream(w http.ResponseWriter, r *http.Request, req *Request, out *strings.Builder, pos int64, stream string, gen int) {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	rc := http.NewResponseController(w)
	tick := time.NewTicker(s.Beat)
	defer tick.Stop()
	beat := false
	for {
		s.mu.Lock()
		if s.DropGen != gen {
			s.mu.Unlock()
			return
		}
		if !s.Paused {
			if s.Inject != "" {
				out.WriteString(s.Inject)
				s.Inject, req.Injected = "", true
			}
			if stream == s.Stream {
				for _, e := range s.Log[pos:] {
					out.WriteString(Event(revocation.EventRevocation, s.Stream+"/"+strconv.FormatInt(e.Seq, 10), e))
					req.Sent = append(req.Sent, e.Seq)
				}
				pos = int64(len(s.Log))
			}
			if beat {
				out.WriteString(Event(revocation.EventHeartbeat, "", revocation.Heartbeat{Stream: s.Stream, Seq: int64(len(s.Log)), Time: time.Now().Unix()}))
				out.WriteString(": keep-alive\n\n")
			}
		}
		wake, paused := s.wake, s.Paused
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

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// Loaded returns a Feed holding snap, whose entries are numbered from 1,
// subscribed to a Server that serves it, with now as its clock; it stops
// when the test ends.
func Loaded(tb testing.TB, snap revocation.Snapshot, now func() time.Time) (*feed.Feed, error) {
	tb.Helper()
	s := New(tb)
	s.Stream, s.NotBefore, s.Log = snap.Stream, snap.NotBefore, slices.Clone(snap.Entries)
	for i, e := range s.Log {
		if e.Seq != int64(i)+1 {
			return nil, fmt.Errorf("feedtest: entry %d has seq %d", i, e.Seq)
		}
	}
	f, err := feed.New(tb.Context(), feed.Config{URL: s.URL(), ClientID: ClientID, ClientSecret: Secret, Now: now})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(tb.Context(), 10*time.Second)
	defer cancel()
	if err := f.Ready(ctx); err != nil {
		return nil, err
	}
	return f, nil
}

// Entries is the number of entries f holds, as its metrics say.
func Entries(f *feed.Feed) int {
	var b strings.Builder
	_ = f.WriteMetrics(&b)
	const name = "\nmandate_revocation_entries "
	_, rest, ok := strings.Cut(b.String(), name)
	if !ok {
		return -1
	}
	line, _, _ := strings.Cut(rest, "\n")
	n, err := strconv.Atoi(line)
	if err != nil {
		return -1
	}
	return n
}

// Config is a feed.Config for srv, changed by each edit.
func Config(srv *Server, edit ...func(*feed.Config)) feed.Config {
	cfg := feed.Config{URL: srv.URL(), ClientID: ClientID, ClientSecret: Secret, MaxStaleness: 5 * time.Second}
	for _, e := range edit {
		e(&cfg)
	}
	return cfg
}

// Start subscribes to srv and waits for the first snapshot.
func Start(t *testing.T, ctx context.Context, srv *Server, edit ...func(*feed.Config)) *feed.Feed {
	t.Helper()
	rf, err := feed.New(ctx, Config(srv, edit...))
	if err != nil {
		t.Fatal(err)
	}
	ready, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := rf.Ready(ready); err != nil {
		t.Fatal(err)
	}
	return rf
}

// Eventually polls cond for up to five seconds.
func Eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Until is an Until for entries that outlive the test.
func Until() int64 { return time.Now().Add(time.Hour).Unix() }

// SyncBuffer is a bytes.Buffer safe for a logger and a test at once.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String is what was written.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
