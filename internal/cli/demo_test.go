package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestDemo plays both stories end to end against the real server and the
// example APIs, and checks every decision the stories tell of.
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
	if t.Failed() {
		t.Log(out)
	}
}
