package server

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/mandate-dev/mandate/oauth"
	"github.com/mandate-dev/mandate/revocation"
)

// CAEP event types (OpenID Continuous Access Evaluation Profile 1.0 §3) the
// revocation feed is published as.
const (
	caepSessionRevoked    = "https://schemas.openid.net/secevent/caep/event-type/session-revoked"
	caepTokenClaimsChange = "https://schemas.openid.net/secevent/caep/event-type/token-claims-change"
	caepCredentialChange  = "https://schemas.openid.net/secevent/caep/event-type/credential-change"
)

// Poll bounds (RFC 8936).
const (
	defaultMaxEvents = 100
	maxMaxEvents     = 1000
	longPollWait     = 20 * time.Second
)

// pollRequest is an RFC 8936 §2.4 poll request. Acknowledgements are read
// as a position: the receiver has every SET up to the highest one it acks
// (SETs are delivered in order), so the server keeps no state per receiver
// and unacknowledged SETs come again.
type pollRequest struct {
	Ack               []string          `json:"ack"`
	MaxEvents         *int              `json:"maxEvents"`
	ReturnImmediately bool              `json:"returnImmediately"`
	SetErrs           map[string]setErr `json:"setErrs"`
}

type setErr struct {
	Err         string `json:"err"`
	Description string `json:"description"`
}

// pollResponse is an RFC 8936 §2.5 response.
type pollResponse struct {
	Sets          map[string]string `json:"sets"`
	MoreAvailable bool              `json:"moreAvailable"`
}

// securityEvents answers POST /revocations/sets: the revocation feed as
// Security Event Tokens (RFC 8417) carrying CAEP events, delivered by RFC
// 8936 polling to receivers that speak the Shared Signals Framework.
func (s *Server) securityEvents(w http.ResponseWriter, r *http.Request) error {
	actx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	reader, err := s.feedReader(r.WithContext(actx))
	cancel()
	if err != nil {
		return err
	}
	var req pollRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	limit := defaultMaxEvents
	if req.MaxEvents != nil {
		limit = min(max(*req.MaxEvents, 0), maxMaxEvents)
	}
	pos, err := s.cfg.Feed.Position()
	if err != nil {
		return oauth.Unavailable("revocation_feed_stale", err)
	}
	after := int64(0)
	for _, jti := range req.Ack {
		if stream, seq, ok := parseSETID(jti); ok && stream == pos.Stream {
			after = max(after, seq)
		}
	}
	entries, ok := s.cfg.Feed.Since(pos.Stream, after)
	if !ok {
		entries, _ = s.cfg.Feed.Since(pos.Stream, 0)
	}
	// A long poll holds a response open as a stream does, and counts
	// against the reader's streams (THREATS T87): a reader that holds them
	// all is answered at once, as a short poll, instead of waiting.
	if len(entries) == 0 && !req.ReturnImmediately && limit > 0 && s.openStreams.acquire(reader) {
		defer s.openStreams.release(reader)
		// A long poll outlives the server's read and write timeouts.
		rc := http.NewResponseController(w)
		_ = rc.SetReadDeadline(time.Time{})
		_ = rc.SetWriteDeadline(time.Now().Add(longPollWait + feedWriteTimeout))
		timer := time.NewTimer(longPollWait)
		defer timer.Stop()
		select {
		case <-pos.Changed:
			entries, _ = s.cfg.Feed.Since(pos.Stream, after)
		case <-timer.C:
		case <-s.draining:
		case <-r.Context().Done():
			return nil
		}
	}
	resp := pollResponse{Sets: map[string]string{}, MoreAvailable: len(entries) > limit}
	for _, e := range entries[:min(len(entries), limit)] {
		jti := setID(pos.Stream, e.Seq)
		raw, err := s.cfg.Keys.SignSecurityEvent(r.Context(), s.securityEvent(jti, e))
		if err != nil {
			return oauth.Unavailable("signing_unavailable", err)
		}
		resp.Sets[jti] = raw
	}
	w.Header().Set("Cache-Control", "no-store")
	oauth.WriteJSON(w, http.StatusOK, resp)
	return nil
}

// securityEvent maps a revocation entry to SET claims with one CAEP event:
// a token, a person or a delegation revoked is session-revoked; a
// permission removed is token-claims-change; an agent disabled or a signing
// key revoked is credential-change. mandate_kind and mandate_scope carry
// the entry itself for receivers that want it exactly.
func (s *Server) securityEvent(jti string, e revocation.Entry) map[string]any {
	at := s.cfg.Now().Unix()
	subject := map[string]any{"format": "opaque", "id": e.ID}
	event := map[string]any{"event_timestamp": at, "initiating_entity": "admin", "mandate_kind": e.Kind}
	eventType := caepSessionRevoked
	switch e.Kind {
	case revocation.KindSubject:
		subject = map[string]any{"format": "iss_sub", "iss": s.cfg.Issuer, "sub": e.ID}
	case revocation.KindScope:
		subject = map[string]any{"format": "iss_sub", "iss": s.cfg.Issuer, "sub": e.ID}
		eventType = caepTokenClaimsChange
		event["claims"] = map[string]any{"scope_removed": e.Scope}
		event["mandate_scope"] = e.Scope
	case revocation.KindAgent:
		eventType = caepCredentialChange
		event["credential_type"] = "app"
		event["change_type"] = "revoke"
	case revocation.KindKey:
		eventType = caepCredentialChange
		event["credential_type"] = "x509"
		event["change_type"] = "revoke"
		subject = map[string]any{"format": "opaque", "id": "jwk:" + e.ID}
	}
	return map[string]any{
		"iss":    s.cfg.Issuer,
		"jti":    jti,
		"iat":    at,
		"aud":    s.cfg.Issuer + "/revocations/sets",
		"sub_id": subject,
		"events": map[string]any{eventType: event},
	}
}

// setID is the jti of the SET for an entry: "<stream>-<seq>".
func setID(stream string, seq int64) string {
	return fmt.Sprintf("%s-%d", stream, seq)
}

func parseSETID(jti string) (stream string, seq int64, ok bool) {
	i := strings.LastIndexByte(jti, '-')
	if i <= 0 || len(jti) > 64 {
		return "", 0, false
	}
	seq, err := strconv.ParseInt(jti[i+1:], 10, 64)
	if err != nil || seq < 0 {
		return "", 0, false
	}
	return jti[:i], seq, true
}
