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

// step is one check of a grant and the name of its span.
type step struct {
	span stepSpan
	run  func(context.Context, *state) error
}

// stepSpan names the span of a step. It indexes stepSpans rather than
// holding the name, so that the step lists stay on the stack: a name given
// to the tracer escapes, and would take the step's method value with it.
type stepSpan uint8

// The steps' spans.
const (
	spanCheckShape stepSpan = iota
	spanCheckSubject
	spanCheckActorToken
	spanCheckActor
	spanBound
	spanCheckDepth
	spanCheckAudience
	spanCheckScopes
	spanCheckDetails
	spanCheckContext
	spanCheckPolicy
	spanCheckLifetime
	spanMint
)

// stepSpans are the span names: "exchange." and the step's method.
var stepSpans = [...]string{
	spanCheckShape:      "exchange.checkShape",
	spanCheckSubject:    "exchange.checkSubject",
	spanCheckActorToken: "exchange.checkActorToken",
	spanCheckActor:      "exchange.checkActor",
	spanBound:           "exchange.bound",
	spanCheckDepth:      "exchange.checkDepth",
	spanCheckAudience:   "exchange.checkAudience",
	spanCheckScopes:     "exchange.checkScopes",
	spanCheckDetails:    "exchange.checkDetails",
	spanCheckContext:    "exchange.checkContext",
	spanCheckPolicy:     "exchange.checkPolicy",
	spanCheckLifetime:   "exchange.checkLifetime",
	spanMint:            "exchange.mint",
}

// runSteps runs steps in order and returns the first refusal; each runs
// in a span of its own (startStep).
func (g *Grant) runSteps(ctx context.Context, st *state, steps []step) error {
	for _, s := range steps {
		sctx, span := g.startStep(ctx, s.span)
		err := s.run(sctx, st)
		endStep(span, err)
		if err != nil {
			return err
		}
	}
	return nil
}

// tracedMint is mint in a span of its own, "exchange.mint".
func (g *Grant) tracedMint(ctx context.Context, st *state, action, grantType string) (*Result, error) {
	ctx, span := g.startStep(ctx, spanMint)
	res, err := g.mint(ctx, st, action, grantType)
	endStep(span, err)
	return res, err
}

// startStep starts the span of a step, a child of ctx's span named
// stepSpans[name], and returns ctx with it. The span is started only under a recording span
// (the request's): with tracing off, or a request not sampled (whose steps
// would not be sampled either), it returns ctx and a nil span, for the
// cost of one context lookup and no allocation (the no-op tracer's Start
// allocates a context each call, 13 per exchange).
func (g *Grant) startStep(ctx context.Context, name stepSpan) (context.Context, trace.Span) {
	if !trace.SpanFromContext(ctx).IsRecording() {
		return ctx, nil
	}
	tracer := g.Tracer
	if tracer == nil {
		tracer = noop.Tracer{}
	}
	return tracer.Start(ctx, stepSpans[name])
}

// endStep ends a step's span (nil: none). When the step refused, the span
// carries the refusal's reason and error code and its status is Error with
// the description the caller gets.
func endStep(span trace.Span, err error) {
	if span == nil {
		return
	}
	if err != nil {
		e := oauth.As(err)
		span.SetAttributes(AttributeReason.String(e.Reason), AttributeError.String(string(e.Code)))
		span.SetStatus(codes.Error, e.Description)
	}
	span.End()
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
