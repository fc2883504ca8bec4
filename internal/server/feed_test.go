package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/mandate-dev/mandate/oauth"
	"github.com/mandate-dev/mandate/revocation"
)

// sseEvent is one Server-Sent Event.
type sseEvent struct {
	name, id, data string
}

// stream is a subscriber of /revocations/stream.
type stream struct {
	t      *testing.T
	resp   *http.Response
	cancel context.CancelFunc
	events chan sseEvent
}

// close ends the subscription.
func (s *stream) close() { s.cancel(); s.resp.Body.Close() }

// configSecret is the secret testConfig gives client: "rs:deploy" has
// "rs-deploy-secret", "agent:argocd" "argocd-secret".
func configSecret(client string) string {
	return strings.ReplaceAll(strings.TrimPrefix(client, "agent:"), ":", "-") + "-secret"
}

// subscribe opens the revocation stream as client (HTTP Basic), resuming
// from lastID when it is not "".
func (h *harness) subscribe(client, lastID string) *stream {
	h.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, h.url+"/revocations/stream?heartbeat=200ms", nil)
	req.SetBasicAuth(url.QueryEscape(client), url.QueryEscape(configSecret(client)))
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		h.t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		cancel()
		h.t.Fatalf("stream: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	s := &stream{t: h.t, resp: resp, cancel: cancel, events: make(chan sseEvent, 100)}
	go func() {
		defer close(s.events)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 1<<20)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				s.events <- ev
				ev = sseEvent{}
			case strings.HasPrefix(line, "event: "):
				ev.name = line[len("event: "):]
			case strings.HasPrefix(line, "id: "):
				ev.id = line[len("id: "):]
			case strings.HasPrefix(line, "data: "):
				ev.data = line[len("data: "):]
			}
		}
	}()
	h.t.Cleanup(s.close)
	return s
}

// next returns the next event other than a heartbeat.
func (s *stream) next() sseEvent {
	s.t.Helper()
	deadline := time.After(3 * time.Second)
	for {
		select {
		case ev, ok := <-s.events:
			if !ok {
				s.t.Fatal("the stream ended")
			}
			if ev.name != revocation.EventHeartbeat {
				return ev
			}
		case <-deadline:
			s.t.Fatal("no event within 3 s")
		}
	}
}

func (s *stream) snapshot() revocation.Snapshot {
	s.t.Helper()
	ev := s.next()
	var snap revocation.Snapshot
	if ev.name != revocation.EventSnapshot || json.Unmarshal([]byte(ev.data), &snap) != nil {
		s.t.Fatalf("want a snapshot, got %+v", ev)
	}
	return snap
}

func (s *stream) entry() (revocation.Entry, string) {
	s.t.Helper()
	ev := s.next()
	var e revocation.Entry
	if ev.name != revocation.EventRevocation || json.Unmarshal([]byte(ev.data), &e) != nil {
		s.t.Fatalf("want a revocation, got %+v", ev)
	}
	return e, ev.id
}

// TestRevocationFeed: every kind of revocation made through the admin API
// reaches a subscriber as the entry that revokes exactly the tokens it
// should (THREATS.md T52).
func TestRevocationFeed(t *testing.T) {
	h := newHarness(t)
	sub := h.subscribe("rs:deploy", "")
	snap := sub.snapshot()
	if snap.Stream == "" || len(snap.Entries) != 0 {
		t.Fatalf("first snapshot = %+v, want an empty one with a stream", snap)
	}
	set := revocation.NewSet()
	if err := set.Reset(snap); err != nil {
		t.Fatal(err)
	}
	kid := h.app.Keys.ActiveKID()
	cases := []struct {
		name   string
		revoke func() string // returns the id the entry names
		want   revocation.Entry
	}{
		{name: "ok/token", revoke: func() string {
			jti := claims(t, h.hop1("monitoring:read"))["jti"].(string)
			h.admin(http.MethodPost, "/admin/revoke", map[string]string{"jti": jti})
			return jti
		}, want: revocation.Entry{Kind: revocation.KindToken}},
		{name: "ok/subject", revoke: func() string {
			h.admin(http.MethodPost, "/admin/revoke", map[string]string{"subject": "user:alex"})
			return "user:alex"
		}, want: revocation.Entry{Kind: revocation.KindSubject}},
		{name: "ok/scope", revoke: func() string {
			h.admin(http.MethodPut, "/admin/users/user:sam/permissions", map[string]any{"permissions": []string{"deploy:create", "secrets:manage", "deploy:tag"}})
			return "user:sam"
		}, want: revocation.Entry{Kind: revocation.KindScope, Scope: "monitoring:read"}},
		{name: "ok/agent", revoke: func() string {
			h.admin(http.MethodPost, "/admin/agents/agent:cleanup_agent/disable", nil)
			return "agent:cleanup_agent"
		}, want: revocation.Entry{Kind: revocation.KindAgent}},
		{name: "ok/delegation", revoke: func() string {
			r := h.admin(http.MethodGet, "/admin/delegations?subject=user:alice", nil)
			id := r.body["delegations"].([]any)[0].(map[string]any)["id"].(string)
			if r := h.admin(http.MethodDelete, "/admin/delegations/"+id, nil); r.status != http.StatusOK {
				t.Fatalf("delete delegation: %d %s", r.status, r.raw)
			}
			return id
		}, want: revocation.Entry{Kind: revocation.KindDelegation}},
		{name: "ok/key", revoke: func() string {
			if _, err := h.app.Keys.Rotate(context.Background()); err != nil {
				t.Fatal(err)
			}
			if err := h.app.Keys.RevokeKey(context.Background(), kid); err != nil {
				t.Fatal(err)
			}
			return kid
		}, want: revocation.Entry{Kind: revocation.KindKey}},
	}
	seq := snap.Seq
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id := tc.revoke()
			e, eid := sub.entry()
			seq++
			if e.Seq != seq || eid != snap.Stream+"/"+itoa(seq) {
				t.Errorf("entry seq %d id %q, want %d and %s/%d", e.Seq, eid, seq, snap.Stream, seq)
			}
			if e.Kind != tc.want.Kind || e.ID != id || e.Scope != tc.want.Scope {
				t.Errorf("entry = %+v, want kind %s id %s scope %q", e, tc.want.Kind, id, tc.want.Scope)
			}
			if err := e.Validate(); err != nil {
				t.Error(err)
			}
			if e.Until < time.Now().Unix() {
				t.Errorf("until %d is already past", e.Until)
			}
			if err := set.Apply(e); err != nil {
				t.Fatal(err)
			}
		})
	}
	// A resumed subscriber gets what followed its position, not a snapshot.
	resumed := h.subscribe("rs:deploy", snap.Stream+"/"+itoa(snap.Seq+2))
	if e, _ := resumed.entry(); e.Seq != snap.Seq+3 {
		t.Errorf("resumed at %d: first entry %d, want %d", snap.Seq+2, e.Seq, snap.Seq+3)
	}
	// One from another stream, or from the future, starts from a snapshot
	// that holds everything in force.
	// (As another resource server: one holds at most 4 streams.)
	for _, id := range []string{"other/3", snap.Stream + "/999", "garbage"} {
		again := h.subscribe("rs:reporter", id).snapshot()
		if again.Seq != seq || len(again.Entries) != len(cases) {
			t.Errorf("Last-Event-ID %q: snapshot at %d with %d entries, want %d with %d", id, again.Seq, len(again.Entries), seq, len(cases))
		}
	}
	r := h.admin(http.MethodGet, "/revocations", nil)
	if r.status != http.StatusOK || len(r.body["entries"].([]any)) != len(cases) {
		t.Errorf("GET /revocations: %d %s", r.status, r.raw)
	}
	// The server's own metrics: open streams and where the feed stands.
	metrics := h.do(mustRequest(t, h.url+"/metrics")).raw
	for _, want := range []string{
		"mandate_revocation_feed_subscribers ",
		fmt.Sprintf("mandate_revocation_feed_sequence %d\n", seq),
		"mandate_revocation_feed_staleness_seconds ",
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if strings.Contains(metrics, "mandate_revocation_feed_subscribers 0\n") {
		t.Error("/metrics counts no open stream while several are open")
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// TestRevocationFeedAuthentication: the feed is for registered clients and
// the administrator only, and a refusal is RFC 6749 JSON (which clients:
// TestFeedReadersOnly).
func TestRevocationFeedAuthentication(t *testing.T) {
	h := newHarness(t)
	cases := []struct {
		name   string
		auth   func(*http.Request)
		status int
	}{
		{name: "fail/none", auth: func(*http.Request) {}, status: http.StatusUnauthorized},
		{name: "fail/wrong-secret", auth: func(r *http.Request) { r.SetBasicAuth("agent:argocd", "nope") }, status: http.StatusUnauthorized},
		{name: "fail/unknown-client", auth: func(r *http.Request) { r.SetBasicAuth("agent:ghost", "x") }, status: http.StatusUnauthorized},
		{name: "fail/wrong-admin-token", auth: func(r *http.Request) { r.Header.Set("Authorization", "Bearer nope") }, status: http.StatusUnauthorized},
		{name: "ok/client", auth: func(r *http.Request) { r.SetBasicAuth("rs%3Adeploy", "rs-deploy-secret") }, status: http.StatusOK},
		{name: "ok/admin", auth: func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+adminToken) }, status: http.StatusOK},
	}
	for _, tc := range cases {
		for _, path := range []string{"/revocations", "/revocations/stream"} {
			t.Run(tc.name+path, func(t *testing.T) {
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, h.url+path, nil)
				tc.auth(req)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				if resp.StatusCode != tc.status {
					t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
				}
				if tc.status != http.StatusOK {
					var body oauth.Body
					if json.NewDecoder(resp.Body).Decode(&body) != nil || body.Error != oauth.ErrInvalidClient && body.Error != oauth.ErrInvalidToken {
						t.Errorf("refusal body %+v", body)
					}
				}
			})
		}
	}
}

// TestRevocationsSurviveReenabling: giving a permission back or enabling an
// agent again does not bring the tokens it revoked back to life, and new
// tokens work (THREATS.md T56, the generation is a counter).
func TestRevocationsSurviveReenabling(t *testing.T) {
	h := newHarness(t)
	withMonitoring := h.hop1("monitoring:read")
	withoutMonitoring := h.hop1("deploy:create")
	argo := h.mustExchange("agent:argocd", h.hop1("deploy:create"), oauth.TokenTypeAccessToken, url.Values{"audience": {"https://deploy.example"}})
	active := func(tok string) bool {
		t.Helper()
		// Introspected by the client it was issued to, which may see it.
		r := h.post("/introspect", claims(t, tok)["client_id"].(string), url.Values{"token": {tok}})
		if r.status != http.StatusOK {
			t.Fatalf("introspect: %d %s", r.status, r.raw)
		}
		return r.body["active"] == true
	}
	for _, tok := range []string{withMonitoring, withoutMonitoring, argo} {
		if !active(tok) {
			t.Fatal("a token is inactive before any revocation")
		}
	}
	h.admin(http.MethodPut, "/admin/users/user:sam/permissions", map[string]any{"permissions": []string{"deploy:create", "secrets:manage", "deploy:tag"}})
	h.admin(http.MethodPut, "/admin/users/user:sam/permissions", map[string]any{"permissions": []string{"monitoring:read", "deploy:create", "secrets:manage", "deploy:tag"}})
	h.admin(http.MethodPost, "/admin/agents/agent:argocd/disable", nil)
	h.admin(http.MethodPost, "/admin/agents/agent:argocd/enable", nil)
	if active(withMonitoring) {
		t.Error("a token carrying a scope that was removed and given back is active again")
	}
	if !active(withoutMonitoring) {
		t.Error("a token without the removed scope was revoked")
	}
	if active(argo) {
		t.Error("a token of an agent disabled and enabled again is active again")
	}
	fresh := h.mustExchange("agent:argocd", h.hop1("monitoring:read deploy:create"), oauth.TokenTypeAccessToken, url.Values{"audience": {"https://deploy.example"}})
	if !active(fresh) {
		t.Error("a token minted after the agent was enabled again is not active")
	}
	c := claims(t, fresh)
	if gen, _ := c["gen"].(float64); gen <= 0 {
		t.Errorf("gen claim = %v, want the positive store generation", c["gen"])
	}
	if from, _ := c["exchanged_from"].([]any); len(from) != 1 {
		t.Errorf("exchanged_from = %v, want the hop-1 jti", c["exchanged_from"])
	}
}

// TestSecurityEventTokens: the feed as RFC 8417 SETs with CAEP events,
// polled as RFC 8936 says, signed with a published key and typed so that
// no verifier takes one for an access token.
func TestSecurityEventTokens(t *testing.T) {
	h := newHarness(t)
	jti := claims(t, h.hop1("monitoring:read"))["jti"].(string)
	h.admin(http.MethodPost, "/admin/revoke", map[string]string{"jti": jti})
	h.admin(http.MethodPost, "/admin/agents/agent:cleanup_agent/disable", nil)
	poll := func(body string) map[string]any {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, h.url+"/revocations/sets", strings.NewReader(body))
		req.SetBasicAuth("rs%3Adeploy", "rs-deploy-secret")
		req.Header.Set("Content-Type", "application/json")
		r := h.do(req)
		if r.status != http.StatusOK {
			t.Fatalf("poll: %d %s", r.status, r.raw)
		}
		return r.body
	}
	var jwks jose.JSONWebKeySet
	if err := json.Unmarshal([]byte(h.do(mustRequest(t, h.url+"/jwks")).raw), &jwks); err != nil {
		t.Fatal(err)
	}
	// The hub reads new entries within 100 ms of a write: wait for both.
	var first map[string]any
	for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		first = poll(`{"returnImmediately":true}`)
		if sets, _ := first["sets"].(map[string]any); len(sets) >= 2 || time.Now().After(deadline) {
			break
		}
	}
	sets, _ := first["sets"].(map[string]any)
	if len(sets) != 2 || first["moreAvailable"] != false {
		t.Fatalf("first poll = %v, want 2 SETs", first)
	}
	var events []string
	var lastID string
	for id, raw := range sets {
		obj, err := jose.ParseSigned(raw.(string), []jose.SignatureAlgorithm{jose.EdDSA, jose.ES256, jose.RS256})
		if err != nil {
			t.Fatal(err)
		}
		if typ := obj.Signatures[0].Protected.ExtraHeaders[jose.HeaderType]; typ != "secevent+jwt" {
			t.Errorf("typ = %v, want secevent+jwt", typ)
		}
		keys := jwks.Key(obj.Signatures[0].Protected.KeyID)
		if len(keys) != 1 {
			t.Fatalf("SET signed by a key not in the JWKS")
		}
		payload, err := obj.Verify(keys[0])
		if err != nil {
			t.Fatal(err)
		}
		var set map[string]any
		_ = json.Unmarshal(payload, &set)
		if set["jti"] != id || set["iss"] != h.url {
			t.Errorf("SET %s: jti %v iss %v", id, set["jti"], set["iss"])
		}
		for typ, ev := range set["events"].(map[string]any) {
			events = append(events, typ+" "+ev.(map[string]any)["mandate_kind"].(string))
		}
		if id > lastID {
			lastID = id
		}
	}
	for _, want := range []string{
		"https://schemas.openid.net/secevent/caep/event-type/session-revoked token",
		"https://schemas.openid.net/secevent/caep/event-type/credential-change agent",
	} {
		if !strings.Contains(strings.Join(events, "\n"), want) {
			t.Errorf("events %v lack %q", events, want)
		}
	}
	if again := poll(`{"returnImmediately":true,"ack":["` + lastID + `"]}`); len(again["sets"].(map[string]any)) != 0 {
		t.Errorf("after acknowledging everything: %v, want no SET", again)
	}
}

func mustRequest(t *testing.T, u string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}
