package server_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/mandate-dev/mandate/internal/config"
	"github.com/mandate-dev/mandate/internal/store"
)

// Public clients (token_endpoint_auth_method none) and Dynamic Client
// Registration (RFC 7591), as an MCP client meets them: it registers
// itself, sends a person through consent, redeems the code with PKCE and
// no secret, and refreshes.

// withPublicClient adds agent:notes, a public client, to the people's cast.
func withPublicClient(c *config.Config) {
	c.Agents = append(c.Agents, config.Agent{ID: "agent:notes", Public: true, Scopes: []string{"deploy:create", "monitoring:read"}})
	withPeople(c)
}

// oauth2Client is golang.org/x/oauth2 configured as the public client id:
// client_id in the form, no secret.
func (h *harness) oauth2Client(id string) *oauth2.Config {
	return &oauth2.Config{
		ClientID: id, RedirectURL: appRedirect, Scopes: []string{"deploy:create"},
		Endpoint: oauth2.Endpoint{AuthURL: h.url + "/authorize", TokenURL: h.url + "/token", AuthStyle: oauth2.AuthStyleInParams},
	}
}

// codeFlow runs Sam's consent for client with golang.org/x/oauth2 building
// the authorization request, and redeems the code with it: the token.
func (h *harness) codeFlow(p *person, client string) *oauth2.Token {
	h.t.Helper()
	conf := h.oauth2Client(client)
	authURL := conf.AuthCodeURL("st-1", oauth2.S256ChallengeOption(verifierA))
	cp := p.consent(authURL, "user:sam", samPassword)
	if cp.status != http.StatusOK {
		h.t.Fatalf("consent page: %d %s", cp.status, cp.text())
	}
	code, back := p.approve(cp, nil)
	if back.Get("state") != "st-1" || code == "" {
		h.t.Fatalf("the application got %v", back)
	}
	tok, err := conf.Exchange(h.t.Context(), code, oauth2.VerifierOption(verifierA))
	if err != nil {
		h.t.Fatalf("code exchange with no secret: %v", err)
	}
	return tok
}

// publicPost sends form to path with client_id only.
func (h *harness) publicPost(path, client string, form url.Values) response {
	h.t.Helper()
	form.Set("client_id", client)
	return h.postAs(path, "", "", form, nil)
}

// TestPublicClientCodeAndRefresh: a public client redeems a code and
// refreshes with its client_id alone, and is refused everything else:
// token exchange and client_credentials (unauthorized_client, recorded),
// introspection and revocation (invalid_client).
func TestPublicClientCodeAndRefresh(t *testing.T) {
	h := newHarnessEdited(t, openSQLite, nil, withPublicClient)
	h.givePassword("user:sam", samPassword)
	tok := h.codeFlow(h.person(), "agent:notes")
	if tok.AccessToken == "" || tok.RefreshToken == "" {
		t.Fatalf("token = %+v, want an access and a refresh token", tok)
	}
	// Refresh through the library: an expired token makes it use the
	// refresh token.
	old := &oauth2.Token{AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken, Expiry: time.Now().Add(-time.Hour)}
	fresh, err := h.oauth2Client("agent:notes").TokenSource(t.Context(), old).Token()
	if err != nil {
		t.Fatalf("refresh with no secret: %v", err)
	}
	if fresh.RefreshToken == "" || fresh.RefreshToken == tok.RefreshToken {
		t.Fatalf("refresh token not rotated: %q", fresh.RefreshToken)
	}
	// The first refresh token again: reuse is detected, as for any client.
	if r := h.publicPost("/token", "agent:notes", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}}); r.status != http.StatusBadRequest || r.str("error") != "invalid_grant" {
		t.Fatalf("reused refresh token: %d %s", r.status, r.raw)
	}

	for _, tc := range []struct {
		name, path string
		form       url.Values
		status     int
		code       string
	}{
		{name: "fail/token-exchange", path: "/token", form: url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:token-exchange"},
			"subject_token": {fresh.AccessToken}, "subject_token_type": {"urn:ietf:params:oauth:token-type:access_token"}},
			status: http.StatusBadRequest, code: "unauthorized_client"},
		{name: "fail/client-credentials", path: "/token", form: url.Values{"grant_type": {"client_credentials"}},
			status: http.StatusBadRequest, code: "unauthorized_client"},
		{name: "fail/introspect", path: "/introspect", form: url.Values{"token": {fresh.AccessToken}},
			status: http.StatusUnauthorized, code: "invalid_client"},
		{name: "fail/revoke", path: "/revoke", form: url.Values{"token": {fresh.RefreshToken}},
			status: http.StatusUnauthorized, code: "invalid_client"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := h.publicPost(tc.path, "agent:notes", tc.form)
			if r.status != tc.status || r.str("error") != tc.code {
				t.Fatalf("%s: %d %s, want %d %s", tc.path, r.status, r.raw, tc.status, tc.code)
			}
		})
	}
	if evs := h.events(store.EventFilter{Action: "client.auth"}); !hasReason(evs, "public_client_grant") {
		t.Errorf("no client.auth record with reason public_client_grant in %d records", len(evs))
	}
	// A confidential client still needs its secret: client_id alone is
	// no credential.
	if r := h.publicPost("/token", "agent:infrabot", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"x"}}); r.status != http.StatusUnauthorized || r.str("error") != "invalid_client" {
		t.Fatalf("confidential client without its secret: %d %s", r.status, r.raw)
	}
}

// register posts metadata to /register, with bearer when not "".
func (h *harness) register(metadata any, bearer string) response {
	h.t.Helper()
	b, err := json.Marshal(metadata)
	if err != nil {
		h.t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, h.url+"/register", strings.NewReader(string(b)))
	req.Header.Set("Content-Type", "application/json")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	return h.do(req)
}

// withRegistration sets the registration section on top of the people's cast.
func withRegistration(r config.Registration) func(*config.Config) {
	return func(c *config.Config) {
		withPeople(c)
		if r.PerHour == 0 {
			r.PerHour = 100
		}
		r.Scopes = []string{"deploy:create", "monitoring:read"}
		c.Registration = r
	}
}

// TestRegisterOpenThenCodeFlow: under the open policy an MCP client finds
// the registration endpoint in discovery, registers as a public client,
// and completes the code flow with no secret; it holds no delegation
// until Sam approves, and may not use client_credentials.
func TestRegisterOpenThenCodeFlow(t *testing.T) {
	h := newHarnessEdited(t, openSQLite, nil, withRegistration(config.Registration{Policy: "open"}))
	h.givePassword("user:sam", samPassword)
	meta := h.do(mustRequest(t, h.url+"/.well-known/oauth-authorization-server"))
	if got := meta.str("registration_endpoint"); got != h.url+"/register" {
		t.Fatalf("registration_endpoint = %q", got)
	}
	r := h.register(map[string]any{
		"redirect_uris": []string{appRedirect}, "token_endpoint_auth_method": "none", "client_name": "Notes MCP",
		"grant_types": []string{"authorization_code", "refresh_token"}, "software_id": "ignored-member",
	}, "")
	if r.status != http.StatusCreated {
		t.Fatalf("register: %d %s", r.status, r.raw)
	}
	id := r.str("client_id")
	if id == "" || r.str("client_secret") != "" || r.body["client_id_issued_at"] == nil || r.str("token_endpoint_auth_method") != "none" ||
		r.str("scope") != "deploy:create monitoring:read" || r.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("registration answer: %s", r.raw)
	}
	a, err := h.store.GetAgent(t.Context(), id)
	if err != nil || !a.Public || a.Registration != store.RegistrationDCR || a.Name != "Notes MCP" {
		t.Fatalf("stored client = %+v, %v", a, err)
	}
	if ds, _ := h.store.ListDelegations(t.Context(), store.DelegationFilter{Actor: id}); len(ds) != 0 {
		t.Fatalf("a registered client holds %d delegations", len(ds))
	}
	// T91: the consent page says the name is the client's own claim and
	// that the code goes back to a program on this computer.
	cp := h.person().consent(h.authorizeURL(id, "deploy:create", "s", nil), "user:sam", samPassword)
	for _, want := range []string{"registered itself and calls itself Notes MCP", "Mandate has not checked that name",
		"goes back to a program on this computer"} {
		if !strings.Contains(cp.text(), want) {
			t.Errorf("the consent page does not say %q:\n%s", want, cp.text())
		}
	}
	tok := h.codeFlow(h.person(), id)
	if tok.AccessToken == "" || tok.RefreshToken == "" {
		t.Fatalf("token = %+v", tok)
	}
	if evs := h.events(store.EventFilter{Action: "agent.created"}); !hasDetail(evs, id, "registration: dcr") {
		t.Errorf("no agent.created record of %s saying registration: dcr", id)
	}
}

func hasDetail(evs []store.Event, resource, detail string) bool {
	for _, e := range evs {
		if e.Resource == resource && strings.Contains(e.Detail, detail) {
			return true
		}
	}
	return false
}

// TestRegisterPolicies: approved_redirects refuses a redirect URI it does
// not list, admin_only refuses an anonymous client and accepts the
// administrator, and every refusal is recorded.
func TestRegisterPolicies(t *testing.T) {
	t.Run("approved_redirects", func(t *testing.T) {
		h := newHarnessEdited(t, openSQLite, nil, withRegistration(config.Registration{
			Policy: "approved_redirects", RedirectURIs: []string{"http://127.0.0.1/cb"}}))
		if r := h.register(map[string]any{"redirect_uris": []string{"https://elsewhere.example/cb"}, "token_endpoint_auth_method": "none"}, ""); r.status != http.StatusBadRequest || r.str("error") != "invalid_redirect_uri" {
			t.Fatalf("another redirect: %d %s", r.status, r.raw)
		}
		if r := h.register(map[string]any{"redirect_uris": []string{appRedirect}, "token_endpoint_auth_method": "none"}, ""); r.status != http.StatusCreated {
			t.Fatalf("an approved loopback redirect on its own port: %d %s", r.status, r.raw)
		}
		if evs := h.events(store.EventFilter{Action: "client.registration"}); !hasReason(evs, "registration_redirect_not_approved") {
			t.Errorf("the refusal is not recorded: %d records", len(evs))
		}
	})
	t.Run("admin_only", func(t *testing.T) {
		h := newHarnessEdited(t, openSQLite, nil, withRegistration(config.Registration{Policy: "admin_only"}))
		meta := h.do(mustRequest(t, h.url+"/.well-known/oauth-authorization-server"))
		if _, ok := meta.body["registration_endpoint"]; ok {
			t.Error("registration_endpoint advertised under admin_only")
		}
		body := map[string]any{"redirect_uris": []string{"https://app.example/cb"}, "client_name": "Deploy board"}
		if r := h.register(body, ""); r.status != http.StatusUnauthorized || r.str("error") != "invalid_token" {
			t.Fatalf("anonymous: %d %s", r.status, r.raw)
		}
		if r := h.register(body, "not-the-admin-token"); r.status != http.StatusUnauthorized {
			t.Fatalf("a wrong bearer: %d %s", r.status, r.raw)
		}
		r := h.register(body, adminToken)
		if r.status != http.StatusCreated || r.str("client_secret") == "" || r.str("token_endpoint_auth_method") != "client_secret_basic" {
			t.Fatalf("the administrator: %d %s", r.status, r.raw)
		}
		if evs := h.events(store.EventFilter{Action: "client.registration"}); !hasReason(evs, "registration_admin_only") {
			t.Errorf("the anonymous refusal is not recorded")
		}
		// The confidential client it made authenticates with its secret,
		// and is still held to the code and refresh grants.
		c := h.postAs("/token", r.str("client_id"), r.str("client_secret"), url.Values{"grant_type": {"client_credentials"}}, nil)
		if c.status != http.StatusBadRequest || c.str("error") != "unauthorized_client" {
			t.Fatalf("a registered client's client_credentials: %d %s", c.status, c.raw)
		}
	})
}

// TestRegisterMalformed: metadata that is not what RFC 7591 allows here is
// invalid_client_metadata (or invalid_redirect_uri), and nothing is stored.
func TestRegisterMalformed(t *testing.T) {
	h := newHarnessEdited(t, openSQLite, nil, withRegistration(config.Registration{Policy: "open"}))
	before, _ := h.store.ListAgents(t.Context())
	for _, tc := range []struct {
		name string
		body string
		code string
	}{
		{name: "fail/not-json", body: `redirect_uris=x`, code: "invalid_client_metadata"},
		{name: "fail/array", body: `[]`, code: "invalid_client_metadata"},
		{name: "fail/repeated-member", body: `{"redirect_uris":["https://a.example/cb"],"redirect_uris":["https://b.example/cb"]}`, code: "invalid_client_metadata"},
		{name: "fail/redirect-not-a-list", body: `{"redirect_uris":"https://a.example/cb"}`, code: "invalid_client_metadata"},
		{name: "fail/no-redirect", body: `{"client_name":"x"}`, code: "invalid_redirect_uri"},
		{name: "fail/redirect-in-another-case", body: `{"Redirect_URIs":["https://a.example/cb"]}`, code: "invalid_redirect_uri"},
		{name: "fail/redirect-fragment", body: `{"redirect_uris":["https://a.example/cb#x"]}`, code: "invalid_redirect_uri"},
		{name: "fail/grant-token-exchange", body: `{"redirect_uris":["https://a.example/cb"],"grant_types":["urn:ietf:params:oauth:grant-type:token-exchange"]}`, code: "invalid_client_metadata"},
		{name: "fail/auth-method", body: `{"redirect_uris":["https://a.example/cb"],"token_endpoint_auth_method":"tls_client_auth"}`, code: "invalid_client_metadata"},
		{name: "fail/scope-beyond-ceiling", body: `{"redirect_uris":["https://a.example/cb"],"scope":"secrets:manage"}`, code: "invalid_client_metadata"},
		{name: "fail/client-name-too-long", body: `{"redirect_uris":["https://a.example/cb"],"client_name":"` + strings.Repeat("n", 201) + `"}`, code: "invalid_client_metadata"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, h.url+"/register", strings.NewReader(tc.body))
			req.Header.Set("Content-Type", "application/json")
			r := h.do(req)
			if r.status != http.StatusBadRequest || r.str("error") != tc.code {
				t.Fatalf("%d %s, want 400 %s", r.status, r.raw, tc.code)
			}
		})
	}
	after, _ := h.store.ListAgents(t.Context())
	if len(after) != len(before) {
		t.Fatalf("refused registrations stored %d agents", len(after)-len(before))
	}
}

// TestRegisterRateLimit: one address registers at most per_hour clients
// an hour; the next is answered 429 and recorded.
func TestRegisterRateLimit(t *testing.T) {
	h := newHarnessEdited(t, openSQLite, nil, withRegistration(config.Registration{Policy: "open", PerHour: 2}))
	body := map[string]any{"redirect_uris": []string{appRedirect}, "token_endpoint_auth_method": "none"}
	for i := range 2 {
		if r := h.register(body, ""); r.status != http.StatusCreated {
			t.Fatalf("registration %d: %d %s", i+1, r.status, r.raw)
		}
	}
	r := h.register(body, "")
	if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") == "" {
		t.Fatalf("third registration: %d %s", r.status, r.raw)
	}
	if evs := h.events(store.EventFilter{Action: "client.registration"}); !hasReason(evs, "rate_limited_address") {
		t.Errorf("the rate-limited registration is not recorded")
	}
}
