package verify_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/mandate-dev/mandate/internal/golden"
	"github.com/mandate-dev/mandate/verify"
)

// TestGoldenProtectedResourceMetadata compares the RFC 9728 protected
// resource metadata a Verifier serves, over real HTTP, with the reviewed
// testdata/golden/protected_resource_metadata.json (status, the headers
// that are part of the contract, and the document); rewrite it with
// go test ./verify -run Golden -update. The issuer and audience are the
// fixture's fixed URLs, so nothing in it differs from run to run.
func TestGoldenProtectedResourceMetadata(t *testing.T) {
	v := newFixture(t).verifier(t, func(c *verify.Config) {
		c.Resource.ScopesSupported = []string{"deploy:create", "deploy:read"}
		c.Resource.ResourceName = "Deploy API"
		c.Resource.ResourceDocumentation = "https://deploy.example/docs"
	})
	srv := httptest.NewServer(v.ProtectedResourceMetadata())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/.well-known/oauth-protected-resource")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	golden.CompareJSON(t, "testdata/golden/protected_resource_metadata.json", map[string]any{
		"status": resp.StatusCode,
		"headers": map[string]string{
			"Content-Type":  resp.Header.Get("Content-Type"),
			"Cache-Control": resp.Header.Get("Cache-Control"),
		},
		"body": json.RawMessage(body),
	}, golden.Redact{})
}
