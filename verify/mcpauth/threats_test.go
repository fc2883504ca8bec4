package mcpauth_test

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mandate-dev/mandate/verify"
	"github.com/mandate-dev/mandate/verify/mcpauth"
)

// rawSession opens an MCP session with raw JSON-RPC (initialize, then
// notifications/initialized) and returns its id, so that a test can send
// messages the SDK's client would never build.
func (f *fixture) rawSession(t *testing.T, token string) string {
	t.Helper()
	resp := f.post(t, token, `{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`)
	io.Copy(io.Discard, resp.Body)
	id := resp.Header.Get("Mcp-Session-Id")
	if resp.StatusCode != http.StatusOK || id == "" {
		t.Fatalf("initialize: %d, session %q", resp.StatusCode, id)
	}
	resp = f.postIn(t, token, id, `{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	io.Copy(io.Discard, resp.Body)
	if resp.StatusCode >= 300 {
		t.Fatalf("initialized: %d", resp.StatusCode)
	}
	return id
}

// postIn is post within session.
func (f *fixture) postIn(t *testing.T, token, session, body string) *http.Response {
	t.Helper()
	resp, _ := f.send(t, token, session, body)
	return resp
}

// send is postIn with an X-Request-Id of its own; it returns the id, by
// which recordOf finds the request's record.
func (f *fixture) send(t *testing.T, token, session, body string) (*http.Response, string) {
	t.Helper()
	var b [8]byte
	_, _ = rand.Read(b[:])
	id := "t95-" + hex.EncodeToString(b[:])
	req, _ := http.NewRequest(http.MethodPost, f.endpoint, strings.NewReader(body))
	req.Header.Set("X-Request-Id", id)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Mcp-Session-Id", session)
	req.Header.Set("Mcp-Protocol-Version", "2025-06-18")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp, id
}

// recordOf waits for the record of the request with X-Request-Id id.
func (r *records) recordOf(t *testing.T, id string) verify.Record {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		r.mu.Lock()
		for _, rec := range r.list {
			if rec.RequestID == id {
				r.mu.Unlock()
				return rec
			}
		}
		r.mu.Unlock()
	}
	t.Fatalf("no record of request %s", id)
	return verify.Record{}
}

// callTool is a tools/call of name as raw JSON-RPC, with id.
func callTool(id int, name string) string {
	n, _ := json.Marshal(name)
	return `{"jsonrpc":"2.0","id":` + string(rune('0'+id)) + `,"method":"tools/call","params":{"name":` + string(n) + `,"arguments":{}}}`
}

// TestT95ToolScopeBypass is THREATS T95. With a token holding
// monitoring:read only: a call of deploy (deploy:create) is answered 403
// insufficient_scope naming deploy:create, and so is a batch mixing it
// with an allowed call, whichever comes first (no call of the batch runs,
// and the record names deploy); a call of deploy spelt in another case or
// with Unicode look-alikes (fullwidth, Cyrillic, zero-width joiner, zero
// width space, trailing space, NUL) names no tool of the map and is
// refused inside the SDK before any tool runs, its record naming the tool
// as sent, control characters escaped; and a message whose method, params
// or name repeats or comes in another case, which the SDK's decoder and
// this one could read as different tools, is refused before the SDK.
func TestT95ToolScopeBypass(t *testing.T) {
	f := newFixture(t)
	readOnly := f.token("monitoring:read")
	session := f.rawSession(t, readOnly)

	t.Run("scope", func(t *testing.T) {
		for _, tc := range []struct {
			name, body string
			// challenge is the scope the 403 names.
			challenge string
		}{
			{name: "fail/deploy", body: callTool(1, "deploy"), challenge: `scope="deploy:create"`},
			{name: "fail/batch-allowed-then-denied", body: "[" + callTool(1, "metrics") + "," + callTool(2, "deploy") + "]", challenge: `scope="monitoring:read deploy:create"`},
			{name: "fail/batch-denied-then-allowed", body: "[" + callTool(1, "deploy") + "," + callTool(2, "metrics") + "]", challenge: `scope="deploy:create monitoring:read"`},
			{name: "fail/batch-ping-then-denied", body: `[{"jsonrpc":"2.0","id":1,"method":"ping"},` + callTool(2, "deploy") + "]", challenge: `scope="deploy:create"`},
		} {
			t.Run(tc.name, func(t *testing.T) {
				resp, id := f.send(t, readOnly, session, tc.body)
				got := resp.Header.Get("WWW-Authenticate")
				if resp.StatusCode != http.StatusForbidden || !strings.Contains(got, `error="insufficient_scope"`) || !strings.Contains(got, tc.challenge) {
					t.Errorf("%d %q, want 403 insufficient_scope naming %s", resp.StatusCode, got, tc.challenge)
				}
				if rec := f.records.recordOf(t, id); rec.Action != "tools/call" || rec.Resource != "tool/deploy" || rec.Result != verify.ResultRefused || rec.Reason != "insufficient_scope" {
					t.Errorf("record %s %s %s %s, want tools/call tool/deploy refused insufficient_scope", rec.Action, rec.Resource, rec.Result, rec.Reason)
				}
			})
		}
	})

	t.Run("variants", func(t *testing.T) {
		cs := f.session(t, "monitoring:read")
		for _, tc := range []struct{ name, tool, recorded string }{
			{"case/Deploy", "Deploy", "tool/Deploy"},
			{"case/DEPLOY", "DEPLOY", "tool/DEPLOY"},
			{"unicode/fullwidth", "ｄｅｐｌｏｙ", "tool/ｄｅｐｌｏｙ"},
			{"unicode/cyrillic-e", "d\u0435ploy", "tool/d\u0435ploy"},
			{"unicode/zero-width-joiner", "de\u200dploy", "tool/de\u200dploy"},
			{"unicode/zero-width-space", "deploy\u200b", "tool/deploy\u200b"},
			{"trailing-space", "deploy ", "tool/deploy "},
			{"nul", "deploy\x00", `tool/deploy\x00`},
			{"newline", "deploy\nmetrics", `tool/deploy\x0ametrics`},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: tc.tool, Arguments: map[string]any{}})
				var werr *jsonrpc.Error
				if !errors.As(err, &werr) || werr.Code != mcpauth.CodeForbidden {
					t.Errorf("%q: %v, want the JSON-RPC error %d", tc.tool, err, mcpauth.CodeForbidden)
				}
				rec := f.records.about(t, tc.recorded, 1)
				if rec.Action != "tools/call" || rec.Result != verify.ResultRefused || rec.Reason != "tool_not_allowed" {
					t.Errorf("record %+v, want tools/call refused tool_not_allowed", rec)
				}
			})
		}
	})

	t.Run("parser-differential", func(t *testing.T) {
		for _, tc := range []struct{ name, body string }{
			{"fail/name-in-another-case", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"deploy","Name":"metrics","arguments":{}}}`},
			{"fail/name-only-in-another-case", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"NAME":"metrics","arguments":{}}}`},
			{"fail/name-twice", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"deploy","name":"metrics","arguments":{}}}`},
			{"fail/method-in-another-case", `{"jsonrpc":"2.0","id":1,"method":"tools/call","Method":"ping","params":{"name":"deploy","arguments":{}}}`},
			{"fail/params-twice", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"deploy"},"params":{"name":"metrics"}}`},
			{"fail/a-second-message-after", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"metrics"}} {"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"deploy"}}`},
		} {
			t.Run(tc.name, func(t *testing.T) {
				resp, id := f.send(t, readOnly, session, tc.body)
				b, _ := io.ReadAll(resp.Body)
				if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), "invalid_request") {
					t.Errorf("%d %s, want 400 invalid_request", resp.StatusCode, b)
				}
				if rec := f.records.recordOf(t, id); rec.Result != verify.ResultRefused || rec.Reason != "message_ambiguous" {
					t.Errorf("record %s %s %s %s, want refused message_ambiguous", rec.Action, rec.Resource, rec.Result, rec.Reason)
				}
			})
		}
	})

	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.called) != 0 {
		t.Errorf("tools run: %v, want none", f.called)
	}
}
