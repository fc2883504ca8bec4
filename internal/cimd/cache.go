package cimd

import (
	"container/list"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// cache keeps lookups' outcomes by URL until they expire, at most max of
// them, the least recently used dropped first. It is safe for concurrent
// use.
type cache struct {
	max int

	mu      sync.Mutex
	order   *list.List // of *entry, most recently used first
	entries map[string]*list.Element
}

type entry struct {
	url     string
	client  Client
	err     error
	expires time.Time
}

func newCache(maxEntries int) *cache {
	return &cache{max: maxEntries, order: list.New(), entries: map[string]*list.Element{}}
}

// get returns the outcome kept for url, and whether one is kept and in
// force at now.
func (c *cache) get(url string, now time.Time) (Client, error, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.entries[url]
	if !ok {
		return Client{}, nil, false
	}
	e := el.Value.(*entry)
	if !now.Before(e.expires) {
		c.order.Remove(el)
		delete(c.entries, url)
		return Client{}, nil, false
	}
	c.order.MoveToFront(el)
	return e.client, e.err, true
}

// put keeps an outcome for url until expires.
func (c *cache) put(url string, client Client, err error, expires time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.entries[url]; ok {
		c.order.Remove(el)
	}
	c.entries[url] = c.order.PushFront(&entry{url: url, client: client, err: err, expires: expires})
	for c.order.Len() > c.max {
		last := c.order.Back()
		c.order.Remove(last)
		delete(c.entries, last.Value.(*entry).url)
	}
}

// len returns the number of entries kept, expired or not.
func (c *cache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}

// ttl says how long a document fetched with header h may be kept (RFC 9111
// §4.2.1): Cache-Control max-age less Age, else Expires less Date;
// no-store and no-cache count as zero. The result is clamped to
// [MinTTL, MaxTTL]; a response with neither header is kept MinTTL.
func (f *Fetcher) ttl(h http.Header) time.Duration {
	d, ok := freshness(h, f.cfg.Now())
	if !ok || d < f.cfg.MinTTL {
		return f.cfg.MinTTL
	}
	return min(d, f.cfg.MaxTTL)
}

// freshness reads the freshness lifetime from h, and whether h gives one.
func freshness(h http.Header, now time.Time) (time.Duration, bool) {
	maxAge, hasMaxAge := int64(0), false
	for _, line := range h.Values("Cache-Control") {
		for _, dir := range strings.Split(line, ",") {
			name, value, _ := strings.Cut(strings.TrimSpace(dir), "=")
			switch strings.ToLower(name) {
			case "no-store", "no-cache":
				return 0, true
			case "max-age":
				n, err := strconv.ParseInt(strings.Trim(value, `"`), 10, 64)
				if err != nil || n < 0 {
					return 0, true // RFC 9111 §4.2.1: an invalid max-age is stale
				}
				maxAge, hasMaxAge = min(n, int64(365*24*3600)), true
			}
		}
	}
	if hasMaxAge {
		age, _ := strconv.ParseInt(h.Get("Age"), 10, 64)
		return time.Duration(max(maxAge-max(age, 0), 0)) * time.Second, true
	}
	if exp := h.Get("Expires"); exp != "" {
		t, err := http.ParseTime(exp)
		if err != nil {
			return 0, true // RFC 9111 §5.3: an invalid Expires is in the past
		}
		base := now
		if d, err := http.ParseTime(h.Get("Date")); err == nil {
			base = d
		}
		return max(t.Sub(base), 0), true
	}
	return 0, false
}
