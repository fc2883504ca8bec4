package app

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/mandate-dev/mandate/internal/buildinfo"
	"github.com/mandate-dev/mandate/internal/config"
)

// The instrumentation scopes of Mandate's spans.
const (
	scopeServer   = "github.com/mandate-dev/mandate/internal/server"
	scopeExchange = "github.com/mandate-dev/mandate/internal/exchange"
)

// tracingShutdownTimeout bounds the flush of the last spans at Close.
const tracingShutdownTimeout = 5 * time.Second

// newTracerProvider is the tracer provider of a wired Mandate and what
// Close calls to flush and stop it (nil when there is nothing to stop):
// env's when it has one (tests), an OTLP/HTTP exporter to
// cfg.Tracing.Endpoint when set, else the no-op provider. The exporter
// connects at the first export, not here; it reads the collector's headers
// from OTEL_EXPORTER_OTLP_HEADERS.
func newTracerProvider(ctx context.Context, cfg *config.Config, env Env) (trace.TracerProvider, func(context.Context) error, error) {
	if env.TracerProvider != nil {
		return env.TracerProvider, nil, nil
	}
	t := cfg.Tracing
	if !t.Enabled() {
		return noop.NewTracerProvider(), nil, nil
	}
	exporter, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(t.TracesURL()))
	if err != nil {
		return nil, nil, fmt.Errorf("tracing: %w", err)
	}
	ratio := 1.0
	if t.SampleRatio != nil {
		ratio = *t.SampleRatio
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exporter),
		// Every request's span is a root (the caller's traceparent is a
		// link, not a parent: internal/server); the steps follow it.
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio))),
		sdktrace.WithResource(resource.NewWithAttributes(semconv.SchemaURL,
			semconv.ServiceName(t.ServiceName), semconv.ServiceVersion(buildinfo.Read().Version))),
	)
	return tp, tp.Shutdown, nil
}

// stopTracing flushes the spans not yet exported and stops the exporter,
// waiting at most tracingShutdownTimeout; a collector that cannot be
// reached then loses them, which is logged.
func stopTracing(shutdown func(context.Context) error, logger *slog.Logger) {
	if shutdown == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), tracingShutdownTimeout)
	defer cancel()
	if err := shutdown(ctx); err != nil {
		logger.Warn("tracing: flushing the last spans", slog.String("error", err.Error()))
	}
}
