package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mandate-dev/mandate/internal/app"
	"github.com/mandate-dev/mandate/internal/audit"
	"github.com/mandate-dev/mandate/internal/cimd"
	"github.com/mandate-dev/mandate/internal/config"
	"github.com/mandate-dev/mandate/internal/store"
)

// connRecorder is a TCP listener standing for a private service (the
// server's own host, a cloud metadata service): it counts the connections
// made to it and answers none.
type connRecorder struct {
	ln    net.Listener
	conns atomic.Int64
}

// listenRecorder listens on address (host:0); nil when the host has no
// such address (IPv6 loopback on a machine without IPv6).
func listenRecorder(t *testing.T, address string) *connRecorder {
	t.Helper()
	ln, err := net.Listen("tcp", address)
	if err != nil {
		return nil
	}
	r := &connRecorder{ln: ln}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			r.conns.Add(1)
			c.Close()
		}
	}()
	return r
}

// port is the recorder's port.
func (r *connRecorder) port() int { return r.ln.Addr().(*net.TCPAddr).Port }

// names resolves host names from a map, as the DNS of an attacker who
// points a public-looking name at a private address.
type names map[string]string

func (n names) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if a, ok := n[host]; ok {
		return []netip.Addr{netip.MustParseAddr(a)}, nil
	}
	return nil, fmt.Errorf("no such host %s", host)
}

// newFetcherHarness is the people's harness with registration open and
// metadata documents fetched by a fetcher of cfg; edit, when not nil,
// changes the file after that.
func newFetcherHarness(t *testing.T, cfg cimd.Config, edit func(*config.Config)) *harness {
	t.Helper()
	f, err := cimd.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h := newHarnessEnv(t, openSQLite, func(c *config.Config) {
		withRegistration(config.Registration{Policy: "open", MetadataDocuments: true})(c)
		if edit != nil {
			edit(c)
		}
	}, app.Env{Logger: slog.New(slog.DiscardHandler), Documents: f})
	h.givePassword("user:sam", samPassword)
	return h
}

// documentAt is a valid metadata document for id.
func documentAt(id string) map[string]any {
	return map[string]any{"client_id": id, "client_name": "Notes MCP", "redirect_uris": []string{appRedirect},
		"token_endpoint_auth_method": "none"}
}

// refusedDocument checks what the person sees when a client's metadata
// document is refused at /authorize: an error page (never a redirect,
// since the client's redirect URIs are not known) saying invalid_client
// and nothing of the cause; the refusal recorded with reason and client;
// no client stored.
func refusedDocument(t *testing.T, h *harness, id, reason string) {
	t.Helper()
	pg := h.person().get(h.authorizeURL(id, "deploy:create", "s", nil))
	if pg.status != http.StatusBadRequest || pg.header.Get("Location") != "" {
		t.Fatalf("%d %s, want an error page and no redirect", pg.status, pg.text())
	}
	text := pg.text()
	if !strings.Contains(text, "(Error: invalid_client)") {
		t.Errorf("the page does not say invalid_client: %s", text)
	}
	for _, leak := range []string{"cimd", "127.0.0.1", "10.0.0.1", "169.254", "::1", "bytes", "status", "timeout", "deadline"} {
		if strings.Contains(text, leak) {
			t.Errorf("the page tells %q of the cause: %s", leak, text)
		}
	}
	found, evs := false, h.events(store.EventFilter{Action: audit.ActionAuthorizeRefused})
	for _, ev := range evs {
		found = found || ev.Reason == reason && ev.ClientID == id && ev.Result == audit.ResultRefused
	}
	if !found {
		t.Errorf("no %s record with reason %s for %s in %+v", audit.ActionAuthorizeRefused, reason, id, evs)
	}
	if _, err := h.store.GetAgent(t.Context(), id); err == nil {
		t.Error("a refused document left a client")
	}
}

// TestT90ClientIDMetadataDocumentSSRF is THREATS T90. A client_id that is
// the https URL of a "metadata document" on the server's own host, a
// private network, the cloud metadata service or IPv6 loopback (given as
// an address or as a name resolving to one), a document that redirects to
// one, a 50 MB document, a slow drip, and a document whose client_id
// differs: each is refused at /authorize with an error page saying
// invalid_client, recorded with a reason telling which, and no connection
// reaches the private listener.
func TestT90ClientIDMetadataDocumentSSRF(t *testing.T) {
	private := listenRecorder(t, "127.0.0.1:0")
	private6 := listenRecorder(t, "[::1]:0")
	resolver := names{
		"loopback.example": "127.0.0.1",
		"internal.example": "10.0.0.1",
		"metadata.example": "169.254.169.254",
		"mapped.example":   "::ffff:127.0.0.1",
	}
	strict := cimd.Config{Resolver: resolver, Timeout: time.Second}
	p := private.port()
	// Without IPv6 on this machine, [::1] is still refused, with nothing
	// there to record.
	id6 := fmt.Sprintf("https://[::1]:%d/client.json", p)
	if private6 != nil {
		id6 = fmt.Sprintf("https://[::1]:%d/client.json", private6.port())
	}
	for _, tc := range []struct {
		name, id string
		rec      *connRecorder
	}{
		{name: "fail/loopback", id: fmt.Sprintf("https://127.0.0.1:%d/client.json", p), rec: private},
		{name: "fail/name-to-loopback", id: fmt.Sprintf("https://loopback.example:%d/client.json", p), rec: private},
		{name: "fail/name-to-mapped-loopback", id: fmt.Sprintf("https://mapped.example:%d/client.json", p), rec: private},
		{name: "fail/private-10", id: "https://10.0.0.1/client.json"},
		{name: "fail/name-to-private-10", id: "https://internal.example/client.json"},
		{name: "fail/cloud-metadata", id: "https://169.254.169.254/latest/client.json"},
		{name: "fail/name-to-cloud-metadata", id: "https://metadata.example/client.json"},
		{name: "fail/ipv6-loopback", id: id6, rec: private6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newFetcherHarness(t, strict, nil)
			refusedDocument(t, h, tc.id, "client_document_address_forbidden")
			if tc.rec != nil {
				if n := tc.rec.conns.Load(); n != 0 {
					t.Errorf("%d connections reached the private listener", n)
				}
			}
		})
	}

	// The document server is on loopback, which this fetcher allows (as
	// tests and development do): what stops the rest is the no-redirect
	// rule and the size and time limits.
	sent := atomic.Int64{}
	docSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := "https://" + r.Host + r.URL.Path
		switch r.URL.Path {
		case "/redirect/client.json":
			http.Redirect(w, r, fmt.Sprintf("https://127.0.0.1:%d/client.json", p), http.StatusFound)
		case "/redirect-metadata/client.json":
			http.Redirect(w, r, "https://169.254.169.254/latest/client.json", http.StatusTemporaryRedirect)
		case "/large/client.json":
			// 50 MB of one JSON string, without a Content-Length.
			w.Header().Set("Content-Type", "application/json")
			chunk := []byte(strings.Repeat("a", 64<<10))
			if _, err := w.Write([]byte(`{"client_id":"` + id + `","client_name":"`)); err != nil {
				return
			}
			for range (50 << 20) / len(chunk) {
				n, err := w.Write(chunk)
				sent.Add(int64(n))
				if err != nil {
					return
				}
			}
		case "/slow/client.json":
			w.Header().Set("Content-Type", "application/json")
			b, _ := json.Marshal(documentAt(id))
			for _, c := range b {
				if _, err := w.Write([]byte{c}); err != nil {
					return
				}
				w.(http.Flusher).Flush()
				select {
				case <-r.Context().Done():
					return
				case <-time.After(50 * time.Millisecond):
				}
			}
		case "/other/client.json":
			d := documentAt(id)
			d["client_id"] = "https://" + r.Host + "/notes/client.json"
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(d)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(docSrv.Close)
	loose := cimd.Config{RootCAs: srvPool(docSrv), AllowLoopback: true, Timeout: 300 * time.Millisecond}
	for _, tc := range []struct {
		name, path, reason string
	}{
		{name: "fail/redirect-to-loopback", path: "/redirect/client.json", reason: "client_document_unreachable"},
		{name: "fail/redirect-to-cloud-metadata", path: "/redirect-metadata/client.json", reason: "client_document_unreachable"},
		{name: "fail/50MB", path: "/large/client.json", reason: "client_document_too_large"},
		{name: "fail/slow-drip", path: "/slow/client.json", reason: "client_document_unreachable"},
		{name: "fail/client-id-differs", path: "/other/client.json", reason: "client_document_invalid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newFetcherHarness(t, loose, nil)
			start := time.Now()
			refusedDocument(t, h, docSrv.URL+tc.path, tc.reason)
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("the refusal took %v; the fetch's limit is %v", d, loose.Timeout)
			}
		})
	}
	if n := private.conns.Load(); n != 0 {
		t.Errorf("%d connections reached the private listener through a redirect", n)
	}
	// The fetcher stops reading after its 5 KB limit and closes the
	// connection; what the server managed to write before it noticed is
	// flow-control windows and socket buffers (about 4 MB over HTTP/2),
	// far from 50 MB.
	if n := sent.Load(); n > 16<<20 {
		t.Errorf("the 50 MB document server wrote %d bytes before the fetcher left", n)
	}
}
