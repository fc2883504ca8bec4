package server_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/mandate-dev/mandate/internal/buildinfo"
)

// TestHealthzAnswersTheBuild: /healthz says "ok" and which build answers,
// so that an operator can tell the builds behind a load balancer apart.
func TestHealthzAnswersTheBuild(t *testing.T) {
	h := newHarness(t)
	resp, err := http.Get(h.url + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status = %d, want 200", resp.StatusCode)
	}
	var got map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	build := buildinfo.Read()
	want := map[string]any{"status": "ok", "version": build.Version}
	if build.Commit != "" {
		want["commit"] = build.Commit
	}
	if build.Modified {
		want["modified"] = true
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("/healthz (-want +got):\n%s", diff)
	}
}
