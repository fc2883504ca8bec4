package agent_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/mandate-dev/mandate/agent"
	"github.com/mandate-dev/mandate/verify"
)

// seen is one request as a server or the wire received it.
type seen struct {
	url           string // scheme://host/path as requested
	authorization string
	body          string
}

// recorder keeps what reached it, in order.
type recorder struct {
	mu   sync.Mutex
	reqs []seen
}

func (r *recorder) add(s seen) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reqs = append(r.reqs, s)
}

func (r *recorder) all() []seen {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]seen(nil), r.reqs...)
}

// wire is the base RoundTripper under the agent's transport: real HTTP
// through next, recording every request exactly as it leaves, including
// the ones that fail (a TLS handshake against a plain-HTTP port).
type wire struct {
	next http.RoundTripper
	rec  recorder
}

func (w *wire) RoundTrip(r *http.Request) (*http.Response, error) {
	w.rec.add(seen{url: r.URL.Scheme + "://" + r.URL.Host + r.URL.Path, authorization: r.Header.Get("Authorization")})
	return w.next.RoundTrip(r)
}

// recordingServer answers 200 to everything and keeps what it received.
func recordingServer(t *testing.T, tls bool) (*httptest.Server, *recorder) {
	t.Helper()
	rec := &recorder{}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		rec.add(seen{url: scheme + "://" + r.Host + r.URL.Path, authorization: r.Header.Get("Authorization"), body: string(b)})
	})
	var srv *httptest.Server
	if tls {
		srv = httptest.NewTLSServer(h)
	} else {
		srv = httptest.NewServer(h)
	}
	t.Cleanup(srv.Close)
	return srv, rec
}

// countingTokenEndpoint is a token endpoint over real HTTP that issues a
// distinct token per request, valid for ten minutes, and counts requests:
// for tests that need tokens they can recognise, or many of them quickly
// (a real Mandate would spend most of TestCacheBounded signing and
// auditing 10^5 exchanges).
func countingTokenEndpoint(t *testing.T) (string, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := n.Add(1)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"access_token":"token-%d","token_type":"Bearer","expires_in":600}`, i)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/token", &n
}

// TestTransportNeverLeaksTokenOnRedirect (THREATS.md T102): the API answers
// 302 or 307 to another origin — another port on the same address, another
// host name for the same port, another scheme — and the redirected request
// carries no Authorization, while a redirect within the API's origin keeps
// the token and the API accepts it.
func TestTransportNeverLeaksTokenOnRedirect(t *testing.T) {
	m := startMandate(t)
	ctx := context.Background()
	elsewhere, elsewhereGot := recordingServer(t, false)
	elsewhereTLS, elsewhereTLSGot := recordingServer(t, true)

	// The API: /go?to=URL&code=N redirects, /landing checks the token.
	apiMux := http.NewServeMux()
	apiMux.HandleFunc("/go", func(w http.ResponseWriter, r *http.Request) {
		code := http.StatusFound
		if r.URL.Query().Get("code") == "307" {
			code = http.StatusTemporaryRedirect
		}
		_, _ = io.Copy(io.Discard, r.Body)
		http.Redirect(w, r, r.URL.Query().Get("to"), code)
	})
	api := httptest.NewServer(apiMux)
	t.Cleanup(api.Close)
	apiURL := api.URL
	v, err := verify.New(ctx, verify.Config{Issuer: m.url, Audience: apiURL, Algorithms: []string{"EdDSA"}})
	if err != nil {
		t.Fatal(err)
	}
	apiMux.Handle("/landing", v.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := verify.FromContext(r.Context())
		fmt.Fprintf(w, "%s for %s", p.PerformedBy(), p.OnBehalfOf())
	})))
	_, apiPort, err := net.SplitHostPort(api.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}

	c, err := agent.New(agent.Config{TokenURL: m.url + "/token", ClientID: "agent:infrabot", ClientSecret: "infrabot-secret"})
	if err != nil {
		t.Fatal(err)
	}
	req := agent.Request{SubjectToken: m.samToken(t), Audience: apiURL, Scopes: []string{"deploy:create"}}

	tests := []struct {
		name   string
		code   string
		method string
		to     string
		// got is where the redirected request lands, if a server receives it.
		got      *recorder
		wantAuth bool
	}{
		{name: "fail/302-to-another-port", code: "302", method: http.MethodGet, to: elsewhere.URL + "/landing", got: elsewhereGot},
		{name: "fail/307-to-another-port", code: "307", method: http.MethodPost, to: elsewhere.URL + "/landing", got: elsewhereGot},
		{name: "fail/302-to-another-scheme-and-port", code: "302", method: http.MethodGet, to: elsewhereTLS.URL + "/landing", got: elsewhereTLSGot},
		{name: "fail/307-to-another-scheme-and-port", code: "307", method: http.MethodPost, to: elsewhereTLS.URL + "/landing", got: elsewhereTLSGot},
		// The same port under another name is another origin (the
		// request reaches the API itself, but not as its audience).
		{name: "fail/302-to-another-host-same-port", code: "302", method: http.MethodGet, to: "http://localhost:" + apiPort + "/landing"},
		// The same host and port under https: the handshake fails against
		// a plain-HTTP port, after the request was handed to the wire.
		{name: "fail/302-to-another-scheme-same-port", code: "302", method: http.MethodGet, to: "https://127.0.0.1:" + apiPort + "/landing"},
		{name: "ok/302-within-the-origin", code: "302", method: http.MethodGet, to: "/landing", wantAuth: true},
		{name: "ok/307-within-the-origin", code: "307", method: http.MethodPost, to: apiURL + "/landing", wantAuth: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// The wire trusts the TLS server's certificate, so that the
			// cross-scheme redirect is really delivered.
			w := &wire{next: elsewhereTLS.Client().Transport}
			hc := &http.Client{Transport: transport(t, c, w, req)}
			before := 0
			if tc.got != nil {
				before = len(tc.got.all())
			}
			first := apiURL + "/go?" + url.Values{"to": {tc.to}, "code": {tc.code}}.Encode()
			hreq, err := http.NewRequestWithContext(ctx, tc.method, first, strings.NewReader("payload"))
			if err != nil {
				t.Fatal(err)
			}
			resp, err := hc.Do(hreq)
			var body []byte
			if err == nil {
				body, _ = io.ReadAll(resp.Body)
				resp.Body.Close()
			}

			sent := w.rec.all()
			if len(sent) != 2 {
				t.Fatalf("%d requests on the wire, want the first and the redirected one: %+v (err %v)", len(sent), sent, err)
			}
			if !strings.HasPrefix(sent[0].authorization, "Bearer ") {
				t.Fatalf("the request to the API's origin carried no token: %+v", sent[0])
			}
			if got := sent[1].authorization != ""; got != tc.wantAuth {
				t.Errorf("redirect to %s carried Authorization %q, want a token: %v", sent[1].url, short(sent[1].authorization), tc.wantAuth)
			}
			if tc.got != nil {
				recv := tc.got.all()[before:]
				if len(recv) != 1 {
					t.Fatalf("the other server received %d requests, want 1 (err %v)", len(recv), err)
				}
				if recv[0].authorization != "" {
					t.Errorf("the other server received Authorization %q", short(recv[0].authorization))
				}
				if tc.code == "307" && recv[0].body != "payload" {
					t.Errorf("the 307 was not followed as such: the other server received body %q", recv[0].body)
				}
			}
			if tc.wantAuth {
				if err != nil || resp.StatusCode != http.StatusOK || string(body) != "agent:infrabot for user:sam" {
					t.Errorf("API answered %v %q (err %v), want the token accepted", resp, body, err)
				}
			}
		})
	}
}

// TestTokenRequestDoesNotFollowRedirect (THREATS.md T102): the token
// endpoint answers 307 to another server; the client does not follow it, so
// that server receives nothing: not the client secret, not the person's
// token.
func TestTokenRequestDoesNotFollowRedirect(t *testing.T) {
	elsewhere, elsewhereGot := recordingServer(t, false)
	for _, code := range []int{http.StatusTemporaryRedirect, http.StatusPermanentRedirect, http.StatusFound} {
		t.Run(fmt.Sprintf("fail/%d", code), func(t *testing.T) {
			tokenEndpoint := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, elsewhere.URL+"/token", code)
			}))
			defer tokenEndpoint.Close()
			c, err := agent.New(agent.Config{TokenURL: tokenEndpoint.URL + "/token", ClientID: "agent:infrabot", ClientSecret: "infrabot-secret"})
			if err != nil {
				t.Fatal(err)
			}
			before := len(elsewhereGot.all())
			_, err = c.Exchange(context.Background(), agent.Request{SubjectToken: "sams-token", Audience: "https://deploy.example"})
			if err == nil {
				t.Error("a redirected token request succeeded")
			} else if !strings.Contains(err.Error(), "redirect") {
				t.Errorf("err = %v, want one that says the token endpoint redirected", err)
			}
			if got := elsewhereGot.all()[before:]; len(got) != 0 {
				t.Errorf("the redirect target received %d requests: %+v", len(got), got)
			}
		})
	}
}

// TestNewRefusesPlainHTTPToRemoteHost (THREATS.md T102): plain http is
// accepted for loopback hosts only, for Mandate's token endpoint and for
// the origins of APIs.
func TestNewRefusesPlainHTTPToRemoteHost(t *testing.T) {
	tests := []struct {
		name     string
		tokenURL string
		origins  map[string]string
		wantErr  string
	}{
		{name: "fail/remote-name", tokenURL: "http://mandate.example/token", wantErr: "not loopback"},
		{name: "fail/remote-address", tokenURL: "http://10.0.0.5:8080/token", wantErr: "not loopback"},
		{name: "fail/unspecified-address", tokenURL: "http://0.0.0.0:8080/token", wantErr: "not loopback"},
		{name: "fail/localhost-lookalike", tokenURL: "http://localhost.mandate.example/token", wantErr: "not loopback"},
		{name: "fail/loopback-lookalike", tokenURL: "http://127.0.0.1.mandate.example/token", wantErr: "not loopback"},
		{name: "fail/other-scheme", tokenURL: "ftp://mandate.example/token", wantErr: "https"},
		{name: "fail/api-origin-remote-name", origins: map[string]string{"agent:cleanup_agent": "http://cleanup.example"}, wantErr: "not loopback"},
		{name: "fail/api-origin-remote-address", origins: map[string]string{"https://deploy.example": "http://192.168.1.20:8080"}, wantErr: "not loopback"},
		{name: "fail/api-origin-with-path", origins: map[string]string{"agent:cleanup_agent": "https://cleanup.example/api"}, wantErr: "not an origin"},
		{name: "fail/api-origin-with-user", origins: map[string]string{"agent:cleanup_agent": "https://u:p@cleanup.example"}, wantErr: "not an origin"},
		{name: "fail/api-origin-not-a-url", origins: map[string]string{"agent:cleanup_agent": "cleanup.example"}, wantErr: "not an origin"},
		{name: "ok/https", tokenURL: "https://mandate.example/token"},
		{name: "ok/loopback-v4", tokenURL: "http://127.0.0.1:8080/token"},
		{name: "ok/loopback-v4-range", tokenURL: "http://127.4.5.6/token"},
		{name: "ok/loopback-v6", tokenURL: "http://[::1]:8080/token"},
		{name: "ok/localhost", tokenURL: "http://localhost:8080/token"},
		{name: "ok/localhost-upper-case", tokenURL: "http://LOCALHOST/token"},
		{name: "ok/api-origin-https", origins: map[string]string{"agent:cleanup_agent": "https://cleanup.example:8443"}},
		{name: "ok/api-origin-loopback", origins: map[string]string{"agent:cleanup_agent": "http://127.0.0.1:9000/"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.tokenURL == "" {
				tc.tokenURL = "https://mandate.example/token"
			}
			_, err := agent.New(agent.Config{TokenURL: tc.tokenURL, ClientID: "agent:infrabot", ClientSecret: "s", Origins: tc.origins})
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.wantErr != "" && err == nil:
				t.Fatal("accepted")
			case tc.wantErr != "" && !strings.Contains(err.Error(), tc.wantErr):
				t.Fatalf("err = %v, want it to mention %q", err, tc.wantErr)
			}
		})
	}
}

// TestTransportOrigin: the origin a Transport sends its token to comes
// from Config.Origins or from the audience (or resource) URL; a target
// without one, or plain http to a remote API, is refused by Transport; and
// a request for any other origin goes out without a token, and without an
// exchange.
func TestTransportOrigin(t *testing.T) {
	tokenURL, exchanges := countingTokenEndpoint(t)
	api, _ := recordingServer(t, false)
	other, _ := recordingServer(t, false)
	_, apiPort, _ := net.SplitHostPort(api.Listener.Addr().String())
	c, err := agent.New(agent.Config{TokenURL: tokenURL, ClientID: "agent:infrabot", ClientSecret: "s",
		Origins: map[string]string{"agent:cleanup_agent": api.URL, "https://deploy.example": api.URL}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		req     agent.Request
		wantErr string
	}{
		{name: "fail/no-audience-nor-resource", wantErr: "Audience or a Resource"},
		{name: "fail/agent-id-without-origin", req: agent.Request{Audience: "agent:argocd"}, wantErr: "Config.Origins"},
		{name: "fail/urn-without-origin", req: agent.Request{Audience: "urn:example:deploy"}, wantErr: "Config.Origins"},
		{name: "fail/plain-http-remote-api", req: agent.Request{Audience: "http://deploy.example"}, wantErr: "not loopback"},
		{name: "fail/plain-http-remote-resource", req: agent.Request{Resource: "http://deploy.example/v1"}, wantErr: "not loopback"},
		{name: "ok/agent-id-with-origin", req: agent.Request{Audience: "agent:cleanup_agent"}},
		{name: "ok/origins-entry-over-url-audience", req: agent.Request{Audience: "https://deploy.example"}},
		{name: "ok/url-audience", req: agent.Request{Audience: api.URL + "/v1/"}},
		{name: "ok/url-audience-upper-case-scheme", req: agent.Request{Audience: "HTTP://127.0.0.1:" + apiPort}},
		{name: "ok/resource-without-audience", req: agent.Request{Resource: api.URL + "/tags"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.req.SubjectToken = "sams-token"
			w := &wire{next: http.DefaultTransport}
			rt, err := c.Transport(w, tc.req)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want it to mention %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			hc := &http.Client{Transport: rt}
			before := exchanges.Load()
			for _, u := range []string{other.URL + "/x", api.URL + "/x", "http://localhost:" + apiPort + "/x"} {
				resp, err := hc.Get(u)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
			}
			sent := w.rec.all()
			if len(sent) != 3 || sent[0].authorization != "" || sent[2].authorization != "" {
				t.Errorf("a token went to another origin: %+v", sent)
			}
			if len(sent) == 3 && sent[1].authorization != "Bearer token-"+fmt.Sprint(before+1) {
				t.Errorf("the API got Authorization %q, want the token exchanged for it", sent[1].authorization)
			}
			if n := exchanges.Load() - before; n > 1 {
				t.Errorf("%d exchanges, want at most one (for the API's origin only)", n)
			}
		})
	}
}

// short is the start of a header value, enough to tell what it was.
func short(v string) string {
	if len(v) > 20 {
		return v[:20] + "..."
	}
	return v
}

// transport is the agent's RoundTripper for req over base.
func transport(t *testing.T, c *agent.Client, base http.RoundTripper, req agent.Request) http.RoundTripper {
	t.Helper()
	rt, err := c.Transport(base, req)
	if err != nil {
		t.Fatal(err)
	}
	return rt
}
