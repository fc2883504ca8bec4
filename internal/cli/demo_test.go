package cli

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"
)

// TestDemo plays both stories end to end against the real server and the
// example APIs, and checks every decision the stories tell of, and that the
// reader is shown what they need to follow them.
func TestDemo(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := Main(context.Background(), []string{"demo"}, &stdout, &stderr); code != 0 {
		t.Fatalf("demo exited %d: %s\n%s", code, stderr.String(), stdout.String())
	}
	out := stdout.String()
	for _, want := range []string{
		`scope "monitoring:read" for`,                       // secrets:manage dropped
		"refused by policy prod-deploys-only-from-ci",       // manual prod deploy
		"agent:argocd deploys checkout for user:sam",        // chained deploy
		"the delegation chain would be too deep",            // fourth hop
		`"max_amount":1000`,                                 // $5,000 asked, $1,000 granted
		"EXP-1042/approve: 200",                             // $487.50 approved
		"EXP-1043/approve: 403",                             // $1,250 refused
		"limit exceeded",                                    //
		"ON BEHALF OF",                                      // the audit table
		"refused (delegation_depth_exceeded)",               //
		"refused (policy_denied:prod-deploys-only-from-ci)", //
	} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
	if !hasLine(out, "expense:approve", "agent:expense-agent-001", "user:alice", "expense/EXP-1043", "refused (limit_exceeded)") {
		t.Error("the audit table does not show the refused $1,250 approval")
	}

	t.Run("chain-column", func(t *testing.T) {
		if !hasLine(out, "TIME", "PERFORMED BY", "ON BEHALF OF", "CHAIN", "RESOURCE") {
			t.Error("the audit table has no CHAIN column")
		}
		for _, want := range [][]string{
			{"deploy:create", "agent:argocd", "user:sam", "agent:argocd <- agent:infrabot", "service/checkout", "granted"},
			{"token.exchange", "agent:cleanup_agent", "user:sam", "agent:cleanup_agent <- agent:argocd <- agent:infrabot", "agent:reaper", "granted"},
			{"token.refused", "agent:reaper", "user:sam", "agent:reaper <- agent:cleanup_agent <- agent:argocd <- agent:infrabot", "refused (delegation_depth_exceeded)"},
		} {
			if !hasLine(out, want...) {
				t.Errorf("no line of the table has %q", want)
			}
		}
	})

	t.Run("mcp-story", func(t *testing.T) {
		m := regexp.MustCompile(`Meet (agent:[0-9a-f]+): the MCP client, registered just now by itself`).FindStringSubmatch(out)
		if m == nil {
			t.Fatal("the MCP client that registered itself is never introduced")
		}
		client := m[1]
		for _, want := range []string{
			`401 WWW-Authenticate: Bearer scope="monitoring:read", resource_metadata="http://127.0.0.1:`,            // found from the 401
			"calls itself Notes MCP: Mandate has not checked that name",                                             // the claim marked unchecked
			"what it may do, ticked: monitoring:read: Read the services' metrics\n",                                 // the default scope only
			"where: Example MCP server (http://127.0.0.1:",                                                          //
			"which may exchange your tokens for its own",                                                            // what the server may pass on
			"metrics: Read a service's CPU",                                                                         // tools/list
			`metrics answered {"cpu":0.42,"read_for":"user:sam"`,                                                    //
			`403 WWW-Authenticate: Bearer error="insufficient_scope"`,                                               // deploy refused
			"what it may do, ticked: deploy:create: Start deployments; monitoring:read: Read the services' metrics", // step-up
			`scope "deploy:create monitoring:read"`,                                                                 //
			`"performed_by":"agent:example_mcp"`,                                                                    // handed on by exchange
		} {
			if !strings.Contains(out, want) {
				t.Errorf("the MCP story lacks %q", want)
			}
		}
		for _, want := range [][]string{
			{"POST", "/mcp", "refused (token_missing)", demoReporter},
			{"agent.created", "anonymous", client},
			{"tools/call", client, "user:sam", "tool/metrics", "granted", demoReporter},
			{"tools/call", client, "user:sam", "tool/deploy", "refused (insufficient_scope)", demoReporter},
			{"tools/call", client, "user:sam", "tool/deploy", "granted", demoReporter},
			{"token.exchange", "agent:example_mcp", "user:sam", "agent:example_mcp <- " + client, "granted"},
			// Sam, the MCP client and the MCP server in one chain.
			{"deploy:create", "agent:example_mcp", "user:sam", "agent:example_mcp <- " + client, "service/search", "granted", demoReporter},
		} {
			if !hasLine(out, want...) {
				t.Errorf("no line of the table has %q", want)
			}
		}
		if n := strings.Count(out, "delegation.created         user:sam"); n != 3 {
			t.Errorf("%d delegations created by Sam, want 3 (InfraBot, the MCP client, its step-up)", n)
		}
		if !hasLine(out, "delegation.revoked", "user:sam") {
			t.Error("the step-up's approval did not replace the earlier one")
		}
	})

	t.Run("rfc3339-times", func(t *testing.T) {
		rows := regexp.MustCompile(`(?m)^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z  `).FindAllString(out, -1)
		if len(rows) < 15 {
			t.Errorf("%d table rows start with an RFC 3339 time in UTC, want every one of at least 15", len(rows))
		}
	})

	t.Run("decoded-token", func(t *testing.T) {
		nested := regexp.MustCompile(`"sub": "user:sam",\s+"act": \{\s+"sub": "agent:argocd",\s+"act": \{\s+"sub": "agent:infrabot"\s+\}\s+\}`)
		if !nested.MatchString(out) {
			t.Error("no decoded token shows the act chain nested: argocd acting for infrabot, for sam")
		}
		for _, want := range []string{`"aud": "http://127.0.0.1:`, `"scope": "deploy:create"`, `"exp": `,
			"sub, user:sam, is the person on whose behalf the token acts",
			"act, agent:argocd, is the agent acting now, and each act nested in it names the agent it acts for, back to agent:infrabot"} {
			if !strings.Contains(out, want) {
				t.Errorf("the decoded token lacks %q", want)
			}
		}
		// A JWT's header starts eyJ ({"): no token, signed or not, is printed.
		if strings.Contains(out, "eyJ") {
			t.Error("the output holds an encoded token")
		}
		if n := strings.Count(out, "decoded: its claims"); n != 1 {
			t.Errorf("%d decoded tokens, want one", n)
		}
	})

	t.Run("401-challenge-and-metadata", func(t *testing.T) {
		m := regexp.MustCompile(`GET (127\.0\.0\.1:\d+)/metrics/cpu: 401 .*\n\s+-> WWW-Authenticate: Bearer resource_metadata="http://(127\.0\.0\.1:\d+)/\.well-known/oauth-protected-resource"\n`).FindStringSubmatch(out)
		if m == nil || m[1] != m[2] {
			t.Fatalf("no 401 answer naming the API's own metadata: %q", m)
		}
		api := "http://" + m[1]
		issuer := regexp.MustCompile(`Mandate runs at (http://127\.0\.0\.1:\d+)`).FindStringSubmatch(out)
		if issuer == nil {
			t.Fatal("the demo does not say where Mandate runs")
		}
		doc := regexp.MustCompile(`GET ` + regexp.QuoteMeta(m[1]) + `/\.well-known/oauth-protected-resource: 200.*\n\s+\{\s+"resource": "` +
			regexp.QuoteMeta(api) + `",\s+"authorization_servers": \[\s+"` + regexp.QuoteMeta(issuer[1]) + `"\s+\],\s+"scopes_supported": \[\s+"monitoring:read"`)
		if !doc.MatchString(out) {
			t.Error("the metadata document the challenge points to is not shown, or does not name the API, this server and its scope")
		}
		if !hasLine(out, "GET", "/metrics/cpu", "refused (token_missing)", demoReporter) {
			t.Error("the audit table lacks the refused request without a token")
		}
	})

	t.Run("introduced-before-named", func(t *testing.T) {
		// Every person, agent and client the output names, the story's
		// prose and the audit table alike, is met first.
		ids := regexp.MustCompile(`\b(?:agent|user|rs):[A-Za-z0-9_.-]*[A-Za-z0-9_]`)
		for _, loc := range ids.FindAllStringIndex(out, -1) {
			id := out[loc[0]:loc[1]]
			intro := strings.Index(out, "Meet "+id+": ")
			if intro < 0 {
				t.Errorf("%s is never introduced", id)
				continue
			}
			if first := intro + len("Meet "); loc[0] < first {
				line := out[strings.LastIndex(out[:loc[0]], "\n")+1:]
				t.Errorf("%s is named before its introduction, in %q", id, line[:strings.IndexByte(line, '\n')])
			}
		}
	})

	t.Run("each-step-says-what-the-table-shows", func(t *testing.T) {
		steps := regexp.MustCompile(`(?m)^ ?\d+\. `).FindAllStringIndex(out, -1)
		end := strings.Index(out, "\nAudit: ")
		if len(steps) < 10 || end < 0 {
			t.Fatalf("%d steps, table at %d", len(steps), end)
		}
		for i, s := range steps {
			next := end
			if i+1 < len(steps) {
				next = steps[i+1][0]
			}
			if n := strings.Count(out[s[0]:next], "\n    table: "); n != 1 {
				t.Errorf("step %d says %d times what the table shows, want once", i+1, n)
			}
		}
	})
	if t.Failed() {
		t.Log(out)
	}
}
