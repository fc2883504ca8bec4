package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/mandate-dev/mandate/internal/config"
	"github.com/mandate-dev/mandate/internal/store"
	"github.com/mandate-dev/mandate/oauth"
)

// mandate runs the command line against the harness's server (--server,
// the admin token as --admin-token) and returns what it printed. It runs
// the mandate binary (mandateBinary), so that the server's tests do not
// link the command line.
func (h *harness) mandate(args ...string) string {
	h.t.Helper()
	var stdout, stderr bytes.Buffer
	args = append(args, "--server", h.url, "--admin-token", adminToken)
	cmd := exec.Command(mandateBinary(h.t), args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		h.t.Fatalf("mandate %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String()
}

// TestReporterBoundToItsAudiences (THREATS T101): rs:reporter, registered
// for https://expense.example, reports for that audience and its own id;
// a record claiming another audience (or none) is refused alone with 403;
// a record whose jti names a token the server issued is stored flagged
// when it names another subject, chain, performer or audience than the
// token; and audit query, audit agent and audit agents name the reporter
// of every API record, and the flag.
func TestReporterBoundToItsAudiences(t *testing.T) {
	onEveryBackend(t, func(t *testing.T, h *harness) {
		now := time.Now()
		tok := h.alicesExpenseToken()
		jti := claims(t, tok)["jti"].(string)
		other := h.mustExchange("agent:expense", h.idp.token(t, "user:alice", nil), oauth.TokenTypeIDToken,
			url.Values{"audience": {"https://other.example"}, "scope": {"expense:approve"}})
		otherJTI := claims(t, other)["jti"].(string)
		rec := func(n int, edit func(map[string]any)) map[string]any {
			r := ingestRecord(n, now)
			r["jti"], r["chain"] = jti, []string{"agent:expense"}
			if edit != nil {
				edit(r)
			}
			return r
		}
		records := []any{
			0: rec(1, nil), // as the token says
			1: rec(2, func(r map[string]any) { r["audience"] = "https://deploy.example" }),
			2: rec(3, func(r map[string]any) { r["audience"] = "rs:reporter" }), // its own id; the token's audience differs
			3: rec(4, func(r map[string]any) { delete(r, "audience") }),
			4: rec(5, func(r map[string]any) {
				r["on_behalf_of"], r["chain"], r["performed_by"] = "user:sam", []string{"agent:infrabot"}, "agent:infrabot"
			}),
			5: rec(6, func(r map[string]any) { r["jti"] = otherJTI }),
			6: rec(7, func(r map[string]any) { r["jti"] = "not-a-mandate-token" }),
		}
		got := h.ingestOK("rs:reporter", "rs-reporter-secret", map[string]any{"records": records})
		wantRefused := map[int]string{1: "403 audience_not_allowed", 3: "403 audience_not_allowed"}
		if got.accepted != 5 || len(got.refused) != 2 || got.refused[1] != wantRefused[1] || got.refused[3] != wantRefused[3] {
			t.Fatalf("accepted %d, refused %v; want 5, %v", got.accepted, got.refused, wantRefused)
		}
		flags := map[string]string{}
		for _, ev := range h.events(store.EventFilter{Action: "request", Result: "granted"}) {
			var attrs map[string]string
			if err := json.Unmarshal(ev.Attributes, &attrs); err != nil {
				t.Fatalf("attributes of %s: %v", ev.ID, err)
			}
			if attrs["amount"] != "487.50" || ev.ReportedBy != "rs:reporter" {
				t.Errorf("record %s: attributes %v, reported by %q", ev.ID, attrs, ev.ReportedBy)
			}
			flags[ev.ID[len(ev.ID)-1:]] = attrs["mandate.token_mismatch"]
		}
		if want := map[string]string{"1": "", "3": "audience", "5": "subject,chain,performed_by", "6": "audience", "7": ""}; len(flags) != len(want) ||
			flags["1"] != want["1"] || flags["3"] != want["3"] || flags["5"] != want["5"] || flags["6"] != want["6"] || flags["7"] != want["7"] {
			t.Errorf("token_mismatch flags by record %v, want %v", flags, want)
		}
		h.verifyLog()

		// Every report names the reporter, and the flag.
		flagged := "rs:reporter (token mismatch: subject,chain,performed_by)"
		if out := h.mandate("audit", "query", "--actor", "agent:infrabot", "--action", "request"); !strings.Contains(out, "REPORTED BY") || !strings.Contains(out, flagged) {
			t.Errorf("audit query does not name the reporter and the flag:\n%s", out)
		}
		if out := h.mandate("audit", "agent", "agent:expense"); !strings.Contains(out, "API REPORTED BY") ||
			!strings.Contains(out, "rs:reporter (token mismatch: audience)") {
			t.Errorf("audit agent does not name the reporters:\n%s", out)
		}
		if out := h.mandate("audit", "agents"); !strings.Contains(out, "API REPORTED BY") || !strings.Contains(out, flagged) {
			t.Errorf("audit agents does not name the reporters:\n%s", out)
		}
	})
}

// TestReporterResourcesFromConfig: a reporter's resources come from the
// configuration file (agents[].resources) and reach the stored agent;
// without them a reporter reports for its own id only.
func TestReporterResourcesFromConfig(t *testing.T) {
	// rs:deploy, with no resources, is made a reporter.
	h := newHarnessEdited(t, openSQLite, nil, func(c *config.Config) {
		for i := range c.Agents {
			if c.Agents[i].ID == "rs:deploy" {
				c.Agents[i].Scopes = []string{"audit:report"}
			}
		}
	})
	a, err := h.store.GetAgent(context.Background(), "rs:reporter")
	if err != nil || len(a.Resources) != 1 || a.Resources[0] != "https://expense.example" {
		t.Fatalf("stored rs:reporter: %+v, %v", a, err)
	}
	r, _ := h.ingest("rs:deploy", "rs-deploy-secret", map[string]any{"records": []any{
		ingestRecord(1, time.Now()), func() map[string]any { r := ingestRecord(2, time.Now()); r["audience"] = "rs:deploy"; return r }(),
	}})
	if r.status != http.StatusOK || !strings.Contains(r.raw, `"accepted":1`) || !strings.Contains(r.raw, `"index":0`) {
		t.Errorf("rs:deploy without resources: %d %s, want its own id only", r.status, r.raw)
	}
}
