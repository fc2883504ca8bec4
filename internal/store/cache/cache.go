package cache

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/mandate-dev/mandate/internal/store"
)

// Store is a store.Store whose users, agents and delegations reads, and the
// not-before epoch, are cached. It is safe for concurrent use.
type Store struct {
	store.Store
	// OnWrite, when set before use, is called after every write made
	// through the cache (the revocation feed uses it to look for new
	// entries at once).
	OnWrite func()

	// syncMu serializes Sync, so that a slow read of an older generation
	// cannot overwrite a newer one.
	syncMu      sync.Mutex
	mu          sync.RWMutex
	epoch       uint64 // grows on every invalidation
	generation  int64
	users       map[string]store.User
	agents      map[string]store.Agent
	delegations map[string]store.Delegation
	lists       map[store.DelegationFilter][]store.Delegation
	// notBefore holds the epoch under the key struct{}{} once read.
	notBefore map[struct{}]time.Time
	// absent holds the store.ErrNotFound answers, so that a lookup that
	// finds nothing (the user of an agent's own token, whose subject is
	// the agent) does not query the store each time. At most maxAbsent
	// entries: a flood of made-up ids empties it instead of growing it.
	absent map[absentKey]error
}

// maxAbsent bounds Store.absent.
const maxAbsent = 4096

// absentKey names a key of one kind that the store did not find.
type absentKey struct {
	kind string
	key  any
}

// New wraps s.
func New(s store.Store) *Store {
	c := &Store{Store: s}
	c.reset()
	return c
}

func (c *Store) reset() {
	c.epoch++
	c.users = make(map[string]store.User)
	c.agents = make(map[string]store.Agent)
	c.delegations = make(map[string]store.Delegation)
	c.lists = make(map[store.DelegationFilter][]store.Delegation)
	c.notBefore = make(map[struct{}]time.Time, 1)
	c.absent = make(map[absentKey]error)
}

// Invalidate drops everything cached.
func (c *Store) Invalidate() {
	c.mu.Lock()
	c.reset()
	c.mu.Unlock()
}

// Run polls the store's generation every interval and drops the cache when
// another process changed the store. It returns when ctx ends.
func (c *Store) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			c.Sync(ctx)
		}
	}
}

// Sync compares the store's generation with the cached one and invalidates
// the cache when they differ. An unreachable store also invalidates it, so
// that reads go to the store and fail closed rather than serve stale grants.
func (c *Store) Sync(ctx context.Context) {
	c.syncMu.Lock()
	defer c.syncMu.Unlock()
	g, err := c.Store.Generation(ctx)
	c.mu.Lock()
	defer c.mu.Unlock()
	// The generation is read before the reset: everything read into the
	// cache afterwards is at least as new as it (see Generation). A store
	// that cannot be read keeps the old, lower generation.
	switch {
	case err != nil:
		c.reset()
	case g != c.generation:
		c.reset()
		c.generation = g
	}
}

// CachedGeneration returns a store generation that everything the cache
// holds or will read is at least as new as: the one read by the last Sync
// (writes through the cache Sync too). Tokens carry it as their gen claim.
func (c *Store) CachedGeneration() int64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.generation
}

// afterWrite drops the cache at once, then learns the new generation and
// tells OnWrite.
func (c *Store) afterWrite(ctx context.Context) {
	c.Invalidate()
	c.Sync(context.WithoutCancel(ctx))
	if c.OnWrite != nil {
		c.OnWrite()
	}
}

// GetUser reads through the cache.
func (c *Store) GetUser(ctx context.Context, id string) (store.User, error) {
	return readThrough(c, "user", func() map[string]store.User { return c.users }, id,
		func() (store.User, error) { return c.Store.GetUser(ctx, id) })
}

// GetAgent reads through the cache.
func (c *Store) GetAgent(ctx context.Context, id string) (store.Agent, error) {
	return readThrough(c, "agent", func() map[string]store.Agent { return c.agents }, id,
		func() (store.Agent, error) { return c.Store.GetAgent(ctx, id) })
}

// GetDelegation reads through the cache.
func (c *Store) GetDelegation(ctx context.Context, id string) (store.Delegation, error) {
	return readThrough(c, "delegation", func() map[string]store.Delegation { return c.delegations }, id,
		func() (store.Delegation, error) { return c.Store.GetDelegation(ctx, id) })
}

// ListDelegations reads through the cache.
func (c *Store) ListDelegations(ctx context.Context, f store.DelegationFilter) ([]store.Delegation, error) {
	return readThrough(c, "delegations", func() map[store.DelegationFilter][]store.Delegation { return c.lists }, f,
		func() ([]store.Delegation, error) { return c.Store.ListDelegations(ctx, f) })
}

// NotBefore reads through the cache, so that the token path does not query
// the store on every request. Advancing the epoch bumps the store's
// generation, so another process's advance is seen at the next Sync (or
// change notification).
func (c *Store) NotBefore(ctx context.Context) (time.Time, error) {
	return readThrough(c, "not-before", func() map[struct{}]time.Time { return c.notBefore }, struct{}{},
		func() (time.Time, error) { return c.Store.NotBefore(ctx) })
}

// readThrough returns the cached value for key, or fetches and caches it;
// a store.ErrNotFound answer is cached too, under kind. A value fetched
// while the cache was invalidated is returned but not kept, so a read
// racing a write never caches what the write replaced.
func readThrough[K comparable, V any](c *Store, kind string, m func() map[K]V, key K, fetch func() (V, error)) (V, error) {
	ak := absentKey{kind: kind, key: key}
	c.mu.RLock()
	v, ok := m()[key]
	absentErr := c.absent[ak]
	epoch := c.epoch
	c.mu.RUnlock()
	switch {
	case ok:
		return v, nil
	case absentErr != nil:
		return v, absentErr
	}
	v, err := fetch()
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return v, err
	}
	c.mu.Lock()
	switch {
	case c.epoch != epoch:
	case err != nil:
		if len(c.absent) >= maxAbsent {
			c.absent = make(map[absentKey]error)
		}
		c.absent[ak] = err
	default:
		m()[key] = v
	}
	c.mu.Unlock()
	return v, err
}

// CreateUser writes through and invalidates.
func (c *Store) CreateUser(ctx context.Context, u store.User, events ...store.Event) error {
	defer c.afterWrite(ctx)
	return c.Store.CreateUser(ctx, u, events...)
}

// UpdateUser writes through and invalidates.
func (c *Store) UpdateUser(ctx context.Context, id string, fn func(store.User) (store.User, error), events ...store.Event) (store.User, error) {
	defer c.afterWrite(ctx)
	return c.Store.UpdateUser(ctx, id, fn, events...)
}

// DeleteUser writes through and invalidates.
func (c *Store) DeleteUser(ctx context.Context, id string, events ...store.Event) error {
	defer c.afterWrite(ctx)
	return c.Store.DeleteUser(ctx, id, events...)
}

// CreateAgent writes through and invalidates.
func (c *Store) CreateAgent(ctx context.Context, a store.Agent, events ...store.Event) error {
	defer c.afterWrite(ctx)
	return c.Store.CreateAgent(ctx, a, events...)
}

// UpdateAgent writes through and invalidates.
func (c *Store) UpdateAgent(ctx context.Context, id string, fn func(store.Agent) (store.Agent, error), events ...store.Event) (store.Agent, error) {
	defer c.afterWrite(ctx)
	return c.Store.UpdateAgent(ctx, id, fn, events...)
}

// DeleteAgent writes through and invalidates.
func (c *Store) DeleteAgent(ctx context.Context, id string, events ...store.Event) error {
	defer c.afterWrite(ctx)
	return c.Store.DeleteAgent(ctx, id, events...)
}

// CreateDelegation writes through and invalidates.
func (c *Store) CreateDelegation(ctx context.Context, d store.Delegation, events ...store.Event) error {
	defer c.afterWrite(ctx)
	return c.Store.CreateDelegation(ctx, d, events...)
}

// UpdateDelegation writes through and invalidates.
func (c *Store) UpdateDelegation(ctx context.Context, id string, fn func(store.Delegation) (store.Delegation, error), events ...store.Event) (store.Delegation, error) {
	defer c.afterWrite(ctx)
	return c.Store.UpdateDelegation(ctx, id, fn, events...)
}

// AdvanceNotBefore writes through and invalidates.
func (c *Store) AdvanceNotBefore(ctx context.Context, t time.Time, events ...store.Event) (time.Time, error) {
	defer c.afterWrite(ctx)
	return c.Store.AdvanceNotBefore(ctx, t, events...)
}

// RevokeToken writes through; tokens are not cached, but OnWrite is told.
func (c *Store) RevokeToken(ctx context.Context, jti string, at time.Time, events ...store.Event) error {
	err := c.Store.RevokeToken(ctx, jti, at, events...)
	if c.OnWrite != nil {
		c.OnWrite()
	}
	return err
}
