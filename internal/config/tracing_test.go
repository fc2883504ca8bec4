package config_test

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/mandate-dev/mandate/internal/config"
)

func ratio(r float64) *float64 { return &r }

func TestTracing(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want config.Tracing // when loaded
		// field and problem (a substring) of the one error; empty: loads
		field, problem string
	}{
		{name: "ok/off-by-default", yaml: ``, want: config.Tracing{}},
		{name: "ok/off-keeps-what-is-given", yaml: "tracing: {sample_ratio: 0.5}\n",
			want: config.Tracing{SampleRatio: ratio(0.5)}},
		{name: "ok/endpoint-takes-the-defaults", yaml: "tracing: {endpoint: 'http://127.0.0.1:4318'}\n",
			want: config.Tracing{Endpoint: "http://127.0.0.1:4318", ServiceName: "mandate", SampleRatio: ratio(1)}},
		{name: "ok/everything", yaml: "tracing:\n  endpoint: https://otel.example/otlp\n  service_name: mandate-eu\n  sample_ratio: 0.25\n",
			want: config.Tracing{Endpoint: "https://otel.example/otlp", ServiceName: "mandate-eu", SampleRatio: ratio(0.25)}},
		{name: "ok/sample-none", yaml: "tracing: {endpoint: 'http://collector:4318', sample_ratio: 0}\n",
			want: config.Tracing{Endpoint: "http://collector:4318", ServiceName: "mandate", SampleRatio: ratio(0)}},

		{name: "fail/unknown-key", field: "tracing", yaml: "tracing: {endpoint: 'http://127.0.0.1:4318', insecure: true}\n",
			problem: `unknown field "insecure"`},
		{name: "fail/endpoint-without-scheme", yaml: "tracing: {endpoint: '127.0.0.1:4318'}\n",
			field: "tracing.endpoint", problem: "not a URL"},
		{name: "fail/endpoint-grpc-scheme", yaml: "tracing: {endpoint: 'grpc://127.0.0.1:4317'}\n",
			field: "tracing.endpoint", problem: "scheme"},
		{name: "fail/endpoint-user-info", yaml: "tracing: {endpoint: 'https://key:secret@otel.example'}\n",
			field: "tracing.endpoint", problem: "user info"},
		{name: "fail/endpoint-query", yaml: "tracing: {endpoint: 'https://otel.example/?key=x'}\n",
			field: "tracing.endpoint", problem: "query"},
		{name: "fail/sample-ratio-above-1", yaml: "tracing: {endpoint: 'http://127.0.0.1:4318', sample_ratio: 1.5}\n",
			field: "tracing.sample_ratio", problem: "from 0 to 1"},
		{name: "fail/sample-ratio-negative", yaml: "tracing: {endpoint: 'http://127.0.0.1:4318', sample_ratio: -0.1}\n",
			field: "tracing.sample_ratio", problem: "from 0 to 1"},
		{name: "fail/sample-ratio-nan", yaml: "tracing: {endpoint: 'http://127.0.0.1:4318', sample_ratio: .nan}\n",
			field: "tracing.sample_ratio", problem: "from 0 to 1"},
		{name: "fail/service-name-space", yaml: "tracing: {endpoint: 'http://127.0.0.1:4318', service_name: 'my mandate'}\n",
			field: "tracing.service_name", problem: "white space"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := config.Parse([]byte(tt.yaml), "mandate.yaml")
			if tt.problem == "" {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				if diff := cmp.Diff(tt.want, c.Tracing); diff != "" {
					t.Errorf("tracing (-want +got):\n%s", diff)
				}
				return
			}
			if err == nil {
				t.Fatalf("Parse accepted it: %+v", c.Tracing)
			}
			got := fieldErrors(t, err)
			if len(got) != 1 || got[0].Field != tt.field || !strings.Contains(got[0].Problem, tt.problem) {
				t.Errorf("Parse errors %v, want one for field %q with %q", err, tt.field, tt.problem)
			}
		})
	}
}

func TestTracesURL(t *testing.T) {
	for endpoint, want := range map[string]string{
		"http://127.0.0.1:4318":      "http://127.0.0.1:4318/v1/traces",
		"http://127.0.0.1:4318/":     "http://127.0.0.1:4318/v1/traces",
		"https://otel.example/otlp/": "https://otel.example/otlp/v1/traces",
	} {
		if got := (config.Tracing{Endpoint: endpoint}).TracesURL(); got != want {
			t.Errorf("TracesURL of %s = %s, want %s", endpoint, got, want)
		}
	}
}
