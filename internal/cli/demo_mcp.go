package cli

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/modelcontextprotocol/go-sdk/oauthex"
	"golang.org/x/net/html"

	"github.com/mandate-dev/mandate/agent"
	"github.com/mandate-dev/mandate/examples/mcpserver"
	"github.com/mandate-dev/mandate/internal/config"
	"github.com/mandate-dev/mandate/internal/htmlform"
	"github.com/mandate-dev/mandate/verify"
)

// The third story: an MCP client, the official Go SDK's, finds Mandate
// from the example MCP server's 401, registers itself, has Sam sign in and
// approve it (the demo plays his browser), calls a tool, is refused one
// Sam did not approve, steps up, and the MCP server hands the deploy on to
// the deploy API by token exchange: Sam, the client and the server in one
// chain.

// demoMCPAgent is the example MCP server's agent at Mandate: the tokens
// people give MCP clients for the server are addressed to it, and it
// exchanges them for the deploy API.
const (
	demoMCPAgent       = config.DevMCPAgent
	demoMCPAgentSecret = "example-mcp-demo-secret"
	// demoMCPClientName is the name the MCP client gives itself when it
	// registers: its own claim, which Mandate does not check.
	demoMCPClientName = "Notes MCP"
)

// mcpCast registers the example MCP server at endpoint as a resource, with
// its scope catalogue, monitoring:read by default, and its agent, which may
// hand the tokens on to the deploy API at deployURL; and opens Dynamic
// Client Registration to any client (the demo runs on loopback only), up
// to the resource's scopes.
func mcpCast(cfg *config.Config, endpoint, deployURL string) {
	cfg.Resources = []config.Resource{{
		URI: endpoint, Name: mcpserver.Metadata().ResourceName,
		Scopes: []config.Scope{
			{Name: "monitoring:read", Description: "Read the services' metrics"},
			{Name: "deploy:create", Description: "Start deployments"},
		},
		DefaultScopes: []string{"monitoring:read"},
		Agent:         demoMCPAgent,
		HandOn:        []string{deployURL},
	}}
	i := slices.IndexFunc(cfg.Agents, func(a config.Agent) bool { return a.ID == demoMCPAgent })
	if i < 0 {
		cfg.Agents = append(cfg.Agents, config.Agent{ID: demoMCPAgent})
		i = len(cfg.Agents) - 1
	}
	cfg.Agents[i].Secret, cfg.Agents[i].Scopes = demoMCPAgentSecret, []string{"deploy:create"}
	cfg.Registration.Policy = config.RegistrationOpen
	cfg.Registration.Scopes = []string{"monitoring:read", "deploy:create"}
}

// startDemoMCP runs the example MCP server on ln, its endpoint at
// mcpserver.Path, behind a verifier whose records are forwarded like the
// APIs'; its deploy tool exchanges tokens as demoMCPAgent for the deploy
// API at deployURL.
func startDemoMCP(ctx context.Context, issuer string, ln net.Listener, deployURL string, logger *slog.Logger) (*demoAPI, func(), error) {
	tools, err := agent.New(agent.Config{TokenURL: issuer + "/token", ClientID: demoMCPAgent, ClientSecret: demoMCPAgentSecret})
	if err != nil {
		ln.Close()
		return nil, nil, fmt.Errorf("demo MCP server: %w", err)
	}
	var herr error
	api, stop, err := startDemoAPI(ctx, issuer, ln, mcpserver.Path, func(v *verify.Verifier) http.Handler {
		h, err := mcpserver.New(mcpserver.Config{Verifier: v, Agent: tools, DeployAPI: deployURL})
		if err != nil {
			herr = err
			return http.NotFoundHandler()
		}
		return h
	}, mcpserver.Metadata(), logger)
	if err == nil && herr != nil {
		stop()
		err = herr
	}
	if err != nil {
		return nil, nil, fmt.Errorf("demo MCP server: %w", err)
	}
	return api, stop, nil
}

// mcpRun is what the demo's MCP client did: the answers the MCP server
// gave it, its registration, and the consent pages Sam was shown.
type mcpRun struct {
	d   *demo
	sam *http.Client // Sam's browser, its session kept across consents

	mu       sync.Mutex
	answers  []mcpAnswer
	consents []consentShown
	// registered is the registration endpoint's answer, which the client
	// keeps; registrations counts how often the SDK asked.
	registered    []byte
	registrations int
}

// mcpAnswer is one answer of the MCP server to the client.
type mcpAnswer struct {
	status    int
	challenge string
}

// consentShown is what a consent page showed Sam.
type consentShown struct {
	signedIn bool
	// claim is the page's note on the name the client gave itself.
	claim string
	// scopes are the scopes offered ticked, each with its description.
	scopes []string
	// where and passOn are the page's "Where" and "What that service may
	// pass on".
	where, passOn string
}

// RoundTrip is the MCP client's transport: it notes every answer.
func (r *mcpRun) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err == nil {
		r.mu.Lock()
		r.answers = append(r.answers, mcpAnswer{resp.StatusCode, resp.Header.Get("WWW-Authenticate")})
		r.mu.Unlock()
	}
	return resp, err
}

// authTransport is the transport of the SDK's authorization handler. The
// SDK (v1.8) registers the client anew at each authorization, a step-up
// included; a client keeps its registration, as MCP clients that store it
// do, so the registration endpoint's first answer is also its answer to
// the later askings. Every other request goes out as it is.
type authTransport struct{ r *mcpRun }

func (t authTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	r := t.r
	if req.Method != http.MethodPost || req.URL.String() != r.d.issuer+"/register" {
		return http.DefaultTransport.RoundTrip(req)
	}
	r.mu.Lock()
	r.registrations++
	kept := r.registered
	r.mu.Unlock()
	if kept != nil {
		if req.Body != nil {
			req.Body.Close()
		}
		return &http.Response{StatusCode: http.StatusCreated, Status: "201 Created", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Header: http.Header{"Content-Type": {"application/json"}}, Body: io.NopCloser(bytes.NewReader(kept)), Request: req}, nil
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil || resp.StatusCode != http.StatusCreated {
		return resp, err
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("demo: registration: %w", err)
	}
	r.mu.Lock()
	r.registered = b
	r.mu.Unlock()
	resp.Body = io.NopCloser(bytes.NewReader(b))
	return resp, nil
}

// clientID is the client_id the registration gave.
func (r *mcpRun) clientID() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var reg struct {
		ClientID string `json:"client_id"`
	}
	_ = json.Unmarshal(r.registered, &reg)
	return reg.ClientID
}

// since returns the answers from the n-th on.
func (r *mcpRun) since(n int) []mcpAnswer {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.answers[min(n, len(r.answers)):])
}

func (r *mcpRun) answered() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.answers)
}

func (r *mcpRun) shown() []consentShown {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.consents)
}

// fetch is the SDK's authorization-code fetcher: Sam's browser follows the
// authorization URL, signs him in when Mandate asks, reads the consent
// page, approves what it offers ticked, and hands the code, state and iss
// of the redirect back without following it.
func (r *mcpRun) fetch(ctx context.Context, args *auth.AuthorizationArgs) (*auth.AuthorizationResult, error) {
	b, issuer := r.sam, r.d.issuer
	loc, err := follow(ctx, b, http.MethodGet, args.URL, nil)
	if err != nil {
		return nil, err
	}
	var shown consentShown
	if strings.HasPrefix(loc, "/login") {
		shown.signedIn = true
		login, err := readForm(ctx, b, issuer+loc, "/login")
		if err != nil {
			return nil, err
		}
		login.Set("username", "user:sam")
		login.Set("password", config.DevPassword)
		if loc, err = follow(ctx, b, http.MethodPost, issuer+"/login", login); err != nil {
			return nil, err
		}
	}
	doc, err := loadPage(ctx, b, issuer+loc)
	if err != nil {
		return nil, err
	}
	approve, err := formOf(doc, issuer+loc, "/consent")
	if err != nil {
		return nil, err
	}
	shown.read(doc)
	r.mu.Lock()
	r.consents = append(r.consents, shown)
	r.mu.Unlock()
	approve.Set("decision", "approve")
	if loc, err = follow(ctx, b, http.MethodPost, issuer+"/consent", approve); err != nil {
		return nil, err
	}
	back, err := url.Parse(loc)
	if err != nil || back.Query().Get("code") == "" {
		return nil, fmt.Errorf("demo: the consent sent the browser to %q", loc)
	}
	q := back.Query()
	return &auth.AuthorizationResult{Code: q.Get("code"), State: q.Get("state"), Iss: q.Get("iss")}, nil
}

// read takes from the consent page what the demo tells of it.
func (s *consentShown) read(doc *html.Node) {
	if n := htmlform.Find(doc, func(n *html.Node) bool { return n.Data == "p" && htmlform.Attr(n, "role") == "note" }); n != nil {
		s.claim = textOf(n)
	}
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode && n.Data == "label" {
			if in := htmlform.Find(n, func(c *html.Node) bool { return c.Data == "input" && htmlform.Attr(c, "name") == "scope" }); in != nil {
				if _, ticked := htmlform.Has(in, "checked"); ticked {
					s.scopes = append(s.scopes, textOf(n))
				}
			}
		}
		if n.Type == html.ElementNode && n.Data == "dt" {
			dd := n.NextSibling
			for dd != nil && dd.Type != html.ElementNode {
				dd = dd.NextSibling
			}
			if dd != nil && dd.Data == "dd" {
				switch textOf(n) {
				case "Where":
					s.where = textOf(dd)
				case "What that service may pass on":
					s.passOn = textOf(dd)
				}
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
}

// textOf is the text under n, white space folded.
func textOf(n *html.Node) string {
	var b strings.Builder
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.TextNode {
			b.WriteString(n.Data)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return strings.Join(strings.Fields(b.String()), " ")
}

// mcpStory plays story 3 with the official Go SDK as the MCP client.
func (d *demo) mcpStory(ctx context.Context) error {
	endpoint, deploy := d.apis["mcp"].url, d.apis["deploy"].url
	fmt.Fprintf(d.out, "\nStory 3: Sam -> an MCP client -> the example MCP server -> the deploy API\n")
	d.meet(demoMCPAgent)
	r := &mcpRun{d: d, sam: browser()}
	// The client's redirect URI: nothing listens there, as Sam's browser
	// hands the code to the client itself.
	redirect := "http://127.0.0.1:9/callback"
	h, err := auth.NewAuthorizationCodeHandler(&auth.AuthorizationCodeHandlerConfig{
		DynamicClientRegistrationConfig: &auth.DynamicClientRegistrationConfig{Metadata: &oauthex.ClientRegistrationMetadata{
			RedirectURIs: []string{redirect}, ClientName: demoMCPClientName, TokenEndpointAuthMethod: "none",
			GrantTypes: []string{"authorization_code", "refresh_token"}, ResponseTypes: []string{"code"},
		}},
		AuthorizationCodeFetcher: r.fetch,
		RequestRefreshToken:      true,
		Client:                   &http.Client{Transport: authTransport{r}, Timeout: 10 * time.Second},
	})
	if err != nil {
		return fmt.Errorf("demo: MCP client: %w", err)
	}
	client := mcp.NewClient(&mcp.Implementation{Name: "notes-mcp", Version: "1.0.0"}, nil)

	d.say("An MCP client (the official Go SDK's) connects to the MCP server at %s without a token. From the 401 it learns where Mandate is, "+
		"registers itself there, and sends Sam's browser to sign in and approve it (the demo plays the browser).", strings.TrimPrefix(endpoint, "http://"))
	cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{
		Endpoint: endpoint, HTTPClient: &http.Client{Transport: r}, OAuthHandler: h, MaxRetries: -1,
	}, nil)
	if err != nil {
		return fmt.Errorf("demo: MCP client: connect: %w", err)
	}
	defer cs.Close() // closed at the story's end; this is for an early return
	if first := r.since(0); len(first) == 0 || first[0].status != http.StatusUnauthorized {
		return fmt.Errorf("demo: the MCP server's first answer was %+v, want 401", first)
	}
	d.result("%d WWW-Authenticate: %s", r.since(0)[0].status, r.since(0)[0].challenge)
	id := r.clientID()
	if id == "" {
		return fmt.Errorf("demo: the MCP client did not register")
	}
	d.meetClient(id)
	if err := d.tellConsent(r.shown(), 0); err != nil {
		return err
	}
	if err := d.tellToken(h, "monitoring:read"); err != nil {
		return err
	}
	d.table("POST on /mcp with no one behind it (-), refused (token_missing), reported by %s; agent.created of %s performed by anonymous "+
		"(it registered itself); person.sign_in and delegation.created performed by user:sam; token.issue by %s for user:sam on the MCP server; "+
		"then server/discover, initialize, GET and notifications/initialized on /mcp by %s for user:sam, reported by %s.",
		demoReporter, id, id, id, demoReporter)
	return d.mcpTools(ctx, r, h, cs, id, deploy)
}

// mcpTools is the rest of story 3: the tools listed and called, the
// step-up, and the deploy handed on.
func (d *demo) mcpTools(ctx context.Context, r *mcpRun, h *auth.AuthorizationCodeHandler, cs *mcp.ClientSession, id, deploy string) error {
	d.say("The client lists the MCP server's tools: all of them are listed, whatever the token allows.")
	tools, err := cs.ListTools(ctx, nil)
	if err != nil {
		return fmt.Errorf("demo: MCP client: tools/list: %w", err)
	}
	for _, t := range tools.Tools {
		d.result("%s: %s", t.Name, t.Description)
	}
	d.table("tools/list on /mcp by %s for user:sam, CHAIN %s, granted, reported by %s.", id, id, demoReporter)

	d.say("The client calls metrics for Sam (monitoring:read).")
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "metrics", Arguments: map[string]any{"service": "search"}})
	if err != nil || res.IsError {
		return fmt.Errorf("demo: MCP client: metrics: %v %s", err, toolText(res))
	}
	d.result("metrics answered %s", toolText(res))
	d.table("tools/call on tool/metrics by %s for user:sam, CHAIN %s, granted, reported by %s.", id, id, demoReporter)

	d.say("The client calls deploy, which needs deploy:create: Sam has not approved it.")
	before, consents := r.answered(), len(r.shown())
	res, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "deploy", Arguments: map[string]any{"service": "search"}})
	if err != nil || res.IsError {
		return fmt.Errorf("demo: MCP client: deploy: %v %s", err, toolText(res))
	}
	i := slices.IndexFunc(r.since(before), func(a mcpAnswer) bool { return a.status == http.StatusForbidden })
	if i < 0 || !strings.Contains(r.since(before)[i].challenge, `error="insufficient_scope"`) {
		return fmt.Errorf("demo: the deploy call was not refused 403 insufficient_scope: %+v", r.since(before))
	}
	d.result("%d WWW-Authenticate: %s", http.StatusForbidden, r.since(before)[i].challenge)
	d.table("tools/call on tool/deploy by %s for user:sam, refused (insufficient_scope), reported by %s.", id, demoReporter)

	d.say("The client steps up: it keeps its registration and sends Sam's browser back to Mandate for deploy:create with what it held. " +
		"Sam is still signed in, and approves again: the new approval replaces the earlier one.")
	if len(r.shown()) != consents+1 {
		return fmt.Errorf("demo: the step-up showed %d consent pages, want one", len(r.shown())-consents)
	}
	r.mu.Lock()
	n := r.registrations
	r.mu.Unlock()
	if n < 2 {
		return fmt.Errorf("demo: the SDK did not ask to register again (%d)", n)
	}
	if err := d.tellConsent(r.shown(), consents); err != nil {
		return err
	}
	if err := d.tellToken(h, "deploy:create monitoring:read"); err != nil {
		return err
	}
	d.table("delegation.created performed by user:sam, delegation.revoked (consent_replaced) of the earlier approval, then token.issue by %s for user:sam.", id)

	d.say("The client sends the call again with the new token. The MCP server does not pass it on: it exchanges it at Mandate, as %s, "+
		"for a token for the deploy API, and deploys.", demoMCPAgent)
	var out mcpserver.DeployResult
	b, _ := json.Marshal(res.StructuredContent)
	if err := json.Unmarshal(b, &out); err != nil || out.PerformedBy != demoMCPAgent || out.OnBehalfOf != "user:sam" {
		return fmt.Errorf("demo: deploy answered %s (%v)", b, err)
	}
	d.result("deploy answered %s", toolText(res))
	d.result("the deploy API saw %s acting for %s, through %s: Sam, the MCP client and the MCP server in one chain", out.PerformedBy, out.OnBehalfOf, id)
	if err := cs.Close(); err != nil {
		return fmt.Errorf("demo: MCP client: close: %w", err)
	}
	d.result("the client closes its session")
	d.table("tools/call on tool/deploy granted; token.exchange by %s for user:sam on resource %s; deploy:create on service/search by %s for user:sam, "+
		"CHAIN %s <- %s, reported by %s; DELETE on /mcp, the session closed.", demoMCPAgent, deploy, demoMCPAgent, demoMCPAgent, id, demoReporter)
	return nil
}

// meetClient introduces the client the SDK registered: it is met once it
// has an id, and its name is its own claim.
func (d *demo) meetClient(id string) {
	fmt.Fprintf(d.out, "\n    Meet %s: the MCP client, registered just now by itself (Dynamic Client Registration), calling itself %q, "+
		"which nobody checked; a public client with no secret, which may act for no one until a person approves it.\n", id, demoMCPClientName)
}

// tellConsent says what the consent pages from the n-th on showed Sam.
func (d *demo) tellConsent(pages []consentShown, n int) error {
	if len(pages) != n+1 {
		return fmt.Errorf("demo: %d consent pages, want %d", len(pages), n+1)
	}
	p := pages[n]
	if p.signedIn {
		d.result("Sam signs in at Mandate with his password; the consent page shows:")
	} else {
		d.result("the consent page shows Sam (signed in already):")
	}
	if p.claim != "" {
		d.result("  %s", p.claim)
	}
	// The SDK asks in no fixed order: the demo tells them sorted.
	d.result("  what it may do, ticked: %s", strings.Join(slices.Sorted(slices.Values(p.scopes)), "; "))
	d.result("  where: %s", p.where)
	d.result("  what that service may pass on: %s", p.passOn)
	d.result("Sam approves; the client redeems the code with its PKCE verifier, for the MCP server (resource)")
	return nil
}

// tellToken says what the client's access token carries, and checks its
// scope: scope's names, sorted.
func (d *demo) tellToken(h *auth.AuthorizationCodeHandler, scope string) error {
	ts, err := h.TokenSource(context.Background())
	if err != nil || ts == nil {
		return fmt.Errorf("demo: MCP client: no token (%v)", err)
	}
	tok, err := ts.Token()
	if err != nil {
		return fmt.Errorf("demo: MCP client: %w", err)
	}
	parts := strings.Split(tok.AccessToken, ".")
	var c struct {
		Sub   string `json:"sub"`
		Aud   string `json:"aud"`
		Scope string `json:"scope"`
		Act   struct {
			Sub string `json:"sub"`
		} `json:"act"`
	}
	if len(parts) != 3 {
		return fmt.Errorf("demo: MCP client: the access token is not a JWT")
	}
	if b, err := base64.RawURLEncoding.DecodeString(parts[1]); err != nil || json.Unmarshal(b, &c) != nil {
		return fmt.Errorf("demo: MCP client: the access token's claims do not decode")
	}
	got := strings.Join(slices.Sorted(slices.Values(strings.Fields(c.Scope))), " ")
	if got != scope {
		return fmt.Errorf("demo: MCP client: the token's scope is %q, want %q", c.Scope, scope)
	}
	d.result("its token: sub %s, act.sub %s, aud %s, scope %q, and a refresh token", c.Sub, c.Act.Sub, c.Aud, got)
	return nil
}

// toolText is a tool result's text.
func toolText(res *mcp.CallToolResult) string {
	if res == nil {
		return ""
	}
	var parts []string
	for _, c := range res.Content {
		if t, ok := c.(*mcp.TextContent); ok {
			parts = append(parts, t.Text)
		}
	}
	return strings.Join(parts, " ")
}
