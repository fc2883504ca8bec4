package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mandate-dev/mandate/internal/audit"
	"github.com/mandate-dev/mandate/internal/store"
	"github.com/mandate-dev/mandate/oauth"
)

// feedRequest is a request to the revocation feed at path (a POST with a
// poll body for the SETs) authenticated by client ("admin" for the admin
// bearer token).
func (h *harness) feedRequest(ctx context.Context, path, client string) *http.Request {
	method, body := http.MethodGet, ""
	if strings.HasSuffix(path, "/sets") {
		method, body = http.MethodPost, `{"returnImmediately":true}`
	}
	req, _ := http.NewRequestWithContext(ctx, method, h.url+path, strings.NewReader(body))
	if method == http.MethodPost {
		req.Header.Set("Content-Type", "application/json")
	}
	if client == "admin" {
		req.Header.Set("Authorization", "Bearer "+adminToken)
	} else {
		req.SetBasicAuth(url.QueryEscape(client), url.QueryEscape(configSecret(client)))
	}
	return req
}

// TestFeedReadersOnly is THREATS T87: the revocation feed (who was
// revoked, every delegation id), as a snapshot, a stream or SETs, is read
// by resource servers (clients with no scopes, or only audit:report) and
// the admin; an agent, a client with scopes, is refused 403 with an RFC
// 6749 error and the refusal recorded. One reader holds at most 4 streams
// at once: the fifth is answered 429 with Retry-After (recorded), another
// reader is not held back, a closed stream frees its place, and a SET long
// poll past the cap is answered at once.
func TestFeedReadersOnly(t *testing.T) {
	h := newHarness(t)
	paths := []string{"/revocations", "/revocations/stream", "/revocations/sets"}
	cases := []struct {
		name   string
		client string
		status int
	}{
		{name: "fail/agent", client: "agent:argocd", status: http.StatusForbidden},
		{name: "fail/agent-with-few-scopes", client: "agent:reaper", status: http.StatusForbidden},
		{name: "ok/resource-server", client: "rs:deploy", status: http.StatusOK},
		{name: "ok/resource-server-that-reports", client: "rs:reporter", status: http.StatusOK},
		{name: "ok/admin", client: "admin", status: http.StatusOK},
	}
	for _, tc := range cases {
		for _, path := range paths {
			t.Run(tc.name+path, func(t *testing.T) {
				seq := h.lastSeq()
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				resp, err := http.DefaultClient.Do(h.feedRequest(ctx, path, tc.client))
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				if resp.StatusCode != tc.status {
					t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
				}
				if tc.status == http.StatusOK {
					return
				}
				var body oauth.Body
				if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.Error != oauth.ErrAccessDenied || body.Description == "" ||
					resp.Header.Get("Content-Type") != "application/json" {
					t.Errorf("refusal: %s %+v (%v)", resp.Header.Get("Content-Type"), body, err)
				}
				got := h.eventsSince(seq)
				if len(got) != 1 || got[0].Action != audit.ActionRequest || got[0].Result != audit.ResultRefused ||
					got[0].Reason != "feed_not_allowed" || got[0].ClientID != tc.client || got[0].Resource != path {
					t.Errorf("records of the refusal: %s, want one request record naming %s and %s", eventsJSON(got), tc.client, path)
				}
			})
		}
	}

	t.Run("fail/fifth-stream", func(t *testing.T) {
		h := newHarness(t)
		var open []*stream
		for range 4 {
			s := h.subscribe("rs:deploy", "")
			s.snapshot()
			open = append(open, s)
		}
		resp, err := http.DefaultClient.Do(h.feedRequest(context.Background(), "/revocations/stream", "rs:deploy"))
		if err != nil {
			t.Fatal(err)
		}
		var body oauth.Body
		_ = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" || body.Error != oauth.ErrTemporarilyUnavailable {
			t.Fatalf("fifth stream: %d Retry-After %q %+v, want 429 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"), body)
		}
		var recorded bool
		for _, ev := range h.events(store.EventFilter{Action: audit.ActionRequest, Result: audit.ResultRefused}) {
			recorded = recorded || ev.Reason == "stream_limit" && ev.ClientID == "rs:deploy" && ev.Resource == "/revocations/stream"
		}
		if !recorded {
			t.Error("the refused fifth stream left no record")
		}
		// Another reader is not held back.
		h.subscribe("rs:reporter", "").snapshot()
		// A SET long poll past the cap does not wait its 20 s.
		start := time.Now()
		req, _ := http.NewRequest(http.MethodPost, h.url+"/revocations/sets", strings.NewReader(`{"returnImmediately":false}`))
		req.Header.Set("Content-Type", "application/json")
		req.SetBasicAuth("rs%3Adeploy", "rs-deploy-secret")
		if r := h.do(req); r.status != http.StatusOK || time.Since(start) > 5*time.Second {
			t.Errorf("long poll past the cap: %d after %v %s, want 200 at once", r.status, time.Since(start), r.raw)
		}
		// A closed stream frees its place once the server has seen it go.
		open[0].close()
		deadline := time.Now().Add(5 * time.Second)
		for {
			resp, err := http.DefaultClient.Do(h.feedRequest(t.Context(), "/revocations/stream", "rs:deploy"))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("after closing a stream: %d, want a place again", resp.StatusCode)
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}
