package token

import (
	"cmp"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/mandate-dev/mandate/internal/store"
	"github.com/mandate-dev/mandate/oauth"
)

// Signing algorithms a Keyring generates keys for.
const (
	AlgEdDSA = "EdDSA"
	AlgES256 = "ES256"
	AlgRS256 = "RS256"
)

// Keyring defaults and bounds.
const (
	// MinPublishDelay is the least time a key is in the JWKS before it
	// signs, whatever the configuration, with one exception: the first key
	// of an empty store, which no verifier can have missed. It is longer
	// than a verifier's refetch cooldown (30 s in package jwks, so 30 s at
	// most before a verifier may look again for a kid it does not know)
	// plus the few seconds every instance takes to publish a key another
	// stored: a verifier that fetched the set the moment before the key
	// appeared finds it when the first token under it arrives. When no key
	// signs (the active key was revoked), a next key published this long
	// signs at once, before its ActivateAt.
	MinPublishDelay = time.Minute
	// DefaultPublishDelay is how long a rotated-in key is published before
	// it signs.
	DefaultPublishDelay = 5 * time.Minute
	// DefaultRetireAfter keeps a retired key published for the maximum
	// token lifetime (15 min) plus the leeway.
	DefaultRetireAfter = 15*time.Minute + DefaultLeeway
)

// KeyringConfig configures a Keyring. The zero value is usable.
type KeyringConfig struct {
	// Alg is the algorithm of generated keys: "EdDSA" (default), "ES256"
	// or "RS256" (2048-bit).
	Alg string
	// PublishDelay is how long a rotated-in key is in the JWKS before it
	// signs; default DefaultPublishDelay, at least MinPublishDelay.
	PublishDelay time.Duration
	// RetireAfter is how long a key stays in the JWKS after it stops
	// signing: at least the maximum token lifetime plus the leeway; default
	// DefaultRetireAfter.
	RetireAfter time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// KeyStore is where a Keyring keeps its keys: the store's keys and its
// generation, which every key change raises in the same commit. Any
// store.Store is one.
type KeyStore interface {
	store.Keys
	Generation(ctx context.Context) (int64, error)
}

// Keyring holds Mandate's signing keys, backed by a KeyStore. Private keys
// are parsed once and kept in memory; JWKS and PublicKey read an immutable
// snapshot and never touch the store. Sign reads the store's generation
// after each signature, shared by the signatures made meanwhile, so that no
// token leaves it signed with a key revoked before (by any process on the
// store). Refresh, Rotate and RevokeKey write to the store and are
// serialized. A Keyring is safe for concurrent use. Call Refresh
// periodically (every few seconds to a minute) so that due keys activate,
// retired keys leave the JWKS and other instances' changes are seen.
type Keyring struct {
	store KeyStore
	cfg   KeyringConfig
	gens  genReader

	mu     sync.Mutex            // serializes Refresh, Rotate and RevokeKey
	parsed map[string]*loadedKey // by kid; guarded by mu
	state  atomic.Pointer[keyringState]
}

// loadedKey is a parsed key; immutable.
type loadedKey struct {
	kid    string
	alg    string
	public jose.JSONWebKey // public members, kid, alg, use=sig
	signer jose.Signer
	// setSigner signs Security Event Tokens (typ secevent+jwt).
	setSigner jose.Signer
}

// keyringState is an immutable snapshot of what is published and what signs.
type keyringState struct {
	active    *loadedKey
	published map[string]*loadedKey
	jwks      []byte
	// wake is, when no key is active, the earliest time a next key (kid
	// wakeKID) has been published long enough to sign (zero otherwise).
	wake    time.Time
	wakeKID string
	// gen is the store generation read before the keys of this snapshot:
	// while the store is still at gen, no key changed since.
	gen int64
}

// NewKeyring loads the keys in keys and advances their states (see Refresh).
// A store without a usable key gets a freshly generated active key. It fails
// when the store fails, cfg.Alg is not supported, or a stored key cannot be
// parsed or does not match its algorithm.
func NewKeyring(ctx context.Context, keys KeyStore, cfg KeyringConfig) (*Keyring, error) {
	if cfg.Alg == "" {
		cfg.Alg = AlgEdDSA
	}
	if cfg.Alg != AlgEdDSA && cfg.Alg != AlgES256 && cfg.Alg != AlgRS256 {
		return nil, fmt.Errorf("token: unsupported signing algorithm %q", cfg.Alg)
	}
	if cfg.PublishDelay < 0 || cfg.RetireAfter < 0 {
		return nil, errors.New("token: negative key rotation interval")
	}
	if cfg.PublishDelay == 0 {
		cfg.PublishDelay = DefaultPublishDelay
	}
	if cfg.PublishDelay < MinPublishDelay {
		return nil, fmt.Errorf("token: key publish delay %v is below the minimum %v (a verifier's refetch cooldown is 30 s)", cfg.PublishDelay, MinPublishDelay)
	}
	if cfg.RetireAfter == 0 {
		cfg.RetireAfter = DefaultRetireAfter
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	k := &Keyring{store: keys, cfg: cfg, parsed: map[string]*loadedKey{}}
	k.gens.read = keys.Generation
	if err := k.Refresh(ctx); err != nil {
		return nil, err
	}
	return k, nil
}

// Refresh reloads the keys from the store and advances their states: the
// newest "next" key whose ActivateAt has passed becomes active and the
// previous active key is retired with RetireAt = now + RetireAfter; a
// retired key is dropped from the JWKS once RetireAt has passed; revoked
// keys are never published nor used. No key signs before it has been
// published for MinPublishDelay. With no active key left (it was revoked),
// the newest next key published that long is activated at once; when there
// is none, no key signs until one has been (Sign returns ErrNoActiveKey),
// and a new next key is generated if there is no next key at all. Only an
// empty store gets an active key at once. On error the previous snapshot
// stays in use.
func (k *Keyring) Refresh(ctx context.Context) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.refreshLocked(ctx)
}

func (k *Keyring) refreshLocked(ctx context.Context) error {
	gen, recs, err := k.load(ctx)
	if err != nil {
		return err
	}
	now := k.cfg.Now()
	changed, err := k.advance(ctx, recs, now)
	if err != nil {
		return err
	}
	if changed {
		if gen, recs, err = k.load(ctx); err != nil {
			return err
		}
	}
	return k.install(recs, now, gen)
}

// load reads the store's generation, then its keys: the keys are at least
// as new as the generation.
func (k *Keyring) load(ctx context.Context) (int64, []store.Key, error) {
	gen, err := k.store.Generation(ctx)
	if err != nil {
		return 0, nil, fmt.Errorf("token: store generation: %w", err)
	}
	recs, err := k.store.ListKeys(ctx)
	if err != nil {
		return 0, nil, fmt.Errorf("token: list keys: %w", err)
	}
	return gen, recs, nil
}

// advance performs the due state transitions in the store. It reports
// whether it changed anything.
func (k *Keyring) advance(ctx context.Context, recs []store.Key, now time.Time) (bool, error) {
	var actives, nexts, ready, due []store.Key
	for _, r := range recs {
		switch r.State {
		case store.KeyActive:
			actives = append(actives, r)
		case store.KeyNext:
			nexts = append(nexts, r)
			if !now.Before(readyAt(r)) {
				ready = append(ready, r)
				if !r.ActivateAt.After(now) {
					due = append(due, r)
				}
			}
		}
	}
	var signer store.Key
	switch {
	case len(due) > 0:
		signer = newest(due)
	case len(actives) > 0:
		signer = newest(actives)
	case len(ready) > 0:
		// No key signs (the active one was revoked): one that every
		// verifier can know already signs now rather than at ActivateAt.
		signer = newest(ready)
	case len(nexts) > 0:
		// No key may sign yet: signing nothing (503) beats signing with a
		// key that verifiers may refuse for their refetch cooldown.
		return false, nil
	default:
		// An empty store (a first start) gets a key that signs at once:
		// no verifier can hold a set without it. Otherwise the new key
		// waits like any other.
		state := store.KeyNext
		if len(recs) == 0 {
			state = store.KeyActive
		}
		rec, err := k.generate(state, now)
		if err != nil {
			return false, err
		}
		if state == store.KeyNext {
			rec.ActivateAt = readyAt(rec)
		}
		if err := k.store.CreateKey(ctx, rec); err != nil {
			return false, fmt.Errorf("token: store new key: %w", err)
		}
		return true, nil
	}
	changed := false
	if signer.State != store.KeyActive {
		if err := k.setState(ctx, signer.KID, signer.State, store.KeyActive, now); err != nil {
			return false, err
		}
		changed = true
	}
	// Every other active key, and every due next key that lost to a newer
	// one, stops signing and stays published until RetireAt.
	for _, r := range append(actives, due...) {
		if r.KID == signer.KID {
			continue
		}
		if err := k.setState(ctx, r.KID, r.State, store.KeyRetired, now); err != nil {
			return false, err
		}
		changed = true
	}
	return changed, nil
}

// readyAt is when r has been published long enough to sign: MinPublishDelay
// after it was stored (and published by the instance that stored it).
func readyAt(r store.Key) time.Time { return r.CreatedAt.Add(MinPublishDelay) }

// newest orders by ActivateAt, then CreatedAt, then kid, so that every
// instance picks the same key.
func newest(recs []store.Key) store.Key {
	return slices.MaxFunc(recs, func(a, b store.Key) int {
		return cmp.Or(a.ActivateAt.Compare(b.ActivateAt), a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.KID, b.KID))
	})
}

// setState moves kid from state from to state to, unless another instance
// moved it first (then it is left alone).
func (k *Keyring) setState(ctx context.Context, kid, from, to string, now time.Time, events ...store.Event) error {
	_, err := k.store.UpdateKey(ctx, kid, func(r store.Key) (store.Key, error) {
		if r.State != from {
			return r, nil
		}
		r.State = to
		switch to {
		case store.KeyActive:
			if r.ActivateAt.After(now) {
				r.ActivateAt = now
			}
		case store.KeyRetired:
			r.RetireAt = now.Add(k.cfg.RetireAfter)
		}
		return r, nil
	}, events...)
	if err != nil {
		return fmt.Errorf("token: key %s to %s: %w", kid, to, err)
	}
	return nil
}

// install parses what is new and publishes a snapshot of recs.
func (k *Keyring) install(recs []store.Key, now time.Time, gen int64) error {
	st := &keyringState{published: map[string]*loadedKey{}, gen: gen}
	var activeRec store.Key
	keep := map[string]bool{}
	for _, r := range recs {
		switch {
		case r.State == store.KeyRevoked:
			continue
		case r.State == store.KeyRetired && !now.Before(r.RetireAt):
			continue
		case r.State != store.KeyActive && r.State != store.KeyNext && r.State != store.KeyRetired:
			continue
		}
		lk := k.parsed[r.KID]
		if lk == nil || lk.alg != r.Alg {
			var err error
			if lk, err = loadKey(r); err != nil {
				return err
			}
		}
		keep[r.KID] = true
		k.parsed[r.KID] = lk
		st.published[r.KID] = lk
		if r.State == store.KeyActive && (st.active == nil || newest([]store.Key{activeRec, r}).KID == r.KID) {
			st.active, activeRec = lk, r
		}
		if r.State == store.KeyNext && (st.wake.IsZero() || readyAt(r).Before(st.wake)) {
			st.wake, st.wakeKID = readyAt(r), r.KID
		}
	}
	if st.active != nil {
		st.wake, st.wakeKID = time.Time{}, ""
	}
	for kid := range k.parsed {
		if !keep[kid] {
			delete(k.parsed, kid) // drop private keys no longer in use
		}
	}
	set, err := marshalJWKS(st.published)
	if err != nil {
		return err
	}
	st.jwks = set
	k.state.Store(st)
	return nil
}

func marshalJWKS(keys map[string]*loadedKey) ([]byte, error) {
	set := jose.JSONWebKeySet{Keys: make([]jose.JSONWebKey, 0, len(keys))}
	for _, kid := range slices.Sorted(maps.Keys(keys)) {
		set.Keys = append(set.Keys, keys[kid].public)
	}
	b, err := json.Marshal(set)
	if err != nil {
		return nil, fmt.Errorf("token: marshal JWKS: %w", err)
	}
	return b, nil
}

// Rotate starts a rotation: it stores a new "next" key, published at once
// and signing from now + PublishDelay (after a Refresh at or past that
// time). When a next key already exists, Rotate returns it and creates
// nothing (and records nothing). events are committed with the new key; an
// event without a Resource gets the new kid, which the caller cannot know
// beforehand. The returned record has no private key.
func (k *Keyring) Rotate(ctx context.Context, events ...store.Event) (store.Key, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	recs, err := k.store.ListKeys(ctx)
	if err != nil {
		return store.Key{}, fmt.Errorf("token: list keys: %w", err)
	}
	var nexts []store.Key
	for _, r := range recs {
		if r.State == store.KeyNext {
			nexts = append(nexts, r)
		}
	}
	if len(nexts) > 0 {
		r := newest(nexts)
		r.Private = nil
		return r, nil
	}
	now := k.cfg.Now()
	rec, err := k.generate(store.KeyNext, now)
	if err != nil {
		return store.Key{}, err
	}
	rec.ActivateAt = now.Add(k.cfg.PublishDelay)
	events = slices.Clone(events)
	for i := range events {
		if events[i].Resource == "" {
			events[i].Resource = rec.KID
		}
	}
	if err := k.store.CreateKey(ctx, rec, events...); err != nil {
		return store.Key{}, fmt.Errorf("token: store new key: %w", err)
	}
	if err := k.refreshLocked(ctx); err != nil {
		return store.Key{}, err
	}
	rec.Private = nil
	return rec, nil
}

// RevokeKey withdraws a key at once (compromise): it leaves the JWKS and
// never signs again. If it was the active key, the newest next key that has
// been published for MinPublishDelay signs at once; without one, no key
// signs (Sign returns ErrNoActiveKey) until a next key, the pending one or
// one generated now, has been published that long (see Refresh). events are
// committed with the revocation. Unknown kids return an error wrapping
// store.ErrNotFound.
func (k *Keyring) RevokeKey(ctx context.Context, kid string, events ...store.Event) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	now := k.cfg.Now()
	_, err := k.store.UpdateKey(ctx, kid, func(r store.Key) (store.Key, error) {
		if r.State != store.KeyRevoked {
			r.State = store.KeyRevoked
			r.RetireAt = now
		}
		return r, nil
	}, events...)
	if err != nil {
		return fmt.Errorf("token: revoke key %s: %w", kid, err)
	}
	return k.refreshLocked(ctx)
}

// JWKS returns the public JWK Set (RFC 7517 §5): active, next and retired
// keys, public members only, each with kid, alg and use "sig". The slice is
// shared; callers must not modify it.
func (k *Keyring) JWKS() []byte {
	if st := k.state.Load(); st != nil {
		return st.jwks
	}
	return []byte(`{"keys":[]}`)
}

// PublicKey returns the published key with the given kid, with Algorithm
// set to the one it signs with.
func (k *Keyring) PublicKey(kid string) (jose.JSONWebKey, bool) {
	st := k.state.Load()
	if st == nil {
		return jose.JSONWebKey{}, false
	}
	lk, ok := st.published[kid]
	if !ok {
		return jose.JSONWebKey{}, false
	}
	return lk.public, true
}

// ActiveKID returns the kid of the key that signs now, "" if none.
func (k *Keyring) ActiveKID() string {
	if st := k.state.Load(); st != nil && st.active != nil {
		return st.active.kid
	}
	return ""
}

// Waiting reports, when no key signs, the next key that will and from when
// (once it has been published for MinPublishDelay); ok is false when a key
// signs or none is waiting.
func (k *Keyring) Waiting() (kid string, from time.Time, ok bool) {
	st := k.state.Load()
	if st == nil || st.active != nil || st.wakeKID == "" {
		return "", time.Time{}, false
	}
	return st.wakeKID, st.wake, true
}

// Sign signs c with the active key as an RFC 9068 access token: header typ
// "at+jwt", kid and the key's alg. It refuses claims without iss, sub, jti,
// client_id or exp. After signing it reads the store's generation (one read
// shared by concurrent signatures) and returns the token only if the key is
// still the active one (see signConfirmed), or signs again with the key that
// replaced it. It returns an error wrapping ErrNoActiveKey when no key may
// sign or the store cannot confirm the key: never an unsigned token, never a
// revoked key. Each call waits for a store read, until ctx ends and at
// most 5 s.
func (k *Keyring) Sign(ctx context.Context, c *Claims) (string, error) {
	if c == nil || c.Issuer == "" || c.Subject == "" || c.JTI == "" || c.ClientID == "" || c.Expiry == 0 {
		return "", fmt.Errorf("%w: iss, sub, jti, client_id and exp are required", ErrClaims)
	}
	st, err := k.signingState(ctx)
	if err != nil {
		return "", err
	}
	payload, err := json.Marshal(c)
	if err != nil {
		return "", fmt.Errorf("token: marshal claims: %w", err)
	}
	return k.signConfirmed(ctx, st, payload, func(lk *loadedKey) jose.Signer { return lk.signer })
}

// maxSignAttempts bounds how often Sign signs again with the key that
// replaced the one it signed with.
const maxSignAttempts = 3

// signConfirmed signs payload with the active key of st and returns the
// token only once a store read that began after the signature shows that
// key still active: a key whose revocation (or replacement) committed
// before the signature, by any process on the store, is never in a token
// that leaves here. When the key changed it refreshes and signs again with
// the new active key. It fails closed: a store that cannot be read, or no
// key that may sign, is an error and no token.
func (k *Keyring) signConfirmed(ctx context.Context, st *keyringState, payload []byte, signer func(*loadedKey) jose.Signer) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	for range maxSignAttempts {
		obj, err := signer(st.active).Sign(payload)
		if err != nil {
			return "", fmt.Errorf("token: sign: %w", err)
		}
		raw, err := obj.CompactSerialize()
		if err != nil {
			return "", fmt.Errorf("token: sign: %w", err)
		}
		cur, err := k.current(ctx)
		if err != nil {
			return "", fmt.Errorf("%w: cannot confirm the signing key with the store: %w", ErrNoActiveKey, err)
		}
		if cur.active != nil && cur.active.kid == st.active.kid {
			return raw, nil
		}
		if st, err = k.signingState(ctx); err != nil {
			return "", err
		}
	}
	return "", fmt.Errorf("%w: the signing key kept changing", ErrNoActiveKey)
}

// current returns a snapshot at least as new as every key change committed
// before the call: the one held when the store's generation (read after the
// call began, see genReader) has not moved since it was loaded, or a fresh
// one.
func (k *Keyring) current(ctx context.Context) (*keyringState, error) {
	gen, err := k.gens.get(ctx)
	if err != nil {
		return nil, err
	}
	if st := k.state.Load(); st != nil && st.gen == gen {
		return st, nil
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	// Another caller may have loaded the keys at gen meanwhile.
	if st := k.state.Load(); st != nil && st.gen == gen {
		return st, nil
	}
	if err := k.refreshLocked(ctx); err != nil {
		return nil, err
	}
	return k.state.Load(), nil
}

// storeTimeout bounds the store reads Sign makes, whatever its caller's
// context allows.
const storeTimeout = 5 * time.Second

// signingState returns the snapshot to sign with, or ErrNoActiveKey. When
// no key is active and a next key has just been published long enough, it
// refreshes at once rather than leave the next periodic Refresh to end the
// pause.
func (k *Keyring) signingState(ctx context.Context) (*keyringState, error) {
	st := k.state.Load()
	if st != nil && st.active == nil && !st.wake.IsZero() && !k.cfg.Now().Before(st.wake) {
		ctx, cancel := context.WithTimeout(ctx, storeTimeout)
		defer cancel()
		k.mu.Lock()
		var err error
		if st = k.state.Load(); st.active == nil {
			err = k.refreshLocked(ctx)
		}
		k.mu.Unlock()
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrNoActiveKey, err)
		}
		st = k.state.Load()
	}
	if st == nil || st.active == nil {
		return nil, ErrNoActiveKey
	}
	return st, nil
}

// SecurityEventType is the typ header of a Security Event Token (RFC 8417
// §2.3).
const SecurityEventType = "secevent+jwt"

// SignSecurityEvent signs set, the claims of a Security Event Token (RFC
// 8417), with the active key and typ "secevent+jwt", so that no verifier
// can take it for an access token. It refuses claims without iss, jti, iat
// or events, and confirms the key with the store as Sign does.
func (k *Keyring) SignSecurityEvent(ctx context.Context, set map[string]any) (string, error) {
	for _, name := range []string{"iss", "jti", "iat", "events"} {
		if _, ok := set[name]; !ok {
			return "", fmt.Errorf("%w: a security event token needs %s", ErrClaims, name)
		}
	}
	st, err := k.signingState(ctx)
	if err != nil {
		return "", err
	}
	payload, err := json.Marshal(set)
	if err != nil {
		return "", fmt.Errorf("token: marshal security event: %w", err)
	}
	return k.signConfirmed(ctx, st, payload, func(lk *loadedKey) jose.Signer { return lk.setSigner })
}

// generate makes a new key of the configured algorithm. Its kid is the RFC
// 7638 thumbprint of the public key.
func (k *Keyring) generate(state string, now time.Time) (store.Key, error) {
	var priv crypto.Signer
	var err error
	switch k.cfg.Alg {
	case AlgEdDSA:
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	case AlgES256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case AlgRS256:
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	}
	if err != nil {
		return store.Key{}, fmt.Errorf("token: generate key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return store.Key{}, fmt.Errorf("token: encode key: %w", err)
	}
	pub := jose.JSONWebKey{Key: priv.Public()}
	tp, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		return store.Key{}, fmt.Errorf("token: key thumbprint: %w", err)
	}
	rec := store.Key{
		KID: base64.RawURLEncoding.EncodeToString(tp), Alg: k.cfg.Alg, Private: der,
		State: state, ActivateAt: now, CreatedAt: now,
	}
	if _, err := loadKey(rec); err != nil {
		return store.Key{}, err
	}
	return rec, nil
}

// loadKey parses a stored key and checks that it matches its algorithm.
func loadKey(r store.Key) (*loadedKey, error) {
	priv, err := x509.ParsePKCS8PrivateKey(r.Private)
	if err != nil {
		return nil, fmt.Errorf("token: key %s: %w", r.KID, err)
	}
	ok := false
	switch p := priv.(type) {
	case ed25519.PrivateKey:
		ok = r.Alg == AlgEdDSA
	case *ecdsa.PrivateKey:
		ok = r.Alg == AlgES256 && p.Curve == elliptic.P256()
	case *rsa.PrivateKey:
		ok = r.Alg == AlgRS256 && p.N.BitLen() >= 2048
	}
	if !ok || r.KID == "" {
		return nil, fmt.Errorf("token: key %s does not match algorithm %q", r.KID, r.Alg)
	}
	alg := jose.SignatureAlgorithm(r.Alg)
	signer, err := jose.NewSigner(
		jose.SigningKey{Algorithm: alg, Key: jose.JSONWebKey{Key: priv, KeyID: r.KID}},
		(&jose.SignerOptions{}).WithType(oauth.AccessTokenJWTType),
	)
	if err != nil {
		return nil, fmt.Errorf("token: key %s: %w", r.KID, err)
	}
	setSigner, err := jose.NewSigner(
		jose.SigningKey{Algorithm: alg, Key: jose.JSONWebKey{Key: priv, KeyID: r.KID}},
		(&jose.SignerOptions{}).WithType(SecurityEventType),
	)
	if err != nil {
		return nil, fmt.Errorf("token: key %s: %w", r.KID, err)
	}
	pub := jose.JSONWebKey{Key: priv.(crypto.Signer).Public(), KeyID: r.KID, Algorithm: r.Alg, Use: "sig"}
	return &loadedKey{kid: r.KID, alg: r.Alg, public: pub, signer: signer, setSigner: setSigner}, nil
}
