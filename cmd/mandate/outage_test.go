package main

import (
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// tcpProxy forwards loopback connections to target until it is cut; a cut
// proxy closes every connection and refuses new ones, as a stopped database
// would.
type tcpProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	cut    bool
	conns  []net.Conn
}

func newTCPProxy(t *testing.T, target string) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{ln: ln, target: target}
	t.Cleanup(func() { ln.Close(); p.setCut(true) })
	go p.serve()
	return p
}

func (p *tcpProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.cut {
			p.mu.Unlock()
			c.Close()
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns = append(p.conns, c, up)
		p.mu.Unlock()
		go func() { _, _ = io.Copy(up, c); up.Close() }()
		go func() { _, _ = io.Copy(c, up); c.Close() }()
	}
}

func (p *tcpProxy) setCut(cut bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = cut
	if cut {
		for _, c := range p.conns {
			c.Close()
		}
		p.conns = nil
	}
}

// TestDatabaseOutage stops the database under a running server (THREATS
// T60): requests that must write answer 503 with Retry-After within 2 s,
// introspection never answers a stale active:true, /healthz reports not
// ready, and everything recovers without a restart.
func TestDatabaseOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs real processes")
	}
	var proxy *tcpProxy
	b := postgresBackend(t, func(db string) string {
		proxy = newTCPProxy(t, db)
		return proxy.ln.Addr().String()
	})
	bin := buildBinary(t)
	port := freePort(t)
	p := startServer(t, bin, writeConfig(t, t.TempDir(), port, b), port)

	subject := p.personToken(t)
	code, body, err := p.exchange(subject)
	if err != nil || code != 200 {
		t.Fatalf("exchange before the outage: %d %v", code, err)
	}
	tok := body["access_token"].(string)

	proxy.setCut(true)
	checks := []struct {
		name string
		do   func() (*http.Response, error)
	}{
		{"exchange", func() (*http.Response, error) {
			return p.client.PostForm(p.base+"/token", url.Values{
				"grant_type": {"urn:ietf:params:oauth:grant-type:token-exchange"}, "subject_token": {subject},
				"subject_token_type": {"urn:ietf:params:oauth:token-type:access_token"}, "audience": {"https://deploy.example"},
				"client_id": {"agent:infrabot"}, "client_secret": {"infrabot-secret"},
			})
		}},
		{"introspection", func() (*http.Response, error) {
			return p.client.PostForm(p.base+"/introspect", url.Values{"token": {tok}, "client_id": {"agent:infrabot"}, "client_secret": {"infrabot-secret"}})
		}},
		{"revocation", func() (*http.Response, error) {
			return p.client.PostForm(p.base+"/revoke", url.Values{"token": {tok}, "client_id": {"agent:infrabot"}, "client_secret": {"infrabot-secret"}})
		}},
		{"healthz", func() (*http.Response, error) { return p.client.Get(p.base + "/healthz") }},
	}
	for _, c := range checks {
		for round := range 3 {
			start := time.Now()
			resp, err := c.do()
			elapsed := time.Since(start)
			if err != nil {
				t.Fatalf("%s during the outage: %v", c.name, err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
				t.Errorf("%s round %d during the outage: %d %s (Retry-After %q)", c.name, round, resp.StatusCode, b, resp.Header.Get("Retry-After"))
			}
			if elapsed > 2*time.Second {
				t.Errorf("%s round %d took %v, more than 2 s", c.name, round, elapsed)
			}
			if strings.Contains(string(b), `"active":true`) {
				t.Errorf("introspection answered a stale active:true")
			}
		}
	}

	proxy.setCut(false)
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, _, err := p.exchange(subject)
		if err == nil && code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no recovery 20 s after the database came back: %d %v", code, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if active, err := p.active(tok); err != nil || !active {
		t.Errorf("the token from before the outage is not active after it (%v)", err)
	}
}
