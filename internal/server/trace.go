package server

import (
	"context"
	"net/http"
	"strconv"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/mandate-dev/mandate/oauth"
)

// Span attributes of a request besides the standard HTTP ones. None holds
// a token, a secret or a caller's free text.
const (
	// attrRequestID is the request's X-Request-Id, the audit record's
	// request_id.
	attrRequestID = attribute.Key("mandate.request_id")
	// attrReason and attrError are a refused request's reason and OAuth
	// error code, as in its log line.
	attrReason = attribute.Key("mandate.reason")
	attrError  = attribute.Key("mandate.error")
	// The OpenTelemetry semantic conventions' HTTP server attributes.
	attrMethod = attribute.Key("http.request.method")
	attrRoute  = attribute.Key("http.route")
	attrStatus = attribute.Key("http.response.status_code")
	attrErrTyp = attribute.Key("error.type")
)

// serverSpan is the option of every request's span, made once so that a
// request with tracing off allocates nothing for it.
var serverSpan = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindServer)}

// startSpan starts the request's span, named after its route (the route
// label of the metrics), and returns ctx with it.
//
// The span is always a new trace: a caller's W3C traceparent is not its
// parent but a link. Callers of /token are agents on the far side of a
// trust boundary; as parent, their traceparent would choose the trace id
// written in Mandate's audit records and logs (pinning it to another
// request's) and whether the request is sampled (the collector's load).
// As a link, an operator still finds the caller's trace from Mandate's.
func (s *Server) startSpan(ctx context.Context, route, requestID string, r *http.Request) (context.Context, trace.Span) {
	ctx, span := s.cfg.Tracer.Start(ctx, route, serverSpan...)
	if !span.IsRecording() {
		return ctx, span
	}
	span.SetAttributes(attrMethod.String(methodAttr(r.Method)), attrRoute.String(routeAttr(r.Pattern)), attrRequestID.String(requestID))
	caller := trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(), propagation.HeaderCarrier(r.Header)))
	if caller.IsValid() {
		span.AddLink(trace.Link{SpanContext: caller})
	}
	return ctx, span
}

// endSpan records the answer on the request's span: its status code and,
// for a refusal, its reason and error code. A 5xx answer marks the span
// Error (a 4xx is the caller's, as the semantic conventions have it).
func endSpan(span trace.Span, status int, e *oauth.Error) {
	if !span.IsRecording() {
		return
	}
	span.SetAttributes(attrStatus.Int(status))
	if e != nil {
		span.SetAttributes(attrReason.String(e.Reason), attrError.String(string(e.Code)))
	}
	if status >= 500 {
		span.SetAttributes(attrErrTyp.String(strconv.Itoa(status)))
		msg := http.StatusText(status)
		if e != nil {
			msg = e.Description
		}
		span.SetStatus(codes.Error, msg)
	}
}

// methodAttr is method as http.request.method has it: one of the known
// methods, else _OTHER (the caller's text is not recorded).
func methodAttr(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace:
		return method
	}
	return "_OTHER"
}

// routeAttr is the ServeMux pattern without its method: the route
// template, such as /admin/users/{id}.
func routeAttr(pattern string) string {
	if _, path, ok := strings.Cut(pattern, " "); ok {
		return path
	}
	return pattern
}
