package server_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mandate-dev/mandate/internal/store"
	"github.com/mandate-dev/mandate/oauth"
	"github.com/mandate-dev/mandate/verify"
	"github.com/mandate-dev/mandate/verify/forward"
)

// expenseAPI is an API for the audience https://expense.example behind a
// real verify.Middleware whose records a real forward.Forwarder sends to
// the harness's POST /audit/ingest as rs:reporter, all in one batch when
// the forwarder closes.
type expenseAPI struct {
	url string
	fwd *forward.Forwarder
}

func (h *harness) expenseAPI() *expenseAPI {
	h.t.Helper()
	ctx := context.Background()
	fwd, err := forward.New(ctx, forward.Config{
		URL: h.url + "/audit/ingest", ClientID: "rs:reporter", ClientSecret: "rs-reporter-secret",
		BatchSize: 100, FlushEvery: time.Hour,
	})
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { _ = fwd.Close(ctx) })
	v, err := verify.New(ctx, verify.Config{
		Issuer: h.url, Audience: "https://expense.example", Algorithms: []string{"EdDSA", "ES256", "RS256"},
		JWKSURI: h.url + "/jwks", Records: fwd,
	})
	if err != nil {
		h.t.Fatal(err)
	}
	api := httptest.NewServer(v.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/approve" {
			verify.SetAction(r.Context(), "expense:approve", "expense/EXP-1042")
		}
	})))
	h.t.Cleanup(api.Close)
	return &expenseAPI{url: api.URL, fwd: fwd}
}

// get sends GET path to the API with the bearer token (none when "").
func (a *expenseAPI) get(t *testing.T, path, tok string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, a.url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// alicesExpenseToken is agent:expense's token for Alice, addressed to the
// expense API.
func (h *harness) alicesExpenseToken() string {
	return h.mustExchange("agent:expense", h.idp.token(h.t, "user:alice", nil), oauth.TokenTypeIDToken,
		url.Values{"audience": {"https://expense.example"}, "scope": {"expense:approve"}})
}

// TestLongPathDoesNotEraseGrantedRecords (THREATS T100): an
// unauthenticated request with a 100 KB path, and one with a NUL and
// control bytes in its path, in the same flush as a granted request: every
// record reaches the issuer's log, the granted one intact, the hostile
// ones bounded and escaped, on both backends. And a record holding a NUL
// (as a forwarder of an older verify sends it) is refused alone: the
// records after it are stored, forwarding does not stop.
func TestLongPathDoesNotEraseGrantedRecords(t *testing.T) {
	onEveryBackend(t, func(t *testing.T, h *harness) {
		api := h.expenseAPI()
		tok := h.alicesExpenseToken()
		long := "/" + strings.Repeat("a", 100_000)
		for _, r := range []struct {
			path, tok string
			status    int
		}{{long, "", 401}, {"/approve", tok, 200}, {"/a%00b%0Ac", "", 401}} {
			if got := api.get(t, r.path, r.tok); got != r.status {
				t.Fatalf("GET %.40s: %d, want %d", r.path, got, r.status)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := api.fwd.Close(ctx); err != nil {
			t.Fatalf("closing the forwarder: %v", err)
		}
		if st := api.fwd.Stats(); st.Sent != 3 || st.Rejected != 0 || st.Dropped != 0 {
			t.Errorf("forwarder stats %+v, want 3 sent", st)
		}
		granted := h.events(store.EventFilter{Action: "request", Result: "granted"})
		if len(granted) != 1 || granted[0].Resource != "expense/EXP-1042" || granted[0].Operation != "expense:approve" ||
			granted[0].Performer != "agent:expense" || granted[0].OnBehalf != "user:alice" || granted[0].ReportedBy != "rs:reporter" {
			t.Fatalf("the granted request's record: %+v", granted)
		}
		byResource := map[string]bool{}
		for _, ev := range h.events(store.EventFilter{Action: "request", Result: "refused", Actor: ""}) {
			if ev.ReportedBy == "rs:reporter" {
				byResource[ev.Resource] = true
			}
		}
		wantLong := "/" + strings.Repeat("a", 1024-1-len("…[truncated]")) + "…[truncated]"
		for _, want := range []string{wantLong, `/a\x00b\x0ac`} {
			if !byResource[want] {
				t.Errorf("no refused request record with resource %.60q… (have %d)", want, len(byResource))
			}
		}

		// Records as an older verify forwards them: a NUL in a field.
		fwd, err := forward.New(ctx, forward.Config{
			URL: h.url + "/audit/ingest", ClientID: "rs:reporter", ClientSecret: "rs-reporter-secret", FlushEvery: time.Hour,
		})
		if err != nil {
			t.Fatal(err)
		}
		rec := func(n int, resource string) verify.Record {
			return verify.Record{ID: fmt.Sprintf("req_%032x", n), Time: time.Now().UTC(), Action: "GET", Resource: resource,
				Result: verify.ResultRefused, Reason: "token_missing", Audience: "https://expense.example"}
		}
		fwd.Record(rec(1, "/a\x00b"))
		fwd.Record(rec(2, "/after-the-nul"))
		if err := fwd.Close(ctx); err != nil {
			t.Fatalf("closing the second forwarder: %v", err)
		}
		if st := fwd.Stats(); st.Sent != 1 || st.Rejected != 1 {
			t.Errorf("forwarder stats %+v, want 1 sent, 1 rejected", st)
		}
		if evs := h.events(store.EventFilter{Action: "request", Resource: "/after-the-nul"}); len(evs) != 1 {
			t.Errorf("the record after the NUL: %d stored, want 1", len(evs))
		}
		h.verifyLog()
	})
}
