package cimd

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"
)

const testID = "https://client.example/oauth/client.json"

func publicJWKS(t testing.TB) json.RawMessage {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &priv.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParse(t *testing.T) {
	keys := publicJWKS(t)
	tests := []struct {
		name string
		body []byte
		// check looks at the client of an accepted document.
		check func(t *testing.T, c Client)
		ok    bool
	}{
		{name: "ok/minimal", body: []byte(`{"client_id":"` + testID + `","redirect_uris":["https://client.example/cb"]}`), ok: true,
			check: func(t *testing.T, c Client) {
				if c.AuthMethod != AuthNone || c.Name != "" {
					t.Errorf("client = %+v, want auth none and no name", c)
				}
			}},
		{name: "ok/loopback-redirect", body: doc(t, testID, map[string]any{"redirect_uris": []string{"http://127.0.0.1/cb", "http://[::1]:8080/cb"}}), ok: true},
		{name: "ok/private-key-jwt-inline", body: doc(t, testID, map[string]any{"token_endpoint_auth_method": "private_key_jwt", "jwks": keys}), ok: true,
			check: func(t *testing.T, c Client) {
				if _, ok := c.JWKS["k1"]; !ok || c.AuthMethod != AuthPrivateKeyJWT {
					t.Errorf("client = %+v, want private_key_jwt with key k1", c)
				}
			}},
		{name: "ok/private-key-jwt-uri", body: doc(t, testID, map[string]any{"token_endpoint_auth_method": "private_key_jwt", "jwks_uri": "https://client.example/jwks.json"}), ok: true,
			check: func(t *testing.T, c Client) {
				if c.JWKSURI != "https://client.example/jwks.json" {
					t.Errorf("JWKSURI = %q", c.JWKSURI)
				}
			}},
		{name: "ok/localhost-redirect", body: doc(t, testID, map[string]any{"redirect_uris": []string{"http://localhost:3000/callback", "http://127.0.0.1:3000/callback", "http://localhost/cb"}}), ok: true,
			check: func(t *testing.T, c Client) {
				if !c.LoopbackOnly() {
					t.Error("LoopbackOnly = false for loopback redirect URIs")
				}
			}},
		{name: "ok/https-and-loopback", body: doc(t, testID, nil), ok: true,
			check: func(t *testing.T, c Client) {
				if c.LoopbackOnly() {
					t.Error("LoopbackOnly = true with an https redirect URI")
				}
			}},
		{name: "fail/localhost-user-info", body: doc(t, testID, map[string]any{"redirect_uris": []string{"http://localhost@evil.example/cb"}})},
		{name: "fail/localhost-port-user-info", body: doc(t, testID, map[string]any{"redirect_uris": []string{"http://localhost:80@evil.example/cb"}})},
		{name: "fail/localhost-prefix-of-host", body: doc(t, testID, map[string]any{"redirect_uris": []string{"http://localhost.evil.example/cb"}})},
		{name: "fail/localhost-upper-case", body: doc(t, testID, map[string]any{"redirect_uris": []string{"http://LOCALHOST/cb"}})},
		{name: "fail/localhost-fragment", body: doc(t, testID, map[string]any{"redirect_uris": []string{"http://localhost:3000/cb#x"}})},
		{name: "fail/redirect-uris-too-many", body: doc(t, testID, map[string]any{"redirect_uris": manyURIs(17)})},
		{name: "ok/unknown-members-ignored", body: doc(t, testID, map[string]any{"logo_uri": "https://client.example/logo.png", "software_id": "x"}), ok: true},
		{name: "ok/name-unicode", body: doc(t, testID, map[string]any{"client_name": "Éditeur 編集者"}), ok: true},

		{name: "fail/not-json", body: []byte(`client_id=x`)},
		{name: "fail/array", body: []byte(`[]`)},
		{name: "fail/null", body: []byte(`null`)},
		{name: "fail/trailing-data", body: append(doc(t, testID, nil), []byte(`{}`)...)},
		{name: "fail/duplicate-member", body: []byte(`{"client_id":"` + testID + `","client_id":"` + testID + `","redirect_uris":["https://client.example/cb"]}`)},
		{name: "fail/case-variant-member", body: []byte(`{"client_id":"` + testID + `","Client_ID":"x","redirect_uris":["https://client.example/cb"]}`)},
		{name: "fail/client-id-only-case-variant", body: []byte(`{"CLIENT_ID":"` + testID + `","redirect_uris":["https://client.example/cb"]}`)},
		{name: "fail/client-id-missing", body: doc(t, testID, map[string]any{"client_id": nil})},
		{name: "fail/client-id-mismatch", body: doc(t, testID+"x", nil)},
		{name: "fail/client-id-trailing-slash", body: doc(t, testID+"/", nil)},
		{name: "fail/client-id-number", body: doc(t, testID, map[string]any{"client_id": 7})},
		{name: "fail/redirect-uris-missing", body: doc(t, testID, map[string]any{"redirect_uris": nil})},
		{name: "fail/redirect-uris-empty", body: doc(t, testID, map[string]any{"redirect_uris": []string{}})},
		{name: "fail/redirect-uris-string", body: doc(t, testID, map[string]any{"redirect_uris": "https://client.example/cb"})},
		{name: "fail/redirect-uri-http", body: doc(t, testID, map[string]any{"redirect_uris": []string{"http://client.example/cb"}})},
		{name: "fail/redirect-uri-fragment", body: doc(t, testID, map[string]any{"redirect_uris": []string{"https://client.example/cb#x"}})},
		{name: "fail/redirect-uri-twice", body: doc(t, testID, map[string]any{"redirect_uris": []string{"https://client.example/cb", "https://client.example/cb"}})},
		{name: "fail/client-secret", body: doc(t, testID, map[string]any{"client_secret": "s"})},
		{name: "fail/client-secret-expires-at", body: doc(t, testID, map[string]any{"client_secret_expires_at": 0})},
		{name: "fail/auth-client-secret-basic", body: doc(t, testID, map[string]any{"token_endpoint_auth_method": "client_secret_basic"})},
		{name: "fail/auth-client-secret-post", body: doc(t, testID, map[string]any{"token_endpoint_auth_method": "client_secret_post"})},
		{name: "fail/auth-client-secret-jwt", body: doc(t, testID, map[string]any{"token_endpoint_auth_method": "client_secret_jwt"})},
		{name: "fail/auth-not-string", body: doc(t, testID, map[string]any{"token_endpoint_auth_method": true})},
		{name: "fail/private-key-jwt-without-keys", body: doc(t, testID, map[string]any{"token_endpoint_auth_method": "private_key_jwt"})},
		{name: "fail/private-key-jwt-both", body: doc(t, testID, map[string]any{"token_endpoint_auth_method": "private_key_jwt", "jwks": keys, "jwks_uri": "https://client.example/jwks.json"})},
		{name: "fail/private-key-jwt-empty-set", body: doc(t, testID, map[string]any{"token_endpoint_auth_method": "private_key_jwt", "jwks": map[string]any{"keys": []any{}}})},
		{name: "fail/jwks-private-key", body: doc(t, testID, map[string]any{"token_endpoint_auth_method": "private_key_jwt", "jwks": map[string]any{"keys": []any{map[string]any{"kty": "oct", "kid": "k", "k": "c2VjcmV0"}}}})},
		{name: "fail/jwks-uri-http", body: doc(t, testID, map[string]any{"token_endpoint_auth_method": "private_key_jwt", "jwks_uri": "http://client.example/jwks.json"})},
		{name: "fail/name-too-long", body: doc(t, testID, map[string]any{"client_name": strings.Repeat("n", MaxNameLen+1)})},
		{name: "fail/name-control", body: doc(t, testID, map[string]any{"client_name": "Good\nclient"})},
		{name: "fail/name-bidi-override", body: doc(t, testID, map[string]any{"client_name": "Good \u202eeno"})},
		{name: "fail/name-zero-width", body: doc(t, testID, map[string]any{"client_name": "Go\u200bogle"})},
		{name: "fail/name-not-string", body: doc(t, testID, map[string]any{"client_name": []string{"a"}})},
		{name: "fail/grant-types-without-code", body: doc(t, testID, map[string]any{"grant_types": []string{"client_credentials"}})},
		{name: "fail/response-types-token", body: doc(t, testID, map[string]any{"response_types": []string{"token"}})},
		{name: "fail/invalid-utf8", body: []byte("{\"client_id\":\"" + testID + "\",\"client_name\":\"\xff\",\"redirect_uris\":[\"https://client.example/cb\"]}")},
		{name: "fail/too-deep", body: []byte(`{"client_id":"` + testID + `","redirect_uris":["https://client.example/cb"],"x":` + strings.Repeat("[", 20) + strings.Repeat("]", 20) + `}`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse(testID, tt.body)
			if tt.ok != (err == nil) {
				t.Fatalf("Parse error = %v, want ok=%v", err, tt.ok)
			}
			if err != nil {
				if !errors.Is(err, ErrInvalidDocument) {
					t.Errorf("Parse error = %v, want ErrInvalidDocument", err)
				}
				return
			}
			if c.ID != testID || len(c.RedirectURIs) == 0 {
				t.Errorf("client = %+v", c)
			}
			if tt.check != nil {
				tt.check(t, c)
			}
		})
	}
}

func manyURIs(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("https://client.example/cb%d", i)
	}
	return out
}

func TestCheckURL(t *testing.T) {
	tests := []struct {
		url string
		ok  bool
	}{
		{"https://client.example/client.json", true},
		{"https://client.example:8443/oauth/metadata", true},
		{"https://client.example/c?v=1", true},
		{"https://xn--bcher-kva.example/c", true},
		{"http://client.example/client.json", false},
		{"HTTPS://client.example/client.json", false},
		{"https://client.example", false},
		{"https://client.example/", false},
		{"https://client.example/a#", false},
		{"https://client.example/a#frag", false},
		{"https://user:pass@client.example/a", false},
		{"https://user@client.example/a", false},
		{"https://client.example/a/./b", false},
		{"https://client.example/a/../b", false},
		{"https://client.example/a/%2e%2e/b", false},
		{"https://client.example/.", false},
		{"https:///a", false},
		{"https://client.example/a b", false},
		{"https://client.example/a\\b", false},
		{"https://client.example/a\tb", false},
		{"https:client.example/a", false},
		{"client.example/a", false},
		{"", false},
		{"https://client.example/" + strings.Repeat("a", MaxURLLen), false},
	}
	for _, tt := range tests {
		err := CheckURL(tt.url)
		if (err == nil) != tt.ok {
			t.Errorf("CheckURL(%q) = %v, want ok=%v", tt.url, err, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidURL) {
			t.Errorf("CheckURL(%q) = %v, want ErrInvalidURL", tt.url, err)
		}
	}
	if !IsURL("https://client.example/c") || IsURL("my-agent") {
		t.Error("IsURL does not tell URLs from directory ids")
	}
}

// FuzzParse: whatever the document, Parse either refuses it with
// ErrInvalidDocument or returns a client that keeps every promise of
// Client's doc comment.
func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"client_id":"` + testID + `","redirect_uris":["https://client.example/cb"]}`))
	f.Add(doc(f, testID, nil))
	f.Add(doc(f, testID, map[string]any{"token_endpoint_auth_method": "private_key_jwt", "jwks": publicJWKS(f)}))
	f.Add(doc(f, testID, map[string]any{"client_secret": "x"}))
	f.Add([]byte(`{"client_id":"` + testID + `","client_id":"x"}`))
	f.Add([]byte(`{"client_id":"` + testID + `","redirect_uris":["http://[::1]/cb"],"client_name":"\u202e"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		c, err := Parse(testID, body)
		if err != nil {
			if !errors.Is(err, ErrInvalidDocument) {
				t.Fatalf("Parse error = %v, want ErrInvalidDocument", err)
			}
			return
		}
		if c.ID != testID || len(c.RedirectURIs) == 0 || nameProblem(c.Name) != "" {
			t.Fatalf("Parse accepted %+v", c)
		}
		switch c.AuthMethod {
		case AuthNone:
		case AuthPrivateKeyJWT:
			if len(c.JWKS) == 0 && c.JWKSURI == "" {
				t.Fatalf("private_key_jwt without keys: %+v", c)
			}
		default:
			t.Fatalf("auth method %q accepted", c.AuthMethod)
		}
		var m map[string]json.RawMessage
		if json.Unmarshal(body, &m) != nil || m["client_secret"] != nil {
			t.Fatalf("accepted a document with a secret or not an object: %q", body)
		}
	})
}
