package postgres_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mandate-dev/mandate/internal/store"
	"github.com/mandate-dev/mandate/internal/store/postgres"
)

// Tests of an unreachable database (THREATS T60): every call fails with
// store.ErrUnavailable within its deadline instead of hanging, and the store
// recovers without a restart.

// within runs fn and fails t unless it returns an error wrapping
// store.ErrUnavailable within limit.
func within(t *testing.T, what string, limit time.Duration, fn func() error) {
	t.Helper()
	start := time.Now()
	err := fn()
	if d := time.Since(start); d > limit {
		t.Errorf("%s took %v, want at most %v", what, d.Round(time.Millisecond), limit)
	}
	if !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("%s: err = %v, want ErrUnavailable", what, err)
	}
}

// TestOpenUnreachable needs no database: a closed port, and a port that
// accepts connections but never answers (a hung server or a partition).
func TestOpenUnreachable(t *testing.T) {
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := closed.Addr().String()
	closed.Close()
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
		}
	}()
	for _, tc := range []struct {
		name string
		addr string
	}{
		{name: "fail/closed-port", addr: closedAddr},
		{name: "fail/silent-server", addr: silent.Addr().String()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := postgres.Config{URL: "postgres://mandate@" + tc.addr + "/mandate?sslmode=disable"}
			within(t, "Open", 2*time.Second, func() error {
				ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
				defer cancel()
				s, err := postgres.Open(ctx, cfg)
				if err == nil {
					s.Close()
				}
				return err
			})
			within(t, "Migrate", 2*time.Second, func() error {
				ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
				defer cancel()
				return postgres.Migrate(ctx, cfg)
			})
		})
	}
}

// proxy forwards TCP connections to the database, or plays an outage.
type proxy struct {
	ln     net.Listener
	target string

	mu      sync.Mutex
	mode    proxyMode
	clients []net.Conn // the store's side
	servers []net.Conn // the database's side
}

// proxyMode is what the proxy does with connections.
type proxyMode int

const (
	// forward passes everything on.
	forward proxyMode = iota
	// refuse closes every connection, and each new one at once, as a
	// stopped database does.
	refuse
	// silent cuts every connection from the database but keeps the store's
	// side open, passing nothing on and answering nothing, as a hung server
	// or a network partition does.
	silent
)

func newProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target}
	go p.serve()
	t.Cleanup(p.close)
	return p
}

func (p *proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		mode := p.mode
		p.clients = append(p.clients, c)
		p.mu.Unlock()
		switch mode {
		case refuse:
			c.Close()
			continue
		case silent:
			go io.Copy(io.Discard, c)
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.servers = append(p.servers, up)
		p.mu.Unlock()
		go io.Copy(up, c)
		go io.Copy(c, up)
	}
}

// set switches the proxy to mode. Every connection made before is cut from
// the database; with refuse the store's side is closed too, and with
// silent it stays open and silent, also after the outage ends (the server
// has given it up).
func (p *proxy) set(mode proxyMode) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mode = mode
	if mode == forward {
		return
	}
	for _, c := range p.servers {
		c.Close()
	}
	p.servers = nil
	if mode == refuse {
		for _, c := range p.clients {
			c.Close()
		}
		p.clients = nil
	}
}

func (p *proxy) close() {
	p.ln.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range append(p.clients, p.servers...) {
		c.Close()
	}
}

// TestOutage puts a proxy between the store and the database and plays a
// stopped database, then a silent one: every kind of call fails with
// ErrUnavailable within its deadline, Listen reports the broken connection,
// and after each outage everything works again on the same Store.
func TestOutage(t *testing.T) {
	u := testURL(t)
	t.Parallel() // it waits out pgx's cleanup after the partition
	pu, err := url.Parse(u)
	if err != nil || !strings.HasPrefix(pu.Scheme, "postgres") {
		t.Skip(envURL + " is not a postgres:// URL: outage test skipped")
	}
	p := newProxy(t, pu.Host)
	viaProxy := *pu
	viaProxy.Host = p.ln.Addr().String()
	cfg := config(t, newSchema(t))
	cfg.URL = viaProxy.String()
	s := openStore(t, cfg)
	ctx := t.Context()
	if err := s.CreateUser(ctx, store.User{ID: "u"}); err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	calls := []struct {
		name string
		call func(ctx context.Context) error
	}{
		{"Ping", func(ctx context.Context) error { return s.Ping(ctx) }},
		{"GetUser", func(ctx context.Context) error { _, err := s.GetUser(ctx, "u"); return err }},
		{"UpdateUser", func(ctx context.Context) error {
			_, err := s.UpdateUser(ctx, "u", func(u store.User) (store.User, error) { u.Version++; return u, nil })
			return err
		}},
		{"Commit", func(ctx context.Context) error {
			return s.Commit(ctx, store.Batch{Tokens: []store.IssuedToken{{JTI: "t-" + time.Now().String()}}})
		}},
		{"UseNonce", func(ctx context.Context) error {
			return s.UseNonce(ctx, "client_assertion", time.Now().String(), time.Now().Add(time.Hour))
		}},
		{"QueryEvents", func(ctx context.Context) error { _, err := s.QueryEvents(ctx, store.EventFilter{}); return err }},
	}
	// warm fills the pool with connections, so that the outage finds some.
	warm := func() {
		var wg sync.WaitGroup
		for range 4 {
			for _, c := range calls {
				wg.Go(func() { c.call(ctx) })
			}
		}
		wg.Wait()
	}
	fail := func(phase string) {
		t.Helper()
		for _, c := range calls {
			within(t, phase+": "+c.name, time.Second, func() error {
				ctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
				defer cancel()
				return c.call(ctx)
			})
		}
	}
	// healed waits up to limit for every call to work again. After a
	// partition, connections that went silent hold their pool slots while
	// pgx gives them up (a cancel request, then up to 15 s), so calls fail,
	// within their deadline, until then.
	healed := func(phase string, limit time.Duration) {
		t.Helper()
		start := time.Now()
		deadline := start.Add(limit)
		defer func() {
			t.Logf("%s: every call works again after %v", phase, time.Since(start).Round(time.Millisecond))
		}()
		for _, c := range calls {
			for {
				ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				err := c.call(ctx)
				cancel()
				if err == nil {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s: %s still fails: %v", phase, c.name, err)
				}
			}
		}
	}

	warm()
	listenDone := make(chan error, 1)
	listening := make(chan struct{})
	var once sync.Once
	go func() {
		listenDone <- s.Listen(ctx, func(int64) { once.Do(func() { close(listening) }) })
	}()
	<-listening
	p.set(refuse)
	fail("database stopped")
	select {
	case err := <-listenDone:
		if !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("Listen when its connection broke: err = %v, want ErrUnavailable", err)
		}
	case <-time.After(2 * time.Second):
		t.Error("Listen did not return within 2s of its connection breaking")
	}
	p.set(forward)
	healed("after the database came back", 5*time.Second)

	warm()
	p.set(silent)
	fail("database silent")
	p.set(forward)
	healed("after the partition healed", 30*time.Second)
	if u, err := s.GetUser(ctx, "u"); err != nil || u.Version < 2 {
		t.Errorf("GetUser after the outages = %+v, %v; want the updates made after each", u, err)
	}
}
