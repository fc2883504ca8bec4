package server_test

import (
	"crypto/x509"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mandate-dev/mandate/internal/app"
	"github.com/mandate-dev/mandate/internal/cimd"
	"github.com/mandate-dev/mandate/internal/config"
	"github.com/mandate-dev/mandate/internal/store"
)

// documentServer serves a Client ID Metadata Document over TLS on
// loopback; doc edits the document before it is served.
func documentServer(t *testing.T, doc func(id string) map[string]any) (*httptest.Server, string) {
	t.Helper()
	var id string
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "max-age=60")
		_ = json.NewEncoder(w).Encode(doc(id))
	}))
	t.Cleanup(srv.Close)
	id = srv.URL + "/notes/client.json"
	return srv, id
}

// newDocumentHarness is the people's harness with registration open and
// metadata documents fetched from loopback over TLS the test trusts.
func newDocumentHarness(t *testing.T, srv *httptest.Server, policy string) *harness {
	t.Helper()
	f, err := cimd.New(cimd.Config{RootCAs: srvPool(srv), AllowLoopback: true})
	if err != nil {
		t.Fatal(err)
	}
	h := newHarnessEnv(t, openSQLite, withRegistration(config.Registration{Policy: policy, MetadataDocuments: true}),
		app.Env{Logger: slog.New(slog.DiscardHandler), Documents: f})
	h.givePassword("user:sam", samPassword)
	return h
}

func srvPool(srv *httptest.Server) *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	return pool
}

// TestClientIDMetadataDocument: an MCP client whose client_id is the https
// URL of its metadata document signs Sam in without registering first:
// Mandate fetches the document, the policy admits the client (stored as
// registered by "cimd", public, no delegation), the consent page shows its
// name as its own claim, and the client redeems the code with its
// client_id alone. A document whose client_id differs, or under
// admin_only, is an error page and never a redirect.
func TestClientIDMetadataDocument(t *testing.T) {
	good := func(id string) map[string]any {
		return map[string]any{"client_id": id, "client_name": "Notes MCP", "redirect_uris": []string{appRedirect},
			"token_endpoint_auth_method": "none"}
	}
	t.Run("ok", func(t *testing.T) {
		srv, id := documentServer(t, good)
		h := newDocumentHarness(t, srv, "open")
		meta := h.do(mustRequest(t, h.url+"/.well-known/oauth-authorization-server"))
		if meta.body["client_id_metadata_document_supported"] != true {
			t.Errorf("discovery does not say metadata documents are supported: %s", meta.raw)
		}
		cp := h.person().consent(h.authorizeURL(id, "deploy:create", "s", nil), "user:sam", samPassword)
		if !strings.Contains(cp.text(), "describes itself at its own address and calls itself Notes MCP") {
			t.Errorf("the consent page does not show the document's name as its claim:\n%s", cp.text())
		}
		tok := h.codeFlow(h.person(), id)
		c := claims(t, tok.AccessToken)
		act, _ := c["act"].(map[string]any)
		if c["sub"] != "user:sam" || act["sub"] != id || c["client_id"] != id {
			t.Fatalf("claims %v", c)
		}
		a, err := h.store.GetAgent(t.Context(), id)
		if err != nil || a.Registration != store.RegistrationCIMD || !a.Public || a.Name != "Notes MCP" {
			t.Fatalf("stored client %+v, %v", a, err)
		}
	})
	for _, c := range []struct {
		name, policy string
		doc          func(id string) map[string]any
	}{
		{"client_id differs", "open", func(id string) map[string]any { d := good(id); d["client_id"] = id + "x"; return d }},
		{"a client secret", "open", func(id string) map[string]any { d := good(id); d["client_secret"] = "s"; return d }},
		{"admin_only", "admin_only", good},
		{"redirect not approved", "approved_redirects", good},
	} {
		t.Run("fail/"+c.name, func(t *testing.T) {
			srv, id := documentServer(t, c.doc)
			h := newDocumentHarness(t, srv, c.policy)
			pg := h.person().get(h.authorizeURL(id, "deploy:create", "s", nil))
			if pg.status != http.StatusBadRequest || pg.header.Get("Location") != "" {
				t.Fatalf("%d %s, want an error page and no redirect", pg.status, pg.text())
			}
			if _, err := h.store.GetAgent(t.Context(), id); err == nil {
				t.Fatal("a refused document left a client")
			}
		})
	}
}
