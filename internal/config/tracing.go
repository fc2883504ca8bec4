package config

import "strings"

// DefaultServiceName is Tracing.ServiceName's default.
const DefaultServiceName = "mandate"

// Tracing sends OpenTelemetry traces of the requests the server answers to
// a collector over OTLP/HTTP. Off (the zero value) by default. Headers a
// collector needs (an API key) are read from the standard
// OTEL_EXPORTER_OTLP_HEADERS environment variable, never from this file.
type Tracing struct {
	// Endpoint is the collector's OTLP/HTTP base URL, such as
	// http://127.0.0.1:4318; spans are posted to ENDPOINT/v1/traces, over
	// TLS for https://. An absolute http(s) URL without user info, query
	// or fragment. Empty, the default, turns tracing off.
	Endpoint string `yaml:"endpoint"`
	// ServiceName is the service.name of every span. Default "mandate"
	// when Endpoint is set.
	ServiceName string `yaml:"service_name"`
	// SampleRatio is the share of requests traced, from 0 (none) to 1
	// (all). Default 1 when Endpoint is set.
	SampleRatio *float64 `yaml:"sample_ratio"`
}

// Enabled reports whether traces are sent.
func (t Tracing) Enabled() bool { return t.Endpoint != "" }

// TracesURL is where spans are posted: Endpoint followed by /v1/traces.
func (t Tracing) TracesURL() string { return strings.TrimSuffix(t.Endpoint, "/") + "/v1/traces" }

// applyDefaults fills ServiceName and SampleRatio when tracing is on.
func (t *Tracing) applyDefaults() {
	if !t.Enabled() {
		return
	}
	if t.ServiceName == "" {
		t.ServiceName = DefaultServiceName
	}
	if t.SampleRatio == nil {
		all := 1.0
		t.SampleRatio = &all
	}
}

// validateTracing checks the tracing section; nothing when it is off.
func (c *Config) validateTracing(p *problems) {
	t := c.Tracing
	if !t.Enabled() {
		return
	}
	// http:// is allowed to any host: a collector is often a sidecar, and
	// spans carry no token or secret (docs/deploy.md, Traces).
	if _, err := parseURL(t.Endpoint); err != nil {
		p.add("tracing.endpoint", "%v", err)
	}
	if hasSpaceOrControl(t.ServiceName) {
		p.add("tracing.service_name", "must not contain white space or control characters")
	}
	if r := t.SampleRatio; r != nil && !(*r >= 0 && *r <= 1) { // also refuses NaN
		p.add("tracing.sample_ratio", "must be from 0 to 1, is %v", *r)
	}
}
