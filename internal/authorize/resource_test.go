package authorize

import (
	"net/url"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/mandate-dev/mandate/internal/resource"
	"github.com/mandate-dev/mandate/oauth"
)

// TestParseResources: with resources registered, a request's resource
// must be one of them and allow the client; it comes back canonical, and
// a request without scopes asks the resource's defaults. offline_access is
// dropped in every case.
func TestParseResources(t *testing.T) {
	reg, err := resource.New([]resource.Resource{
		{URI: "https://mcp.example/mcp", DefaultScopes: []string{"tools:read"}, Agents: []string{"agent:infrabot"}},
		{URI: "https://other.example/mcp", Agents: []string{"agent:argocd"}},
		{URI: "https://open.example"},
	})
	if err != nil {
		t.Fatal(err)
	}
	withDefault := func(uri string) *resource.Registry {
		var rs []resource.Resource
		for _, r := range reg.All() {
			r.Default = r.URI == uri
			rs = append(rs, r)
		}
		g, err := resource.New(rs)
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	tests := []struct {
		name         string
		resources    *resource.Registry
		resource     string
		scope        string
		wantReason   string
		wantResource string
		wantScopes   []string
	}{
		{name: "ok/none-registered", resource: "https://anything.example", scope: "a", wantResource: "https://anything.example", wantScopes: []string{"a"}},
		{name: "ok/no-resource", resources: reg, scope: "a", wantScopes: []string{"a"}},
		{name: "ok/registered", resources: reg, resource: "https://mcp.example/mcp", scope: "a b", wantResource: "https://mcp.example/mcp", wantScopes: []string{"a", "b"}},
		{name: "ok/canonical", resources: reg, resource: "HTTPS://MCP.example:443/mcp", scope: "a", wantResource: "https://mcp.example/mcp", wantScopes: []string{"a"}},
		{name: "ok/default-scopes", resources: reg, resource: "https://mcp.example/mcp", wantResource: "https://mcp.example/mcp", wantScopes: []string{"tools:read"}},
		{name: "ok/offline-access-alone", resources: reg, resource: "https://mcp.example/mcp", scope: "offline_access", wantResource: "https://mcp.example/mcp", wantScopes: []string{"tools:read"}},
		{name: "ok/offline-access-dropped", resources: reg, resource: "https://mcp.example/mcp", scope: "a offline_access", wantResource: "https://mcp.example/mcp", wantScopes: []string{"a"}},
		{name: "ok/any-client", resources: reg, resource: "https://open.example/", scope: "a", wantResource: "https://open.example", wantScopes: []string{"a"}},
		{name: "ok/default-resource", resources: withDefault("https://mcp.example/mcp"), wantResource: "https://mcp.example/mcp", wantScopes: []string{"tools:read"}},
		{name: "ok/default-resource-scope", resources: withDefault("https://mcp.example/mcp"), scope: "a", wantResource: "https://mcp.example/mcp", wantScopes: []string{"a"}},
		{name: "ok/default-not-for-client", resources: withDefault("https://other.example/mcp"), scope: "a", wantScopes: []string{"a"}},
		{name: "ok/named-beats-default", resources: withDefault("https://mcp.example/mcp"), resource: "https://open.example", scope: "a", wantResource: "https://open.example", wantScopes: []string{"a"}},
		{name: "fail/resource-unknown", resources: reg, resource: "https://nowhere.example/mcp", scope: "a", wantReason: "resource_unknown"},
		{name: "fail/path-differs", resources: reg, resource: "https://mcp.example/MCP", scope: "a", wantReason: "resource_unknown"},
		{name: "fail/client-not-allowed", resources: reg, resource: "https://other.example/mcp", scope: "a", wantReason: "resource_not_allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := request(func(q url.Values) {
				q.Set("scope", tt.scope)
				if tt.resource != "" {
					q.Set("resource", tt.resource)
				}
			})
			r, err := Parse(q, lookup, tt.resources)
			if tt.wantReason != "" {
				e, ok := err.(*oauth.Error)
				if !ok || e.Code != oauth.ErrInvalidTarget || e.Reason != tt.wantReason {
					t.Fatalf("err = %v, want invalid_target/%s", err, tt.wantReason)
				}
				if r.State != "s1" {
					t.Errorf("state %q not kept for the redirect", r.State)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.Resource != tt.wantResource {
				t.Errorf("resource %q, want %q", r.Resource, tt.wantResource)
			}
			if diff := cmp.Diff(tt.wantScopes, r.Scopes); diff != "" {
				t.Errorf("scopes (-want +got):\n%s", diff)
			}
		})
	}
	// The default scopes are the request's own copy.
	r, _ := Parse(request(func(q url.Values) { q.Del("scope"); q.Set("resource", "https://mcp.example/mcp") }), lookup, reg)
	r.Scopes[0] = "changed"
	if res, _ := reg.Lookup("https://mcp.example/mcp"); !slices.Equal(res.DefaultScopes, []string{"tools:read"}) {
		t.Errorf("the registry's default scopes changed: %v", res.DefaultScopes)
	}
}
