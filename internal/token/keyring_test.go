package token

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mandate-dev/mandate/internal/store"
	"github.com/mandate-dev/mandate/internal/store/sqlite"
	"github.com/mandate-dev/mandate/jwks"
	"github.com/mandate-dev/mandate/jwt"
)

// publishedKIDs parses the keyring's JWKS the way a verifier would.
func publishedKIDs(t *testing.T, k *Keyring) []string {
	t.Helper()
	set, err := jwks.ParseSet(k.JWKS())
	if err != nil {
		t.Fatalf("JWKS is not a valid public set: %v", err)
	}
	var kids []string
	for kid, key := range set {
		if key.Use != "sig" || key.Algorithm == "" {
			t.Fatalf("key %s: use=%q alg=%q", kid, key.Use, key.Algorithm)
		}
		kids = append(kids, kid)
	}
	slices.Sort(kids)
	return kids
}

func sorted(s ...string) []string { slices.Sort(s); return s }

func testClaims(now time.Time, ttl time.Duration) *Claims {
	return &Claims{
		Issuer: testIssuer, Subject: "user:sam", Audience: "agent:argocd", ClientID: "agent:infrabot",
		JTI: "jti-" + now.String(), IssuedAt: now.Unix(), NotBefore: now.Unix(), Expiry: now.Add(ttl).Unix(),
	}
}

func headerKID(t *testing.T, tok string) string {
	t.Helper()
	j, err := jwt.ParseJWS(tok)
	if err != nil {
		t.Fatal(err)
	}
	return j.Header.KeyID
}

func TestKeyringFirstStart(t *testing.T) {
	for _, alg := range []string{AlgEdDSA, AlgES256, AlgRS256} {
		t.Run(alg, func(t *testing.T) {
			st, clk := openStore(t), newClock()
			k, err := NewKeyring(t.Context(), st, KeyringConfig{Alg: alg, Now: clk.Now})
			if err != nil {
				t.Fatal(err)
			}
			recs, err := st.ListKeys(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) != 1 || recs[0].State != store.KeyActive || recs[0].Alg != alg || recs[0].KID != k.ActiveKID() {
				t.Fatalf("stored keys = %+v", recs)
			}
			if _, err := x509.ParsePKCS8PrivateKey(recs[0].Private); err != nil {
				t.Fatalf("stored key is not PKCS #8: %v", err)
			}
			var raw struct {
				Keys []map[string]any `json:"keys"`
			}
			if err := json.Unmarshal(k.JWKS(), &raw); err != nil {
				t.Fatal(err)
			}
			if len(raw.Keys) != 1 || raw.Keys[0]["alg"] != alg || raw.Keys[0]["use"] != "sig" || raw.Keys[0]["kid"] != k.ActiveKID() {
				t.Fatalf("JWKS = %s", k.JWKS())
			}
			for _, m := range []string{"d", "p", "q", "dp", "dq", "qi"} {
				if _, ok := raw.Keys[0][m]; ok {
					t.Fatalf("JWKS publishes private member %q", m)
				}
			}
			v := &Verifier{Issuer: testIssuer, Keyring: k, Now: clk.Now}
			tok := mustSign(t, k, testClaims(clk.Now(), 10*time.Minute))
			j, _ := jwt.ParseJWS(tok)
			if j.Header.Algorithm != alg || j.Header.Type != "at+jwt" || j.Header.KeyID != k.ActiveKID() {
				t.Fatalf("header = %+v", j.Header)
			}
			if _, err := v.Verify(t.Context(), tok); err != nil {
				t.Fatalf("Verify: %v", err)
			}
			// A restart loads the same key instead of making a new one.
			k2, err := NewKeyring(t.Context(), st, KeyringConfig{Alg: alg, Now: clk.Now})
			if err != nil {
				t.Fatal(err)
			}
			if k2.ActiveKID() != k.ActiveKID() {
				t.Fatalf("restart active kid = %s, want %s", k2.ActiveKID(), k.ActiveKID())
			}
		})
	}
}

func TestKeyringRotationLifecycle(t *testing.T) {
	st, clk := openStore(t), newClock()
	cfg := KeyringConfig{PublishDelay: time.Hour, RetireAfter: 16 * time.Minute, Now: clk.Now}
	k, err := NewKeyring(t.Context(), st, cfg)
	if err != nil {
		t.Fatal(err)
	}
	v := &Verifier{Issuer: testIssuer, Keyring: k, Now: clk.Now, MaxTTL: 15 * time.Minute}
	k1 := k.ActiveKID()

	next, err := k.Rotate(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	k2 := next.KID
	if next.State != store.KeyNext || !next.ActivateAt.Equal(clk.Now().Add(time.Hour)) || next.Private != nil {
		t.Fatalf("Rotate = %+v", next)
	}
	again, err := k.Rotate(t.Context())
	if err != nil || again.KID != k2 {
		t.Fatalf("second Rotate = %v, %v; want the pending key %s", again.KID, err, k2)
	}
	// The next key is published before it signs.
	if diff := cmp.Diff(sorted(k1, k2), publishedKIDs(t, k)); diff != "" {
		t.Fatalf("JWKS after rotate (-want +got):\n%s", diff)
	}
	if kid := headerKID(t, mustSign(t, k, testClaims(clk.Now(), time.Minute))); kid != k1 {
		t.Fatalf("signing kid = %s before activation, want %s", kid, k1)
	}

	clk.Advance(59 * time.Minute)
	if err := k.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	if k.ActiveKID() != k1 {
		t.Fatalf("next key active before ActivateAt")
	}
	old := mustSign(t, k, testClaims(clk.Now(), 10*time.Minute)) // signed by k1

	clk.Advance(2 * time.Minute)
	if err := k.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	if k.ActiveKID() != k2 {
		t.Fatalf("active = %s after ActivateAt, want %s", k.ActiveKID(), k2)
	}
	if kid := headerKID(t, mustSign(t, k, testClaims(clk.Now(), time.Minute))); kid != k2 {
		t.Fatalf("signing kid = %s, want %s", kid, k2)
	}
	// The retired key stays published, and its tokens verify.
	if diff := cmp.Diff(sorted(k1, k2), publishedKIDs(t, k)); diff != "" {
		t.Fatalf("JWKS after activation (-want +got):\n%s", diff)
	}
	if _, err := v.Verify(t.Context(), old); err != nil {
		t.Fatalf("token of the retired key: %v", err)
	}
	recs, _ := st.ListKeys(t.Context())
	for _, r := range recs {
		if r.KID == k1 && (r.State != store.KeyRetired || !r.RetireAt.Equal(clk.Now().Add(16*time.Minute))) {
			t.Fatalf("retired key record = %+v", r)
		}
	}

	clk.Advance(16*time.Minute + time.Second)
	if err := k.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{k2}, publishedKIDs(t, k)); diff != "" {
		t.Fatalf("JWKS after RetireAt (-want +got):\n%s", diff)
	}
	if _, ok := k.PublicKey(k1); ok {
		t.Fatal("PublicKey still returns the retired key after RetireAt")
	}
	if _, err := v.Verify(t.Context(), old); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("token of a dropped key: error = %v, want ErrUnknownKey", err)
	}
}

func TestKeyringRevokeKey(t *testing.T) {
	st, clk := openStore(t), newClock()
	k, err := NewKeyring(t.Context(), st, KeyringConfig{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	v := &Verifier{Issuer: testIssuer, Keyring: k, Now: clk.Now}
	k1 := k.ActiveKID()
	tok := mustSign(t, k, testClaims(clk.Now(), 10*time.Minute))
	next, err := k.Rotate(t.Context())
	if err != nil {
		t.Fatal(err)
	}

	// Revoking the active key: it leaves the JWKS at once; the pending
	// key, published a moment ago, signs once it has been published for
	// MinPublishDelay, and nothing signs meanwhile.
	if err := k.RevokeKey(t.Context(), k1); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{next.KID}, publishedKIDs(t, k)); diff != "" {
		t.Fatalf("JWKS after revoke (-want +got):\n%s", diff)
	}
	if _, err := k.Sign(context.Background(), testClaims(clk.Now(), time.Minute)); !errors.Is(err, ErrNoActiveKey) || k.ActiveKID() != "" {
		t.Fatalf("Sign right after revoking the active key: %v (active %q), want ErrNoActiveKey", err, k.ActiveKID())
	}
	if _, err := v.Verify(t.Context(), tok); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("token of a revoked key: error = %v, want ErrUnknownKey", err)
	}
	clk.Advance(MinPublishDelay)
	if kid := headerKID(t, mustSign(t, k, testClaims(clk.Now(), time.Minute))); kid != next.KID || k.ActiveKID() != next.KID {
		t.Fatalf("signing kid = %s, active %s; want the next key %s", kid, k.ActiveKID(), next.KID)
	}

	// Revoking the only key: a fresh one is generated and published, and
	// signs after MinPublishDelay.
	if err := k.RevokeKey(t.Context(), next.KID); err != nil {
		t.Fatal(err)
	}
	published := publishedKIDs(t, k)
	if len(published) != 1 || published[0] == k1 || published[0] == next.KID || k.ActiveKID() != "" {
		t.Fatalf("after revoking every key: published %v, active %q; want one new key, not signing yet", published, k.ActiveKID())
	}
	k3 := published[0]
	clk.Advance(MinPublishDelay)
	if kid := headerKID(t, mustSign(t, k, testClaims(clk.Now(), time.Minute))); kid != k3 {
		t.Fatalf("signing kid = %s, want the generated key %s", kid, k3)
	}

	// Revoking a pending key: it is gone, the active key stays.
	pending, err := k.Rotate(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if err := k.RevokeKey(t.Context(), pending.KID); err != nil {
		t.Fatal(err)
	}
	if k.ActiveKID() != k3 || slices.Contains(publishedKIDs(t, k), pending.KID) {
		t.Fatalf("after revoking the next key: active=%s published=%v", k.ActiveKID(), publishedKIDs(t, k))
	}
	// A revoked key is never brought back by a later refresh or restart.
	clk.Advance(48 * time.Hour)
	k2, err := NewKeyring(t.Context(), st, KeyringConfig{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	for _, kid := range []string{k1, next.KID, pending.KID} {
		if _, ok := k2.PublicKey(kid); ok {
			t.Fatalf("revoked key %s published after restart", kid)
		}
	}
	if err := k.RevokeKey(t.Context(), "no-such-kid"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("RevokeKey(unknown) = %v, want store.ErrNotFound", err)
	}
}

func TestKeyringSeesOtherInstance(t *testing.T) {
	st, clk := openStore(t), newClock()
	cfg := KeyringConfig{PublishDelay: time.Minute, Now: clk.Now}
	a, err := NewKeyring(t.Context(), st, cfg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewKeyring(t.Context(), st, cfg)
	if err != nil {
		t.Fatal(err)
	}
	next, err := a.Rotate(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, ok := b.PublicKey(next.KID); !ok {
		t.Fatal("instance b does not publish a's next key")
	}
	clk.Advance(time.Minute)
	for _, k := range []*Keyring{a, b} {
		if err := k.Refresh(t.Context()); err != nil {
			t.Fatal(err)
		}
		if k.ActiveKID() != next.KID {
			t.Fatalf("active = %s, want %s", k.ActiveKID(), next.KID)
		}
	}
}

func TestKeyringRefusesBadStoredKey(t *testing.T) {
	st, clk := openStore(t), newClock()
	k, err := NewKeyring(t.Context(), st, KeyringConfig{Alg: AlgEdDSA, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.UpdateKey(t.Context(), k.ActiveKID(), func(r store.Key) (store.Key, error) {
		r.Alg = AlgES256 // an Ed25519 key claiming ES256
		return r, nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := NewKeyring(t.Context(), st, KeyringConfig{Now: clk.Now}); err == nil {
		t.Fatal("NewKeyring accepted a key that does not match its algorithm")
	}
	if _, err := NewKeyring(t.Context(), st, KeyringConfig{Alg: "HS256"}); err == nil {
		t.Fatal("NewKeyring accepted HS256")
	}
}

func TestKeyringSignRefusals(t *testing.T) {
	var empty Keyring
	if _, err := empty.Sign(context.Background(), testClaims(time.Now(), time.Minute)); !errors.Is(err, ErrNoActiveKey) {
		t.Fatalf("Sign without keys = %v, want ErrNoActiveKey", err)
	}
	if string(empty.JWKS()) != `{"keys":[]}` {
		t.Fatalf("empty JWKS = %s", empty.JWKS())
	}
	f := newFixture(t)
	c := testClaims(f.clk.Now(), time.Minute)
	c.JTI = ""
	if _, err := f.keyring.Sign(context.Background(), c); !errors.Is(err, ErrClaims) {
		t.Fatalf("Sign without jti = %v, want ErrClaims", err)
	}
}

// TestSignEndsWithItsContext: Sign waits for the store only as long as its
// caller may (a request's deadline), not its own 5 s.
func TestSignEndsWithItsContext(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	tok, err := f.keyring.Sign(ctx, testClaims(f.clk.Now(), time.Minute))
	if !errors.Is(err, context.Canceled) || !errors.Is(err, ErrNoActiveKey) || tok != "" {
		t.Fatalf("Sign with an ended context = %q, %v; want no token and context.Canceled", tok, err)
	}
	set := map[string]any{"iss": "x", "jti": "y", "iat": 1, "events": map[string]any{}}
	if tok, err := f.keyring.SignSecurityEvent(ctx, set); !errors.Is(err, context.Canceled) || tok != "" {
		t.Fatalf("SignSecurityEvent with an ended context = %q, %v; want no token and context.Canceled", tok, err)
	}
}

func TestKeyringConcurrentUse(t *testing.T) {
	f := newFixture(t)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 50 {
				tok, err := f.keyring.Sign(context.Background(), testClaims(f.clk.Now(), time.Minute))
				if err != nil {
					t.Error(err)
					return
				}
				// The clock jumps hours ahead meanwhile: expiry and dropped
				// keys are expected, anything else is not.
				_, err = f.verifier.Verify(t.Context(), tok)
				if err != nil && !errors.Is(err, ErrExpired) && !errors.Is(err, ErrUnknownKey) {
					t.Error(err)
					return
				}
				_ = f.keyring.JWKS()
			}
		})
	}
	for range 3 {
		if _, err := f.keyring.Rotate(t.Context()); err != nil {
			t.Fatal(err)
		}
		f.clk.Advance(2 * time.Hour)
		if err := f.keyring.Refresh(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
}

// TestNewKeyPublishedBeforeSigning (THREATS T103): no key signs before it
// has been in the JWKS for longer than a verifier's refetch cooldown, so a
// verifier that fetched the set the moment before the key was published,
// and may not fetch again for 30 s, finds the key of every token signed.
// When no key may sign (the active key was revoked and no other has been
// published long enough), Sign refuses with ErrNoActiveKey until one has:
// never the revoked key, never a key verifiers may not know yet.
func TestNewKeyPublishedBeforeSigning(t *testing.T) {
	const publishDelay = 5 * time.Minute
	rotate := func(t *testing.T, k *Keyring) {
		if _, err := k.Rotate(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	revokeActive := func(t *testing.T, k *Keyring) {
		if err := k.RevokeKey(t.Context(), k.ActiveKID()); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name string
		// rotatedAgo, when set, rotates that long before the verifier
		// fetches the set.
		rotatedAgo time.Duration
		// change is made right after the verifier fetched the set.
		change []func(*testing.T, *Keyring)
		// pause is how long no key signs after the change.
		pause time.Duration
	}{
		{name: "ok/rotation", change: []func(*testing.T, *Keyring){rotate}},
		{name: "ok/revoke-active-no-next-key", change: []func(*testing.T, *Keyring){revokeActive}, pause: MinPublishDelay},
		{name: "ok/revoke-active-next-key-just-published", change: []func(*testing.T, *Keyring){rotate, revokeActive}, pause: MinPublishDelay},
		{name: "ok/revoke-active-next-key-published-20s-ago", rotatedAgo: 20 * time.Second, change: []func(*testing.T, *Keyring){revokeActive}, pause: MinPublishDelay - 20*time.Second},
		{name: "ok/revoke-active-next-key-published-long-enough", rotatedAgo: MinPublishDelay, change: []func(*testing.T, *Keyring){revokeActive}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, clk := openStore(t), newClock()
			k, err := NewKeyring(t.Context(), st, KeyringConfig{PublishDelay: publishDelay, Now: clk.Now})
			if err != nil {
				t.Fatal(err)
			}
			// firstSeen is when each key was first in the JWKS.
			firstSeen := map[string]time.Time{}
			seen := func() {
				for _, kid := range publishedKIDs(t, k) {
					if _, ok := firstSeen[kid]; !ok {
						firstSeen[kid] = clk.Now()
					}
				}
			}
			seen()
			if tc.rotatedAgo > 0 {
				rotate(t, k)
				seen()
				clk.Advance(tc.rotatedAgo)
			}
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				_, _ = w.Write(k.JWKS())
			}))
			t.Cleanup(srv.Close)
			cache, err := jwks.New(jwks.Config{URI: srv.URL, Client: srv.Client(), Now: clk.Now})
			if err != nil {
				t.Fatal(err)
			}
			// The verifier fetches the set; it may not fetch again for the
			// cooldown. Then the change.
			before := k.ActiveKID()
			if _, err := cache.Key(t.Context(), before); err != nil {
				t.Fatal(err)
			}
			for _, fn := range tc.change {
				fn(t, k)
				seen()
			}

			paused, signedNew := time.Duration(0), time.Duration(-1)
			for step := time.Duration(0); step <= publishDelay+time.Minute; step += time.Second {
				if step > 0 {
					clk.Advance(time.Second)
				}
				if step%(7*time.Second) == 0 { // a slow refresh loop: Sign does not wait for it
					if err := k.Refresh(t.Context()); err != nil {
						t.Fatal(err)
					}
				}
				seen()
				tok, err := k.Sign(context.Background(), testClaims(clk.Now(), time.Minute))
				if errors.Is(err, ErrNoActiveKey) {
					if step != paused {
						t.Fatalf("at +%v: no key signs, after a key signed at +%v", step, paused)
					}
					paused = step + time.Second
					continue
				}
				if err != nil {
					t.Fatalf("at +%v: Sign: %v", step, err)
				}
				kid := headerKID(t, tok)
				if kid == before {
					continue
				}
				if signedNew < 0 {
					signedNew = step
				}
				if since := clk.Now().Sub(firstSeen[kid]); since <= jwks.DefaultCooldown {
					t.Fatalf("at +%v: key %s signs %v after it was published, within a verifier's refetch cooldown of %v", step, kid, since, jwks.DefaultCooldown)
				}
				if _, err := cache.Key(t.Context(), kid); err != nil {
					t.Fatalf("at +%v: the verifier that fetched the set before the change cannot find the signing key: %v", step, err)
				}
			}
			if paused != tc.pause {
				t.Errorf("no key signed for %v after the change, want %v", paused, tc.pause)
			}
			if signedNew < 0 {
				t.Error("no new key ever signed")
			}
		})
	}
}

// genFaults is a KeyStore whose Generation fails on demand.
type genFaults struct {
	*sqlite.Store
	fail atomic.Bool
}

func (g *genFaults) Generation(ctx context.Context) (int64, error) {
	if g.fail.Load() {
		return 0, errors.New("database unreachable")
	}
	return g.Store.Generation(ctx)
}

// TestKeyringSignsNothingUnderAKeyRevokedElsewhere (THREATS T103): a key
// revoked by another process on the store (`mandate keys revoke`, another
// instance) is in no token Sign or SignSecurityEvent returns once the
// revocation has committed, although this keyring has not refreshed: a
// ready next key signs instead, or nothing does. Signatures made
// concurrently with the revocation are in the same case once it returned.
// A store that cannot say refuses the signature.
func TestKeyringSignsNothingUnderAKeyRevokedElsewhere(t *testing.T) {
	st, clk := &genFaults{Store: openStore(t)}, newClock()
	server, err := NewKeyring(t.Context(), st, KeyringConfig{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	cli, err := NewKeyring(t.Context(), st, KeyringConfig{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	old := server.ActiveKID()
	next, err := cli.Rotate(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(MinPublishDelay)

	var wg sync.WaitGroup
	var mu sync.Mutex
	type signed struct {
		began time.Time
		kid   string
	}
	var got []signed
	stop := make(chan struct{})
	for range 8 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				began := time.Now()
				tok, err := server.Sign(context.Background(), testClaims(clk.Now(), time.Minute))
				if err != nil {
					t.Errorf("Sign: %v", err)
					return
				}
				mu.Lock()
				got = append(got, signed{began, headerKID(t, tok)})
				mu.Unlock()
			}
		})
	}
	time.Sleep(20 * time.Millisecond)
	if err := cli.RevokeKey(t.Context(), old); err != nil {
		t.Fatal(err)
	}
	returned := time.Now()
	time.Sleep(20 * time.Millisecond)
	close(stop)
	wg.Wait()
	var before, after int
	for _, s := range got {
		switch {
		case s.began.After(returned) && s.kid == old:
			t.Fatalf("a signature begun %v after the revocation returned is under the revoked key", s.began.Sub(returned))
		case s.began.After(returned):
			after++
		case s.kid == old:
			before++
		}
	}
	if before == 0 || after == 0 {
		t.Fatalf("signatures: %d under the old key before, %d after the revocation; want some of each", before, after)
	}
	if server.ActiveKID() != next.KID || slices.Contains(publishedKIDs(t, server), old) {
		t.Errorf("after signing: active %s, published %v; want %s active, %s gone", server.ActiveKID(), publishedKIDs(t, server), next.KID, old)
	}

	// The next key revoked too, and no key ready: nothing signs.
	if err := cli.RevokeKey(t.Context(), next.KID); err != nil {
		t.Fatal(err)
	}
	if tok, err := server.Sign(context.Background(), testClaims(clk.Now(), time.Minute)); !errors.Is(err, ErrNoActiveKey) {
		t.Fatalf("Sign with every ready key revoked elsewhere = %q, %v; want ErrNoActiveKey", tok, err)
	}
	set := map[string]any{"iss": testIssuer, "jti": "set-1", "iat": clk.Now().Unix(), "events": map[string]any{}}
	if tok, err := server.SignSecurityEvent(context.Background(), set); !errors.Is(err, ErrNoActiveKey) {
		t.Fatalf("SignSecurityEvent with every ready key revoked elsewhere = %q, %v; want ErrNoActiveKey", tok, err)
	}

	// Once a key may sign again, a store that cannot be read refuses.
	clk.Advance(MinPublishDelay)
	if _, err := server.Sign(context.Background(), testClaims(clk.Now(), time.Minute)); err != nil {
		t.Fatalf("Sign once the generated key is ready: %v", err)
	}
	st.fail.Store(true)
	if tok, err := server.Sign(context.Background(), testClaims(clk.Now(), time.Minute)); !errors.Is(err, ErrNoActiveKey) || tok != "" {
		t.Fatalf("Sign with the store unreachable = %q, %v; want ErrNoActiveKey", tok, err)
	}
	if tok, err := server.SignSecurityEvent(context.Background(), set); !errors.Is(err, ErrNoActiveKey) || tok != "" {
		t.Fatalf("SignSecurityEvent with the store unreachable = %q, %v; want ErrNoActiveKey", tok, err)
	}
	st.fail.Store(false)
	if _, err := server.SignSecurityEvent(context.Background(), set); err != nil {
		t.Fatalf("SignSecurityEvent with the store back: %v", err)
	}
}
