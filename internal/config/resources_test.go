package config_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/mandate-dev/mandate/internal/config"
)

const resourcesYAML = `
agents:
  - id: agent:infrabot
    secret: infrabot-secret
resources:
  - uri: https://mcp.example/mcp
    name: Deploy assistant
    scopes:
      - {name: tools:read, description: List the tools}
      - {name: deploy:create, description: Start deployments}
    default_scopes: [tools:read]
    agents: [agent:infrabot]
  - uri: http://127.0.0.1:9000
`

// TestResources: a resources section loads, becomes the registry the
// server checks, describes its scopes for the consent page, and warns of
// an agent the file does not hold.
func TestResources(t *testing.T) {
	c, err := config.Parse([]byte(resourcesYAML), "mandate.yaml")
	if err != nil {
		t.Fatal(err)
	}
	reg, err := c.ResourceRegistry()
	if err != nil {
		t.Fatal(err)
	}
	res, ok := reg.Lookup("https://MCP.example/mcp")
	if !ok || res.Name != "Deploy assistant" || !res.Allows("agent:infrabot") || res.Allows("agent:other") {
		t.Fatalf("Lookup = %+v, %v", res, ok)
	}
	if open, ok := reg.Lookup("http://127.0.0.1:9000/"); !ok || !open.Allows("agent:anyone") || open.DisplayName() != "http://127.0.0.1:9000" {
		t.Errorf("the resource without agents: %+v, %v", open, ok)
	}
	if diff := cmp.Diff([]string{"deploy:create", "tools:read"}, reg.Scopes()); diff != "" {
		t.Errorf("Scopes (-want +got):\n%s", diff)
	}
	if d := c.ScopeDescriptions()["tools:read"]; d != "List the tools" {
		t.Errorf("ScopeDescriptions()[tools:read] = %q", d)
	}
	if w := c.Warnings(); len(w) != 0 {
		t.Errorf("Warnings = %v, want none", w)
	}
	c.Resources[0].Agents = []string{"agent:elsewhere"}
	if w := c.Warnings(); len(w) != 1 || w[0].Error() != `mandate.yaml: resources[0].agents[0]: "agent:elsewhere" is not an agent in this file; it must exist in the store` {
		t.Errorf("Warnings = %v", w)
	}
	none, err := (&config.Config{}).ResourceRegistry()
	if err != nil || !none.Empty() {
		t.Errorf("no resources: %v, %v", none, err)
	}
}

// TestResourcesProblems: every problem of a resources section, at its line
// and column.
func TestResourcesProblems(t *testing.T) {
	yaml := `
resources:
  - uri: https://MCP.example/mcp
    scopes: [{name: a}, {name: a}]
    default_scopes: [b]
  - uri: https://mcp.example/mcp#x
    name: "two\nlines"
  - uri: http://mcp.example/mcp
  - uri: https://mcp.example:443/tools
  - uri: https://mcp.example/tools
    agents: ["", agent:a, agent:a]
  - name: no uri
  - uri: https://hand.example/mcp
    hand_on: [https://hand.example/mcp, https://deploy.example, https://deploy.example]
    default: true
  - uri: https://second.example/mcp
    default: true
`
	want := []string{
		`mandate.yaml:3:5: resources[0].uri: must be canonical: the scheme and the host in lower case, no default port`,
		`mandate.yaml:4:25: resources[0].scopes[1]: "a" is listed twice`,
		`mandate.yaml:5:22: resources[0].default_scopes[0]: "b" is not in the resource's scopes`,
		`mandate.yaml:6:5: resources[1].uri: must not contain a fragment`,
		`mandate.yaml:7:5: resources[1].name: must be at most 100 bytes, without control characters`,
		`mandate.yaml:8:5: resources[2].uri: must use https unless the host is a loopback address (127.0.0.0/8, ::1, localhost)`,
		`mandate.yaml:9:5: resources[3].uri: must be canonical: the scheme and the host in lower case, no default port`,
		`mandate.yaml:11:14: resources[4].agents[0]: must not be empty`,
		`mandate.yaml:11:27: resources[4].agents[2]: "agent:a" is listed twice`,
		`mandate.yaml:12:5: resources[5].uri: is required`,
		`mandate.yaml:14:5: resources[6].hand_on: needs agent: the agent that exchanges the resource's tokens`,
		`mandate.yaml:14:15: resources[6].hand_on[0]: is the resource itself`,
		`mandate.yaml:14:65: resources[6].hand_on[2]: "https://deploy.example" is listed twice`,
		`mandate.yaml:17:5: resources[7].default: resources[6] is the default already`,
	}
	_, err := config.Parse([]byte(yaml), "mandate.yaml")
	var got []string
	for _, fe := range fieldErrors(t, err) {
		got = append(got, fe.Error())
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
}
