package examples_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/mandate-dev/mandate/examples/deployapi"
	"github.com/mandate-dev/mandate/examples/expenseapi"
	"github.com/mandate-dev/mandate/examples/monitoringapi"
	"github.com/mandate-dev/mandate/verify"
)

// TestProtectedResourceMetadata: each example API serves its RFC 9728
// metadata at the well-known URL of its address, and a request without a
// token is answered 401 with a challenge pointing there (RFC 9728 §5.1).
func TestProtectedResourceMetadata(t *testing.T) {
	const issuer = "https://mandate.example"
	for _, tc := range []struct {
		name      string
		new       func(*verify.Verifier) http.Handler
		metadata  verify.ResourceMetadata
		method    string
		protected string
	}{
		{name: "ok/deployapi", new: deployapi.New, metadata: deployapi.Metadata(), method: http.MethodPost, protected: "/deployments"},
		{name: "ok/monitoringapi", new: monitoringapi.New, metadata: monitoringapi.Metadata(), method: http.MethodGet, protected: "/metrics/cpu"},
		{name: "ok/expenseapi", new: expenseapi.New, metadata: expenseapi.Metadata(), method: http.MethodPost, protected: "/expenses/EXP-1/approve"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The address is the audience: it is known before the server
			// starts, and the handler is made for it.
			srv := httptest.NewUnstartedServer(nil)
			defer srv.Close()
			url := "http://" + srv.Listener.Addr().String()
			v, err := verify.New(context.Background(), verify.Config{
				Issuer: issuer, Audience: url, Algorithms: []string{"EdDSA"},
				JWKSURI: issuer + "/jwks", Resource: tc.metadata,
			})
			if err != nil {
				t.Fatal(err)
			}
			srv.Config.Handler = tc.new(v)
			srv.Start()
			wellKnown := url + "/.well-known/oauth-protected-resource"

			req, _ := http.NewRequest(tc.method, url+tc.protected, strings.NewReader("{}"))
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			want := `Bearer resource_metadata="` + wellKnown + `"`
			if got := resp.Header.Get("WWW-Authenticate"); resp.StatusCode != http.StatusUnauthorized || got != want {
				t.Errorf("without a token: %d, WWW-Authenticate %q; want 401, %q", resp.StatusCode, got, want)
			}

			resp, err = srv.Client().Get(wellKnown)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var doc struct {
				Resource             string   `json:"resource"`
				AuthorizationServers []string `json:"authorization_servers"`
				ScopesSupported      []string `json:"scopes_supported"`
				ResourceName         string   `json:"resource_name"`
			}
			if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("metadata: %d, %v", resp.StatusCode, err)
			}
			if doc.Resource != url || !slices.Equal(doc.AuthorizationServers, []string{issuer}) ||
				!slices.Equal(doc.ScopesSupported, tc.metadata.ScopesSupported) || doc.ResourceName != tc.metadata.ResourceName {
				t.Errorf("metadata %+v, want resource %s, issuer %s and %+v", doc, url, issuer, tc.metadata)
			}

			resp, err = srv.Client().Post(wellKnown, "application/json", nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusMethodNotAllowed {
				t.Errorf("POST to the metadata: %d, want 405", resp.StatusCode)
			}
		})
	}
}
