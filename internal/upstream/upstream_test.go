package upstream_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/mandate-dev/mandate/internal/config"
	"github.com/mandate-dev/mandate/internal/upstream"
)

var sam = upstream.Identity{
	Subject: "u1", UserID: "user:sam",
	Permissions: []string{"deploy:create", "monitoring:read", "secrets:manage"},
	Roles:       []string{"admin"},
	Name:        "First sam", Email: "sam@example.com",
}

// TestFinish signs in at a real provider and checks the callback as
// Finish does; every error is then checked to hold no secret.
func TestFinish(t *testing.T) {
	d, other := newIDP(t), newIDP(t)
	type callback struct {
		q  map[string][]string
		st *upstream.Pending
	}
	tests := []struct {
		name     string
		user     string
		advISS   bool // the provider advertises RFC 9207 iss
		inIDTok  bool // groups are in the ID token, not only at userinfo
		tamper   func(map[string]any)
		config   func(*config.IdentityProvider)
		callback func(c callback)
		twice    bool // redeem the callback a second time, which must fail
		noInfo   bool // userinfo must not be asked: the ID token has every claim needed
		want     upstream.Identity
		wantErr  error
		errHas   string
	}{
		{name: "ok/groups-from-userinfo", user: "sam", want: sam},
		{name: "ok/groups-in-id-token", user: "sam", inIDTok: true, want: sam},
		{name: "ok/claims-from-id-token-only", user: "sam", inIDTok: true, noInfo: true, config: func(idp *config.IdentityProvider) {
			idp.Login.UserID = "user:{sub}"
			idp.Login.Permissions = idp.Login.Permissions[:2]
		}, want: upstream.Identity{Subject: "u1", UserID: "user:u1", Permissions: []string{"deploy:create", "monitoring:read"}, Roles: []string{"admin"}}},
		{name: "ok/iss-advertised-and-sent", user: "sam", advISS: true,
			callback: func(c callback) { c.q["iss"] = []string{d.issuer} }, want: sam},
		{name: "ok/iss-sent-unadvertised", user: "sam",
			callback: func(c callback) { c.q["iss"] = []string{d.issuer} }, want: sam},
		{name: "ok/few-grants", user: "alex", want: upstream.Identity{Subject: "u2", UserID: "user:alex",
			Permissions: []string{"monitoring:read"}, Name: "First alex", Email: "alex@example.com"}},
		{name: "ok/email-template", user: "sam", config: func(idp *config.IdentityProvider) { idp.Login.UserID = "{email}" },
			want: func() upstream.Identity { id := sam; id.UserID = "sam@example.com"; return id }()},
		{name: "ok/public-client", user: "sam", config: func(idp *config.IdentityProvider) {
			idp.Login.ClientID, idp.Login.ClientSecretFile = publicClientID, ""
		}, want: sam},
		{name: "ok/unverified-email-matches-no-rule", user: "mallory", want: upstream.Identity{Subject: "u4", UserID: "user:mallory", Name: "First mallory"}},
		{name: "fail/wrong-state", user: "sam", callback: func(c callback) { c.q["state"] = []string{"forged"} },
			wantErr: upstream.ErrState},
		{name: "fail/no-state", user: "sam", callback: func(c callback) { delete(c.q, "state") }, wantErr: upstream.ErrState},
		{name: "fail/two-states", user: "sam", callback: func(c callback) { c.q["state"] = append(c.q["state"], "x") },
			wantErr: upstream.ErrState},
		{name: "fail/pending-of-another-provider", user: "sam", callback: func(c callback) { c.st.Issuer = other.issuer },
			wantErr: upstream.ErrState},
		{name: "fail/iss-missing-when-advertised", user: "sam", advISS: true, wantErr: upstream.ErrIssuer},
		{name: "fail/iss-of-another-provider", user: "sam", callback: func(c callback) { c.q["iss"] = []string{other.issuer} },
			wantErr: upstream.ErrIssuer, errHas: other.issuer},
		{name: "fail/iss-empty", user: "sam", callback: func(c callback) { c.q["iss"] = []string{""} }, wantErr: upstream.ErrIssuer},
		{name: "fail/error-answer", user: "sam", callback: func(c callback) {
			for k := range c.q {
				delete(c.q, k)
			}
			c.q["state"] = []string{c.st.State}
			c.q["error"] = []string{"access_denied"}
			c.q["error_description"] = []string{"denied\x1b[2J\nfake line " + strings.Repeat("y", 1000)}
		}, wantErr: upstream.ErrDenied, errHas: `"access_denied" ("denied\x1b[2J\nfake line yyy`},
		{name: "fail/no-code", user: "sam", callback: func(c callback) { delete(c.q, "code") }, wantErr: upstream.ErrExchange},
		{name: "fail/wrong-nonce", user: "sam", callback: func(c callback) { c.st.Nonce = "another-nonce" },
			wantErr: upstream.ErrExchange, errHas: "nonce"},
		{name: "fail/wrong-pkce-verifier", user: "sam", callback: func(c callback) { c.st.Verifier = strings.Repeat("v", 43) },
			wantErr: upstream.ErrExchange, errHas: "invalid_grant"},
		{name: "fail/code-redeemed-twice", user: "sam", twice: true, wantErr: upstream.ErrExchange},
		{name: "fail/tampered-id-token-signature", user: "sam", tamper: func(doc map[string]any) {
			tok := doc["id_token"].(string)
			sig := tok[strings.LastIndexByte(tok, '.')+1:]
			flipped := "A"
			if sig[0] == 'A' {
				flipped = "B"
			}
			doc["id_token"] = tok[:len(tok)-len(sig)] + flipped + sig[1:]
		}, wantErr: upstream.ErrExchange, errHas: "signature"},
		{name: "fail/id-token-swapped-payload", user: "sam", tamper: func(doc map[string]any) {
			parts := strings.Split(doc["id_token"].(string), ".")
			parts[1] = "eyJpc3MiOiJodHRwOi8vZXZpbCIsInN1YiI6InUxIiwiYXVkIjpbIm1hbmRhdGUiXX0" // {"iss":"http://evil","sub":"u1","aud":["mandate"]}
			doc["id_token"] = strings.Join(parts, ".")
		}, wantErr: upstream.ErrExchange},
		{name: "fail/alg-not-allowed", user: "sam", config: func(idp *config.IdentityProvider) { idp.Algorithms = []string{"ES256"} },
			wantErr: upstream.ErrExchange, errHas: "signature algorithm not supported"},
		{name: "fail/id-token-missing", user: "sam", tamper: func(doc map[string]any) { delete(doc, "id_token") },
			wantErr: upstream.ErrExchange},
		{name: "fail/white-space-in-id", user: "eve smith", wantErr: upstream.ErrClaims, errHas: "white space"},
		{name: "fail/id-too-long", user: strings.Repeat("x", 300), wantErr: upstream.ErrClaims, errHas: "at most 256"},
		{name: "fail/unverified-email-in-template", user: "mallory",
			config: func(idp *config.IdentityProvider) { idp.Login.UserID = "{email}" }, wantErr: upstream.ErrClaims, errHas: "not verified"},
		{name: "fail/claim-absent", user: "sam",
			config: func(idp *config.IdentityProvider) { idp.Login.UserID = "user:{employee_number}" }, wantErr: upstream.ErrClaims},
	}
	var errs []string
	var secrets []string
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d.AdvertiseISS(tt.advISS)
			d.GroupsInIDToken(tt.inIDTok)
			d.Tamper(tt.tamper)
			p := d.newProvider(t, tt.config)
			q, st := d.start(t, p, tt.user)
			secrets = append(secrets, q.Get("code"), st.Nonce, st.Verifier)
			if tt.callback != nil {
				tt.callback(callback{q: q, st: &st})
			}
			infos := d.Userinfos()
			got, err := p.Finish(context.Background(), q, st)
			asked := d.Userinfos() > infos
			if tt.noInfo && asked {
				t.Error("userinfo was asked though the ID token had every claim needed")
			}
			if tt.twice {
				_, err = p.Finish(context.Background(), q, st)
			}
			if tt.wantErr != nil {
				if err == nil {
					t.Fatalf("Finish = %v, want %v", got, tt.wantErr)
				}
				errs = append(errs, err.Error())
				if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.errHas) {
					t.Fatalf("Finish error = %v, want %v with %q", err, tt.wantErr, tt.errHas)
				}
				if len(err.Error()) > 600 || strings.ContainsAny(err.Error(), "\n\x1b") {
					t.Errorf("error is not bounded and escaped: %q", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Finish: %v", err)
			}
			if got.RefreshToken == "" {
				t.Error("no refresh token though offline_access was asked")
			}
			if strings.Contains(describe(got), got.RefreshToken) {
				t.Errorf("Identity prints its refresh token: %v", got)
			}
			want := tt.want
			want.Issuer = d.issuer
			if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(upstream.Identity{}, "RefreshToken"), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Identity (-want +got):\n%s", diff)
			}
		})
	}
	secrets = append(secrets, d.tokens()...)
	secrets = append(secrets, clientSecret)
	for _, e := range errs {
		for _, s := range secrets {
			if s != "" && strings.Contains(e, s) {
				t.Errorf("error %q holds a secret or token", e)
			}
		}
	}
}

// TestMixUp: with two providers, a callback that a second provider sent
// (iss names it) is refused by the first, and its code is never sent to
// the first's token endpoint; without iss, the first cannot redeem it.
func TestMixUp(t *testing.T) {
	a, b := newIDP(t), newIDP(t)
	b.AdvertiseISS(true)
	cfg := &config.Config{IdentityProviders: []config.IdentityProvider{a.login("A"), b.login("B"),
		{Issuer: "https://tokens-only.example", JWKSURI: "https://tokens-only.example/keys", Audience: "mandate"}}}
	set, err := upstream.NewSet(context.Background(), cfg, redirectURI, http.DefaultClient)
	if err != nil {
		t.Fatal(err)
	}
	if set.Len() != 2 || set.Providers()[0].Name() != "A" || set.Providers()[1].Issuer() != b.issuer {
		t.Fatalf("Set holds %d providers: %v", set.Len(), set.Providers())
	}
	pa, _ := set.Lookup(a.issuer)
	pb, _ := set.Lookup(b.issuer)
	if _, ok := set.Lookup("https://tokens-only.example"); ok {
		t.Error("a provider without login is in the set")
	}

	// The person starts at A; the attacker gets the browser to B, whose
	// callback carries A's state and B's iss.
	_, stA, err := pa.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	qB, _ := b.start(t, pb, "sam")
	qB.Set("state", stA.State)
	qB.Set("iss", b.issuer)
	before := len(a.tokens())
	if _, err := pa.Finish(context.Background(), qB, stA); !errors.Is(err, upstream.ErrIssuer) {
		t.Errorf("A.Finish(B's callback) = %v, want ErrIssuer", err)
	}
	// Without iss, A cannot tell; its token endpoint refuses B's code.
	qB.Del("iss")
	if _, err := pa.Finish(context.Background(), qB, stA); !errors.Is(err, upstream.ErrExchange) {
		t.Errorf("A.Finish(B's callback without iss) = %v, want ErrExchange", err)
	}
	if len(a.tokens()) != before {
		t.Error("A issued tokens for B's code")
	}
	// B's own callback with B's pending signs in, iss required.
	qB2, stB := b.start(t, pb, "sam")
	if _, err := pb.Finish(context.Background(), qB2, stB); !errors.Is(err, upstream.ErrIssuer) {
		t.Errorf("B.Finish without the iss B advertises = %v, want ErrIssuer", err)
	}
	qB3, stB3 := b.start(t, pb, "sam")
	qB3.Set("iss", b.issuer)
	if id, err := pb.Finish(context.Background(), qB3, stB3); err != nil || id.UserID != "user:sam" || id.Issuer != b.issuer {
		t.Errorf("B.Finish = %v, %v", id, err)
	}
}

// TestRecheck: a refresh at the provider follows what the person holds
// there now, and a person whose tokens the provider ended is refused.
func TestRecheck(t *testing.T) {
	d := newIDP(t)
	p := d.newProvider(t, nil)
	q, st := d.start(t, p, "sam")
	id, err := p.Finish(context.Background(), q, st)
	if err != nil {
		t.Fatal(err)
	}
	again, err := p.Recheck(context.Background(), id.Subject, id.RefreshToken)
	if err != nil {
		t.Fatalf("Recheck: %v", err)
	}
	if diff := cmp.Diff(id, again, cmpopts.IgnoreFields(upstream.Identity{}, "RefreshToken")); diff != "" {
		t.Errorf("Recheck (-signed in +now):\n%s", diff)
	}
	if again.RefreshToken == "" {
		t.Fatal("Recheck returned no refresh token to keep")
	}

	// The provider takes sam out of mandate-admins.
	d.SetGroups("u1", []string{"sre"})
	now, err := p.Recheck(context.Background(), id.Subject, again.RefreshToken)
	if err != nil {
		t.Fatalf("Recheck: %v", err)
	}
	if len(now.Roles) != 0 {
		t.Errorf("roles after removal from the group = %v, want none", now.Roles)
	}

	if _, err := p.Recheck(context.Background(), "u2", now.RefreshToken); err == nil {
		t.Error("Recheck with another subject succeeded")
	}

	// The provider disables sam: their tokens end there.
	if err := d.EndSessions(context.Background(), "u1"); err != nil {
		t.Fatal(err)
	}
	_, err = p.Recheck(context.Background(), id.Subject, now.RefreshToken)
	if !errors.Is(err, upstream.ErrRefused) {
		t.Fatalf("Recheck after the provider ended the session = %v, want ErrRefused", err)
	}
	for _, tok := range append(d.tokens(), clientSecret) {
		if strings.Contains(err.Error(), tok) {
			t.Errorf("error %q holds a secret", err)
		}
	}
}

func TestNewRefuses(t *testing.T) {
	d := newIDP(t)
	tests := []struct {
		name string
		idp  config.IdentityProvider
	}{
		{name: "fail/no-login", idp: config.IdentityProvider{Issuer: d.issuer}},
		{name: "fail/issuer-differs-from-discovery", idp: func() config.IdentityProvider {
			idp := d.login("x")
			idp.Issuer += "/"
			return idp
		}()},
		{name: "fail/unreachable", idp: func() config.IdentityProvider { idp := d.login("x"); idp.Issuer = "http://127.0.0.1:1"; return idp }()},
		{name: "fail/secret-file-missing", idp: func() config.IdentityProvider {
			idp := d.login("x")
			idp.Login.ClientSecretFile += ".absent"
			return idp
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := upstream.New(context.Background(), tt.idp, redirectURI, nil); err == nil {
				t.Fatal("New succeeded")
			} else if strings.Contains(err.Error(), clientSecret) {
				t.Errorf("error %q holds the secret", err)
			}
		})
	}
}

// TestPendingJSON: Pending survives the store as JSON, and printing it
// shows neither the nonce nor the verifier.
func TestPendingJSON(t *testing.T) {
	d := newIDP(t)
	p := d.newProvider(t, nil)
	authURL, st, err := p.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	var back upstream.Pending
	if err := json.Unmarshal(b, &back); err != nil || back != st {
		t.Fatalf("round trip = %+v, %v; want %+v", back, err, st)
	}
	if s := describe(st); strings.Contains(s, st.Nonce) || strings.Contains(s, st.Verifier) {
		t.Errorf("Pending prints its secrets: %s", s)
	}
	if strings.Contains(authURL, st.Verifier) || !strings.Contains(authURL, "code_challenge_method=S256") || !strings.Contains(authURL, "nonce=") {
		t.Errorf("authorization URL %s: want a S256 challenge and a nonce, not the verifier", authURL)
	}
	// A sign-in finished with the round-tripped state works.
	q := d.SignIn(t, authURL, "sam").Query()
	if id, err := p.Finish(context.Background(), q, back); err != nil || id.UserID != "user:sam" {
		t.Fatalf("Finish = %v, %v", id, err)
	}
}

// TestLazySet: a provider that cannot be reached at start does not stop
// the others, and is tried again after Retry.
func TestLazySet(t *testing.T) {
	d := newIDP(t)
	down := d.login("Down")
	down.Issuer = "http://127.0.0.1:1"
	cfg := &config.Config{IdentityProviders: []config.IdentityProvider{d.login("Up"), down}}
	set, err := upstream.NewLazySet(cfg, redirectURI, http.DefaultClient)
	if err != nil {
		t.Fatal(err)
	}
	want := []upstream.Choice{{Issuer: d.issuer, Name: "Up"}, {Issuer: down.Issuer, Name: "Down"}}
	if diff := cmp.Diff(want, set.Choices()); diff != "" {
		t.Errorf("Choices (-want +got):\n%s", diff)
	}
	if len(set.Providers()) != 0 {
		t.Error("a lazy set built providers before their use")
	}
	if _, err := set.Provider(context.Background(), down.Issuer); err == nil {
		t.Error("Provider of an unreachable issuer succeeded")
	}
	p, err := set.Provider(context.Background(), d.issuer)
	if err != nil || p.Name() != "Up" {
		t.Fatalf("Provider = %v, %v", p, err)
	}
	if got, ok := set.Lookup(d.issuer); !ok || got != p {
		t.Error("Lookup does not return the provider built")
	}
	if _, err := set.Provider(context.Background(), "https://other.example"); !errors.Is(err, upstream.ErrUnknownProvider) {
		t.Errorf("Provider(unknown) = %v, want ErrUnknownProvider", err)
	}
}
