//go:build unix

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// delayProxy forwards loopback connections to target, delivering every
// chunk read from either side a set one-way delay after it was read, as a
// slow or distant database link would: the added round-trip time is twice
// the delay. A longer delay applies to the chunks read afterwards; a shorter
// one also to the chunks in flight, as a link that heals delivers what it
// was holding (TCP retransmits it). It can also stall a share of the chunks
// for a second, and everything behind them, the way TCP stalls on a lost
// segment until it is retransmitted.
type delayProxy struct {
	ln     net.Listener
	target string
	oneWay atomic.Int64 // nanoseconds
	// lossPermille is the share of chunks that stall, per thousand.
	lossPermille atomic.Int64
	// accepted counts the connections made through the proxy, cancels
	// those that carried a PostgreSQL CancelRequest.
	accepted, cancels atomic.Int64
	done              chan struct{}
	mu                sync.Mutex
	conns             map[net.Conn]struct{}
	// healed is closed, and replaced, when the delay shortens; healedAt
	// is then (Unix nanoseconds).
	healed   chan struct{}
	healedAt atomic.Int64
	wg       sync.WaitGroup
}

func newDelayProxy(t *testing.T, target string) *delayProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &delayProxy{ln: ln, target: target, done: make(chan struct{}), conns: map[net.Conn]struct{}{}, healed: make(chan struct{})}
	p.wg.Go(p.serve)
	t.Cleanup(func() {
		ln.Close()
		close(p.done)
		p.mu.Lock()
		for c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

// setLatency sets the round-trip time the proxy adds and the share of
// chunks that stall as if lost (0 to 1).
func (p *delayProxy) setLatency(rtt time.Duration, loss float64) {
	p.lossPermille.Store(int64(loss * 1000))
	if old := p.oneWay.Swap(int64(rtt / 2)); int64(rtt/2) < old {
		p.mu.Lock()
		p.healedAt.Store(time.Now().UnixNano())
		close(p.healed)
		p.healed = make(chan struct{})
		p.mu.Unlock()
	}
}

// due is when a chunk read at read, due at due when it was read, is
// delivered now: no later than the current delay after the link last healed.
func (p *delayProxy) due(read, due time.Time) time.Time {
	if h := time.Unix(0, p.healedAt.Load()); h.After(read) {
		if d := h.Add(time.Duration(p.oneWay.Load())); d.Before(due) {
			return d
		}
	}
	return due
}

// lossStall is how long a "lost" chunk waits for its retransmission.
const lossStall = time.Second

func (p *delayProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.accepted.Add(1)
		p.wg.Go(func() { p.handle(c) })
	}
}

func (p *delayProxy) handle(c net.Conn) {
	up, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	select {
	case <-p.done:
		p.mu.Unlock()
		c.Close()
		up.Close()
		return
	default:
	}
	p.conns[c], p.conns[up] = struct{}{}, struct{}{}
	p.mu.Unlock()
	var wg sync.WaitGroup
	wg.Go(func() { p.pipe(up, c, true) })
	wg.Go(func() { p.pipe(c, up, false) })
	wg.Wait()
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, up)
	p.mu.Unlock()
}

// cancelRequest starts a PostgreSQL CancelRequest message: length 16, code
// 80877102.
var cancelRequest = []byte{0, 0, 0, 16, 0x04, 0xd2, 0x16, 0x2e}

// pipe copies src to dst, each chunk delayed; when src ends or dst fails,
// both connections close once what was read has been delivered. fromClient
// says src is the database client's side.
func (p *delayProxy) pipe(dst, src net.Conn, fromClient bool) {
	type chunk struct {
		read, due time.Time
		b         []byte
	}
	q := make(chan chunk, 256)
	go func() {
		defer close(q)
		for first := fromClient; ; first = false {
			buf := make([]byte, 32<<10)
			n, err := src.Read(buf)
			if first && bytes.HasPrefix(buf[:n], cancelRequest) {
				p.cancels.Add(1)
			}
			if n > 0 {
				now := time.Now()
				due := now.Add(time.Duration(p.oneWay.Load()))
				if rand.Int64N(1000) < p.lossPermille.Load() {
					due = due.Add(lossStall)
				}
				q <- chunk{read: now, due: due, b: buf[:n]}
			}
			if err != nil {
				return
			}
		}
	}()
	for ch := range q {
	wait:
		for {
			// Take the channel before the delay, so that a heal in
			// between is not missed.
			p.mu.Lock()
			healed := p.healed
			p.mu.Unlock()
			d := time.Until(p.due(ch.read, ch.due))
			if d <= 0 {
				break
			}
			select {
			case <-time.After(d):
				break wait
			case <-healed:
			case <-p.done:
				break wait
			}
		}
		if _, err := dst.Write(ch.b); err != nil {
			break
		}
	}
	dst.Close()
	src.Close()
	for range q { // let the reader end
	}
}

// procUsage is a process's thread and open file counts from /proc.
type procUsage struct{ threads, fds int }

func (u procUsage) String() string { return fmt.Sprintf("%d threads, %d fds", u.threads, u.fds) }

func procUsageOf(pid int) (procUsage, error) {
	var u procUsage
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return u, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Threads:"); ok {
			u.threads, _ = strconv.Atoi(strings.TrimSpace(v))
		}
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	u.fds = len(fds)
	return u, err
}

func readProcUsage(t *testing.T, pid int) procUsage {
	t.Helper()
	u, err := procUsageOf(pid)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// causes counts the distinct causes of the failed requests in a server log.
func causes(log string) string {
	n := map[string]int{}
	for _, line := range strings.Split(log, "\n") {
		var rec struct {
			Msg, Route, Reason, Cause string
		}
		if json.Unmarshal([]byte(line), &rec) != nil || rec.Msg != "request" || rec.Cause == "" {
			continue
		}
		n[rec.Route+" "+rec.Reason+": "+rec.Cause]++
	}
	var out []string
	for c, k := range n {
		out = append(out, fmt.Sprintf("\n  %d× %s", k, c))
	}
	slices.Sort(out)
	if len(out) > 15 {
		out = append(out[:15], fmt.Sprintf("\n  … and %d more", len(out)-15))
	}
	return strings.Join(out, "")
}

// opCall is a call of one kind of request.
type opCall struct {
	op string
	call
}

// opStats sums up the calls of one kind.
type opStats struct {
	ok, refused int
	slowest     time.Duration
}

// TestSlowDatabase puts 0.5 to 5 s of round-trip latency on the path to
// PostgreSQL under a loaded server, then stalls as if packets were lost, then
// a partition (THREATS.md T61): every request still ends within the request
// deadline (1.8 s; p99 of the failing ones at most 2 s + 100 ms), failing
// with 503 and Retry-After, never a 200 for a write that cannot have been
// committed; the pool recovers once the latency is gone, without a restart;
// and the server's threads and open files come back near where they were.
func TestSlowDatabase(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs real processes")
	}
	postgresURL(t)
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("no /proc to count threads and file descriptors")
	}
	var proxy *delayProxy
	b := postgresBackend(t, func(db string) string {
		proxy = newDelayProxy(t, db)
		return proxy.ln.Addr().String()
	})
	bin := buildBinary(t)
	port := freePort(t)
	p := startServer(t, bin, writeConfig(t, t.TempDir(), port, b), port)
	pid := p.cmd.Process.Pid
	client := newTestClient()

	subject := p.personToken(t)
	first := timedDo(client, exchangeRequest(p.base, subject))
	tok, _ := first.body["access_token"].(string)
	if first.code != http.StatusOK || tok == "" {
		t.Fatalf("exchange: %v", first)
	}
	jti := jtiOf(t, tok)
	ops := []struct {
		name string
		req  func() *http.Request
	}{
		{"exchange", func() *http.Request { return exchangeRequest(p.base, subject) }},
		{"introspect", func() *http.Request { return introspectRequest(p.base, tok) }},
		{"revocation_status", func() *http.Request { return getRequest(p.base, "/revocations/"+jti) }},
		{"healthz", func() *http.Request { return getRequest(p.base, "/healthz") }},
	}
	// load runs the four kinds of request in turn with n workers for d.
	load := func(n int, d time.Duration) []opCall {
		var mu sync.Mutex
		var calls []opCall
		var wg sync.WaitGroup
		end := time.Now().Add(d)
		for w := range n {
			wg.Go(func() {
				for i := w; time.Now().Before(end); i++ {
					op := ops[i%len(ops)]
					c := timedDo(client, op.req())
					mu.Lock()
					calls = append(calls, opCall{op: op.name, call: c})
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		return calls
	}
	// settle closes the client's idle connections and gives the server a
	// moment to close its side.
	settle := func() {
		client.CloseIdleConnections()
		time.Sleep(300 * time.Millisecond)
	}

	for _, c := range load(8, 1500*time.Millisecond) {
		if c.code != http.StatusOK {
			t.Fatalf("%s before the latency: %v", c.op, c.call)
		}
	}
	settle()
	baseline := readProcUsage(t, pid)
	t.Logf("baseline after warm-up: %v; %d database connections so far", baseline, proxy.accepted.Load())

	// Sample the server's threads and files while the database is slow.
	var peak procUsage
	sampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			select {
			case <-sampling:
				return
			case <-time.After(100 * time.Millisecond):
			}
			u, _ := procUsageOf(pid)
			peak = procUsage{threads: max(peak.threads, u.threads), fds: max(peak.fds, u.fds)}
		}
	}()
	// 24 clients at once, six times the default pool of 4 connections: most
	// requests wait for a connection, and the failures are numerous enough
	// for a p99.
	phases := []struct {
		name string
		rtt  time.Duration
		loss float64
	}{
		{"+0.5 s", 500 * time.Millisecond, 0},
		{"+0.5 s with 5% stalls", 500 * time.Millisecond, 0.05},
		{"+2 s", 2 * time.Second, 0},
		{"+5 s", 5 * time.Second, 0},
		{"partitioned", time.Hour, 0},
	}
	var allFailing []time.Duration
	for _, ph := range phases {
		rtt := ph.rtt
		proxy.setLatency(rtt, ph.loss)
		conns, cancels := proxy.accepted.Load(), proxy.cancels.Load()
		calls := load(24, 3*time.Second)
		conns, cancels = proxy.accepted.Load()-conns, proxy.cancels.Load()-cancels
		var failing []time.Duration
		perOp := map[string]*opStats{}
		bad := 0
		for _, c := range calls {
			s := perOp[c.op]
			if s == nil {
				s = &opStats{}
				perOp[c.op] = s
			}
			s.slowest = max(s.slowest, c.took)
			switch {
			case c.err == nil && c.code == http.StatusOK:
				s.ok++
				if c.op == "exchange" && rtt > 1800*time.Millisecond {
					// Committing takes at least one round trip, longer
					// than the deadline: this token was not persisted.
					t.Errorf("%s: an exchange answered 200: %v", ph.name, c.call)
				}
			case c.err == nil && c.code == http.StatusServiceUnavailable && c.retryAfter != "":
				s.refused++
				failing = append(failing, c.took)
			default:
				failing = append(failing, c.took)
				if bad++; bad <= 5 {
					t.Errorf("%s: %s answered %v, want 200 or 503 with Retry-After", ph.name, c.op, c.call)
				}
			}
		}
		var summary []string
		for _, op := range ops {
			if s := perOp[op.name]; s != nil {
				summary = append(summary, fmt.Sprintf("%s %d ok/%d refused (slowest %v)", op.name, s.ok, s.refused, s.slowest.Round(time.Millisecond)))
			}
		}
		allFailing = append(allFailing, failing...)
		p99 := percentile(failing, 99)
		t.Logf("%s: %d calls, %d failed: p50 %v, p99 %v, max %v; %s; %d new database connections, %d of them cancel requests", ph.name, len(calls), len(failing),
			percentile(failing, 50).Round(time.Millisecond), p99.Round(time.Millisecond),
			percentile(failing, 100).Round(time.Millisecond), strings.Join(summary, ", "), conns, cancels)
		if rtt >= 2*time.Second && len(failing) == 0 {
			t.Errorf("%s: nothing failed; is the proxy in the path?", ph.name)
		}
	}
	// The p99 is taken over all the phases (some 240 failures), so that a
	// scheduling hiccup on a busy machine does not decide it alone; a hang
	// shows anyway, as a client time-out (5 s) reported above.
	p99 := percentile(allFailing, 99)
	t.Logf("all slow phases: %d failed requests, p99 %v, max %v", len(allFailing),
		p99.Round(time.Millisecond), percentile(allFailing, 100).Round(time.Millisecond))
	if p99 > 2100*time.Millisecond {
		t.Errorf("p99 of the failing requests is %v, more than 2 s + 100 ms", p99)
	}
	close(sampling)
	<-sampled
	t.Logf("peak while the database was slow: %v", peak)

	// Recovery, without a restart, once the latency is gone.
	proxy.setLatency(0, 0)
	logFrom := len(serverLog(p))
	conns, cancels := proxy.accepted.Load(), proxy.cancels.Load()
	start := time.Now()
	for ok := 0; ok < 10; {
		c := timedDo(client, exchangeRequest(p.base, subject))
		switch {
		case c.code == http.StatusOK:
			ok++
		case time.Since(start) > 20*time.Second:
			t.Fatalf("no recovery 20 s after the latency was removed: %v\ncauses: %s", c, causes(serverLog(p)[logFrom:]))
		default:
			ok = 0
			time.Sleep(50 * time.Millisecond)
		}
	}
	recovery := time.Since(start)
	t.Logf("recovered %v after the latency was removed (%d new database connections, %d of them cancel requests)",
		recovery.Round(time.Millisecond), proxy.accepted.Load()-conns, proxy.cancels.Load()-cancels)
	if recovery > 5*time.Second {
		t.Logf("the server's failures while recovering: %s", causes(serverLog(p)[logFrom:]))
	}
	for _, c := range load(8, time.Second) {
		if c.code != http.StatusOK {
			t.Errorf("%s after recovery: %v", c.op, c.call)
		}
	}

	// No thread or file descriptor leak: the counts come back near the
	// baseline (the pool and the HTTP connections may differ a little).
	const fdSlack, threadSlack = 6, 4
	var after procUsage
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		settle()
		after = readProcUsage(t, pid)
		if after.fds <= baseline.fds+fdSlack && after.threads <= baseline.threads+threadSlack {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("after recovery the server has %v, baseline %v (slack %d fds, %d threads)", after, baseline, fdSlack, threadSlack)
			break
		}
	}
	t.Logf("after recovery: %v (baseline %v)", after, baseline)
}
