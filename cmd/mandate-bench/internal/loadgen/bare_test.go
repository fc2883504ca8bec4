package loadgen

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/mandate-dev/mandate/oauth"
)

// TestBare: the bench's bare server does the checks it claims (client
// secret, the subject token's signature, issuer and audience, the actor
// token's owner) and answers with a token that carries the nested act,
// so that what it is measured doing is a real exchange.
func TestBare(t *testing.T) {
	idp, err := NewIdP()
	if err != nil {
		t.Fatal(err)
	}
	defer idp.Close()
	res, err := http.Get(idp.JWKSURI())
	if err != nil {
		t.Fatal(err)
	}
	var keys jose.JSONWebKeySet
	err = json.NewDecoder(res.Body).Decode(&keys)
	res.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	a, b := Agent{ID: "agent:a", Secret: "secret-a"}, Agent{ID: "agent:b", Secret: "secret-b"}
	h, err := NewBare(BareConfig{
		Issuer: "http://bare.test", Clients: map[string]string{a.ID: a.Secret, b.ID: b.Secret},
		IdPIssuer: idp.URL(), IdPAudience: idp.Audience, IdPKeys: keys,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	base := srv.URL + "/token"

	person, err := idp.Token("user:sam", map[string]any{"act": map[string]any{"sub": "agent:earlier"}})
	if err != nil {
		t.Fatal(err)
	}
	otherAud := *idp
	otherAud.Audience = "someone-else"
	wrongAud, err := otherAud.Token("user:sam", nil)
	if err != nil {
		t.Fatal(err)
	}
	actorA, err := ClientToken(context.Background(), base, a, "")
	if err != nil {
		t.Fatal(err)
	}
	exchange := func(c Agent, subject string, extra ...string) url.Values {
		f := url.Values{
			"grant_type": {oauth.GrantTokenExchange}, "client_id": {c.ID}, "client_secret": {c.Secret},
			"subject_token": {subject}, "subject_token_type": {oauth.TokenTypeIDToken},
			"audience": {"https://deploy.example"}, "scope": {"monitoring:read"},
		}
		for i := 0; i+1 < len(extra); i += 2 {
			f.Set(extra[i], extra[i+1])
		}
		return f
	}
	for _, tc := range []struct {
		name   string
		form   url.Values
		status int
		error  oauth.ErrorCode
	}{
		{"ok/exchange", exchange(a, person), http.StatusOK, ""},
		{"ok/with-actor-token", exchange(a, person, "actor_token", actorA, "actor_token_type", oauth.TokenTypeAccessToken), http.StatusOK, ""},
		{"fail/wrong-secret", exchange(Agent{ID: a.ID, Secret: "nope"}, person), http.StatusUnauthorized, oauth.ErrInvalidClient},
		{"fail/unknown-client", exchange(Agent{ID: "agent:x", Secret: "secret-a"}, person), http.StatusUnauthorized, oauth.ErrInvalidClient},
		{"fail/subject-audience", exchange(a, wrongAud), http.StatusBadRequest, oauth.ErrInvalidRequest},
		{"fail/subject-tampered", exchange(a, person[:len(person)-4]+"AAAA"), http.StatusBadRequest, oauth.ErrInvalidRequest},
		{"fail/actor-token-of-another", exchange(b, person, "actor_token", actorA), http.StatusBadRequest, oauth.ErrInvalidRequest},
		{"fail/actor-token-is-subject", exchange(a, person, "actor_token", person), http.StatusBadRequest, oauth.ErrInvalidRequest},
		{"fail/grant", url.Values{"grant_type": {"password"}, "client_id": {a.ID}, "client_secret": {a.Secret}}, http.StatusBadRequest, oauth.ErrUnsupportedGrantType},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := http.Post(base, "application/x-www-form-urlencoded", strings.NewReader(tc.form.Encode()))
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			var body struct {
				AccessToken string          `json:"access_token"`
				Error       oauth.ErrorCode `json:"error"`
			}
			if err := json.NewDecoder(res.Body).Decode(&body); err != nil {
				t.Fatal(err)
			}
			if res.StatusCode != tc.status || body.Error != tc.error {
				t.Fatalf("got %d %q, want %d %q", res.StatusCode, body.Error, tc.status, tc.error)
			}
			if tc.status != http.StatusOK {
				return
			}
			tok, err := jwt.ParseSigned(body.AccessToken, []jose.SignatureAlgorithm{jose.EdDSA})
			if err != nil {
				t.Fatal(err)
			}
			// The signature is the server's own: ok/with-actor-token shows
			// that it verifies the tokens it signs.
			var c bareClaims
			if err := tok.UnsafeClaimsWithoutVerification(&c); err != nil {
				t.Fatal(err)
			}
			if c.Sub != "user:sam" || c.Act == nil || c.Act.Sub != a.ID || string(c.Act.Act) != `{"sub":"agent:earlier"}` ||
				c.Aud != "https://deploy.example" || c.Iss != "http://bare.test" || c.JTI == "" || c.Exp <= c.Iat {
				t.Errorf("claims %+v", c)
			}
		})
	}
}
