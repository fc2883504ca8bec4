package ratelimit

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Limiter admits Rate requests a second per key, in bursts of up to Burst.
// It tracks at most MaxKeys keys; while that many are active, new keys
// share one bucket, so that a flood of made-up keys throttles itself and
// not the callers already known. It is safe for concurrent use.
type Limiter struct {
	rate    rate.Limit
	burst   int
	maxKeys int
	now     func() time.Time

	mu       sync.Mutex
	keys     map[string]*bucket
	overflow *rate.Limiter
	swept    time.Time
}

type bucket struct {
	lim  *rate.Limiter
	last time.Time
}

// New returns a Limiter of perSecond requests a second per key, in bursts
// of burst, for at most maxKeys keys (at least 1), reading the time from now
// (time.Now when nil).
func New(perSecond float64, burst, maxKeys int, now func() time.Time) *Limiter {
	if now == nil {
		now = time.Now
	}
	return &Limiter{
		rate: rate.Limit(perSecond), burst: burst, maxKeys: max(maxKeys, 1), now: now,
		keys:     make(map[string]*bucket),
		overflow: rate.NewLimiter(rate.Limit(perSecond), burst),
	}
}

// Allow reports whether a request under key may be served now. When it may
// not, nothing is taken from the bucket.
func (l *Limiter) Allow(key string) bool {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.keys[key]
	if !ok {
		if len(l.keys) >= l.maxKeys {
			l.sweep(now)
		}
		if len(l.keys) >= l.maxKeys {
			return l.overflow.AllowN(now, 1)
		}
		b = &bucket{lim: rate.NewLimiter(l.rate, l.burst)}
		l.keys[key] = b
	}
	b.last = now
	return b.lim.AllowN(now, 1)
}

// sweep forgets the keys whose bucket has filled up again since their last
// request, so they are as good as new; at most once a second, since it
// walks every key.
func (l *Limiter) sweep(now time.Time) {
	if now.Sub(l.swept) < time.Second {
		return
	}
	l.swept = now
	full := time.Duration(float64(l.burst) / float64(l.rate) * float64(time.Second))
	for k, b := range l.keys {
		if now.Sub(b.last) >= full {
			delete(l.keys, k)
		}
	}
}

// Keys is how many keys the Limiter tracks.
func (l *Limiter) Keys() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.keys)
}
