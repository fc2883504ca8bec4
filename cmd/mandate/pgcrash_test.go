//go:build unix

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Tests of THREATS.md T59 against a PostgreSQL cluster private to the test,
// so that crashing it disturbs no other test.

// keyedCall is a call about one item (a token, a jti).
type keyedCall struct {
	key string
	call
}

// crashBurst runs work with 8 workers until it says there is no more and
// SIGKILLs the cluster mid-burst: when a random 10–50% of items calls are
// done, or with items 0 (no end), 150–600 ms into the burst. It lets the
// workers go on against the dead database for outage before it stops them,
// and returns the calls and when the kill was sent and the cluster gone.
func crashBurst(t *testing.T, pg *pgCluster, items int, outage time.Duration, work func(i int) (keyedCall, bool)) (calls []keyedCall, killedAt, downAt time.Time) {
	t.Helper()
	var (
		mu   sync.Mutex
		next atomic.Int64
		done atomic.Int64
		stop atomic.Bool
		wg   sync.WaitGroup
	)
	for range 8 {
		wg.Go(func() {
			for !stop.Load() {
				kc, ok := work(int(next.Add(1) - 1))
				if !ok {
					return
				}
				mu.Lock()
				calls = append(calls, kc)
				mu.Unlock()
				done.Add(1)
				if kc.code != http.StatusOK {
					// Do not spin on a dead database.
					time.Sleep(10 * time.Millisecond)
				}
			}
		})
	}
	if items > 0 {
		target := int64(items/10 + rand.IntN(items*4/10))
		for deadline := time.Now().Add(30 * time.Second); done.Load() < target && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
		}
	} else {
		time.Sleep(time.Duration(150+rand.IntN(450)) * time.Millisecond)
	}
	killedAt = time.Now()
	pg.crash(t)
	downAt = time.Now()
	time.Sleep(outage)
	stop.Store(true)
	wg.Wait()
	return calls, killedAt, downAt
}

// checkOutageCalls checks the calls of a crash burst: every call answered
// 200 or 503; those that began once the database was gone all answered 503
// with Retry-After; none that was still running at the kill took more than
// 2 s. It returns the keys of the calls answered 200.
func checkOutageCalls(t *testing.T, calls []keyedCall, killedAt, downAt time.Time) []string {
	t.Helper()
	var acked []string
	var during, refused, inFlight int
	var slowest time.Duration
	bad := 0
	report := func(format string, args ...any) {
		if bad++; bad <= 10 {
			t.Errorf(format, args...)
		}
	}
	for _, c := range calls {
		end := c.start.Add(c.took)
		if c.err == nil && c.code == http.StatusOK {
			acked = append(acked, c.key)
		}
		if end.After(killedAt) {
			slowest = max(slowest, c.took)
			if c.took > 2*time.Second {
				report("a call running when the database died took more than 2 s: %v", c)
			}
		}
		switch {
		case c.start.After(downAt):
			during++
			if c.err != nil || c.code != http.StatusServiceUnavailable || c.retryAfter == "" {
				report("a call made while the database was down did not answer 503 with Retry-After: %v", c)
			} else {
				refused++
			}
		case end.After(killedAt):
			inFlight++
			if c.err != nil || (c.code != http.StatusOK && c.code != http.StatusServiceUnavailable) {
				report("a call in flight at the kill answered neither 200 nor 503: %v", c)
			}
		default:
			if c.err != nil || c.code != http.StatusOK {
				report("a call before the kill failed: %v", c)
			}
		}
	}
	t.Logf("%d calls: %d acknowledged (200), %d in flight at the kill, %d made while the database was down (%d answered 503); slowest call after the kill %v",
		len(calls), len(acked), inFlight, during, refused, slowest.Round(time.Millisecond))
	if len(acked) == 0 {
		t.Fatal("no call was acknowledged before the kill; the test proves nothing")
	}
	if during == 0 {
		t.Fatal("no call was made while the database was down; the test proves nothing")
	}
	return acked
}

// checkDownAnswers checks, with the database down, that /healthz reports
// not ready and introspection of a token known to be active answers 503
// rather than a stale active:true, within 2 s.
func checkDownAnswers(t *testing.T, client *http.Client, base, tok string) {
	t.Helper()
	for _, c := range []struct {
		name string
		req  *http.Request
	}{
		{"healthz", getRequest(base, "/healthz")},
		{"introspection", introspectRequest(base, tok)},
	} {
		got := timedDo(client, c.req)
		if got.err != nil || got.code != http.StatusServiceUnavailable || got.retryAfter == "" || got.took > 2*time.Second {
			t.Errorf("%s with the database down: %v, want 503 with Retry-After within 2 s", c.name, got)
		}
	}
}

// restartAndRecover restarts the cluster on its data directory (crash
// recovery) and waits until the server, not restarted, exchanges again.
func restartAndRecover(t *testing.T, pg *pgCluster, client *http.Client, base, subject string) {
	t.Helper()
	start := time.Now()
	pg.start(t)
	restarted := time.Since(start)
	for {
		c := timedDo(client, exchangeRequest(base, subject))
		if c.err == nil && c.code == http.StatusOK {
			break
		}
		if time.Since(start) > 30*time.Second {
			t.Fatalf("the server did not recover within 30 s of the database restart: %v", c)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if c := timedDo(client, getRequest(base, "/healthz")); c.code != http.StatusOK {
		t.Errorf("/healthz after recovery: %v", c)
	}
	t.Logf("database restarted (crash recovery) in %v; server exchanging again %v after the restart began",
		restarted.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
}

// parallel runs fn over 0..n-1 with 8 workers.
func parallel(n int, fn func(i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				fn(i)
			}
		})
	}
	wg.Wait()
}

// auditJTI returns how many audit records about jti have each action.
func auditJTI(client *http.Client, base, jti string) (map[string]int, error) {
	req := getRequest(base, "/audit?jti="+jti)
	req.Header.Set("Authorization", "Bearer "+testAdmin)
	c := timedDo(client, req)
	if c.err != nil || c.code != http.StatusOK {
		return nil, fmt.Errorf("audit query: %v", c)
	}
	actions := map[string]int{}
	evs, _ := c.body["events"].([]any)
	for _, e := range evs {
		if ev, ok := e.(map[string]any); ok && ev["jti"] == jti {
			action, _ := ev["action"].(string)
			actions[action]++
		}
	}
	return actions, nil
}

// TestPostgresKilledMidBurst SIGKILLs PostgreSQL (the postmaster and its
// backends) during a burst of token exchanges, and then of revocations,
// under a running server (THREATS.md T59, T60): while the database is down
// every call answers 503 within 2 s; after the database restarts the same
// server recovers, and everything it acknowledged with a 200 is there.
func TestPostgresKilledMidBurst(t *testing.T) {
	if testing.Short() {
		t.Skip("starts, kills and restarts a PostgreSQL cluster and real servers")
	}
	pg := startPGCluster(t)
	pg.createRole(t, "mandate")
	bin := buildBinary(t)
	port := freePort(t)
	cfg := writeConfig(t, t.TempDir(), port, backend{name: "postgres", yaml: fmt.Sprintf("store: %q\n", pg.url("mandate"))})
	p := startServer(t, bin, cfg, port)
	client := newTestClient()
	subject := p.personToken(t)

	t.Run("exchanges", func(t *testing.T) {
		calls, killedAt, downAt := crashBurst(t, pg, 0, 2500*time.Millisecond, func(int) (keyedCall, bool) {
			c := timedDo(client, exchangeRequest(p.base, subject))
			tok, _ := c.body["access_token"].(string)
			return keyedCall{key: tok, call: c}, true
		})
		acked := checkOutageCalls(t, calls, killedAt, downAt)
		checkDownAnswers(t, client, p.base, acked[0])
		restartAndRecover(t, pg, client, p.base, subject)

		var lost atomic.Int64
		parallel(len(acked), func(i int) {
			tok := acked[i]
			jti := jtiOf(t, tok)
			var problems []string
			if c := timedDo(client, getRequest(p.base, "/revocations/"+jti)); c.code != http.StatusOK || c.body["revoked"] != false {
				problems = append(problems, fmt.Sprintf("revocation status %v", c))
			}
			if c := timedDo(client, introspectRequest(p.base, tok)); c.code != http.StatusOK || c.body["active"] != true {
				problems = append(problems, fmt.Sprintf("introspection %v", c))
			}
			if actions, err := auditJTI(client, p.base, jti); err != nil || actions["token.exchange"] != 1 {
				problems = append(problems, fmt.Sprintf("audit records %v (%v), want one token.exchange", actions, err))
			}
			if len(problems) > 0 && lost.Add(1) <= 10 {
				t.Errorf("token %s was answered with 200 before the crash: %s", jti, strings.Join(problems, "; "))
			}
		})
		t.Logf("%d acknowledged exchanges checked after the crash, %d incomplete", len(acked), lost.Load())
	})

	t.Run("revocations", func(t *testing.T) {
		// Person tokens to revoke, issued with the database up.
		jtis := make([]string, 800)
		parallel(len(jtis), func(i int) {
			req, _ := http.NewRequest(http.MethodPost, p.base+"/admin/users/user:sam/token", nil)
			req.Header.Set("Authorization", "Bearer "+testAdmin)
			if c := timedDo(client, req); c.code == http.StatusOK {
				tok, _ := c.body["access_token"].(string)
				jtis[i] = jtiOf(t, tok)
			}
		})
		for _, j := range jtis {
			if j == "" {
				t.Fatal("a sign-in failed before the crash")
			}
		}
		calls, killedAt, downAt := crashBurst(t, pg, len(jtis), 1500*time.Millisecond, func(i int) (keyedCall, bool) {
			if i >= len(jtis) {
				return keyedCall{}, false
			}
			return keyedCall{key: jtis[i], call: timedDo(client, adminRevokeRequest(p.base, jtis[i]))}, true
		})
		acked := checkOutageCalls(t, calls, killedAt, downAt)
		restartAndRecover(t, pg, client, p.base, subject)

		isAcked := map[string]bool{}
		for _, j := range acked {
			isAcked[j] = true
		}
		var lost, retried, committedAnyway, doubleAudit atomic.Int64
		parallel(len(jtis), func(i int) {
			jti := jtis[i]
			if !isAcked[jti] {
				// A refusal promises nothing: the commit may have reached
				// the disk before the crash took the answer with it.
				if c := timedDo(client, getRequest(p.base, "/revocations/"+jti)); c.body["revoked"] == true {
					committedAnyway.Add(1)
				}
				// The client retries what was refused (RFC 7009); a
				// revocation is idempotent.
				retried.Add(1)
				if c := timedDo(client, adminRevokeRequest(p.base, jti)); c.code != http.StatusOK {
					t.Errorf("retry of the revocation of %s after recovery: %v", jti, c)
				}
				if c := timedDo(client, getRequest(p.base, "/revocations/"+jti)); c.code != http.StatusOK || c.body["revoked"] != true {
					t.Errorf("revocation of %s retried after recovery is not in force: %v", jti, c)
				}
				if actions, err := auditJTI(client, p.base, jti); err == nil && actions["token.revoked"] > 1 {
					doubleAudit.Add(1)
				}
				return
			}
			var problems []string
			if c := timedDo(client, getRequest(p.base, "/revocations/"+jti)); c.code != http.StatusOK || c.body["revoked"] != true {
				problems = append(problems, fmt.Sprintf("revocation status %v", c))
			}
			if actions, err := auditJTI(client, p.base, jti); err != nil || actions["token.revoked"] != 1 || actions["token.issue"] != 1 {
				problems = append(problems, fmt.Sprintf("audit records %v (%v), want one token.issue and one token.revoked", actions, err))
			}
			if len(problems) > 0 && lost.Add(1) <= 10 {
				t.Errorf("revocation of %s was acknowledged before the crash: %s", jti, strings.Join(problems, "; "))
			}
		})
		t.Logf("refused revocations: %d retried, %d of them had committed before the crash (%d then have two revocation audit records)",
			retried.Load(), committedAnyway.Load(), doubleAudit.Load())
		t.Logf("%d acknowledged revocations checked after the crash, %d lost", len(acked), lost.Load())
	})
}

// runServeToExit runs `mandate serve` expecting it to refuse to start: it
// returns its standard error and exit error, failing the test if it is still
// running after 20 s.
func runServeToExit(t *testing.T, bin, cfg string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "serve", "--config", cfg)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("mandate serve still running after 20 s:\n%s", stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
	t.Logf("mandate serve exited after %v (%v): %s", time.Since(start).Round(time.Millisecond), err, lines[len(lines)-1])
	return stderr.String(), err
}

// serverLog is what a server started by startServer wrote to standard
// error so far.
func serverLog(p *process) string {
	f, ok := p.cmd.Stderr.(*os.File)
	if !ok {
		return ""
	}
	b, _ := os.ReadFile(f.Name())
	return string(b)
}

// TestPostgresRefusesAsyncCommit checks the durability guard of THREATS.md
// T59: `mandate serve` refuses a database that acknowledges commits before
// they are on disk (synchronous_commit=off for its role, or fsync=off), unless
// allow_async_commit says the operator accepts it, and a server whose role is
// switched to asynchronous commit while it runs refuses its new connections.
func TestPostgresRefusesAsyncCommit(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a PostgreSQL cluster and real servers")
	}
	pg := startPGCluster(t)
	pg.createRole(t, "mandate_async")
	pg.exec(t, "ALTER ROLE mandate_async SET synchronous_commit = off")
	pg.createRole(t, "mandate")
	bin := buildBinary(t)
	dir := t.TempDir()
	async := backend{name: "postgres", yaml: fmt.Sprintf("store: %q\n", pg.url("mandate_async"))}

	t.Run("refused", func(t *testing.T) {
		stderr, err := runServeToExit(t, bin, writeConfig(t, dir, freePort(t), async))
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() == 0 {
			t.Errorf("mandate serve on a role with synchronous_commit=off: %v, want a non-zero exit", err)
		}
		if !strings.Contains(stderr, "synchronous_commit") {
			t.Errorf("the refusal does not name synchronous_commit:\n%s", stderr)
		}
		if strings.Contains(stderr, pg.password) {
			t.Errorf("the refusal prints the database password:\n%s", stderr)
		}
	})

	t.Run("allowed", func(t *testing.T) {
		b := async
		b.yaml += "allow_async_commit: true\n"
		port := freePort(t)
		p := startServer(t, bin, writeConfig(t, dir, port, b), port)
		if code, _, err := p.exchange(p.personToken(t)); err != nil || code != http.StatusOK {
			t.Errorf("exchange with allow_async_commit: %d %v", code, err)
		}
		if log := serverLog(p); !strings.Contains(log, "synchronous_commit") {
			t.Logf("note: the server started on a database without durable commits and logged nothing about it")
		}
	})

	t.Run("switched-while-running", func(t *testing.T) {
		port := freePort(t)
		p := startServer(t, bin, writeConfig(t, dir, port, backend{name: "postgres", yaml: fmt.Sprintf("store: %q\n", pg.url("mandate"))}), port)
		client := newTestClient()
		subject := p.personToken(t)
		if c := timedDo(client, exchangeRequest(p.base, subject)); c.code != http.StatusOK {
			t.Fatalf("exchange before the switch: %v", c)
		}
		// Role settings apply to new sessions: end the server's sessions
		// so that it has to open new ones.
		pg.exec(t, "ALTER ROLE mandate SET synchronous_commit = off",
			"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'mandate'")
		deadline := time.Now().Add(5 * time.Second)
		for {
			c := timedDo(client, exchangeRequest(p.base, subject))
			if c.code == http.StatusServiceUnavailable {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the server still exchanges 5 s after its role switched to synchronous_commit=off: %v", c)
			}
		}
		// Once refused, every exchange is: no connection that would
		// commit asynchronously is ever used.
		for range 10 {
			if c := timedDo(client, exchangeRequest(p.base, subject)); c.code != http.StatusServiceUnavailable ||
				c.retryAfter == "" || c.took > 2*time.Second {
				t.Errorf("exchange with synchronous_commit=off: %v, want 503 with Retry-After within 2 s", c)
			}
		}
		if c := timedDo(client, getRequest(p.base, "/healthz")); c.code != http.StatusServiceUnavailable {
			t.Errorf("/healthz with synchronous_commit=off: %v, want 503", c)
		}
		pg.exec(t, "ALTER ROLE mandate RESET synchronous_commit")
		for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			if c := timedDo(client, exchangeRequest(p.base, subject)); c.code == http.StatusOK {
				break
			} else if time.Now().After(deadline) {
				t.Fatalf("no recovery 15 s after synchronous_commit was reset: %v", c)
			}
		}
	})

	t.Run("fsync-off", func(t *testing.T) {
		// fsync is a server-wide setting: restart the cluster without it.
		pg.stop(t)
		pg.start(t, "fsync=off")
		defer func() { pg.stop(t); pg.start(t) }()
		b := backend{name: "postgres", yaml: fmt.Sprintf("store: %q\nstore_schema: fsync_off\n", pg.url("mandate"))}
		stderr, err := runServeToExit(t, bin, writeConfig(t, dir, freePort(t), b))
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() == 0 {
			t.Errorf("mandate serve on a server with fsync=off: %v, want a non-zero exit", err)
		}
		if !strings.Contains(stderr, "fsync") {
			t.Errorf("the refusal does not name fsync:\n%s", stderr)
		}
	})
}
