package app_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"

	"github.com/mandate-dev/mandate/internal/app"
	"github.com/mandate-dev/mandate/internal/config"
	"github.com/mandate-dev/mandate/internal/store/sqlite"
)

// TestTracingExportsToTheEndpoint: with tracing.endpoint set, the spans of
// the requests reach the collector over OTLP/HTTP at ENDPOINT/v1/traces,
// at the latest when Close flushes them.
func TestTracingExportsToTheEndpoint(t *testing.T) {
	var mu sync.Mutex
	var posts []string
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		posts = append(posts, r.Method+" "+r.URL.Path+" "+r.Header.Get("Content-Type"))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	defer collector.Close()

	cfg, err := config.Parse([]byte("tracing: {endpoint: '"+collector.URL+"', service_name: mandate-test}\n"), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg.DataDir = t.TempDir()
	ctx := context.Background()
	raw, err := sqlite.Open(ctx, filepath.Join(cfg.DataDir, "mandate.db"))
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.BuildWith(ctx, cfg, raw, app.Env{})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	a.Handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /healthz: %d %s", rec.Code, rec.Body)
	}
	a.Close()

	mu.Lock()
	defer mu.Unlock()
	if len(posts) == 0 || posts[0] != "POST /v1/traces application/x-protobuf" {
		t.Errorf("the collector got %q, want POST /v1/traces application/x-protobuf", posts)
	}
}
