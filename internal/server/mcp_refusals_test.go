package server_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mandate-dev/mandate/internal/audit"
	"github.com/mandate-dev/mandate/internal/cimd"
	"github.com/mandate-dev/mandate/internal/config"
	"github.com/mandate-dev/mandate/internal/store"
)

// refusal is what a client or a person's browser got back, in the shape
// of its endpoint: a JSON error, a redirect carrying the error, or an
// error page.
type refusal struct {
	status int
	// code is the error code: the JSON body's error, the redirect's
	// error parameter, or "page" with invalid_client when the page says
	// so.
	code string
	// shown is everything the caller can read: body, Location and
	// WWW-Authenticate.
	shown string
}

// TestMCPAuthorizationRefusals lists every refusal an MCP client can meet
// at Mandate, as the MCP authorization spec asks of an authorization
// server, at the HTTP level: each answered with its RFC-shaped error,
// nothing secret or internal in what the caller can read, and recorded in
// the audit log with its reason. Most are also tested closer to their
// code (named in each case); this is the list a reviewer reads.
func TestMCPAuthorizationRefusals(t *testing.T) {
	docSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := "https://" + r.Host + r.URL.Path
		doc := map[string]any{"client_id": id, "client_name": "Notes MCP", "redirect_uris": []string{appRedirect}, "token_endpoint_auth_method": "none"}
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/other/client.json":
			doc["client_id"] = "https://" + r.Host + "/notes/client.json"
		case "/large/client.json":
			doc["client_name"] = strings.Repeat("n", 6<<10)
		case "/slow/client.json":
			select {
			case <-r.Context().Done():
			case <-time.After(2 * time.Second):
			}
			return
		}
		_ = json.NewEncoder(w).Encode(doc)
	}))
	t.Cleanup(docSrv.Close)
	h := newFetcherHarness(t, cimd.Config{RootCAs: srvPool(docSrv), AllowLoopback: true, Timeout: 300 * time.Millisecond,
		Resolver: names{"internal.example": "10.0.0.1"}}, func(c *config.Config) {
		withResources(c)
		withRegistration(config.Registration{Policy: "approved_redirects", RedirectURIs: []string{appRedirect}, MetadataDocuments: true})(c)
	})

	// authorize asks /authorize as a browser would; an error sent back
	// to the client is read from the redirect.
	authorize := func(client string, extra url.Values) refusal {
		pg := h.person().get(h.authorizeURL(client, "monitoring:read", "st-7", extra))
		r := refusal{status: pg.status, shown: pg.body + " " + pg.header.Get("Location")}
		if loc := pg.header.Get("Location"); loc != "" {
			u, _ := url.Parse(loc)
			r.code = u.Query().Get("error")
			if u.Query().Get("state") != "st-7" || u.Query().Get("iss") != h.url || !strings.HasPrefix(loc, appRedirect) {
				r.code += " (without state and iss, or not to the client)"
			}
		} else if strings.Contains(pg.text(), "(Error: invalid_client)") {
			r.code = "page invalid_client"
		}
		return r
	}
	fromJSON := func(r response) refusal {
		return refusal{status: r.status, code: r.str("error"), shown: r.raw + " " + r.header.Get("WWW-Authenticate")}
	}
	// A refresh token used twice: the code flow of InfraBot, a refresh,
	// then the first refresh token again.
	var refreshToken string
	reuse := func() refusal {
		p := h.person()
		code, _ := p.approve(p.consent(h.authorizeURL("agent:infrabot", "monitoring:read", "st", url.Values{"resource": {mcpURI}}), "user:sam", samPassword), nil)
		tok := h.codeToken("agent:infrabot", code, verifierA)
		refreshToken = tok.str("refresh_token")
		if r := h.refresh("agent:infrabot", refreshToken, nil); r.status != http.StatusOK {
			t.Fatalf("first refresh: %d %s", r.status, r.raw)
		}
		return fromJSON(h.refresh("agent:infrabot", refreshToken, nil))
	}
	h.givePassword("user:sam", samPassword)

	for _, tc := range []struct {
		name string
		// tested says where the refusal is also tested.
		tested         string
		do             func() refusal
		status         int
		code           string
		action, reason string
	}{
		{name: "fail/pkce-plain", tested: "internal/server.TestT38PKCEAtTheServer",
			do: func() refusal {
				return authorize("agent:infrabot", url.Values{"code_challenge_method": {"plain"}, "code_challenge": {verifierA}})
			},
			status: http.StatusFound, code: "invalid_request", action: audit.ActionAuthorizeRefused, reason: "pkce_method_unsupported"},
		{name: "fail/pkce-missing", tested: "internal/authorize.TestParse",
			do: func() refusal {
				return authorize("agent:infrabot", url.Values{"code_challenge_method": {""}, "code_challenge": {""}})
			},
			status: http.StatusFound, code: "invalid_request", action: audit.ActionAuthorizeRefused, reason: "pkce_missing"},
		{name: "fail/redirect-not-registered", tested: "internal/server.TestT40RedirectURICorpus",
			do: func() refusal {
				return authorize("agent:infrabot", url.Values{"redirect_uri": {"http://127.0.0.1:8400/elsewhere"}})
			},
			status: http.StatusBadRequest, action: audit.ActionAuthorizeRefused, reason: "redirect_uri_mismatch"},
		{name: "fail/resource-not-allowed", tested: "internal/server.TestResourceAtAuthorize",
			do:     func() refusal { return authorize("agent:argocd", url.Values{"resource": {mcpURI}}) },
			status: http.StatusFound, code: "invalid_target", action: audit.ActionAuthorizeRefused, reason: "resource_not_allowed"},
		{name: "fail/resource-unknown", tested: "internal/server.TestResourceAtAuthorize",
			do: func() refusal {
				return authorize("agent:infrabot", url.Values{"resource": {"https://unknown.example/mcp"}})
			},
			status: http.StatusFound, code: "invalid_target", action: audit.ActionAuthorizeRefused, reason: "resource_unknown"},
		{name: "fail/cimd-client-id-differs", tested: "internal/server.TestClientIDMetadataDocument, internal/cimd.TestParse",
			do:     func() refusal { return authorize(docSrv.URL+"/other/client.json", nil) },
			status: http.StatusBadRequest, code: "page invalid_client", action: audit.ActionAuthorizeRefused, reason: "client_document_invalid"},
		{name: "fail/cimd-private-address", tested: "internal/server.TestT90ClientIDMetadataDocumentSSRF, internal/cimd.TestLookupRefusesPrivateAddresses",
			do:     func() refusal { return authorize("https://internal.example/client.json", nil) },
			status: http.StatusBadRequest, code: "page invalid_client", action: audit.ActionAuthorizeRefused, reason: "client_document_address_forbidden"},
		{name: "fail/cimd-too-large", tested: "internal/server.TestT90ClientIDMetadataDocumentSSRF, internal/cimd.TestLookupRefusals",
			do:     func() refusal { return authorize(docSrv.URL+"/large/client.json", nil) },
			status: http.StatusBadRequest, code: "page invalid_client", action: audit.ActionAuthorizeRefused, reason: "client_document_too_large"},
		{name: "fail/cimd-too-slow", tested: "internal/server.TestT90ClientIDMetadataDocumentSSRF, internal/cimd.TestLookupTooSlow",
			do:     func() refusal { return authorize(docSrv.URL+"/slow/client.json", nil) },
			status: http.StatusBadRequest, code: "page invalid_client", action: audit.ActionAuthorizeRefused, reason: "client_document_unreachable"},
		{name: "fail/refresh-token-reused", tested: "internal/server.TestPublicClientCodeAndRefresh, internal/signin tests",
			do:     reuse,
			status: http.StatusBadRequest, code: "invalid_grant", action: audit.ActionGrantReplayed, reason: "refresh_reused"},
		{name: "fail/registration-redirect-not-approved", tested: "internal/server.TestRegisterPolicies",
			do: func() refusal {
				return fromJSON(h.register(map[string]any{"redirect_uris": []string{"https://elsewhere.example/cb"}, "token_endpoint_auth_method": "none"}, ""))
			},
			status: http.StatusBadRequest, code: "invalid_redirect_uri", action: audit.ActionClientRegistration, reason: "registration_redirect_not_approved"},
		{name: "fail/registration-bearer-not-the-administrator", tested: "internal/server.TestRegisterPolicies",
			do: func() refusal {
				return fromJSON(h.register(map[string]any{"redirect_uris": []string{appRedirect}}, "not-the-admin-token"))
			},
			status: http.StatusUnauthorized, code: "invalid_token", action: audit.ActionAdminAuth, reason: ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.do()
			if got.status != tc.status || got.code != tc.code {
				t.Errorf("%d %q, want %d %q (also tested by %s):\n%s", got.status, got.code, tc.status, tc.code, tc.tested, got.shown)
			}
			leaks := []string{"cimd:", "sqlite", "strictjson", "goroutine", "panic", "-secret", verifierA, "10.0.0.1", "Client.Timeout", "deadline", "not-the-admin-token", adminToken}
			if refreshToken != "" {
				leaks = append(leaks, refreshToken)
			}
			for _, leak := range leaks {
				if strings.Contains(got.shown, leak) {
					t.Errorf("the answer shows %q:\n%s", leak, got.shown)
				}
			}
			evs := h.events(store.EventFilter{Action: tc.action, Result: audit.ResultRefused})
			if tc.reason != "" && !hasReason(evs, tc.reason) || len(evs) == 0 {
				var reasons []string
				for _, ev := range evs {
					reasons = append(reasons, ev.Reason)
				}
				t.Errorf("no %s record with reason %q; the reasons recorded: %v", tc.action, tc.reason, reasons)
			}
		})
	}
}
