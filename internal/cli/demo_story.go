package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/mandate-dev/mandate/agent"
	"github.com/mandate-dev/mandate/internal/config"
	"github.com/mandate-dev/mandate/internal/forensics"
	"github.com/mandate-dev/mandate/internal/store"
	"github.com/mandate-dev/mandate/internal/termsafe"
)

// castMember is how the demo introduces one of its people or agents: the
// name the story calls it by, the version it declares (agent_version) and
// who it is. What it may do comes from the configuration.
type castMember struct {
	name, version, who string
}

// demoCast is everyone the demo's output names, by id.
func demoCast() map[string]castMember {
	return map[string]castMember{
		"user:sam":                {name: "Sam", who: "an engineer"},
		"agent:infrabot":          {name: "InfraBot", version: "2.1.0", who: "Sam's infrastructure assistant, in chat and in CI"},
		"agent:argocd":            {name: "ArgoCD", version: "2.9.4", who: "the deploy pipeline"},
		"agent:cleanup_agent":     {name: "CleanupAgent", version: "0.3.1", who: "tidies up after deploys"},
		"agent:reaper":            {name: "Reaper", version: "0.1.0", who: "a tagging bot CleanupAgent hands work to"},
		"user:alice":              {name: "Alice", who: "a team lead"},
		"agent:expense-agent-001": {name: "the expense agent", version: "1.0.3", who: "Alice's expense assistant"},
		demoReporter:              {name: "the APIs' reporter", who: "the client the example APIs send their records as"},
		demoMCPAgent:              {name: "the example MCP server", who: "an MCP server with two tools, metrics (monitoring:read) and deploy (deploy:create), the latter done by the deploy API"},
	}
}

// demo plays the stories and prints each decision.
type demo struct {
	out     io.Writer
	issuer  string
	admin   string
	cfg     *config.Config
	apis    map[string]*demoAPI
	started time.Time
	step    int
}

// say starts a step.
func (d *demo) say(format string, args ...any) {
	d.step++
	fmt.Fprintf(d.out, "\n%2d. %s\n", d.step, fmt.Sprintf(format, args...))
}

// result prints an outcome; what the server and the APIs answered is
// escaped (termsafe).
func (d *demo) result(format string, args ...any) {
	fmt.Fprintf(d.out, "    -> %s\n", termsafe.String(fmt.Sprintf(format, args...)))
}

// table says what the step leaves in the audit table printed at the end.
func (d *demo) table(format string, args ...any) {
	fmt.Fprintf(d.out, "    table: %s\n", fmt.Sprintf(format, args...))
}

// meet introduces a person or an agent before the story first names it:
// who it is and, from the configuration, what it may do.
func (d *demo) meet(id string) {
	m := demoCast()[id]
	name := m.name
	if m.version != "" {
		name += " " + m.version
	}
	fmt.Fprintf(d.out, "\n    Meet %s: %s, %s; %s.\n", id, name, m.who, d.mayDo(id))
}

// mayDo says what the configuration lets id do.
func (d *demo) mayDo(id string) string {
	names := func(ids []string) string {
		l := make([]string, len(ids))
		for i, id := range ids {
			l[i] = demoCast()[id].name
		}
		return strings.Join(l, ", ")
	}
	for _, u := range d.cfg.Users {
		if u.ID == id {
			return "holds " + strings.Join(u.Permissions, " ")
		}
	}
	i := slices.IndexFunc(d.cfg.Agents, func(a config.Agent) bool { return a.ID == id })
	if i < 0 {
		return "not registered"
	}
	a := d.cfg.Agents[i]
	if id == demoReporter {
		return "may only report the APIs' requests to Mandate (" + strings.Join(a.Scopes, " ") + "), shown in the REPORTED BY column"
	}
	for _, r := range d.cfg.Resources {
		if r.Agent == id {
			return "the tokens people give MCP clients for it are addressed to it, and it may exchange them for its own, with " +
				strings.Join(a.Scopes, " ") + " at most, for " + strings.Join(r.HandOn, ", ") + " (the deploy API)"
		}
	}
	s := "may use " + strings.Join(a.Scopes, " ") + " on a token handed to it"
	for _, dl := range d.cfg.Delegations {
		if dl.Actor == id {
			s = "may act for " + demoCast()[dl.Subject].name + " with " + strings.Join(dl.Scopes, " ")
		}
	}
	if len(a.DelegateTo) == 0 {
		return s + ", and hand on to no one"
	}
	return s + ", and hand on to " + names(a.DelegateTo)
}

// agent is the client of the agent id, with the secret the configuration
// gives it.
func (d *demo) agent(id string) (*agent.Client, error) {
	i := slices.IndexFunc(d.cfg.Agents, func(a config.Agent) bool { return a.ID == id })
	if i < 0 {
		return nil, fmt.Errorf("demo: no agent %s", id)
	}
	return agent.New(agent.Config{TokenURL: d.issuer + "/token", ClientID: id, ClientSecret: d.cfg.Agents[i].Secret, Version: demoCast()[id].version})
}

// consentScopes are what Sam approves for InfraBot at the start of story 1.
var consentScopes = []string{"monitoring:read", "deploy:create", "deploy:tag"}

// refresh uses the agent's refresh token for a token for audience with
// scopes and context (the refresh token grant, RFC 6749 §6, with RFC 8707's
// resource) and prints the decision; refused says whether a refusal is the
// expected outcome. A refused request leaves the refresh token as it was.
func (d *demo) refresh(ctx context.Context, g *grant, scopes []string, audience string, facts map[string]any, refused bool) (*tokenAnswer, error) {
	extra := url.Values{}
	if facts != nil {
		b, _ := json.Marshal(facts)
		extra.Set("context", string(b))
	}
	return d.refreshWith(ctx, g, scopes, audience, extra, refused)
}

// refreshWith is refresh with extra parameters of the token request.
func (d *demo) refreshWith(ctx context.Context, g *grant, scopes []string, audience string, extra url.Values, refused bool) (*tokenAnswer, error) {
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {g.refresh}, "scope": {strings.Join(scopes, " ")}}
	if strings.Contains(audience, "://") {
		form.Set("resource", audience) // RFC 8707: an absolute URI
	} else {
		form.Set("audience", audience) // RFC 8693: a logical name, such as an agent's id
	}
	for k, v := range extra {
		form[k] = v
	}
	a, err := d.grantToken(ctx, g, form)
	switch {
	case err != nil:
		return nil, err
	case a.status == http.StatusOK && !refused:
		d.result("granted to %s: scope %q for %s, expires in %ds", g.agent, a.Scope, audience, a.ExpiresIn)
		return a, nil
	case a.status != http.StatusOK && refused:
		d.result("refused: %d %s (%s)", a.status, a.Error, a.Description)
		return nil, nil
	case a.status == http.StatusOK:
		return nil, fmt.Errorf("demo: %s was granted a token that should have been refused", g.agent)
	}
	return nil, fmt.Errorf("demo: refresh by %s: %d %s (%s)", g.agent, a.status, a.Error, a.Description)
}

// exchange runs one exchange and prints the decision; refused says whether
// a refusal is the expected outcome.
func (d *demo) exchange(ctx context.Context, c *agent.Client, who string, req agent.Request, refused bool) (*agent.Token, error) {
	tok, err := c.Exchange(ctx, req)
	var e *agent.Error
	switch {
	case err == nil && !refused:
		d.result("granted to %s: scope %q for %s, expires in %s", who, strings.Join(tok.Scopes, " "), req.Audience+req.Resource,
			time.Until(tok.ExpiresAt).Round(time.Second))
		return tok, nil
	case errors.As(err, &e) && refused:
		d.result("refused: %d %s (%s)", e.Status, e.Code, e.Description)
		return nil, nil
	case err == nil:
		return nil, fmt.Errorf("demo: %s was granted a token that should have been refused", who)
	default:
		return nil, fmt.Errorf("demo: exchange by %s: %w", who, err)
	}
}

// call sends a request to an example API with tok and prints its answer;
// wantStatus is the expected status.
func (d *demo) call(ctx context.Context, method, url, tok, body string, wantStatus int) error {
	req, _ := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("demo: %s %s: %w", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	d.result("%s %s: %d %s", method, strings.TrimPrefix(url, "http://"), resp.StatusCode, strings.TrimSpace(string(b)))
	if resp.StatusCode != wantStatus {
		return fmt.Errorf("demo: %s %s answered %d, expected %d", method, url, resp.StatusCode, wantStatus)
	}
	return nil
}

// infraBot plays story 1: discovery, monitoring, the refused manual prod
// deploy and the chain, to its refused fourth agent.
func (d *demo) infraBot(ctx context.Context) error {
	fmt.Fprintf(d.out, "\nStory 1: Sam -> InfraBot -> ArgoCD -> CleanupAgent -> Reaper\n")
	d.meet("user:sam")
	d.meet("agent:infrabot")
	mon := d.apis["monitoring"].url
	d.say("InfraBot calls the monitoring API without a token: the 401 answer says where to learn how to get one.")
	if err := d.challenge(ctx, mon+"/metrics/cpu"); err != nil {
		return err
	}
	d.table("GET on /metrics/cpu with no one behind it (-), refused (token_missing), reported by %s.", demoReporter)

	d.say("Sam signs in at Mandate and approves InfraBot on the consent page (the demo plays his browser): %s.",
		strings.Join(consentScopes, ", "))
	g, err := d.consent(ctx, "user:sam", config.DevPassword, "agent:infrabot", consentScopes)
	if err != nil {
		return err
	}
	d.result("InfraBot redeemed the code: a token acting for Sam, and a refresh token to keep acting for him while the approval lasts")
	d.table("delegation.created performed by user:sam, then token.issue by agent:infrabot for user:sam, CHAIN agent:infrabot.")

	d.say("InfraBot asks for monitoring:read and secrets:manage at the monitoring API: Sam never approved secrets:manage.")
	if _, err := d.refresh(ctx, g, []string{"monitoring:read", "secrets:manage"}, mon, nil, true); err != nil {
		return err
	}
	d.table("token.refused by agent:infrabot for user:sam, refused (scope_widening).")

	d.say("InfraBot asks again, for what Sam approved: a token for the monitoring API.")
	tok, err := d.refresh(ctx, g, []string{"monitoring:read"}, mon, nil, false)
	if err != nil {
		return err
	}
	d.table("token.issue by agent:infrabot for user:sam, CHAIN agent:infrabot, granted.")
	d.say("InfraBot reads a dashboard for Sam.")
	if err := d.call(ctx, http.MethodGet, mon+"/metrics/cpu", tok.AccessToken, "", http.StatusOK); err != nil {
		return err
	}
	d.table("monitoring:read on metrics/cpu by agent:infrabot for user:sam, granted, reported by %s.", demoReporter)

	// Deploy tokens are addressed to ArgoCD: it is met before it is named.
	d.meet("agent:argocd")
	d.say("InfraBot, prompted in chat, asks for a prod deploy token: policy prod-deploys-only-from-ci refuses it.")
	if _, err := d.refresh(ctx, g, []string{"deploy:create"}, "agent:argocd",
		map[string]any{"environment": "prod", "trigger": "chat"}, true); err != nil {
		return err
	}
	d.table("token.refused by agent:infrabot, refused (policy_denied:prod-deploys-only-from-ci).")

	d.say("The CI pipeline triggers InfraBot: it gets a prod deploy token addressed to ArgoCD.")
	hop1, err := d.refresh(ctx, g, []string{"deploy:create", "deploy:tag"}, "agent:argocd",
		map[string]any{"environment": "prod", "trigger": "ci_pipeline"}, false)
	if err != nil {
		return err
	}
	d.table("token.issue by agent:infrabot for user:sam on resource agent:argocd, granted.")
	return d.chain(ctx, hop1.AccessToken)
}

// chain is the rest of story 1: ArgoCD deploys with the token InfraBot
// got for it (hop1), and hands the tagging on until the chain is too deep.
func (d *demo) chain(ctx context.Context, hop1 string) error {
	argocd, err := d.agent("agent:argocd")
	if err != nil {
		return err
	}
	dep := d.apis["deploy"].url
	d.say("ArgoCD exchanges it for the deploy API and deploys: the token now carries the chain.")
	hop2, err := d.exchange(ctx, argocd, "agent:argocd", agent.Request{SubjectToken: hop1, Audience: dep, Scopes: []string{"deploy:create"}}, false)
	if err != nil {
		return err
	}
	if err := d.showClaims("ArgoCD's token", hop2.AccessToken); err != nil {
		return err
	}
	if err := d.call(ctx, http.MethodPost, dep+"/deployments", hop2.AccessToken, `{"service":"checkout"}`, http.StatusOK); err != nil {
		return err
	}
	d.table("token.exchange, then deploy:create on service/checkout, both by agent:argocd for user:sam with CHAIN agent:argocd <- agent:infrabot.")

	d.meet("agent:cleanup_agent")
	cleanup, err := d.agent("agent:cleanup_agent")
	if err != nil {
		return err
	}
	d.say("ArgoCD hands the tagging on to CleanupAgent: a token addressed to it.")
	hop3, err := d.exchange(ctx, argocd, "agent:argocd", agent.Request{SubjectToken: hop1, Audience: "agent:cleanup_agent", Scopes: []string{"deploy:tag"}}, false)
	if err != nil {
		return err
	}
	d.table("token.exchange by agent:argocd on resource agent:cleanup_agent, CHAIN agent:argocd <- agent:infrabot, granted.")

	d.meet("agent:reaper")
	reaper, err := d.agent("agent:reaper")
	if err != nil {
		return err
	}
	depth := d.cfg.Delegation.MaxDepth
	d.say("CleanupAgent hands it on to Reaper: the chain is now %d agents deep, the limit.", depth)
	hop4, err := d.exchange(ctx, cleanup, "agent:cleanup_agent", agent.Request{SubjectToken: hop3.AccessToken, Audience: "agent:reaper", Scopes: []string{"deploy:tag"}}, false)
	if err != nil {
		return err
	}
	d.table("token.exchange by agent:cleanup_agent on resource agent:reaper, CHAIN agent:cleanup_agent <- agent:argocd <- agent:infrabot, granted.")

	d.say("Reaper tries to use that token for the tagging service: refused, a %d-agent chain would be too deep.", depth+1)
	if _, err := d.exchange(ctx, reaper, "agent:reaper", agent.Request{SubjectToken: hop4.AccessToken, Resource: "https://aws.example/tags"}, true); err != nil {
		return err
	}
	d.table("token.refused by agent:reaper, CHAIN of all four agents, refused (delegation_depth_exceeded).")
	return nil
}

// expenses plays story 2: an expense agent held to Alice's own limit.
func (d *demo) expenses(ctx context.Context) error {
	fmt.Fprintf(d.out, "\nStory 2: Alice -> the expense agent (Alice may approve up to $1,000)\n")
	d.meet("user:alice")
	d.meet("agent:expense-agent-001")
	d.say("Alice signs in and approves her expense agent on the consent page: expense:approve.")
	g, err := d.consent(ctx, "user:alice", alicePassword, "agent:expense-agent-001", []string{"expense:approve"})
	if err != nil {
		return err
	}
	d.result("the expense agent redeemed the code: a token acting for Alice, and a refresh token")
	d.table("delegation.created performed by user:alice, then token.issue by agent:expense-agent-001 for user:alice.")
	exp := d.apis["expense"].url
	d.say("The agent asks for an expense_approval limit of $5,000: Mandate grants no more than Alice holds.")
	tok, err := d.refreshWith(ctx, g, []string{"expense:approve"}, exp, url.Values{"authorization_details": {`[{"type":"expense_approval","max_amount":5000,"currency":"USD"}]`}}, false)
	if err != nil {
		return err
	}
	d.result("authorization_details granted: %s", tok.AuthorizationDetails)
	d.table("token.issue by agent:expense-agent-001 for user:alice, CHAIN agent:expense-agent-001, granted.")
	d.say("It approves a $487.50 expense.")
	if err := d.call(ctx, http.MethodPost, exp+"/expenses/EXP-1042/approve", tok.AccessToken, `{"amount":487.50,"currency":"USD"}`, http.StatusOK); err != nil {
		return err
	}
	d.table("expense:approve on expense/EXP-1042, granted, reported by %s.", demoReporter)
	d.say("It tries to approve a $1,250 expense: limit exceeded.")
	if err := d.call(ctx, http.MethodPost, exp+"/expenses/EXP-1043/approve", tok.AccessToken, `{"amount":1250,"currency":"USD"}`, http.StatusForbidden); err != nil {
		return err
	}
	d.table("expense:approve on expense/EXP-1043, refused (limit_exceeded), reported by %s.", demoReporter)
	return nil
}

// auditTable prints what the server recorded since the demo began, its
// own decisions and the requests the APIs forwarded, oldest first.
func (d *demo) auditTable(ctx context.Context) error {
	src := &forensics.Server{URL: d.issuer, AdminToken: d.admin}
	var evs []store.Event
	err := forensics.Each(ctx, src, store.EventFilter{Since: d.started}, func(ev store.Event) error {
		if ev.Performer != "config" { // the cast being created at start
			evs = append(evs, ev)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("demo: audit: %w", err)
	}
	// In the order things happened: the APIs' records arrive in batches.
	slices.SortStableFunc(evs, func(a, b store.Event) int { return a.Time.Compare(b.Time) })
	fmt.Fprintf(d.out, "\nAudit: who acted, on whose behalf, through which chain, on what, with which result\n")
	fmt.Fprintf(d.out, "(CHAIN: the agent that acted, then each agent it acted for, back to the one the person delegated to; times in UTC)\n\n")
	return printEvents(d.out, evs, false)
}
