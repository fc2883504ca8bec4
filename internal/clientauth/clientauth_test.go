package clientauth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/mandate-dev/mandate/internal/store"
	"github.com/mandate-dev/mandate/internal/store/sqlite"
	"github.com/mandate-dev/mandate/internal/token"
	"github.com/mandate-dev/mandate/jwks"
	"github.com/mandate-dev/mandate/oauth"
)

const (
	issuer        = "https://mandate.example"
	tokenEndpoint = issuer + "/token"
)

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

type signFunc func([]byte) []byte

// compact assembles a JWS from raw header and payload; tests forge with it.
func compact(header, payload []byte, sign signFunc) string {
	in := b64(header) + "." + b64(payload)
	return in + "." + b64(sign([]byte(in)))
}

func es256(priv *ecdsa.PrivateKey) signFunc {
	return func(in []byte) []byte {
		d := sha256.Sum256(in)
		r, s, err := ecdsa.Sign(rand.Reader, priv, d[:])
		if err != nil {
			panic(err)
		}
		out := make([]byte, 64)
		r.FillBytes(out[:32])
		s.FillBytes(out[32:])
		return out
	}
}

func eddsa(priv ed25519.PrivateKey) signFunc {
	return func(in []byte) []byte { return ed25519.Sign(priv, in) }
}

func hs256(key []byte) signFunc {
	return func(in []byte) []byte {
		m := hmac.New(sha256.New, key)
		m.Write(in)
		return m.Sum(nil)
	}
}

type delMarker struct{}

var del delMarker

func with(m map[string]any, kv ...any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if _, ok := kv[i+1].(delMarker); ok {
			delete(out, kv[i].(string))
		} else {
			out[kv[i].(string)] = kv[i+1]
		}
	}
	return out
}

var jtiSeq atomic.Int64

// fixture holds a real SQLite store with agents:
//
//	agent:secret   client secret "s3cret+/:%"
//	agent:jwt      inline JWKS, ES256 key "jwt-1"
//	agent:ed       inline JWKS, EdDSA key "ed-1", and a secret
//	agent:uri      jwks_uri, keys from KeySourceFor
//	agent:off      secret "off-secret", disabled
type fixture struct {
	store  *sqlite.Store
	auth   *Authenticator
	now    time.Time
	ecPriv *ecdsa.PrivateKey
	edPriv ed25519.PrivateKey
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "mandate.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	// The store judges nonce expiry by its own clock, so stay near it.
	f := &fixture{store: st, now: time.Now().Truncate(time.Second)}
	f.ecPriv, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, f.edPriv, _ = ed25519.GenerateKey(rand.Reader)
	ecSet := mustJSON(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &f.ecPriv.PublicKey, KeyID: "jwt-1", Algorithm: "ES256", Use: "sig"}}})
	edSet := mustJSON(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: f.edPriv.Public(), KeyID: "ed-1"}}})
	agents := []store.Agent{
		{ID: "agent:secret", SecretHash: HashSecret("s3cret+/:%")},
		{ID: "agent:jwt", JWKS: ecSet},
		{ID: "agent:ed", JWKS: edSet, SecretHash: HashSecret("ed-secret")},
		{ID: "agent:uri", JWKSURI: "https://agent.example/jwks"},
		{ID: "agent:off", SecretHash: HashSecret("off-secret"), JWKS: ecSet, Disabled: true},
	}
	for _, a := range agents {
		if err := st.CreateAgent(t.Context(), a); err != nil {
			t.Fatal(err)
		}
	}
	uriKeys := jwks.Static{"uri-1": {Key: &f.ecPriv.PublicKey, KeyID: "uri-1", Algorithm: "ES256"}}
	f.auth = &Authenticator{
		Agents: st, Nonces: st, Issuer: issuer, TokenEndpoint: tokenEndpoint,
		Now:          func() time.Time { return f.now },
		KeySourceFor: func(store.Agent) (token.KeySource, error) { return uriKeys, nil },
	}
	return f
}

func (f *fixture) claims(client string) map[string]any {
	now := f.now.Unix()
	return map[string]any{
		"iss": client, "sub": client, "aud": issuer,
		"jti": "jti-" + string(rune('a'+jtiSeq.Add(1)%26)) + time.Now().String(),
		"iat": now, "exp": now + 60,
	}
}

func ecHeader(kid string) map[string]any { return map[string]any{"alg": "ES256", "kid": kid} }

// request builds a token request with a form body and optional Basic
// credentials (already form-urlencoded, as RFC 6749 §2.3.1 wants).
func request(form url.Values, basicUser, basicPass string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, tokenEndpoint, strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basicUser != "" {
		r.SetBasicAuth(basicUser, basicPass)
	}
	if err := r.ParseForm(); err != nil {
		panic(err)
	}
	return r
}

func assertionForm(assertion string, extra ...string) url.Values {
	v := url.Values{
		"client_assertion_type": {oauth.ClientAssertionTypeJWTBearer},
		"client_assertion":      {assertion},
	}
	for i := 0; i+1 < len(extra); i += 2 {
		v.Add(extra[i], extra[i+1])
	}
	return v
}

func TestAuthenticate(t *testing.T) {
	f := newFixture(t)
	ecPubDER, _ := x509.MarshalPKIXPublicKey(&f.ecPriv.PublicKey)
	ecPubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: ecPubDER})
	ecJWK := mustJSON(jose.JSONWebKey{Key: &f.ecPriv.PublicKey, KeyID: "jwt-1", Algorithm: "ES256"})
	otherEC, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	now := f.now.Unix()
	jwt := func(h, c map[string]any) string { return compact(mustJSON(h), mustJSON(c), es256(f.ecPriv)) }
	canary := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { t.Error("canary contacted") }))
	defer canary.Close()

	tests := []struct {
		name       string
		req        *http.Request
		wantAgent  string
		wantCode   oauth.ErrorCode
		wantReason string
	}{
		{name: "ok/secret-basic", req: request(url.Values{"grant_type": {"client_credentials"}}, url.QueryEscape("agent:secret"), url.QueryEscape("s3cret+/:%")), wantAgent: "agent:secret"},
		{name: "ok/secret-basic-with-same-form-client-id", req: request(url.Values{"client_id": {"agent:secret"}}, url.QueryEscape("agent:secret"), url.QueryEscape("s3cret+/:%")), wantAgent: "agent:secret"},
		{name: "ok/secret-post", req: request(url.Values{"client_id": {"agent:secret"}, "client_secret": {"s3cret+/:%"}}, "", ""), wantAgent: "agent:secret"},
		{name: "ok/private-key-jwt", req: request(assertionForm(jwt(ecHeader("jwt-1"), f.claims("agent:jwt")), "client_id", "agent:jwt"), "", ""), wantAgent: "agent:jwt"},
		{name: "ok/private-key-jwt-without-client-id", req: request(assertionForm(jwt(ecHeader("jwt-1"), f.claims("agent:jwt"))), "", ""), wantAgent: "agent:jwt"},
		{name: "ok/private-key-jwt-eddsa", req: request(assertionForm(compact(mustJSON(map[string]any{"alg": "EdDSA", "kid": "ed-1"}), mustJSON(f.claims("agent:ed")), eddsa(f.edPriv))), "", ""), wantAgent: "agent:ed"},
		{name: "ok/private-key-jwt-jwks-uri", req: request(assertionForm(jwt(ecHeader("uri-1"), f.claims("agent:uri"))), "", ""), wantAgent: "agent:uri"},
		{name: "ok/private-key-jwt-aud-token-endpoint-array", req: request(assertionForm(jwt(ecHeader("jwt-1"), with(f.claims("agent:jwt"), "aud", []string{"x", tokenEndpoint}))), "", ""), wantAgent: "agent:jwt"},
		{name: "ok/private-key-jwt-iat-8s-future", req: request(assertionForm(jwt(ecHeader("jwt-1"), with(f.claims("agent:jwt"), "iat", now+8, "nbf", now+8))), "", ""), wantAgent: "agent:jwt"},

		{name: "fail/wrong-secret", req: request(url.Values{"client_id": {"agent:secret"}, "client_secret": {"nope"}}, "", ""), wantCode: oauth.ErrInvalidClient, wantReason: ReasonSecretMismatch},
		{name: "fail/wrong-secret-basic", req: request(nil, url.QueryEscape("agent:secret"), "nope"), wantCode: oauth.ErrInvalidClient, wantReason: ReasonSecretMismatch},
		{name: "fail/basic-not-urldecoded-secret", req: request(nil, url.QueryEscape("agent:secret"), "s3cret+/:%"), wantCode: oauth.ErrInvalidClient, wantReason: ReasonMalformed},
		{name: "fail/unknown-client", req: request(url.Values{"client_id": {"agent:nobody"}, "client_secret": {"x"}}, "", ""), wantCode: oauth.ErrInvalidClient, wantReason: ReasonUnknown},
		{name: "fail/disabled", req: request(url.Values{"client_id": {"agent:off"}, "client_secret": {"off-secret"}}, "", ""), wantCode: oauth.ErrInvalidClient, wantReason: ReasonDisabled},
		{name: "fail/disabled-wrong-secret-does-not-reveal-state", req: request(url.Values{"client_id": {"agent:off"}, "client_secret": {"x"}}, "", ""), wantCode: oauth.ErrInvalidClient, wantReason: ReasonSecretMismatch},
		{name: "fail/disabled-private-key-jwt", req: request(assertionForm(jwt(ecHeader("jwt-1"), f.claims("agent:off"))), "", ""), wantCode: oauth.ErrInvalidClient, wantReason: ReasonDisabled},
		{name: "fail/secret-for-jwt-only-client", req: request(url.Values{"client_id": {"agent:jwt"}, "client_secret": {"x"}}, "", ""), wantCode: oauth.ErrInvalidClient, wantReason: ReasonMethodMismatch},
		{name: "fail/jwt-for-secret-only-client", req: request(assertionForm(jwt(ecHeader("jwt-1"), f.claims("agent:secret"))), "", ""), wantCode: oauth.ErrInvalidClient, wantReason: ReasonMethodMismatch},
		{name: "fail/two-methods", req: request(url.Values{"client_id": {"agent:secret"}, "client_secret": {"s3cret+/:%"}}, url.QueryEscape("agent:secret"), "s3cret"), wantCode: oauth.ErrInvalidRequest},
		{name: "fail/two-methods-post-and-assertion", req: request(assertionForm(jwt(ecHeader("jwt-1"), f.claims("agent:jwt")), "client_id", "agent:jwt", "client_secret", "x"), "", ""), wantCode: oauth.ErrInvalidRequest},
		{name: "fail/two-methods-basic-and-assertion", req: request(assertionForm(jwt(ecHeader("jwt-1"), f.claims("agent:jwt"))), url.QueryEscape("agent:secret"), "s3cret"), wantCode: oauth.ErrInvalidRequest},
		{name: "fail/basic-client-id-mismatch", req: request(url.Values{"client_id": {"agent:jwt"}}, url.QueryEscape("agent:secret"), "s3cret"), wantCode: oauth.ErrInvalidRequest},
		{name: "fail/repeated-client-id", req: request(url.Values{"client_id": {"agent:secret", "agent:secret"}, "client_secret": {"s3cret+/:%"}}, "", ""), wantCode: oauth.ErrInvalidRequest},
		{name: "fail/repeated-assertion", req: request(assertionForm("a.b.c", "client_assertion", "a.b.c"), "", ""), wantCode: oauth.ErrInvalidRequest},
		{name: "fail/no-credentials", req: request(url.Values{"grant_type": {"client_credentials"}}, "", ""), wantCode: oauth.ErrInvalidClient, wantReason: ReasonNoCredentials},
		{name: "fail/client-id-only", req: request(url.Values{"client_id": {"agent:secret"}}, "", ""), wantCode: oauth.ErrInvalidClient, wantReason: ReasonNoCredentials},
		{name: "fail/bearer-authorization-header", req: func() *http.Request {
			r := request(nil, "", "")
			r.Header.Set("Authorization", "Bearer abc")
			return r
		}(), wantCode: oauth.ErrInvalidClient, wantReason: ReasonMalformed},
		{name: "fail/assertion-type-wrong", req: request(url.Values{"client_assertion_type": {"urn:other"}, "client_assertion": {jwt(ecHeader("jwt-1"), f.claims("agent:jwt"))}}, "", ""), wantCode: oauth.ErrInvalidClient, wantReason: ReasonAssertionType},
		{name: "fail/assertion-type-missing", req: request(url.Values{"client_assertion": {jwt(ecHeader("jwt-1"), f.claims("agent:jwt"))}}, "", ""), wantCode: oauth.ErrInvalidRequest},

		{name: "fail/assertion-alg-none", req: request(assertionForm(b64(mustJSON(map[string]any{"alg": "none", "kid": "jwt-1"}))+"."+b64(mustJSON(f.claims("agent:jwt")))+"."), "", ""), wantCode: oauth.ErrInvalidClient, wantReason: ReasonAssertionInvalid},
		{name: "fail/assertion-alg-none-with-signature", req: request(assertionForm(compact(mustJSON(map[string]any{"alg": "none", "kid": "jwt-1"}), mustJSON(f.claims("agent:jwt")), es256(f.ecPriv))), "", ""), wantCode: oauth.ErrInvalidClient, wantReason: ReasonAssertionInvalid},
		{name: "fail/assertion-hs256-with-public-key", req: request(assertionForm(compact(mustJSON(map[string]any{"alg": "HS256", "kid": "jwt-1"}), mustJSON(f.claims("agent:jwt")), hs256(ecPubPEM))), "", ""), wantCode: oauth.ErrInvalidClient, wantReason: ReasonAssertionInvalid},
		{name: "fail/assertion-hs256-with-public-jwk", req: request(assertionForm(compact(mustJSON(map[string]any{"alg": "HS256", "kid": "jwt-1"}), mustJSON(f.claims("agent:jwt")), hs256(ecJWK))), "", ""), wantCode: oauth.ErrInvalidClient, wantReason: ReasonAssertionInvalid},
		{name: "fail/assertion-rs256-header-on-es256-key", req: request(assertionForm(jwt(with(ecHeader("jwt-1"), "alg", "RS256"), f.claims("agent:jwt"))), "", ""), wantCode: oauth.ErrInvalidClient, wantReason: ReasonAssertionInvalid},
		{name: "fail/assertion-jku-header", req: request(assertionForm(jwt(with(ecHeader("jwt-1"), "jku", canary.URL), f.claims("agent:jwt"))), "", ""), wantCode: oauth.ErrInvalidClient, wantReason: ReasonAssertionInvalid},
		{name: "fail/assertion-bad-signature", req: request(assertionForm(compact(mustJSON(ecHeader("jwt-1")), mustJSON(f.claims("agent:jwt")), es256(otherEC))), "", ""), wantCode: oauth.ErrInvalidClient, wantReason: ReasonAssertionSignature},
		{name: "fail/assertion-unknown-kid", req: request(assertionForm(jwt(ecHeader("nope"), f.claims("agent:jwt"))), "", ""), wantCode: oauth.ErrInvalidClient, wantReason: ReasonAssertionKeyUnknown},
		{name: "fail/assertion-other-agents-key", req: request(assertionForm(compact(mustJSON(map[string]any{"alg": "EdDSA", "kid": "ed-1"}), mustJSON(f.claims("agent:jwt")), eddsa(f.edPriv))), "", ""), wantCode: oauth.ErrInvalidClient, wantReason: ReasonAssertionKeyUnknown},
		{name: "fail/assertion-long-lifetime", req: request(assertionForm(jwt(ecHeader("jwt-1"), with(f.claims("agent:jwt"), "exp", now+3600))), "", ""), wantCode: oauth.ErrInvalidClient, wantReason: ReasonAssertionLifetime},
		{name: "fail/assertion-long-lifetime-without-iat", req: request(assertionForm(jwt(ecHeader("jwt-1"), with(f.claims("agent:jwt"), "exp", now+600, "iat", del))), "", ""), wantCode: oauth.ErrInvalidClient, wantReason: ReasonAssertionLifetime},
		{name: "fail/assertion-exp-missing", req: request(assertionForm(jwt(ecHeader("jwt-1"), with(f.claims("agent:jwt"), "exp", del))), "", ""), wantCode: oauth.ErrInvalidClient, wantReason: ReasonAssertionInvalid},
		{name: "fail/assertion-expired", req: request(assertionForm(jwt(ecHeader("jwt-1"), with(f.claims("agent:jwt"), "exp", now-300, "iat", now-360))), "", ""), wantCode: oauth.ErrInvalidClient, wantReason: ReasonAssertionExpired},
		{name: "fail/assertion-nbf-61s-future", req: request(assertionForm(jwt(ecHeader("jwt-1"), with(f.claims("agent:jwt"), "nbf", now+61))), "", ""), wantCode: oauth.ErrInvalidClient, wantReason: ReasonAssertionNotYet},
		{name: "fail/assertion-wrong-aud", req: request(assertionForm(jwt(ecHeader("jwt-1"), with(f.claims("agent:jwt"), "aud", issuer+"/par"))), "", ""), wantCode: oauth.ErrInvalidClient, wantReason: ReasonAssertionAudience},
		{name: "fail/assertion-aud-array-without-us", req: request(assertionForm(jwt(ecHeader("jwt-1"), with(f.claims("agent:jwt"), "aud", []string{"a", "b"}))), "", ""), wantCode: oauth.ErrInvalidClient, wantReason: ReasonAssertionAudience},
		{name: "fail/assertion-aud-missing", req: request(assertionForm(jwt(ecHeader("jwt-1"), with(f.claims("agent:jwt"), "aud", del))), "", ""), wantCode: oauth.ErrInvalidClient, wantReason: ReasonAssertionAudience},
		{name: "fail/assertion-iss-not-client", req: request(assertionForm(jwt(ecHeader("jwt-1"), with(f.claims("agent:jwt"), "iss", "agent:other"))), "", ""), wantCode: oauth.ErrInvalidClient, wantReason: ReasonAssertionSubject},
		{name: "fail/assertion-sub-not-client-id", req: request(assertionForm(jwt(ecHeader("jwt-1"), f.claims("agent:jwt")), "client_id", "agent:off"), "", ""), wantCode: oauth.ErrInvalidClient, wantReason: ReasonAssertionSubject},
		{name: "fail/assertion-jti-missing", req: request(assertionForm(jwt(ecHeader("jwt-1"), with(f.claims("agent:jwt"), "jti", del))), "", ""), wantCode: oauth.ErrInvalidClient, wantReason: ReasonAssertionNoJTI},
		{name: "fail/assertion-duplicate-sub", req: request(assertionForm(compact(mustJSON(ecHeader("jwt-1")), []byte(strings.Replace(string(mustJSON(f.claims("agent:jwt"))), `"sub":"agent:jwt"`, `"sub":"agent:jwt","sub":"agent:x"`, 1)), es256(f.ecPriv)), "client_id", "agent:jwt"), "", ""), wantCode: oauth.ErrInvalidClient, wantReason: ReasonAssertionInvalid},
		{name: "fail/assertion-access-token-typ", req: request(assertionForm(jwt(with(ecHeader("jwt-1"), "typ", "at+jwt"), f.claims("agent:jwt"))), "", ""), wantCode: oauth.ErrInvalidClient, wantReason: ReasonAssertionInvalid},
		{name: "fail/assertion-two-segments", req: request(assertionForm("eyJhbGciOiJFUzI1NiJ9.e30"), "", ""), wantCode: oauth.ErrInvalidClient, wantReason: ReasonAssertionInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			agent, err := func() (store.Agent, error) {
				c, err := Extract(tc.req, tc.req.PostForm)
				if err != nil {
					return store.Agent{}, err
				}
				return f.auth.Authenticate(t.Context(), c)
			}()
			if tc.wantCode == "" {
				if err != nil {
					t.Fatalf("error = %v", err)
				}
				if agent.ID != tc.wantAgent {
					t.Fatalf("agent = %q, want %q", agent.ID, tc.wantAgent)
				}
				return
			}
			var oe *oauth.Error
			if !errors.As(err, &oe) {
				t.Fatalf("error = %v, want an *oauth.Error", err)
			}
			if oe.Code != tc.wantCode || (tc.wantReason != "" && oe.Reason != tc.wantReason) {
				t.Fatalf("error = %v, want %s (%s)", err, tc.wantCode, tc.wantReason)
			}
			if oe.Code == oauth.ErrInvalidClient && (oe.HTTPStatus() != http.StatusUnauthorized || oe.Description != "client authentication failed") {
				t.Fatalf("invalid_client answer: status %d, description %q", oe.HTTPStatus(), oe.Description)
			}
			if agent.ID != "" {
				t.Fatalf("an agent came back with an error: %+v", agent)
			}
		})
	}
}

func TestAssertionReplay(t *testing.T) {
	f := newFixture(t)
	a := compact(mustJSON(ecHeader("jwt-1")), mustJSON(f.claims("agent:jwt")), es256(f.ecPriv))
	c := Credentials{Assertion: a, AssertionType: oauth.ClientAssertionTypeJWTBearer, Method: oauth.AuthMethodPrivateKeyJWT}
	if _, err := f.auth.Authenticate(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	_, err := f.auth.Authenticate(t.Context(), c)
	if oe := oauth.As(err); oe.Code != oauth.ErrInvalidClient || oe.Reason != ReasonAssertionReplayed {
		t.Fatalf("replay: error = %v, want invalid_client (%s)", err, ReasonAssertionReplayed)
	}
}

func TestAssertionReplayConcurrent(t *testing.T) {
	f := newFixture(t)
	a := compact(mustJSON(ecHeader("jwt-1")), mustJSON(f.claims("agent:jwt")), es256(f.ecPriv))
	c := Credentials{Assertion: a, AssertionType: oauth.ClientAssertionTypeJWTBearer, Method: oauth.AuthMethodPrivateKeyJWT}
	var ok, replayed atomic.Int64
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			_, err := f.auth.Authenticate(context.Background(), c)
			switch {
			case err == nil:
				ok.Add(1)
			case oauth.As(err).Reason == ReasonAssertionReplayed:
				replayed.Add(1)
			default:
				t.Errorf("unexpected error: %v", err)
			}
		})
	}
	wg.Wait()
	if ok.Load() != 1 || replayed.Load() != 49 {
		t.Fatalf("accepted %d, replayed %d; want exactly 1 and 49", ok.Load(), replayed.Load())
	}
}

// faulty fails every call with store.ErrUnavailable.
type faulty struct{}

func (faulty) GetAgent(context.Context, string) (store.Agent, error) {
	return store.Agent{}, store.ErrUnavailable
}

func (faulty) UseNonce(context.Context, string, string, time.Time) error {
	return store.ErrUnavailable
}

func TestStoreUnavailableFailsClosed(t *testing.T) {
	f := newFixture(t)
	secret := Credentials{ClientID: "agent:secret", Secret: "s3cret+/:%", Method: oauth.AuthMethodSecretPost}
	assertion := Credentials{
		Assertion:     compact(mustJSON(ecHeader("jwt-1")), mustJSON(f.claims("agent:jwt")), es256(f.ecPriv)),
		AssertionType: oauth.ClientAssertionTypeJWTBearer, Method: oauth.AuthMethodPrivateKeyJWT,
	}
	clone := func() *Authenticator {
		return &Authenticator{Agents: f.auth.Agents, Nonces: f.auth.Nonces, Issuer: issuer, Now: f.auth.Now, KeySourceFor: f.auth.KeySourceFor}
	}
	agentsDown := clone()
	agentsDown.Agents = faulty{}
	noncesDown := clone()
	noncesDown.Nonces = faulty{}
	keysDown := clone()
	keysDown.KeySourceFor = func(store.Agent) (token.KeySource, error) {
		c, err := jwks.New(jwks.Config{URI: "http://127.0.0.1:1/jwks", Timeout: 100 * time.Millisecond})
		return c, err
	}
	uri := Credentials{
		Assertion:     compact(mustJSON(ecHeader("uri-1")), mustJSON(f.claims("agent:uri")), es256(f.ecPriv)),
		AssertionType: oauth.ClientAssertionTypeJWTBearer, Method: oauth.AuthMethodPrivateKeyJWT,
	}
	tests := []struct {
		name string
		auth *Authenticator
		c    Credentials
	}{
		{name: "fail/agents-down-secret", auth: agentsDown, c: secret},
		{name: "fail/agents-down-assertion", auth: agentsDown, c: assertion},
		{name: "fail/nonces-down", auth: noncesDown, c: assertion},
		{name: "fail/client-jwks-uri-down", auth: keysDown, c: uri},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.auth.Authenticate(t.Context(), tc.c)
			if oe := oauth.As(err); oe.Code != oauth.ErrTemporarilyUnavailable || oe.HTTPStatus() != http.StatusServiceUnavailable {
				t.Fatalf("error = %v, want temporarily_unavailable (503)", err)
			}
		})
	}
}

func TestHashSecret(t *testing.T) {
	want := sha256.Sum256([]byte("x"))
	if got := HashSecret("x"); string(got) != string(want[:]) {
		t.Fatalf("HashSecret = %x", got)
	}
}

// TestAssertionReplayKeyUnambiguous is THREATS T89: the replay key of an
// assertion encodes its client and jti so that no two pairs share one.
// Client "a|b" with jti "c" and client "a" with jti "b|c" are two
// assertions; spending either burns only itself.
func TestAssertionReplayKeyUnambiguous(t *testing.T) {
	type use struct{ client, jti string }
	tests := []struct {
		name  string
		first use
		then  use
	}{
		{name: "ok/pipe-in-client-then-pipe-in-jti", first: use{"a|b", "c"}, then: use{"a", "b|c"}},
		{name: "ok/pipe-in-jti-then-pipe-in-client", first: use{"a", "b|c"}, then: use{"a|b", "c"}},
		{name: "ok/backslash-in-client", first: use{`a\`, "|c"}, then: use{`a\|`, "c"}},
		{name: "ok/escaped-pipe-in-client", first: use{`a\|b`, "c"}, then: use{"a", `\|b|c`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			set := mustJSON(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &f.ecPriv.PublicKey, KeyID: "jwt-1", Algorithm: "ES256", Use: "sig"}}})
			for _, id := range []string{tc.first.client, tc.then.client} {
				if err := f.store.CreateAgent(t.Context(), store.Agent{ID: id, JWKS: set}); err != nil && !errors.Is(err, store.ErrAlreadyExists) {
					t.Fatal(err)
				}
			}
			authenticate := func(u use) error {
				a := compact(mustJSON(ecHeader("jwt-1")), mustJSON(with(f.claims(u.client), "jti", u.jti)), es256(f.ecPriv))
				_, err := f.auth.Authenticate(t.Context(), Credentials{ClientID: u.client, Assertion: a,
					AssertionType: oauth.ClientAssertionTypeJWTBearer, Method: oauth.AuthMethodPrivateKeyJWT})
				return err
			}
			if err := authenticate(tc.first); err != nil {
				t.Fatalf("first assertion %+v: %v", tc.first, err)
			}
			if err := authenticate(tc.then); err != nil {
				t.Fatalf("assertion %+v after %+v: %v, want it accepted (a key of its own)", tc.then, tc.first, err)
			}
			for _, u := range []use{tc.first, tc.then} {
				if err := authenticate(u); oauth.As(err).Reason != ReasonAssertionReplayed {
					t.Errorf("replay of %+v: %v, want %s", u, err, ReasonAssertionReplayed)
				}
			}
		})
	}
}

// TestReplayKeyKeepsPlainForm: a client id without "|" or "\" keeps the
// key form of earlier versions, so that nonces stored before an upgrade
// still refuse a replay after it.
func TestReplayKeyKeepsPlainForm(t *testing.T) {
	if got := replayKey("agent:jwt", "jti-1|x"); got != "agent:jwt|jti-1|x" {
		t.Errorf("replayKey = %q, want the earlier form", got)
	}
}

// TestRegisteredClient (THREATS T86): a refusal names the registered
// client it is about, so that the server can record it under that client
// however many made-up ids fail around it; a refusal of an id the store
// does not hold, or of credentials that name no client, names none.
func TestRegisteredClient(t *testing.T) {
	f := newFixture(t)
	otherEC, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	jwt := func(sign signFunc, c map[string]any) string {
		return compact(mustJSON(ecHeader("jwt-1")), mustJSON(c), sign)
	}
	assertion := func(a string) Credentials {
		return Credentials{Assertion: a, AssertionType: oauth.ClientAssertionTypeJWTBearer, Method: oauth.AuthMethodPrivateKeyJWT}
	}
	tests := []struct {
		name string
		c    Credentials
		want string // "" when no registered client is named
	}{
		{name: "fail/wrong-secret", c: Credentials{ClientID: "agent:secret", Secret: "nope", Method: oauth.AuthMethodSecretPost}, want: "agent:secret"},
		{name: "fail/disabled", c: Credentials{ClientID: "agent:off", Secret: "off-secret", Method: oauth.AuthMethodSecretBasic}, want: "agent:off"},
		{name: "fail/secret-for-jwt-only-client", c: Credentials{ClientID: "agent:jwt", Secret: "x", Method: oauth.AuthMethodSecretPost}, want: "agent:jwt"},
		{name: "fail/forged-assertion-without-client-id", c: assertion(jwt(es256(otherEC), f.claims("agent:jwt"))), want: "agent:jwt"},
		{name: "fail/expired-assertion", c: assertion(jwt(es256(f.ecPriv), with(f.claims("agent:jwt"), "exp", f.now.Unix()-300, "iat", f.now.Unix()-360))), want: "agent:jwt"},
		{name: "fail/unknown-client", c: Credentials{ClientID: "agent:nobody", Secret: "x", Method: oauth.AuthMethodSecretPost}},
		{name: "fail/unknown-assertion-subject", c: assertion(jwt(es256(f.ecPriv), f.claims("agent:nobody")))},
		{name: "fail/unparsable-assertion", c: assertion("not.a.jws")},
		{name: "fail/no-client-id", c: Credentials{Secret: "x", Method: oauth.AuthMethodSecretPost}},
		{name: "fail/no-method", c: Credentials{ClientID: "agent:secret"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.auth.Authenticate(t.Context(), tc.c)
			if oauth.As(err).Code != oauth.ErrInvalidClient {
				t.Fatalf("error = %v, want invalid_client", err)
			}
			id, ok := RegisteredClient(err)
			if id != tc.want || ok != (tc.want != "") {
				t.Errorf("RegisteredClient = %q, %v; want %q", id, ok, tc.want)
			}
		})
	}
	if _, ok := RegisteredClient(oauth.Unavailable("client_store_unavailable", errors.New("down"))); ok {
		t.Error("a store failure names a registered client")
	}
}
