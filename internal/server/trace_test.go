package server_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/mandate-dev/mandate/internal/app"
	"github.com/mandate-dev/mandate/internal/audit"
	"github.com/mandate-dev/mandate/internal/store"
	"github.com/mandate-dev/mandate/oauth"
)

// lockedBuffer is a bytes.Buffer the server's goroutines write to while
// the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// exportedSpan is a span as the stdout exporter writes it.
type exportedSpan struct {
	Name        string
	SpanContext struct{ TraceID, SpanID string }
	Parent      struct{ TraceID, SpanID string }
	SpanKind    int
	Attributes  []struct {
		Key   string
		Value struct{ Value any }
	}
	Links []struct {
		SpanContext struct{ TraceID, SpanID string }
	}
	Status struct{ Code, Description string }
}

// attr is the value of the attribute key, as the exporter wrote it.
func (s exportedSpan) attr(key string) string {
	for _, a := range s.Attributes {
		if a.Key == key {
			return fmt.Sprint(a.Value.Value)
		}
	}
	return ""
}

// tracedHarness is a harness whose spans go to the SDK's stdout exporter
// and whose log lines go to a buffer, both read by the test.
type tracedHarness struct {
	*harness
	spans, logs *lockedBuffer
}

func newTracedHarness(t *testing.T) *tracedHarness {
	t.Helper()
	spans, logs := &lockedBuffer{}, &lockedBuffer{}
	exporter, err := stdouttrace.New(stdouttrace.WithWriter(spans))
	if err != nil {
		t.Fatal(err)
	}
	// A syncer exports each span as it ends.
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exporter))
	h := newHarnessEnv(t, openSQLite, nil, app.Env{Logger: slog.New(slog.NewJSONHandler(logs, nil)), TracerProvider: tp})
	return &tracedHarness{harness: h, spans: spans, logs: logs}
}

// trace waits for the span of the request requestID (it ends after the
// answer is written) and returns it and the spans of its trace, in the
// order they ended, after printing them.
func (h *tracedHarness) trace(requestID string) (exportedSpan, []exportedSpan) {
	h.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		var all []exportedSpan
		dec := json.NewDecoder(strings.NewReader(h.spans.String()))
		for {
			var s exportedSpan
			if err := dec.Decode(&s); err == io.EOF {
				break
			} else if err != nil {
				h.t.Fatalf("decoding the exported spans: %v", err)
			}
			all = append(all, s)
		}
		for _, root := range all {
			if root.attr("mandate.request_id") != requestID {
				continue
			}
			var trace []exportedSpan
			for _, s := range all {
				if s.SpanContext.TraceID == root.SpanContext.TraceID {
					trace = append(trace, s)
					h.t.Logf("span %-24s trace=%s span=%s parent=%s status=%s %s attrs=%v",
						s.Name, s.SpanContext.TraceID, s.SpanContext.SpanID, s.Parent.SpanID, s.Status.Code, s.Status.Description, s.Attributes)
				}
			}
			return root, trace
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("no span of request %s in:\n%s", requestID, h.spans.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// logLine is the log line of the request requestID.
func (h *tracedHarness) logLine(requestID string) map[string]any {
	h.t.Helper()
	for _, line := range strings.Split(h.logs.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == "request" && m["request_id"] == requestID {
			return m
		}
	}
	h.t.Fatalf("no log line of request %s in:\n%s", requestID, h.logs.String())
	return nil
}

// auditTraceID is the mandate.trace_id attribute of the one record
// GET /audit finds with query.
func (h *tracedHarness) auditTraceID(query string) string {
	h.t.Helper()
	r := h.admin(http.MethodGet, "/audit?"+query, nil)
	var body struct{ Events []store.Event }
	if err := json.Unmarshal([]byte(r.raw), &body); err != nil || len(body.Events) != 1 {
		h.t.Fatalf("GET /audit?%s: %d %s", query, r.status, r.raw)
	}
	var attrs map[string]string
	if err := json.Unmarshal(body.Events[0].Attributes, &attrs); err != nil {
		h.t.Fatalf("record attributes %s: %v", body.Events[0].Attributes, err)
	}
	return attrs[audit.AttributeTraceID]
}

// exchangeSteps are the spans of a token exchange's steps, in order.
var exchangeSteps = []string{
	"exchange.checkShape", "exchange.checkSubject", "exchange.checkActorToken", "exchange.checkActor",
	"exchange.bound", "exchange.checkDepth", "exchange.checkAudience", "exchange.checkScopes",
	"exchange.checkDetails", "exchange.checkContext", "exchange.checkPolicy", "exchange.checkLifetime",
	"exchange.mint",
}

// checkTrace checks that the request's span is a server span named token
// with the standard HTTP attributes, and that the other spans of its trace
// are the steps want, in order, each a child of it; it returns the steps.
func checkTrace(t *testing.T, root exportedSpan, trace []exportedSpan, status int, want []string) map[string]exportedSpan {
	t.Helper()
	if root.Name != "token" || root.SpanKind != 2 || root.Parent.SpanID != "0000000000000000" {
		t.Errorf("request span: name %q kind %d parent %s, want a root server span named token", root.Name, root.SpanKind, root.Parent.SpanID)
	}
	for k, v := range map[string]string{"http.request.method": "POST", "http.route": "/token", "http.response.status_code": fmt.Sprint(status)} {
		if got := root.attr(k); got != v {
			t.Errorf("request span %s = %q, want %q", k, got, v)
		}
	}
	var names []string
	steps := map[string]exportedSpan{}
	for _, s := range trace {
		if s.SpanContext.SpanID == root.SpanContext.SpanID {
			continue
		}
		names = append(names, s.Name)
		steps[s.Name] = s
		if s.Parent.SpanID != root.SpanContext.SpanID {
			t.Errorf("span %s: parent %s, want the request's span %s", s.Name, s.Parent.SpanID, root.SpanContext.SpanID)
		}
	}
	if !slices.Equal(names, want) {
		t.Errorf("step spans:\n got %v\nwant %v", names, want)
	}
	return steps
}

func TestTraces(t *testing.T) {
	h := newTracedHarness(t)
	samToken := h.samToken()

	t.Run("ok/exchange", func(t *testing.T) {
		r := h.exchange("agent:infrabot", samToken, oauth.TokenTypeIDToken,
			url.Values{"audience": {"agent:argocd"}, "scope": {"monitoring:read"}})
		if r.status != http.StatusOK {
			t.Fatalf("exchange: %d %s", r.status, r.raw)
		}
		id := r.header.Get("X-Request-Id")
		root, trace := h.trace(id)
		steps := checkTrace(t, root, trace, http.StatusOK, exchangeSteps)
		for _, s := range steps {
			if s.Status.Code != "Unset" {
				t.Errorf("span %s of a granted exchange: status %s", s.Name, s.Status.Code)
			}
		}
		traceID := root.SpanContext.TraceID
		jti, _ := claims(t, r.str("access_token"))["jti"].(string)
		if got := h.auditTraceID("jti=" + url.QueryEscape(jti) + "&action=" + audit.ActionTokenExchange); got != traceID {
			t.Errorf("audit record %s = %q, want the trace id %s", audit.AttributeTraceID, got, traceID)
		}
		if got := h.logLine(id)["trace_id"]; got != traceID {
			t.Errorf("log line trace_id = %v, want %s", got, traceID)
		}
		// No token or secret in any span.
		for _, secret := range []string{samToken, r.str("access_token"), "infrabot-secret"} {
			if strings.Contains(h.spans.String(), secret) {
				t.Errorf("the spans hold a token or secret: %.20s…", secret)
			}
		}
	})

	t.Run("fail/actor-not-delegated", func(t *testing.T) {
		r := h.exchange("agent:mallory", samToken, oauth.TokenTypeIDToken, url.Values{"audience": {"https://deploy.example"}})
		if r.status != http.StatusBadRequest {
			t.Fatalf("exchange: %d %s", r.status, r.raw)
		}
		id := r.header.Get("X-Request-Id")
		root, trace := h.trace(id)
		steps := checkTrace(t, root, trace, http.StatusBadRequest, exchangeSteps[:4])
		refused := steps["exchange.checkActor"]
		if refused.Status.Code != "Error" || refused.attr("mandate.reason") != "actor_not_delegated" || refused.attr("mandate.error") != "invalid_request" {
			t.Errorf("refused step: status %s, mandate.reason %q, mandate.error %q; want Error, actor_not_delegated, invalid_request",
				refused.Status.Code, refused.attr("mandate.reason"), refused.attr("mandate.error"))
		}
		for _, name := range exchangeSteps[:3] {
			if steps[name].Status.Code != "Unset" {
				t.Errorf("span %s before the refusal: status %s", name, steps[name].Status.Code)
			}
		}
		if root.attr("mandate.reason") != "actor_not_delegated" {
			t.Errorf("request span mandate.reason = %q", root.attr("mandate.reason"))
		}
		traceID := root.SpanContext.TraceID
		if got := h.auditTraceID("action=" + audit.ActionTokenRefused + "&actor=agent:mallory"); got != traceID {
			t.Errorf("refusal's audit record %s = %q, want the trace id %s", audit.AttributeTraceID, got, traceID)
		}
		if got := h.logLine(id)["trace_id"]; got != traceID {
			t.Errorf("log line trace_id = %v, want %s", got, traceID)
		}
	})

	t.Run("ok/caller-traceparent-is-a-link", func(t *testing.T) {
		const callerTrace, callerSpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
		form := url.Values{"grant_type": {oauth.GrantTokenExchange}, "subject_token": {samToken}, "subject_token_type": {oauth.TokenTypeIDToken}}
		r := h.postAs("/token", "agent:mallory", "mallory-secret", form,
			http.Header{"Traceparent": {"00-" + callerTrace + "-" + callerSpan + "-01"}})
		root, _ := h.trace(r.header.Get("X-Request-Id"))
		if root.SpanContext.TraceID == callerTrace || root.Parent.SpanID != "0000000000000000" {
			t.Errorf("the caller's traceparent became the parent: trace %s parent %s", root.SpanContext.TraceID, root.Parent.SpanID)
		}
		if len(root.Links) != 1 || root.Links[0].SpanContext.TraceID != callerTrace || root.Links[0].SpanContext.SpanID != callerSpan {
			t.Errorf("links %+v, want one to the caller's span %s-%s", root.Links, callerTrace, callerSpan)
		}
	})
}

// TestTracesOff: without tracing, neither the log line nor the audit
// record names a trace.
func TestTracesOff(t *testing.T) {
	logs := &lockedBuffer{}
	h := newHarnessEnv(t, openSQLite, nil, app.Env{Logger: slog.New(slog.NewJSONHandler(logs, nil))})
	th := &tracedHarness{harness: h, logs: logs}
	r := h.exchange("agent:infrabot", h.samToken(), oauth.TokenTypeIDToken,
		url.Values{"audience": {"agent:argocd"}, "scope": {"monitoring:read"}})
	if r.status != http.StatusOK {
		t.Fatalf("exchange: %d %s", r.status, r.raw)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(logs.String(), r.header.Get("X-Request-Id")) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond) // the line is written after the answer
	}
	if line := th.logLine(r.header.Get("X-Request-Id")); line["trace_id"] != nil {
		t.Errorf("log line with tracing off: %v", line)
	}
	for _, ev := range h.events(store.EventFilter{Action: audit.ActionTokenExchange}) {
		if ev.Attributes != nil {
			t.Errorf("audit record with tracing off has attributes %s", ev.Attributes)
		}
	}
}
