package resource

import "testing"

// TestKeyAndCanonical: the spellings Lookup takes as one URI, and which
// of them are canonical.
func TestKeyAndCanonical(t *testing.T) {
	tests := []struct {
		uri, key  string
		canonical bool
	}{
		{uri: "https://mcp.example/mcp", key: "https://mcp.example/mcp", canonical: true},
		{uri: "https://mcp.example", key: "https://mcp.example/", canonical: true},
		{uri: "https://mcp.example/", key: "https://mcp.example/", canonical: true},
		{uri: "HTTPS://MCP.Example/mcp", key: "https://mcp.example/mcp"},
		{uri: "https://mcp.example:443/mcp", key: "https://mcp.example/mcp"},
		{uri: "http://127.0.0.1:80/mcp", key: "http://127.0.0.1/mcp"},
		{uri: "https://mcp.example:8443/mcp", key: "https://mcp.example:8443/mcp", canonical: true},
		{uri: "https://mcp.example/MCP", key: "https://mcp.example/MCP", canonical: true},
		{uri: "not a uri", key: "not a uri", canonical: true},
	}
	for _, tt := range tests {
		if got := Key(tt.uri); got != tt.key {
			t.Errorf("Key(%q) = %q, want %q", tt.uri, got, tt.key)
		}
		if got := Canonical(tt.uri); got != tt.canonical {
			t.Errorf("Canonical(%q) = %v, want %v", tt.uri, got, tt.canonical)
		}
	}
}

// TestRegistry: lookups by any spelling, a nil registry that registers
// nothing, and a URI registered twice refused.
func TestRegistry(t *testing.T) {
	var none *Registry
	if !none.Empty() || none.All() != nil || len(none.Scopes()) != 0 {
		t.Error("a nil registry is not empty")
	}
	if _, ok := none.Lookup("https://mcp.example/mcp"); ok {
		t.Error("a nil registry found a resource")
	}
	if _, err := New([]Resource{{URI: "https://mcp.example/mcp"}, {URI: "https://MCP.example:443/mcp"}}); err == nil {
		t.Error("New accepted one URI twice")
	}
	reg, err := New([]Resource{
		{URI: "https://mcp.example/mcp", Name: "Tools", Scopes: []Scope{{Name: "b"}, {Name: "a"}}, Agents: []string{"agent:x"}},
		{URI: "https://api.example", Scopes: []Scope{{Name: "a"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	r, ok := reg.Lookup("https://Mcp.Example/mcp")
	if !ok || r.DisplayName() != "Tools" || !r.Allows("agent:x") || r.Allows("agent:y") {
		t.Errorf("Lookup = %+v, %v", r, ok)
	}
	if r, ok := reg.Lookup("https://api.example/"); !ok || r.DisplayName() != "https://api.example" || !r.Allows("agent:y") {
		t.Errorf("Lookup = %+v, %v", r, ok)
	}
	for _, miss := range []string{"", "https://mcp.example/mcp/", "https://mcp.example/mcp?x=1", "http://mcp.example/mcp"} {
		if _, ok := reg.Lookup(miss); ok {
			t.Errorf("Lookup(%q) found a resource", miss)
		}
	}
	if got := reg.Scopes(); len(got) != 2 || got[0] != "a" || got[1] != "b" {
		t.Errorf("Scopes = %v", got)
	}
}
