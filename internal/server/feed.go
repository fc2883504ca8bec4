package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/mandate-dev/mandate/internal/audit"
	"github.com/mandate-dev/mandate/internal/feed"
	"github.com/mandate-dev/mandate/internal/store"
	"github.com/mandate-dev/mandate/oauth"
	"github.com/mandate-dev/mandate/revocation"
)

// Heartbeat bounds for the revocation stream: a subscriber may ask for
// heartbeats as often as it needs to keep its staleness bound, within these.
const (
	defaultHeartbeat = 5 * time.Second
	minHeartbeat     = 200 * time.Millisecond
	maxHeartbeat     = 30 * time.Second
	// feedWriteTimeout bounds one write to a subscriber: one that does not
	// read is dropped rather than holding the stream.
	feedWriteTimeout = 10 * time.Second
)

// maxStreamsPerReader is how many revocation streams (and SET long polls)
// one reader may hold open at once: a resource server needs one, a few
// more cover reconnections the server has not noticed yet (THREATS T87).
const maxStreamsPerReader = 4

// feedReader authenticates a reader of the revocation feed and returns the
// key its open streams are counted under. The feed says who was revoked
// and names every delegation, so it is for the resource servers that
// enforce revocations and the admin only (THREATS T87): a registered
// client that holds no scope but ScopeAuditReport (HTTP Basic, RFC 6749
// §2.3.1), or the admin bearer token. An agent, a client with scopes, is
// refused 403 and the refusal recorded.
func (s *Server) feedReader(r *http.Request) (string, error) {
	if strings.HasPrefix(strings.ToLower(r.Header.Get("Authorization")), "bearer ") {
		if err := s.requireAdmin(r); err != nil {
			return "", err
		}
		return adminPerformer, nil
	}
	client, err := s.authenticate(r, url.Values{})
	if err != nil {
		return "", err
	}
	if !resourceServer(client) {
		return "", s.refuseRequest(r, client.ID, &oauth.Error{Code: oauth.ErrAccessDenied, Status: http.StatusForbidden,
			Reason: "feed_not_allowed", Description: "the revocation feed is for resource servers: this client holds scopes"})
	}
	return "client " + client.ID, nil
}

// resourceServer reports whether a is registered as a resource server: a
// client with no scope to act with (ScopeAuditReport only lets it forward
// its verifier's records).
func resourceServer(a store.Agent) bool {
	for _, sc := range a.Scopes {
		if sc != ScopeAuditReport {
			return false
		}
	}
	return true
}

// streamCounts counts the open revocation streams and SET long polls per
// reader.
type streamCounts struct {
	mu   sync.Mutex
	open map[string]int
}

// acquire takes one of reader's maxStreamsPerReader; false when it holds
// them all.
func (st *streamCounts) acquire(reader string) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.open[reader] >= maxStreamsPerReader {
		return false
	}
	if st.open == nil {
		st.open = make(map[string]int)
	}
	st.open[reader]++
	return true
}

// release gives back one acquired by reader.
func (st *streamCounts) release(reader string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.open[reader]--; st.open[reader] <= 0 {
		delete(st.open, reader)
	}
}

// tooManyStreams is the answer to a reader that holds all its streams:
// 429 with Retry-After, recorded like a rate-limit refusal (at most once a
// second per reader, with the count).
func (s *Server) tooManyStreams(r *http.Request, reader string) error {
	e := &oauth.Error{Code: oauth.ErrTemporarilyUnavailable, Reason: "stream_limit", Status: http.StatusTooManyRequests,
		Description: "too many open revocation streams for this client, close one or retry later"}
	ev := audit.Event{
		Action: audit.ActionRequest, Result: audit.ResultRefused, Reason: e.Reason, Detail: e.Description,
		RequestID: requestID(r.Context()), Resource: r.URL.Path, Performer: strings.TrimPrefix(reader, "client "),
	}
	if reader != adminPerformer {
		ev.ClientID = ev.Performer
	}
	if err := s.recordTallied(r.Context(), &s.limitRefusals, s.limitRefusals.add("streams "+reader, ev, s.cfg.Now())); err != nil {
		return oauth.Unavailable("audit_unavailable", errors.Join(e, err))
	}
	return e
}

// revocationSnapshot answers GET /revocations: everything in force, as the
// stream's snapshot event carries it.
func (s *Server) revocationSnapshot(w http.ResponseWriter, r *http.Request) error {
	if _, err := s.feedReader(r); err != nil {
		return err
	}
	snap, err := s.cfg.Feed.Snapshot()
	if err != nil {
		return oauth.Unavailable("revocation_feed_stale", err)
	}
	w.Header().Set("Cache-Control", "no-store")
	oauth.WriteJSON(w, http.StatusOK, snap)
	return nil
}

// revocationStream answers GET /revocations/stream with Server-Sent Events:
// a snapshot (unless Last-Event-ID names a position the feed can resume
// from), then every new entry as it commits, and a heartbeat when there is
// nothing to send. The stream ends when the feed goes stale, so that
// subscribers notice and fail closed.
func (s *Server) revocationStream(w http.ResponseWriter, r *http.Request) error {
	// The stream has no deadline; authentication has the usual one.
	actx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	reader, err := s.feedReader(r.WithContext(actx))
	if err == nil {
		if s.openStreams.acquire(reader) {
			defer s.openStreams.release(reader)
		} else {
			err = s.tooManyStreams(r.WithContext(actx), reader)
		}
	}
	cancel()
	if err != nil {
		return err
	}
	heartbeat, err := heartbeatParam(r.URL.Query().Get("heartbeat"))
	if err != nil {
		return err
	}
	pos, err := s.cfg.Feed.Position()
	if err != nil {
		return oauth.Unavailable("revocation_feed_stale", err)
	}
	rc := http.NewResponseController(w)
	// The server's read timeout would end the stream (and cancel its
	// context) after a few seconds; writes have their own deadline.
	_ = rc.SetReadDeadline(time.Time{})
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	s.metrics.subscribers.Inc()
	defer s.metrics.subscribers.Dec()
	sub := &subscriber{w: w, rc: rc, hub: s.cfg.Feed}
	stream, seq, resumed := revocation.ParseEventID(r.Header.Get("Last-Event-ID"))
	if !resumed || !sub.resume(stream, seq) {
		if err := sub.snapshot(); err != nil {
			return nil // the response has started: the subscriber reconnects
		}
	}
	beat := time.NewTicker(heartbeat)
	defer beat.Stop()
	for {
		select {
		case <-r.Context().Done():
			return nil
		case <-s.draining:
			return nil
		case <-pos.Changed:
		case <-beat.C:
			if err := sub.heartbeat(); err != nil {
				return nil
			}
			continue
		}
		if pos, err = s.cfg.Feed.Position(); err != nil {
			return nil
		}
		if pos.Stream != sub.stream || !sub.resume(sub.stream, sub.seq) {
			if err := sub.snapshot(); err != nil {
				return nil
			}
		}
	}
}

// subscriber is one stream's writer and the position it was sent up to.
type subscriber struct {
	w      io.Writer
	rc     *http.ResponseController
	hub    *feed.Hub
	stream string
	seq    int64
}

// resume sends the entries after (stream, seq); false when the hub cannot.
func (sub *subscriber) resume(stream string, seq int64) bool {
	entries, ok := sub.hub.Since(stream, seq)
	if !ok {
		return false
	}
	sub.stream, sub.seq = stream, seq
	for _, e := range entries {
		if err := sub.send(revocation.EventRevocation, revocation.EventID(stream, e.Seq), e); err != nil {
			return true // the write failed; the loop ends on the next one
		}
		sub.seq = e.Seq
	}
	if len(entries) > 0 {
		_ = sub.rc.Flush()
	}
	return true
}

func (sub *subscriber) snapshot() error {
	snap, err := sub.hub.Snapshot()
	if err != nil {
		return err
	}
	if err := sub.send(revocation.EventSnapshot, revocation.EventID(snap.Stream, snap.Seq), snap); err != nil {
		return err
	}
	sub.stream, sub.seq = snap.Stream, snap.Seq
	return sub.rc.Flush()
}

// heartbeat says where the stream stands; it fails when the hub is stale,
// which ends the stream.
func (sub *subscriber) heartbeat() error {
	pos, err := sub.hub.Position()
	if err != nil {
		return err
	}
	if pos.Stream != sub.stream {
		return sub.snapshot()
	}
	if pos.Seq > sub.seq {
		// Entries the stream has not sent yet: send them first, so that a
		// heartbeat never says more than the subscriber was given.
		sub.resume(sub.stream, sub.seq)
	}
	hb := revocation.Heartbeat{Stream: sub.stream, Seq: sub.seq, Time: time.Now().Unix()}
	if err := sub.send(revocation.EventHeartbeat, "", hb); err != nil {
		return err
	}
	return sub.rc.Flush()
}

// send writes one event with a bounded write deadline.
func (sub *subscriber) send(event, id string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_ = sub.rc.SetWriteDeadline(time.Now().Add(feedWriteTimeout))
	if id != "" {
		_, err = fmt.Fprintf(sub.w, "event: %s\nid: %s\ndata: %s\n\n", event, id, b)
	} else {
		_, err = fmt.Fprintf(sub.w, "event: %s\ndata: %s\n\n", event, b)
	}
	return err
}

// heartbeatParam reads the heartbeat query parameter (a Go duration such as
// "1s"), clamped to what the server allows.
func heartbeatParam(v string) (time.Duration, error) {
	if v == "" {
		return defaultHeartbeat, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, oauth.InvalidRequest("heartbeat_invalid", "heartbeat must be a duration such as 1s", errors.Join(err))
	}
	return min(max(d, minHeartbeat), maxHeartbeat), nil
}
