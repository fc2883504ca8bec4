package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"
)

// burst runs work with 8 workers over items until ctx ends, collecting the
// results that work acknowledged. firstAck is closed on the first one, so that
// a kill can wait until the burst is really under way.
func burst(ctx context.Context, items []string, firstAck chan<- struct{}, work func(string) (string, bool)) []string {
	var mu sync.Mutex
	var acked []string
	next := make(chan string)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for it := range next {
				if r, ok := work(it); ok {
					mu.Lock()
					acked = append(acked, r)
					if len(acked) == 1 {
						close(firstAck)
					}
					mu.Unlock()
				}
			}
		}()
	}
	go func() {
		defer close(next)
		for _, it := range items {
			select {
			case next <- it:
			case <-ctx.Done():
				return
			}
		}
	}()
	<-ctx.Done()
	wg.Wait()
	return acked
}

// killAfterRandomDelay SIGKILLs p 20–220 ms after the burst's first
// acknowledgement (or after 10 s without one) and then cancels. Waiting for
// the first answer keeps a slow start (a cold PostgreSQL connection pool on
// a busy CI machine) from turning the test into one that kills an idle
// server and proves nothing.
func killAfterRandomDelay(t *testing.T, p *process, firstAck <-chan struct{}, cancel context.CancelFunc) {
	select {
	case <-firstAck:
	case <-time.After(10 * time.Second):
	}
	time.Sleep(time.Duration(20+rand.IntN(200)) * time.Millisecond)
	p.kill(t)
	cancel()
}

// TestSIGKILLDuringRevocations kills a real server in the middle of a burst
// of revocations and checks, after a restart on the same store, that every
// revocation answered 200 is in force and every acknowledged issuance and
// revocation has its audit record (THREATS.md T57, T58).
func TestSIGKILLDuringRevocations(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills real processes")
	}
	bin := buildBinary(t)
	for _, b := range backends(t) {
		for trial := range 3 {
			t.Run(fmt.Sprintf("%s/trial-%d", b.name, trial), func(t *testing.T) {
				dir, port := t.TempDir(), freePort(t)
				cfg := writeConfig(t, dir, port, b)
				p := startServer(t, bin, cfg, port)
				var jtis []string
				for range 300 {
					jtis = append(jtis, jtiOf(t, p.personToken(t)))
				}
				ctx, cancel := context.WithCancel(context.Background())
				firstAck := make(chan struct{})
				go killAfterRandomDelay(t, p, firstAck, cancel)
				acked := burst(ctx, jtis, firstAck, func(jti string) (string, bool) {
					code, _, err := p.admin(http.MethodPost, "/admin/revoke", `{"jti":"`+jti+`"}`)
					return jti, err == nil && code == 200
				})
				t.Logf("%d of %d revocations acknowledged before SIGKILL", len(acked), len(jtis))

				p = startServer(t, bin, cfg, port)
				for _, jti := range acked {
					_, st, err := decode(p.client.Get(p.base + "/revocations/" + jti))
					if err != nil || st["revoked"] != true {
						t.Errorf("acknowledged revocation of %s was lost (%v, %v)", jti, st, err)
					}
				}
				for _, jti := range jtis {
					actions := p.auditActions(t, jti)
					if !actions["token.issue"] {
						t.Errorf("issuance of %s has no audit record", jti)
					}
					if slices.Contains(acked, jti) && !actions["token.revoked"] {
						t.Errorf("acknowledged revocation of %s has no audit record", jti)
					}
				}
			})
		}
	}
}

// TestSIGKILLDuringExchanges kills a real server during a burst of token
// exchanges: after a restart, every token answered with 200 has its record
// (the revocation URL knows it, introspection answers for it) and its audit
// record (THREATS.md T58: no ghost tokens).
func TestSIGKILLDuringExchanges(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills real processes")
	}
	bin := buildBinary(t)
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			dir, port := t.TempDir(), freePort(t)
			cfg := writeConfig(t, dir, port, b)
			p := startServer(t, bin, cfg, port)
			subject := p.personToken(t)
			items := make([]string, 5000)
			ctx, cancel := context.WithCancel(context.Background())
			firstAck := make(chan struct{})
			go killAfterRandomDelay(t, p, firstAck, cancel)
			acked := burst(ctx, items, firstAck, func(string) (string, bool) {
				code, body, err := p.exchange(subject)
				if err != nil || code != 200 {
					return "", false
				}
				return body["access_token"].(string), true
			})
			t.Logf("%d exchanges acknowledged before SIGKILL", len(acked))
			if len(acked) == 0 {
				t.Fatal("no exchange completed before the kill; the test proves nothing")
			}
			p = startServer(t, bin, cfg, port)
			for _, tok := range acked {
				jti := jtiOf(t, tok)
				code, st, err := decode(p.client.Get(p.base + "/revocations/" + jti))
				if err != nil || code != 200 || st["revoked"] != false {
					t.Errorf("token %s answered with 200 has no record after restart: %d %v %v", jti, code, st, err)
				}
				if active, err := p.active(tok); err != nil || !active {
					t.Errorf("token %s is not active after restart (%v)", jti, err)
				}
				if !p.auditActions(t, jti)["token.exchange"] {
					t.Errorf("token %s has no audit record", jti)
				}
			}
		})
	}
}
