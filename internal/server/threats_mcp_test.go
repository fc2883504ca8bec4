package server_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mandate-dev/mandate/internal/audit"
	"github.com/mandate-dev/mandate/internal/cimd"
	"github.com/mandate-dev/mandate/internal/config"
	"github.com/mandate-dev/mandate/internal/store"
	"github.com/mandate-dev/mandate/oauth"
	"github.com/mandate-dev/mandate/verify"
)

// The MCP threats of THREATS section J that concern the authorization
// server: localhost impersonation (T91), registration abuse (T92) and
// resource confusion (T93). T90 is in threats_cimd_test.go.

// TestT91LocalhostImpersonation is THREATS T91. A client that registered
// itself, and one that describes itself in a metadata document, each with
// a loopback redirect only, claim a well-known name: the consent page's
// heading names the client by its id, the name appears once, in a warning
// that it is the client's own claim that Mandate has not checked, and the
// page warns that any program on this computer could receive the answer.
func TestT91LocalhostImpersonation(t *testing.T) {
	const loopback = "http://127.0.0.1:33418/callback"
	check := func(t *testing.T, h *harness, id, name string) {
		t.Helper()
		q := h.authorizeURL(id, "deploy:create", "s", nil)
		q = strings.Replace(q, "redirect_uri="+url.QueryEscape(appRedirect), "redirect_uri="+url.QueryEscape(loopback), 1)
		cp := h.person().consent(q, "user:sam", samPassword)
		if cp.status != http.StatusOK {
			t.Fatalf("consent page: %d %s", cp.status, cp.text())
		}
		text := cp.text()
		for _, want := range []string{
			id + " asks to act for you",
			"calls itself " + name + " : Mandate has not checked that name",
			"The answer goes back to a program on this computer ( http://127.0.0.1:33418 ): any program listening there could receive it.",
		} {
			if !strings.Contains(text, want) {
				t.Errorf("the consent page does not say %q:\n%s", want, text)
			}
		}
		if n := strings.Count(text, name); n != 1 {
			t.Errorf("the name %q appears %d times, want once, in the warning:\n%s", name, n, text)
		}
	}
	t.Run("dcr/Claude", func(t *testing.T) {
		h := newHarnessEdited(t, openSQLite, nil, withRegistration(config.Registration{Policy: "open"}))
		h.givePassword("user:sam", samPassword)
		r := h.register(map[string]any{"redirect_uris": []string{loopback}, "token_endpoint_auth_method": "none", "client_name": "Claude"}, "")
		if r.status != http.StatusCreated {
			t.Fatalf("register: %d %s", r.status, r.raw)
		}
		check(t, h, r.str("client_id"), "Claude")
	})
	t.Run("cimd/Visual Studio Code", func(t *testing.T) {
		srv, id := documentServer(t, func(id string) map[string]any {
			return map[string]any{"client_id": id, "client_name": "Visual Studio Code", "redirect_uris": []string{loopback},
				"token_endpoint_auth_method": "none"}
		})
		h := newDocumentHarness(t, srv, "open")
		check(t, h, id, "Visual Studio Code")
	})
}

// registrar posts registrations from one local address, with keep-alive.
type registrar struct {
	url    string
	client *http.Client
}

// fromAddress is a registrar whose connections come from ip (any address
// of 127.0.0.0/8 is this host's on Linux).
func fromAddress(url, ip string) registrar {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	return registrar{url: url, client: &http.Client{Transport: &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: 16}}}
}

// post sends body with header and returns the status and the error code.
func (r registrar) post(body []byte, header http.Header) (int, string, error) {
	req, err := http.NewRequest(http.MethodPost, r.url+"/register", bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := r.client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	var e struct {
		Error string `json:"error"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&e)
	return resp.StatusCode, e.Error, nil
}

// registeredClients counts the clients that registered themselves or were
// admitted from a metadata document.
func (h *harness) registeredClients() int {
	h.t.Helper()
	agents, err := h.store.ListAgents(h.t.Context())
	if err != nil {
		h.t.Fatal(err)
	}
	n := 0
	for _, a := range agents {
		if a.Registration == store.RegistrationDCR || a.Registration == store.RegistrationCIMD {
			n++
		}
	}
	return n
}

// TestT92RegistrationAbuse is THREATS T92.
func TestT92RegistrationAbuse(t *testing.T) {
	t.Run("rate-and-cap", testRegistrationFlood)
	t.Run("redirects-under-approved_redirects", testRegistrationRedirects)
	t.Run("name-or-id-of-an-agent", testRegistrationCollision)
	t.Run("metadata-documents", testDocumentFlood)
}

// testDocumentFlood: at /authorize, where anyone may name any https URL as
// a client_id, a client not yet admitted from its document is a
// registration of the request's address: past per_hour new clients, a
// further URL is refused before it is fetched (recorded as
// client_document_rate_limited), while a client already admitted is
// served as before; max_clients bounds them all.
func testDocumentFlood(t *testing.T) {
	var fetches atomic.Int64
	docSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(documentAt("https://" + r.Host + r.URL.Path))
	}))
	t.Cleanup(docSrv.Close)
	h := newFetcherHarness(t, cimd.Config{RootCAs: srvPool(docSrv), AllowLoopback: true}, func(c *config.Config) {
		c.Registration.PerHour = 3
	})
	status := func(id string) int {
		return h.person().get(h.authorizeURL(id, "deploy:create", "s", nil)).status
	}
	for i := range 20 {
		want := http.StatusFound
		if i >= 3 {
			want = http.StatusBadRequest
		}
		if got := status(fmt.Sprintf("%s/c%d/client.json", docSrv.URL, i)); got != want {
			t.Errorf("client %d: %d, want %d", i, got, want)
		}
	}
	if got := status(docSrv.URL + "/c0/client.json"); got != http.StatusFound {
		t.Errorf("a client admitted before: %d, want 302", got)
	}
	if n := fetches.Load(); n != 3 {
		t.Errorf("%d documents fetched, want 3", n)
	}
	if n := h.registeredClients(); n != 3 {
		t.Errorf("%d clients admitted, want 3", n)
	}
	if !hasReason(h.events(store.EventFilter{Action: audit.ActionAuthorizeRefused}), "client_document_rate_limited") {
		t.Error("no authorize.refused record with reason client_document_rate_limited")
	}
}

// testRegistrationFlood: 10⁴ registration attempts, half from one address
// (each with an X-Forwarded-For of its own, which the server does not
// trust: it has no trusted proxies) and half from 5,000 addresses, 8 at a
// time. One address registers per_hour clients and is then answered 429;
// the many addresses together stop at max_clients (403 access_denied) and
// the store holds exactly that many; the refusals are recorded, tallied,
// in few records.
func testRegistrationFlood(t *testing.T) {
	const perHour, maxClients, attempts = 3, 20, 5000
	h := newHarnessEdited(t, openSQLite, nil, withRegistration(config.Registration{Policy: "open", PerHour: perHour, MaxClients: maxClients}))
	body, _ := json.Marshal(map[string]any{"redirect_uris": []string{appRedirect}, "token_endpoint_auth_method": "none", "client_name": "Flood"})

	flood := func(n int, send func(i int) (int, string, error)) map[string]int {
		var mu sync.Mutex
		got := map[string]int{}
		var next atomic.Int64
		var wg sync.WaitGroup
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
					status, code, err := send(i)
					key := fmt.Sprintf("%d %s", status, code)
					if err != nil {
						key = "error " + err.Error()
					}
					mu.Lock()
					got[key]++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		return got
	}

	one := fromAddress(h.url, "127.0.0.1")
	got := flood(attempts, func(i int) (int, string, error) {
		return one.post(body, http.Header{"X-Forwarded-For": {fmt.Sprintf("198.51.%d.%d", i/250, i%250+1)}, "X-Real-Ip": {"192.0.2.7"}})
	})
	if want := map[string]int{"201 ": perHour, "429 temporarily_unavailable": attempts - perHour}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("one address with made-up X-Forwarded-For: %v, want %v", got, want)
	}

	got = flood(attempts, func(i int) (int, string, error) {
		// 127.1.0.1 to 127.1.19.250: one connection from each.
		r := fromAddress(h.url, fmt.Sprintf("127.1.%d.%d", i/250, i%250+1))
		defer r.client.CloseIdleConnections()
		return r.post(body, nil)
	})
	if got["201 "] != maxClients-perHour || got["201 "]+got["403 access_denied"] != attempts {
		t.Errorf("5,000 addresses: %v, want %d registered and the rest 403 access_denied", got, maxClients-perHour)
	}
	if n := h.registeredClients(); n != maxClients {
		t.Errorf("the store holds %d registered clients, want max_clients %d", n, maxClients)
	}
	evs := h.events(store.EventFilter{Action: audit.ActionClientRegistration})
	for _, reason := range []string{"rate_limited_address", "registration_max_clients"} {
		if !hasReason(evs, reason) {
			t.Errorf("no client.registration record with reason %s", reason)
		}
	}
	if len(evs) > 50 {
		t.Errorf("%d records of refused registrations: the refusals are tallied, a few a second", len(evs))
	}
}

// testRegistrationRedirects: under approved_redirects (an approved
// loopback URI), a javascript:, data:, custom-scheme or look-alike host
// redirect URI is refused (invalid_redirect_uri) and nothing is stored;
// the approved one on another port is registered. The file itself cannot
// approve a javascript: or custom-scheme URI.
func testRegistrationRedirects(t *testing.T) {
	h := newHarnessEdited(t, openSQLite, nil, withRegistration(config.Registration{
		Policy: "approved_redirects", RedirectURIs: []string{"http://127.0.0.1/cb"}}))
	for _, uri := range []string{
		"javascript:alert(1)",
		"javascript://127.0.0.1/cb%0aalert(1)",
		"JavaScript:alert(document.cookie)",
		"data:text/html,<script>alert(1)</script>",
		"vbscript:msgbox(1)",
		"com.example.app:/cb",
		"myapp://127.0.0.1/cb",
		"file:///etc/passwd",
		"http://127.0.0.1.evil.example/cb",
		"http://127.0.0.1@evil.example/cb",
		"https://127.0.0.1/cb",
		"http://127.0.0.1/cb/../evil",
		"http://127.0.0.1/cb?x=1",
	} {
		t.Run(uri, func(t *testing.T) {
			r := h.register(map[string]any{"redirect_uris": []string{uri}, "token_endpoint_auth_method": "none"}, "")
			if r.status != http.StatusBadRequest || r.str("error") != "invalid_redirect_uri" {
				t.Fatalf("%d %s, want 400 invalid_redirect_uri", r.status, r.raw)
			}
		})
	}
	if n := h.registeredClients(); n != 0 {
		t.Errorf("refused registrations stored %d clients", n)
	}
	if r := h.register(map[string]any{"redirect_uris": []string{"http://127.0.0.1:55123/cb"}, "token_endpoint_auth_method": "none"}, ""); r.status != http.StatusCreated {
		t.Errorf("the approved loopback URI on its own port: %d %s", r.status, r.raw)
	}
	for _, uri := range []string{"javascript:alert(1)", "myapp://cb", "com.example.app:/cb"} {
		yaml := fmt.Sprintf(testConfig, "http://127.0.0.1:1", "http://127.0.0.1:2") +
			"registration:\n  policy: approved_redirects\n  redirect_uris: [\"" + uri + "\"]\n"
		if _, err := config.Parse([]byte(yaml), "test.yaml"); err == nil || !strings.Contains(err.Error(), "registration.redirect_uris") {
			t.Errorf("a file approving %s: %v, want a problem with registration.redirect_uris", uri, err)
		}
	}
}

// testRegistrationCollision: a client that registers with an agent's id as
// its client_id member and its name gets an id of its own, holds no
// delegation and no scope beyond the ceiling, and leaves the agent as it
// was; a metadata document at the URL that is a configured agent's id is
// never fetched, and cannot add a redirect URI to that agent.
func testRegistrationCollision(t *testing.T) {
	var hits atomic.Int64
	docSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"client_id": "https://" + r.Host + r.URL.Path, "client_name": "InfraBot",
			"redirect_uris": []string{"http://127.0.0.1:9/evil"}, "token_endpoint_auth_method": "none"})
	}))
	t.Cleanup(docSrv.Close)
	urlAgent := docSrv.URL + "/client.json"
	h := newFetcherHarness(t, cimd.Config{RootCAs: srvPool(docSrv), AllowLoopback: true}, func(c *config.Config) {
		c.Agents = append(c.Agents, config.Agent{ID: urlAgent, Secret: "url-agent-secret", Scopes: []string{"monitoring:read"}, RedirectURIs: []string{appRedirect}})
		c.Delegations = append(c.Delegations, config.Delegation{Subject: "user:sam", Actor: urlAgent, Scopes: []string{"monitoring:read"}})
	})
	before, err := h.store.GetAgent(t.Context(), "agent:infrabot")
	if err != nil {
		t.Fatal(err)
	}
	delegations := func(actor string) int {
		ds, err := h.store.ListDelegations(t.Context(), store.DelegationFilter{Actor: actor})
		if err != nil {
			t.Fatal(err)
		}
		return len(ds)
	}
	held := delegations("agent:infrabot")

	r := h.register(map[string]any{"client_id": "agent:infrabot", "client_name": "agent:infrabot",
		"redirect_uris": []string{appRedirect}, "token_endpoint_auth_method": "none"}, "")
	if r.status != http.StatusCreated {
		t.Fatalf("register: %d %s", r.status, r.raw)
	}
	id := r.str("client_id")
	if id == "agent:infrabot" || r.str("scope") != "deploy:create monitoring:read" {
		t.Fatalf("the registered client: %s", r.raw)
	}
	if n := delegations(id); n != 0 {
		t.Errorf("the registered client holds %d delegations", n)
	}
	after, err := h.store.GetAgent(t.Context(), "agent:infrabot")
	if err != nil || after.Registration != before.Registration || fmt.Sprint(after.Scopes, after.RedirectURIs) != fmt.Sprint(before.Scopes, before.RedirectURIs) ||
		delegations("agent:infrabot") != held {
		t.Errorf("agent:infrabot changed: %+v, %v", after, err)
	}
	// Its token exchange as the agent it named itself after: it holds no
	// secret and may not exchange at all.
	if x := h.publicPost("/token", id, url.Values{"grant_type": {oauth.GrantTokenExchange},
		"subject_token": {h.samToken()}, "subject_token_type": {oauth.TokenTypeIDToken}}); x.str("error") != "unauthorized_client" {
		t.Errorf("the registered client's token exchange: %d %s", x.status, x.raw)
	}

	// The configured agent whose id is a URL: its own redirect URIs hold,
	// the document is not fetched.
	q := h.authorizeURL(urlAgent, "monitoring:read", "s", nil)
	q = strings.Replace(q, "redirect_uri="+url.QueryEscape(appRedirect), "redirect_uri="+url.QueryEscape("http://127.0.0.1:9/evil"), 1)
	if pg := h.person().get(q); pg.status != http.StatusBadRequest || pg.header.Get("Location") != "" {
		t.Errorf("the document's redirect for a configured agent: %d %s", pg.status, pg.text())
	}
	if pg := h.person().get(h.authorizeURL(urlAgent, "monitoring:read", "s", nil)); pg.status != http.StatusFound {
		t.Errorf("the configured agent's own redirect: %d %s", pg.status, pg.text())
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the document of a configured agent's id was fetched %d times", n)
	}
	if a, err := h.store.GetAgent(t.Context(), urlAgent); err != nil || a.Registration == store.RegistrationCIMD || len(a.RedirectURIs) != 1 || delegations(urlAgent) != 1 {
		t.Errorf("the configured agent: %+v, %v", a, err)
	}
}

// mcpB is a second registered MCP server, for resource confusion.
const mcpB = "https://mcp-b.example/mcp"

// withTwoResources is withResources with a second MCP server that
// InfraBot may also receive tokens for.
func withTwoResources(c *config.Config) {
	withResources(c)
	c.Resources = append(c.Resources, config.Resource{URI: mcpB, Name: "Other assistant",
		Scopes: []config.Scope{{Name: "monitoring:read"}, {Name: "deploy:create"}}, Agents: []string{"agent:infrabot"}})
}

// recordSink keeps a verifier's records.
type recordSink struct {
	mu   sync.Mutex
	list []verify.Record
}

func (s *recordSink) Record(r verify.Record) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.list = append(s.list, r)
}

// reasons waits up to 5 s for n records and returns their reasons: a
// verifier hands a record over after its handler returns.
func (s *recordSink) reasons(n int) []string {
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		s.mu.Lock()
		var out []string
		for _, r := range s.list {
			out = append(out, r.Result+" "+r.Reason)
		}
		s.mu.Unlock()
		if len(out) >= n || time.Now().After(deadline) {
			return out
		}
	}
}

// TestT93ResourceConfusion is THREATS T93, with two registered MCP
// servers A and B that InfraBot may both receive tokens for. A code bound
// to A redeemed for B is invalid_target, and used up (invalid_grant when
// redeemed again, even for A); a refresh token bound to A
// refreshed for B is invalid_target and not used up; a relative or
// fragment resource is invalid_target at both endpoints; and a token for
// A presented to B's verify (a real verifier of each, keys from the
// server) is refused there on the audience, recorded, while A takes it.
func TestT93ResourceConfusion(t *testing.T) {
	h := newHarnessEdited(t, openSQLite, nil, withTwoResources)
	h.givePassword("user:sam", samPassword)
	p := h.person()
	newCode := func() string {
		cp := p.consent(h.authorizeURL("agent:infrabot", "monitoring:read", "st", url.Values{"resource": {mcpURI}}), "user:sam", samPassword)
		code, _ := p.approve(cp, nil)
		return code
	}
	redeem := func(code, resource string) response {
		return h.post("/token", "agent:infrabot", url.Values{"grant_type": {"authorization_code"}, "code": {code},
			"redirect_uri": {appRedirect}, "code_verifier": {verifierA}, "resource": {resource}})
	}
	// Each refusal uses the code up (it was redeemed, then refused), so
	// each resource gets a code of its own.
	for _, res := range []string{"https://mcp-b.example/mcp#a", "/mcp", "mcp.example/mcp", mcpB} {
		code := newCode()
		if r := redeem(code, res); r.status != http.StatusBadRequest || r.str("error") != string(oauth.ErrInvalidTarget) {
			t.Errorf("the code for A redeemed for %q: %d %s, want 400 invalid_target", res, r.status, r.raw)
		}
		if res != mcpB {
			continue
		}
		// Tried again, even for A, it is a code used twice.
		if r := redeem(code, mcpURI); r.status != http.StatusBadRequest || r.str("error") != string(oauth.ErrInvalidGrant) {
			t.Errorf("the code for A, refused for B, then redeemed for A: %d %s, want 400 invalid_grant", r.status, r.raw)
		}
	}
	tok := redeem(newCode(), mcpURI)
	if tok.status != http.StatusOK {
		t.Fatalf("a code for A redeemed for A: %d %s", tok.status, tok.raw)
	}
	rt := tok.str("refresh_token")
	for _, res := range []string{mcpB, mcpURI + "#frag", "/mcp"} {
		if r := h.refresh("agent:infrabot", rt, url.Values{"resource": {res}}); r.status != http.StatusBadRequest || r.str("error") != string(oauth.ErrInvalidTarget) {
			t.Errorf("the refresh token for A refreshed for %q: %d %s, want 400 invalid_target", res, r.status, r.raw)
		}
	}
	if r := h.refresh("agent:infrabot", rt, nil); r.status != http.StatusOK {
		t.Errorf("the refresh token after the refusals: %d %s, want it not used up", r.status, r.raw)
	}
	for _, res := range []string{"https://mcp-b.example/mcp#a", "/mcp", "mcp.example/mcp"} {
		pg := h.person().get(h.authorizeURL("agent:infrabot", "monitoring:read", "st", url.Values{"resource": {res}}))
		if loc := pg.location(t, h.url); pg.status != http.StatusFound || loc.Query().Get("error") != string(oauth.ErrInvalidTarget) {
			t.Errorf("/authorize with resource %q: %d %s", res, pg.status, loc)
		}
	}

	// Two MCP servers, each behind a real verifier.
	serve := func(audience string) (*httptest.Server, *recordSink) {
		sink := &recordSink{}
		v, err := verify.New(t.Context(), verify.Config{Issuer: h.url, Audience: audience, Algorithms: []string{"EdDSA", "ES256", "RS256"},
			JWKSURI: h.url + "/jwks", Records: sink})
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(v.Middleware(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })))
		t.Cleanup(srv.Close)
		return srv, sink
	}
	a, recA := serve(mcpURI)
	b, recB := serve(mcpB)
	call := func(srv *httptest.Server) *http.Response {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/mcp", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`))
		req.Header.Set("Authorization", "Bearer "+tok.str("access_token"))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if resp := call(b); resp.StatusCode != http.StatusUnauthorized || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="invalid_token"`) {
		t.Errorf("A's token at B: %d %q, want 401 invalid_token", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	if got := recB.reasons(1); fmt.Sprint(got) != "[refused audience_mismatch]" {
		t.Errorf("B's records: %v, want one refusal audience_mismatch", got)
	}
	if resp := call(a); resp.StatusCode != http.StatusNoContent {
		t.Errorf("A's token at A: %d", resp.StatusCode)
	}
	if got := recA.reasons(1); fmt.Sprint(got) != "[granted ]" {
		t.Errorf("A's records: %v", got)
	}
}
