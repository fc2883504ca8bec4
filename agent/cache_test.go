package agent_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/mandate-dev/mandate/agent"
)

// TestCacheBounded (THREATS.md T104, the client part): 100,000 distinct
// subject tokens through one Client leave it holding at most its bound, the
// least recently used leaving first, and tokens leave once they are no
// longer served.
func TestCacheBounded(t *testing.T) {
	ctx := context.Background()
	tokenURL, requests := countingTokenEndpoint(t)
	now := time.Now()
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	const workers = 4
	c, err := agent.New(agent.Config{TokenURL: tokenURL, ClientID: "agent:infrabot", ClientSecret: "s", Now: clock,
		HTTPClient: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: workers}}})
	if err != nil {
		t.Fatal(err)
	}
	exchange := func(i int) (*agent.Token, error) {
		return c.Exchange(ctx, agent.Request{SubjectToken: "subject-" + strconv.Itoa(i), Audience: "https://deploy.example"})
	}

	distinct := 100_000
	if testing.Short() {
		distinct = 5_000
	}
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < distinct; i += workers {
				if _, err := exchange(i); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got := requests.Load(); got != int64(distinct) {
		t.Fatalf("%d token requests for %d distinct subject tokens", got, distinct)
	}
	if got := c.Len(); got != agent.DefaultCacheSize {
		t.Fatalf("Len() = %d after %d distinct subject tokens, want the bound %d", got, distinct, agent.DefaultCacheSize)
	}

	// The most recently used is still served; the first ones left.
	if _, err := exchange(distinct); err != nil || requests.Load() != int64(distinct)+1 {
		t.Fatalf("%d requests, want %d (err %v)", requests.Load(), distinct+1, err)
	}
	if _, err := exchange(distinct); err != nil || requests.Load() != int64(distinct)+1 {
		t.Fatalf("the most recent token was not served from the cache (%d requests, err %v)", requests.Load(), err)
	}
	if _, err := exchange(0); err != nil || requests.Load() != int64(distinct)+2 {
		t.Fatalf("the least recently used token was still cached (%d requests, err %v)", requests.Load(), err)
	}
	if got := c.Len(); got != agent.DefaultCacheSize {
		t.Fatalf("Len() = %d, want the bound %d", got, agent.DefaultCacheSize)
	}

	// Tokens leave once no longer served, without being asked for again.
	mu.Lock()
	now = now.Add(10*time.Minute - agent.DefaultRefreshBefore)
	mu.Unlock()
	if got := c.Len(); got != 0 {
		t.Fatalf("Len() = %d after every token went stale, want 0", got)
	}
	if _, err := exchange(1); err != nil || c.Len() != 1 {
		t.Fatalf("Len() = %d after one more exchange (err %v), want 1", c.Len(), err)
	}
}

// TestCacheSize: Config.CacheSize sets the bound, the least recently used
// leaves first, and entries whose tokens expire at different times leave
// one by one.
func TestCacheSize(t *testing.T) {
	ctx := context.Background()
	var mu sync.Mutex
	now := time.Now()
	issued := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		issued++
		n := issued
		mu.Unlock()
		// The n-th token lives 100+n seconds.
		fmt.Fprintf(w, `{"access_token":"token-%d","token_type":"Bearer","expires_in":%d}`, n, 100+n)
	}))
	defer srv.Close()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	c, err := agent.New(agent.Config{TokenURL: srv.URL, ClientID: "agent:infrabot", ClientSecret: "s", Now: clock, CacheSize: 5, RefreshBefore: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	exchange := func(subject string) string {
		t.Helper()
		tok, err := c.Exchange(ctx, agent.Request{SubjectToken: subject})
		if err != nil {
			t.Fatal(err)
		}
		return tok.AccessToken
	}
	for _, s := range []string{"a", "b", "c", "d", "e"} {
		exchange(s)
	}
	exchange("a") // a is now the most recently used, b the least
	exchange("f")
	if got := c.Len(); got != 5 {
		t.Fatalf("Len() = %d, want CacheSize 5", got)
	}
	if got := exchange("a"); got != "token-1" {
		t.Errorf("a was exchanged again (%s): a recently used token left", got)
	}
	if got := exchange("b"); got != "token-7" {
		t.Errorf("b got %s, want a new token-7: the least recently used stayed", got)
	}
	// Kept now: a, d, e, f, b (tokens 1, 4, 5, 6, 7), each served until
	// RefreshBefore (1 s) ahead of its expiry at 101, 104..107 s.
	start := now
	for _, step := range []struct {
		at   int // seconds
		want int
	}{{99, 5}, {100, 4}, {102, 4}, {103, 3}, {104, 2}, {105, 1}, {106, 0}} {
		mu.Lock()
		now = start.Add(time.Duration(step.at) * time.Second)
		mu.Unlock()
		if got := c.Len(); got != step.want {
			t.Fatalf("Len() = %d at %d s, want %d", got, step.at, step.want)
		}
	}
}
