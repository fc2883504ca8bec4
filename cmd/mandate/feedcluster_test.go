//go:build unix

package main

import (
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// feedCluster is two servers on one PostgreSQL schema: tokens are minted
// and revoked through a, the verifier follows b.
type feedCluster struct {
	a, b *process
}

// startFeedCluster starts a (on the database directly) and b (on what
// viaB makes of the database's host:port, or directly when nil).
func startFeedCluster(t *testing.T, bin string, viaB func(db string) string) *feedCluster {
	t.Helper()
	var dbHost, proxied string
	bb := postgresBackend(t, func(db string) string {
		dbHost, proxied = db, db
		if viaB != nil {
			proxied = viaB(db)
		}
		return proxied
	})
	// The same schema, without the proxy.
	ba := backend{name: bb.name, yaml: strings.Replace(bb.yaml, proxied, dbHost, 1)}
	dir := t.TempDir()
	portA, portB := freePort(t), freePort(t)
	c := &feedCluster{}
	c.a = startServer(t, bin, writeFeedConfig(t, dir, portA, ba), portA)
	c.b = startServer(t, bin, writeFeedConfig(t, dir, portB, bb), portB)
	return c
}

// monitoringTokens mints n InfraBot tokens for the monitoring API on p,
// four at a time.
func monitoringTokens(t *testing.T, p *process, n int) []string {
	t.Helper()
	sam := p.personToken(t)
	toks := make([]string, n)
	var failed atomic.Int32
	withWorkers(n, 4, func(i int) {
		code, body, err := p.exchangeAs("agent:infrabot", sam, rsMonitoringAud, "monitoring:read")
		toks[i], _ = body["access_token"].(string)
		if err != nil || code != http.StatusOK || toks[i] == "" {
			failed.Add(1)
		}
	})
	if failed.Load() > 0 {
		t.Fatalf("%d of %d exchanges failed", failed.Load(), n)
	}
	return toks
}

// withWorkers runs fn(0..n-1) with the given number of workers.
func withWorkers(n, workers int, fn func(i int)) {
	next := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				fn(i)
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}

// TestFeedTwoInstances runs two servers on one PostgreSQL database, A on
// the database directly and B through a TCP proxy; tokens are minted and
// revoked through A, and example APIs follow B's revocation stream.
//
// T53-propagation (THREATS T53): a token is revoked through A and the API
// following B is asked about it every 5 ms until it refuses it. Over 200
// trials (two at a time, each measured from its own revoking response)
// the p99 must be at most 1 s. (The load tool measures the same at scale.)
//
// T54 (THREATS T54, and T60 for the partition), with an API whose Feed
// (MaxStaleness 2 s) reaches B through a TCP proxy of its own:
//
//   - feed-cut-short: the Feed's connection is cut briefly; it reconnects,
//     resumes from its position (Last-Event-ID: no second snapshot) and
//     receives the revocation made meanwhile;
//   - feed-cut-long: it is cut for longer than MaxStaleness; the API
//     answers a valid token 503 with Retry-After within the bound, never 200
//     or 401, and recovers with the connection, the revocation made
//     meanwhile included;
//   - instance-partitioned: B loses the database (its LISTEN connection
//     too); B's feed goes stale after 5 s and ends its streams, so the API
//     fails closed within 5 s + MaxStaleness instead of serving a state that
//     misses the revocations made through A meanwhile; once healed, those
//     and new ones reach it.
func TestFeedTwoInstances(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs real processes")
	}
	postgresURL(t)
	bin := buildBinary(t)
	var db *tcpProxy
	c := startFeedCluster(t, bin, func(host string) string {
		db = newTCPProxy(t, host)
		return db.ln.Addr().String()
	})
	t.Run("T53-propagation", func(t *testing.T) { feedPropagation(t, c) })
	t.Run("T54", func(t *testing.T) { feedCutAndPartition(t, c, db) })
}

// feedPropagation is TestFeedTwoInstances's T53 part.
func feedPropagation(t *testing.T, c *feedCluster) {
	api := startRS(t, c.a.base, rsMonitoringAud, rsOptions{feedURL: c.b.base + "/revocations/stream", jwksURI: c.b.base + "/jwks"})
	const trials = 200
	toks := monitoringTokens(t, c.a, trials)
	var notAccepted atomic.Int32
	withWorkers(trials, 4, func(i int) {
		if api.ask(toks[i]).code != http.StatusOK {
			notAccepted.Add(1)
		}
	})
	if notAccepted.Load() > 0 {
		t.Fatalf("%d of %d fresh tokens were not accepted before any revocation", notAccepted.Load(), trials)
	}

	jtis := make([]string, trials)
	for i, tok := range toks {
		jtis[i] = jtiOf(t, tok)
	}
	fromResponse := make([]time.Duration, trials)
	fromRequest := make([]time.Duration, trials)
	sentAt := make([]time.Duration, trials)
	var mu sync.Mutex
	var problems []string
	problem := func(s string) {
		mu.Lock()
		defer mu.Unlock()
		if len(problems) < 10 {
			problems = append(problems, s)
		}
	}
	start := time.Now()
	// Two trials at a time: a stall of the machine (a loaded CI runner)
	// then delays at most two of them, within the 1% that p99 leaves.
	withWorkers(trials, 2, func(i int) {
		// A random pause first, so that the trials do not fall into step
		// with B's 100 ms reading of the store and all measure one phase.
		time.Sleep(rand.N(100 * time.Millisecond))
		sent := time.Now()
		sentAt[i] = sent.Sub(start)
		code, _, err := c.a.admin(http.MethodPost, "/admin/revoke", `{"jti":"`+jtis[i]+`"}`)
		answered := time.Now()
		if err != nil || code != http.StatusOK {
			problem("revocation through A: " + http.StatusText(code))
			fromResponse[i], fromRequest[i] = time.Hour, time.Hour
			return
		}
		for {
			ans := api.ask(toks[i])
			if ans.revoked {
				fromResponse[i], fromRequest[i] = time.Since(answered), time.Since(sent)
				return
			}
			if ans.code != http.StatusOK {
				problem("answer while propagating: " + http.StatusText(ans.code))
			}
			if time.Since(answered) > 5*time.Second {
				problem("not refused 5 s after the revocation")
				fromResponse[i], fromRequest[i] = time.Hour, time.Hour
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
	for _, p := range problems {
		t.Error(p)
	}
	p50, p99 := percentile(fromResponse, 50), percentile(fromResponse, 99)
	t.Logf("revoked through A, refused by the API following B, over %d trials in %v: p50 %v, p99 %v, max %v (from the revoking request: p50 %v, p99 %v)",
		trials, time.Since(start).Round(time.Millisecond), p50.Round(100*time.Microsecond), p99.Round(100*time.Microsecond),
		percentile(fromResponse, 100).Round(100*time.Microsecond),
		percentile(fromRequest, 50).Round(100*time.Microsecond), percentile(fromRequest, 99).Round(100*time.Microsecond))
	if p99 > time.Second {
		t.Errorf("p99 propagation %v exceeds 1 s", p99)
		for i := range trials {
			if fromResponse[i] > time.Second {
				t.Logf("trial %d: revoking request sent at +%v, answered after %v, refused %v after the answer",
					i, sentAt[i].Round(time.Millisecond), (fromRequest[i] - fromResponse[i]).Round(time.Millisecond), fromResponse[i].Round(time.Millisecond))
			}
		}
	}
}

// feedCutAndPartition is TestFeedTwoInstances's T54 part; db is B's way
// to the database.
func feedCutAndPartition(t *testing.T, c *feedCluster, db *tcpProxy) {
	link := newTCPProxy(t, strings.TrimPrefix(c.b.base, "http://"))
	api := startRS(t, c.a.base, rsMonitoringAud, rsOptions{
		feedURL: "http://" + link.ln.Addr().String() + "/revocations/stream", jwksURI: c.b.base + "/jwks",
		maxStaleness: feedStaleness,
	})
	toks := monitoringTokens(t, c.a, 6)
	valid := toks[0]
	for _, tok := range toks {
		api.expect(t, "a fresh token", tok, 200)
	}
	revoke := func(tok string) time.Time {
		t.Helper()
		c.a.mustAdmin(t, http.MethodPost, "/admin/revoke", `{"jti":"`+jtiOf(t, tok)+`"}`)
		return time.Now()
	}

	t.Run("feed-cut-short", func(t *testing.T) {
		reconnects := api.reconnects()
		link.setCut(true)
		revoke(toks[1])
		// The cut lasts until the Feed has started to reconnect.
		if !eventually(5*time.Second, func() bool { return api.reconnects() > reconnects }) {
			t.Fatal("the Feed did not notice the cut")
		}
		link.setCut(false)
		healed := time.Now()
		// Reconnection waits out the back-off, at most 5 s.
		awaitRefused(t, healed, 6*time.Second, rsProbe{"token revoked during the cut", api, toks[1]})
		api.expect(t, "a valid token after the cut", valid, 200)
		if n := api.snapshots(); n != 1 {
			t.Errorf("the Feed loaded %d snapshots, want 1: it did not resume from its position", n)
		}
	})

	t.Run("feed-cut-long", func(t *testing.T) {
		link.setCut(true)
		cut := time.Now()
		revoke(toks[2])
		first := watchFailClosed(t, api, valid, cut, feedStaleness+time.Second)
		t.Logf("first 503 %v after the cut (MaxStaleness %v)", first.Round(time.Millisecond), feedStaleness)
		if ans := api.ask(toks[2]); ans.code != http.StatusServiceUnavailable {
			t.Errorf("the token revoked during the cut, while stale: %+v, want 503", ans)
		}
		link.setCut(false)
		took := watchRecovery(t, api, valid, 10*time.Second)
		t.Logf("the API accepts a valid token again %v after the link came back", took.Round(time.Millisecond))
		api.expect(t, "token revoked during the long cut", toks[2], 401)
		if n := api.snapshots(); n != 1 {
			t.Errorf("the Feed loaded %d snapshots, want 1: it did not resume from its position", n)
		}
	})

	t.Run("instance-partitioned", func(t *testing.T) {
		db.setCut(true)
		cut := time.Now()
		revoke(toks[3])
		// B's hub is stale 5 s after its last read, and the Feed MaxStaleness
		// after its last heartbeat.
		bound := 5*time.Second + feedStaleness + 1500*time.Millisecond
		first := watchFailClosed(t, api, valid, cut, bound)
		t.Logf("first 503 %v after B lost the database (bound %v)", first.Round(time.Millisecond), bound)
		if ans := api.ask(toks[3]); ans.code != http.StatusServiceUnavailable {
			t.Errorf("the token revoked through A during the partition, while stale: %+v, want 503", ans)
		}
		req, _ := http.NewRequest(http.MethodGet, c.b.base+"/revocations", nil)
		req.SetBasicAuth("https%3A%2F%2Fmonitoring.example", rsSecrets[rsMonitoringAud])
		if code, body, err := decode(c.b.client.Do(req)); err != nil || code != http.StatusServiceUnavailable {
			t.Errorf("B's snapshot while partitioned: %d %v %v, want 503", code, body, err)
		}

		db.setCut(false)
		took := watchRecovery(t, api, valid, 15*time.Second)
		t.Logf("the API accepts a valid token again %v after B got the database back", took.Round(time.Millisecond))
		api.expect(t, "token revoked through A during the partition", toks[3], 401)
		// B listens again (or polls): a new revocation reaches the API
		// within a second.
		awaitRefused(t, revoke(toks[4]), time.Second, rsProbe{"token revoked through A after the partition", api, toks[4]})
		api.expect(t, "a valid token after the partition", valid, 200)
	})
}
