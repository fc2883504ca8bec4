package server_test

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/net/html"

	"github.com/mandate-dev/mandate/internal/audit"
	"github.com/mandate-dev/mandate/internal/directory"
	"github.com/mandate-dev/mandate/internal/store"
	"github.com/mandate-dev/mandate/oauth"
)

// The staff pages: Agents (administrators) and Audit (administrators and
// auditors), driven as a person's browser drives them.

// staffPassword is every staff person's password in these tests.
const staffPassword = "staff-password-for-tests"

// staffMember gives user a password and roles (through the server's
// cached store, so that the server sees them at once) and signs them in.
func (h *harness) staffMember(user string, roles ...string) *person {
	h.t.Helper()
	h.givePassword(user, staffPassword)
	if _, err := h.app.Store.UpdateUser(context.Background(), user, func(u store.User) (store.User, error) {
		u.Roles = roles
		return u, nil
	}); err != nil {
		h.t.Fatal(err)
	}
	p := h.person()
	if res := p.signIn("/login", user, staffPassword); res.status != http.StatusSeeOther {
		h.t.Fatalf("sign-in of %s: %d %s", user, res.status, res.text())
	}
	return p
}

// agent reads an agent from the store.
func (h *harness) agent(id string) store.Agent {
	h.t.Helper()
	a, err := h.store.GetAgent(context.Background(), id)
	if err != nil {
		h.t.Fatal(err)
	}
	return a
}

// rows returns the text of each cell of each row of the page's first
// table body.
func (pg page) rows() [][]string {
	var out [][]string
	var walk func(n *html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode && n.Data == "tr" && n.Parent != nil && n.Parent.Data == "tbody" {
			var row []string
			for c := n.FirstChild; c != nil; c = c.NextSibling {
				if c.Type == html.ElementNode && (c.Data == "td" || c.Data == "th") {
					row = append(row, (page{doc: c}).text())
				}
			}
			out = append(out, row)
			return
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(pg.doc)
	return out
}

func TestStaffPagesNeedTheirRole(t *testing.T) {
	h := newPeopleHarness(t)
	nobody := h.person()
	alex := h.staffMember("user:alex")
	auditor := h.staffMember("user:alice", "auditor")
	admin := h.staffMember("user:sam", "admin")
	gets := []string{"/manage/agents", "/manage/audit", "/manage/audit/record?seq=1"}
	for _, tc := range []struct {
		name string
		p    *person
		want map[string]int
	}{
		{name: "fail/no-session", p: nobody, want: map[string]int{"/manage/agents": http.StatusSeeOther, "/manage/audit": http.StatusSeeOther, "/manage/audit/record?seq=1": http.StatusSeeOther}},
		{name: "fail/no-role", p: alex, want: map[string]int{"/manage/agents": http.StatusForbidden, "/manage/audit": http.StatusForbidden, "/manage/audit/record?seq=1": http.StatusForbidden}},
		{name: "ok/auditor-audit-only", p: auditor, want: map[string]int{"/manage/agents": http.StatusForbidden, "/manage/audit": http.StatusOK, "/manage/audit/record?seq=1": http.StatusOK}},
		{name: "ok/admin", p: admin, want: map[string]int{"/manage/agents": http.StatusOK, "/manage/audit": http.StatusOK, "/manage/audit/record?seq=1": http.StatusOK}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, path := range gets {
				pg := tc.p.get(path)
				if pg.status != tc.want[path] {
					t.Errorf("GET %s: %d, want %d: %s", path, pg.status, tc.want[path], pg.text())
				}
				if pg.status == http.StatusSeeOther && pg.header.Get("Location") != "/login" {
					t.Errorf("GET %s sends to %q, want /login", path, pg.header.Get("Location"))
				}
				if pg.status == http.StatusForbidden && !strings.Contains(pg.text(), "Not allowed") {
					t.Errorf("GET %s: the 403 page says %q", path, pg.text())
				}
			}
		})
	}
	// The layout links each person to the staff pages they may open.
	if txt := auditor.get("/my/agents").text(); strings.Contains(txt, "Agents Audit") || !strings.Contains(txt, "Audit") {
		t.Errorf("an auditor's navigation: %s", txt)
	}
}

func TestStaffDisableEnableAgent(t *testing.T) {
	h := newPeopleHarness(t)
	admin := h.staffMember("user:sam", "admin")
	pg := admin.get("/manage/agents")
	if pg.status != http.StatusOK {
		t.Fatalf("Agents: %d %s", pg.status, pg.text())
	}
	var mallory []string
	for _, row := range pg.rows() {
		if row[0] == "agent:mallory" {
			mallory = row
		}
	}
	if len(mallory) < 6 || !strings.HasPrefix(mallory[1], "—") || !strings.Contains(mallory[2], "secrets:manage") || mallory[4] != "enabled" || mallory[5] != "no token requests" {
		t.Fatalf("agent:mallory's row: %q", mallory)
	}
	form := pg.form(t, "/manage/agents/disable")
	form.Set("agent", "agent:mallory")
	res := admin.post("/manage/agents/disable", form)
	if res.status != http.StatusSeeOther || !strings.HasPrefix(res.header.Get("Location"), "/manage/agents?done=disabled") {
		t.Fatalf("disable: %d %s %s", res.status, res.header.Get("Location"), res.text())
	}
	if !h.agent("agent:mallory").Disabled {
		t.Fatal("agent:mallory is not disabled")
	}
	evs := h.events(store.EventFilter{Action: audit.ActionAgentDisabled})
	if len(evs) != 1 || evs[0].Performer != "user:sam" || evs[0].Resource != "agent:mallory" || evs[0].RequestID == "" {
		t.Fatalf("disable records %+v", evs)
	}
	if r := h.clientToken("agent:mallory", "mallory-secret", "monitoring:read"); r.status == http.StatusOK {
		t.Fatal("a disabled agent still gets tokens")
	}

	pg = admin.get(res.header.Get("Location"))
	if !strings.Contains(pg.text(), "Disabled agent:mallory") {
		t.Errorf("no notice: %s", pg.text())
	}
	form = pg.form(t, "/manage/agents/enable")
	if form.Get("agent") != "agent:mallory" {
		t.Fatalf("the enable form names %q", form.Get("agent"))
	}
	if res := admin.post("/manage/agents/enable", form); res.status != http.StatusSeeOther {
		t.Fatalf("enable: %d %s", res.status, res.text())
	}
	if h.agent("agent:mallory").Disabled {
		t.Fatal("agent:mallory is still disabled")
	}
	if evs := h.events(store.EventFilter{Action: audit.ActionAgentEnabled}); len(evs) != 1 || evs[0].Performer != "user:sam" {
		t.Fatalf("enable records %+v", evs)
	}

	// A link cannot make the page announce what did not happen.
	for _, q := range []string{"done=disabled&agent=agent:mallory", "done=disabled&agent=Your+session+expired"} {
		if txt := admin.get("/manage/agents?" + q).text(); strings.Contains(txt, "Disabled") {
			t.Errorf("?%s: the page says %s", q, txt)
		}
	}
	form.Set("agent", "agent:nobody")
	if res := admin.post("/manage/agents/disable", form); res.status != http.StatusNotFound {
		t.Fatalf("an unknown agent: %d %s", res.status, res.text())
	}
}

func TestStaffDisableRefused(t *testing.T) {
	h := newPeopleHarness(t)
	admin := h.staffMember("user:sam", "admin")
	alex := h.staffMember("user:alex")
	good := admin.get("/manage/agents").form(t, "/manage/agents/disable")
	seq := h.lastSeq()
	for _, tc := range []struct {
		name string
		p    *person
		form url.Values
		want int
	}{
		{name: "fail/csrf-missing", p: admin, form: url.Values{"agent": {"agent:infrabot"}}, want: http.StatusForbidden},
		{name: "fail/csrf-wrong", p: admin, form: url.Values{"agent": {"agent:infrabot"}, "csrf": {"not-the-token"}}, want: http.StatusForbidden},
		{name: "fail/csrf-of-another-session", p: h.staffMember("user:sam", "admin"), form: url.Values{"agent": {"agent:infrabot"}, "csrf": good["csrf"]}, want: http.StatusForbidden},
		{name: "fail/no-role", p: alex, form: url.Values{"agent": {"agent:infrabot"}, "csrf": good["csrf"]}, want: http.StatusForbidden},
		{name: "fail/no-session", p: h.person(), form: url.Values{"agent": {"agent:infrabot"}, "csrf": good["csrf"]}, want: http.StatusSeeOther},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if res := tc.p.post("/manage/agents/disable", tc.form); res.status != tc.want {
				t.Fatalf("%d, want %d: %s", res.status, tc.want, res.text())
			}
			if h.agent("agent:infrabot").Disabled {
				t.Fatal("the agent was disabled")
			}
		})
	}
	for _, ev := range h.eventsSince(seq) {
		if ev.Action == audit.ActionAgentDisabled {
			t.Fatalf("a refused form was recorded as a change: %+v", ev)
		}
	}
}

func TestStaffAuditFilter(t *testing.T) {
	h := newPeopleHarness(t)
	auditor := h.staffMember("user:alice", "auditor")
	h.hop1("deploy:create")
	if r := h.exchange("agent:mallory", h.samToken(), oauth.TokenTypeIDToken, url.Values{"scope": {"secrets:manage"}}); r.status == http.StatusOK {
		t.Fatal("mallory got a token")
	}
	for _, tc := range []struct {
		name  string
		query url.Values
		check func(row []string) bool
	}{
		{name: "ok/actor", query: url.Values{"actor": {"agent:mallory"}}, check: func(row []string) bool {
			return strings.Contains(row[4]+row[6], "agent:mallory")
		}},
		{name: "ok/result", query: url.Values{"result": {"refused"}}, check: func(row []string) bool { return strings.HasPrefix(row[3], "refused") }},
		{name: "ok/action-and-subject", query: url.Values{"action": {"token.exchange"}, "subject": {"user:sam"}}, check: func(row []string) bool {
			return row[2] == "token.exchange" && row[5] == "user:sam"
		}},
		{name: "ok/since", query: url.Values{"since": {"1h"}, "actor": {"agent:infrabot"}}, check: func(row []string) bool { return true }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pg := auditor.get("/manage/audit?" + tc.query.Encode())
			if pg.status != http.StatusOK {
				t.Fatalf("%d %s", pg.status, pg.text())
			}
			rows := pg.rows()
			if len(rows) == 0 {
				t.Fatalf("no rows: %s", pg.text())
			}
			for _, row := range rows {
				if len(row) != 8 || !tc.check(row) {
					t.Errorf("a row the filter should have left out: %q", row)
				}
			}
			// The form shows the filter it applied.
			for k := range tc.query {
				if got := pg.form(t, "/manage/audit").Get(k); got != tc.query.Get(k) {
					t.Errorf("the form's %s is %q, want %q", k, got, tc.query.Get(k))
				}
			}
		})
	}

	all := auditor.get("/manage/audit").rows()
	first, _ := strconv.ParseInt(all[0][0], 10, 64)
	older := auditor.get("/manage/audit?before=" + all[0][0]).rows()
	if len(older) == 0 || older[0][0] != strconv.FormatInt(first-1, 10) {
		t.Errorf("the page before %d starts at %q", first, older[0][0])
	}
	if pg := auditor.get("/manage/audit?since=yesterday-ish"); pg.status != http.StatusBadRequest || !strings.Contains(pg.text(), "Since is a date") {
		t.Errorf("a bad since: %d %s", pg.status, pg.text())
	}
	// The refusal rates: mallory's one refusal is drawn.
	if pg := auditor.get("/manage/audit"); !strings.Contains(pg.body, "<svg") || !strings.Contains(pg.body, "agent:mallory: 100.0% refused") {
		t.Errorf("no refusal bars for agent:mallory:\n%s", pg.body)
	}
}

func TestStaffAuditRecord(t *testing.T) {
	h := newPeopleHarness(t)
	admin := h.staffMember("user:alice", "admin")
	argo, _ := h.argoToken("deploy:create")
	jti, _ := claims(t, argo)["jti"].(string)
	var rec store.Event
	for _, ev := range h.events(store.EventFilter{JTI: jti}) {
		if ev.JTI == jti && ev.Action == audit.ActionTokenExchange {
			rec = ev
		}
	}
	if rec.Seq == 0 {
		t.Fatal("no record of ArgoCD's token")
	}
	bySeq := admin.get("/manage/audit/record?seq=" + strconv.FormatInt(rec.Seq, 10))
	byJTI := admin.get("/manage/audit/record?jti=" + url.QueryEscape(jti))
	for name, pg := range map[string]page{"seq": bySeq, "jti": byJTI} {
		if pg.status != http.StatusOK {
			t.Fatalf("by %s: %d %s", name, pg.status, pg.text())
		}
		txt := pg.text()
		for _, want := range []string{
			"Audit record " + strconv.FormatInt(rec.Seq, 10),
			"On behalf of user:sam",
			"agent:infrabot → agent:argocd",
			"Delegation " + rec.DelegationID,
			"declared in the configuration file",
			"jti " + jti,
		} {
			if !strings.Contains(txt, want) {
				t.Errorf("by %s: the page does not say %q:\n%s", name, want, txt)
			}
		}
		// The chain's picture names every hop, in order, in its description.
		desc := pg.body[strings.Index(pg.body, "<desc"):]
		iSam, iInfra, iArgo := strings.Index(desc, "user:sam"), strings.Index(desc, "agent:infrabot"), strings.Index(desc, "agent:argocd")
		if !strings.Contains(pg.body, "<svg") || iSam < 0 || iInfra < iSam || iArgo < iInfra {
			t.Errorf("by %s: the chain is not drawn person → agent → agent:\n%s", name, desc)
		}
	}

	// A refused exchange of a token in the log is drawn as its chain and
	// the hop it asked for, refused.
	_, hop1 := h.argoToken("deploy:create")
	if r := h.exchange("agent:argocd", hop1, oauth.TokenTypeAccessToken, url.Values{"scope": {"secrets:manage"}}); r.status == http.StatusOK {
		t.Fatal("argocd got secrets:manage")
	}
	refusals := h.events(store.EventFilter{Action: audit.ActionTokenRefused, Actor: "agent:argocd"})
	if len(refusals) != 1 {
		t.Fatalf("refusals %+v", refusals)
	}
	pg := admin.get("/manage/audit/record?seq=" + strconv.FormatInt(refusals[0].Seq, 10))
	if !strings.Contains(pg.body, "user:sam (person) → agent:infrabot (agent; scopes deploy:create; audience agent:argocd) → agent:argocd (agent; refused; scopes secrets:manage).") {
		t.Errorf("the refused hop is not drawn:\n%s", pg.body)
	}

	// A delegation given on the consent page was approved by the person.
	p := h.person()
	tok := h.consented(p, "deploy:create", nil)
	cjti, _ := claims(t, tok.str("access_token"))["jti"].(string)
	pg = admin.get("/manage/audit/record?jti=" + url.QueryEscape(cjti))
	if txt := pg.text(); pg.status != http.StatusOK || !strings.Contains(txt, "approved by the person on the consent page: user:sam") {
		t.Errorf("a consented token's record: %d %s", pg.status, txt)
	}
	for _, path := range []string{"/manage/audit/record?seq=999999", "/manage/audit/record?jti=nope", "/manage/audit/record?seq=x"} {
		if pg := admin.get(path); pg.status != http.StatusNotFound {
			t.Errorf("%s: %d", path, pg.status)
		}
	}
}

// TestStaffPagesEscape: an agent named like a script is shown as text on
// both pages, in the tables, the forms and the pictures.
func TestStaffPagesEscape(t *testing.T) {
	h := newPeopleHarness(t)
	const evil = "<script>alert(1)</script>"
	dir := &directory.Directory{Store: h.app.Store}
	if _, _, err := dir.CreateAgent(context.Background(), directory.Performer{ID: directory.PerformerCLI}, store.Agent{ID: evil, Scopes: []string{"monitoring:read"}}); err != nil {
		t.Fatal(err)
	}
	// A refused token request puts its name in the refusal rates.
	if r := h.postAs("/token", evil, "wrong", url.Values{"grant_type": {"client_credentials"}}, nil); r.status == http.StatusOK {
		t.Fatal("a wrong secret got a token")
	}
	admin := h.staffMember("user:sam", "admin")
	pg := admin.get("/manage/agents")
	form := pg.form(t, "/manage/agents/disable")
	form.Set("agent", evil)
	res := admin.post("/manage/agents/disable", form)
	if res.status != http.StatusSeeOther || !h.agent(evil).Disabled {
		t.Fatalf("disable: %d %s", res.status, res.text())
	}
	evs := h.events(store.EventFilter{Action: audit.ActionAgentDisabled})
	if len(evs) != 1 {
		t.Fatalf("records %+v", evs)
	}
	pages := map[string]page{
		"agents":        admin.get(res.header.Get("Location")),
		"audit":         admin.get("/manage/audit"),
		"audit-by-name": admin.get("/manage/audit?actor=" + url.QueryEscape(evil)),
		"record":        admin.get("/manage/audit/record?seq=" + strconv.FormatInt(evs[0].Seq, 10)),
	}
	for name, pg := range pages {
		if pg.status != http.StatusOK {
			t.Fatalf("%s: %d %s", name, pg.status, pg.text())
		}
		if strings.Contains(pg.body, evil) || strings.Contains(pg.body, "<script") {
			t.Errorf("%s: the raw name is in the page:\n%s", name, pg.body)
		}
		if strings.Contains(pg.body, " style=") || !strings.Contains(pg.header.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
			t.Errorf("%s: an inline style (the CSP blocks it) or no CSP", name)
		}
		if !strings.Contains(pg.text(), evil) {
			t.Errorf("%s: the name is not shown as text:\n%s", name, pg.text())
		}
	}
	if !strings.Contains(pages["audit"].body, "<svg") {
		t.Error("no refusal bars on the audit page")
	}
}

// TestSignInRecordsAreStamped: the records a sign-in and a sign-out commit
// with their session carry an id and a time, as every other record does,
// so that the Audit page says when they happened.
func TestSignInRecordsAreStamped(t *testing.T) {
	h := newPeopleHarness(t)
	p := h.staffMember("user:alex")
	f := p.get("/my/agents").form(t, "/logout")
	if res := p.post("/logout", f); res.status != http.StatusSeeOther {
		t.Fatalf("sign-out: %d %s", res.status, res.text())
	}
	for _, action := range []string{audit.ActionSignIn, audit.ActionSignOut} {
		evs := h.events(store.EventFilter{Action: action, Subject: "user:alex"})
		if len(evs) != 1 || evs[0].ID == "" || evs[0].Time.IsZero() {
			t.Errorf("%s records %+v", action, evs)
		}
	}
}

// TestStaffPagesWhenTheLogFails: counting the refusal rates past its time
// budget shows the page without them; a log that cannot be read fails the
// page as unavailable, showing nothing.
func TestStaffPagesWhenTheLogFails(t *testing.T) {
	h := newPeopleHarness(t)
	admin := h.staffMember("user:alice", "admin")
	h.faulty.Fail("QueryEvents", context.DeadlineExceeded)
	pg := admin.get("/manage/agents")
	if pg.status != http.StatusOK || !strings.Contains(pg.text(), "Too many token requests") || !strings.Contains(pg.text(), "not counted") {
		t.Errorf("Agents with a slow log: %d %s", pg.status, pg.text())
	}
	h.faulty.Fail("QueryEvents", nil)
	for _, path := range []string{"/manage/agents", "/manage/audit", "/manage/audit/record?seq=1"} {
		if pg := admin.get(path); pg.status != http.StatusServiceUnavailable || !strings.Contains(pg.text(), "Try again later") {
			t.Errorf("%s with the log down: %d %s", path, pg.status, pg.text())
		}
	}
}
