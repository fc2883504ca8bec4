package main

import (
	"fmt"
	"net/http"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// issued is one answer of a server to a request that signs a token.
type issued struct {
	sent     time.Time // when the request was sent
	instance int
	what     string // "sign-in" or "exchange"
	code     int
	kid      string // of the token answered, "" when none
}

// TestNoSignatureAfterKeyRevoke (THREATS T103): from the moment `mandate
// keys revoke` returns, no server on the store signs with the revoked key.
// Agents sign in and exchange tokens concurrently on every instance while
// another process revokes the signing key; no token answered to a request
// sent after the command returned carries the revoked kid, and what cannot
// be signed is refused with 503 (never signed with the revoked key). On
// SQLite one server; on PostgreSQL two instances on one database.
func TestNoSignatureAfterKeyRevoke(t *testing.T) {
	onEveryBackend(t, func(t *testing.T, bin string, b backend) {
		n := 1
		if b.name == "postgres" {
			n = 2
		}
		dir := t.TempDir()
		var procs []*process
		var cfg string
		for range n {
			port := freePort(t)
			c := writeConfig(t, dir, port, b)
			if cfg == "" {
				cfg = c
			}
			procs = append(procs, startServer(t, bin, c, port))
		}
		revoked := kidOf(t, procs[0].personToken(t))
		for i, p := range procs[1:] {
			if kid := kidOf(t, p.personToken(t)); kid != revoked {
				t.Fatalf("instance %d signs with %s, instance 0 with %s", i+1, kid, revoked)
			}
		}

		var (
			mu   sync.Mutex
			seen []issued
			stop = make(chan struct{})
			wg   sync.WaitGroup
		)
		record := func(r issued) {
			mu.Lock()
			seen = append(seen, r)
			mu.Unlock()
		}
		for i, p := range procs {
			for range 3 {
				wg.Go(func() {
					for {
						select {
						case <-stop:
							return
						default:
						}
						sent := time.Now()
						code, body, err := p.admin(http.MethodPost, "/admin/users/user:sam/token", "")
						if err != nil {
							continue
						}
						r := issued{sent: sent, instance: i, what: "sign-in", code: code}
						sam, _ := body["access_token"].(string)
						if sam != "" {
							r.kid = kidOf(t, sam)
						}
						record(r)
						if sam == "" {
							time.Sleep(5 * time.Millisecond)
							continue
						}
						sent = time.Now()
						code, body, err = p.exchange(sam)
						if err != nil {
							continue
						}
						r = issued{sent: sent, instance: i, what: "exchange", code: code}
						if tok, _ := body["access_token"].(string); tok != "" {
							r.kid = kidOf(t, tok)
						}
						record(r)
					}
				})
			}
		}

		time.Sleep(300 * time.Millisecond)
		started := time.Now()
		out, err := exec.Command(bin, "keys", "revoke", "--config", cfg, "--", revoked).CombinedOutput()
		returned := time.Now()
		if err != nil {
			close(stop)
			wg.Wait()
			t.Fatalf("mandate keys revoke: %v\n%s", err, out)
		}
		// Longer than the servers' periodic key refresh (5 s), so that a
		// server that waits for it to notice is caught.
		time.Sleep(6 * time.Second)
		close(stop)
		wg.Wait()
		t.Logf("keys revoke took %v: %s", returned.Sub(started).Round(time.Millisecond), strings.TrimSpace(string(out)))

		var before, after int
		codes := map[string]int{}
		var signedAfter []issued
		for _, r := range seen {
			switch {
			case r.sent.Before(started):
				if r.kid == revoked {
					before++
				}
			case r.sent.After(returned):
				after++
				codes[fmt.Sprintf("instance %d %s %d", r.instance, r.what, r.code)]++
				if r.kid == revoked {
					signedAfter = append(signedAfter, r)
				}
				if r.what == "sign-in" && r.code != http.StatusOK && r.code != http.StatusServiceUnavailable {
					t.Errorf("instance %d answered a sign-in after the revocation with %d, want 200 or 503", r.instance, r.code)
				}
			}
		}
		if len(signedAfter) > 0 {
			sort.Slice(signedAfter, func(i, j int) bool { return signedAfter[i].sent.Before(signedAfter[j].sent) })
			last := signedAfter[len(signedAfter)-1]
			t.Errorf("%d tokens signed with the revoked key for requests sent after keys revoke returned, the last by instance %d for a %s sent %v after",
				len(signedAfter), last.instance, last.what, last.sent.Sub(returned).Round(time.Millisecond))
		}
		var summary []string
		for k, v := range codes {
			summary = append(summary, fmt.Sprintf("%s: %d", k, v))
		}
		sort.Strings(summary)
		t.Logf("%d tokens under the key before the revocation; %d answers to requests sent after it: %s", before, after, strings.Join(summary, ", "))
		if before == 0 || after < 20 {
			t.Fatalf("too little traffic to show anything: %d tokens before, %d answers after", before, after)
		}
	})
}
