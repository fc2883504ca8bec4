package exchange

import (
	"context"
	"encoding/json"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/mandate-dev/mandate/internal/audit"
	"github.com/mandate-dev/mandate/oauth"
)

// Span attributes of a refused step. Neither holds a token, a secret or
// the refusal's cause: only what the audit record and the caller see.
const (
	// AttributeReason is the refusal's machine-readable reason, the audit
	// record's reason (subject_token_expired, actor_not_delegated, ...).
	AttributeReason = attribute.Key("mandate.reason")
	// AttributeError is the OAuth error code the caller is answered with.
	AttributeError = attribute.Key("mandate.error")
)

// step is one check of a grant, with the name of its span:
// "exchange." and the method's name.
type step struct {
	name string
	run  func(context.Context, *state) error
}

// runSteps runs steps in order and returns the first refusal; each runs
// in a span of its own (traced).
func (g *Grant) runSteps(ctx context.Context, st *state, steps []step) error {
	for _, s := range steps {
		if err := g.traced(ctx, s.name, func(ctx context.Context) error { return s.run(ctx, st) }); err != nil {
			return err
		}
	}
	return nil
}

// traced runs f in a child span of ctx's named name. When f
// refuses, the span carries the refusal's reason and error code and its
// status is Error with the description the caller gets. With the no-op
// tracer (tracing off) this costs the tracer's Start and nothing else.
func (g *Grant) traced(ctx context.Context, name string, f func(context.Context) error) error {
	tracer := g.Tracer
	if tracer == nil {
		tracer = noop.Tracer{}
	}
	ctx, span := tracer.Start(ctx, name)
	defer span.End()
	err := f(ctx)
	if err != nil && span.IsRecording() {
		e := oauth.As(err)
		span.SetAttributes(AttributeReason.String(e.Reason), AttributeError.String(string(e.Code)))
		span.SetStatus(codes.Error, e.Description)
	}
	return err
}

// traceAttributes is the audit record's Attributes naming the trace the
// request is part of (audit.AttributeTraceID), nil when it is not traced
// (tracing off, or the request not sampled).
func traceAttributes(ctx context.Context) json.RawMessage {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsSampled() {
		return nil
	}
	// A trace id is 32 hex digits: nothing to escape.
	return json.RawMessage(`{"` + audit.AttributeTraceID + `":"` + sc.TraceID().String() + `"}`)
}
