package agent

import (
	"container/heap"
	"container/list"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"net/url"
	"sort"
	"time"
)

// DefaultCacheSize is how many tokens a Client keeps when Config.CacheSize
// is not set.
const DefaultCacheSize = 1024

// Len reports how many tokens the Client holds or is fetching, after
// dropping those no longer served. It is at most Config.CacheSize.
func (c *Client) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cache.sweep(c.cfg.Now())
	return len(c.cache.entries)
}

// cached answers from the cache or runs one request for all concurrent
// callers with the same form.
func (c *Client) cached(ctx context.Context, form url.Values) (*Token, error) {
	key := c.cacheKey(form)
	c.mu.Lock()
	c.cache.sweep(c.cfg.Now())
	if e := c.cache.get(key); e != nil {
		c.mu.Unlock()
		// A finished entry still in the cache holds a token that is
		// served: failures leave before ready closes, stale tokens at
		// the sweep above.
		return wait(ctx, e)
	}
	e := c.cache.add(key)
	c.mu.Unlock()

	tok, err := c.request(ctx, form)
	c.mu.Lock()
	e.tok, e.err = tok, err
	if err != nil {
		c.cache.remove(e)
	} else {
		c.cache.served(e, tok.ExpiresAt.Add(-c.cfg.RefreshBefore))
	}
	c.mu.Unlock()
	close(e.ready)
	return tok, err
}

// wait returns e's result once it is ready, or ctx's error first; a ready
// result wins over a done ctx.
func wait(ctx context.Context, e *entry) (*Token, error) {
	select {
	case <-e.ready:
		return e.tok, e.err
	default:
	}
	select {
	case <-e.ready:
		return e.tok, e.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// cacheKey is an HMAC of the form under the Client's own random key, so
// that the cache holds no subject token, nor a hash of one that a copy of
// the process's memory could test guesses against.
func (c *Client) cacheKey(form url.Values) key {
	keys := make([]string, 0, len(form))
	for k := range form {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	h := hmac.New(sha256.New, c.cacheSecret[:])
	for _, k := range keys {
		fmt.Fprintf(h, "%d:%s=%d:%s;", len(k), k, len(form.Get(k)), form.Get(k))
	}
	var out key
	h.Sum(out[:0])
	return out
}

// key identifies a token request in the cache.
type key [sha256.Size]byte

// entry is one token request: in flight until ready is closed, then its
// token (or error, and the entry has left the cache).
type entry struct {
	key   key
	ready chan struct{}
	tok   *Token
	err   error
	stale time.Time     // when the token stops being served
	use   *list.Element // in tokenCache.recent
	index int           // in tokenCache.byStale; -1 when not there
}

// tokenCache holds at most max entries: when one more arrives the least
// recently used leaves, and a token leaves once it is no longer served
// (Config.RefreshBefore ahead of its expiry). Client.mu guards it.
type tokenCache struct {
	max     int
	entries map[key]*entry
	recent  list.List // *entry, most recently used first
	byStale staleHeap // entries with a token, the soonest stale first
}

func newTokenCache(size int) *tokenCache {
	return &tokenCache{max: size, entries: make(map[key]*entry)}
}

// get returns the entry for k, if any, as the most recently used.
func (tc *tokenCache) get(k key) *entry {
	e := tc.entries[k]
	if e != nil {
		tc.recent.MoveToFront(e.use)
	}
	return e
}

// add puts an in-flight entry for k, evicting the least recently used
// beyond max. Callers waiting on an evicted entry still get its result.
func (tc *tokenCache) add(k key) *entry {
	e := &entry{key: k, ready: make(chan struct{}), index: -1}
	e.use = tc.recent.PushFront(e)
	tc.entries[k] = e
	for len(tc.entries) > tc.max {
		tc.remove(tc.recent.Back().Value.(*entry))
	}
	return e
}

// served records that e holds a token served until stale, if e is still
// in the cache.
func (tc *tokenCache) served(e *entry, stale time.Time) {
	if tc.entries[e.key] != e {
		return
	}
	e.stale = stale
	heap.Push(&tc.byStale, e)
}

// remove takes e out of the cache, if it is there.
func (tc *tokenCache) remove(e *entry) {
	if tc.entries[e.key] != e {
		return
	}
	delete(tc.entries, e.key)
	tc.recent.Remove(e.use)
	if e.index >= 0 {
		heap.Remove(&tc.byStale, e.index)
	}
}

// sweep removes every token no longer served at now.
func (tc *tokenCache) sweep(now time.Time) {
	for len(tc.byStale) > 0 && !now.Before(tc.byStale[0].stale) {
		tc.remove(tc.byStale[0])
	}
}

// staleHeap orders entries by when their tokens stop being served
// (container/heap).
type staleHeap []*entry

func (h staleHeap) Len() int           { return len(h) }
func (h staleHeap) Less(i, j int) bool { return h[i].stale.Before(h[j].stale) }
func (h staleHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}

func (h *staleHeap) Push(x any) {
	e := x.(*entry)
	e.index = len(*h)
	*h = append(*h, e)
}

func (h *staleHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	e.index = -1
	*h = old[:len(old)-1]
	return e
}
