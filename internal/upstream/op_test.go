package upstream_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/zitadel/oidc/v3/example/server/storage"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
	"golang.org/x/text/language"

	"github.com/mandate-dev/mandate/internal/config"
	"github.com/mandate-dev/mandate/internal/upstream"
)

// The provider in these tests is zitadel/oidc's OpenID Provider (pkg/op)
// with its example storage, on httptest: a real discovery document, JWKS,
// authorization, token and userinfo endpoints. The example's users have no
// groups, so groupStorage adds a "groups" claim: to the userinfo response
// always, and to the ID token when groupsInIDToken is set. The login page
// is the example server's (a form posting username, password and the auth
// request id to /login/username), rebuilt on net/http.

const (
	clientID     = "mandate"
	clientSecret = "the-client-secret-at-the-provider"
	// publicClientID is a public client (no secret) at the provider.
	publicClientID = "mandate-public"
	redirectURI    = "http://127.0.0.1:9/callback"
	password       = "verysecure"
)

// person is a user of the test provider.
type person struct {
	id, username, email string
	verified            bool
	groups              []string
}

var people = []person{
	{id: "u1", username: "sam", email: "sam@example.com", verified: true, groups: []string{"sre", "mandate-admins"}},
	{id: "u2", username: "alex", email: "alex@example.com", verified: true, groups: []string{"dev"}},
	{id: "u3", username: "eve smith", email: "eve@example.com", verified: true},            // a space: no valid id
	{id: "u4", username: "mallory", email: "sam@example.com", verified: false},             // claims sam's address
	{id: "u5", username: strings.Repeat("x", 300), email: "x@example.com", verified: true}, // too long
}

type userStore struct{ users map[string]*storage.User }

func (u userStore) GetUserByID(id string) *storage.User { return u.users[id] }
func (u userStore) GetUserByUsername(name string) *storage.User {
	for _, user := range u.users {
		if user.Username == name {
			return user
		}
	}
	return nil
}
func (u userStore) ExampleClientID() string { return storage.ServiceUserID }

// groupStorage is the example storage with a groups claim.
type groupStorage struct {
	*storage.Storage
	groups          map[string][]string
	groupsInIDToken bool
}

func (s *groupStorage) SetUserinfoFromRequest(ctx context.Context, ui *oidc.UserInfo, req op.IDTokenRequest, scopes []string) error {
	if err := s.Storage.SetUserinfoFromRequest(ctx, ui, req, scopes); err != nil {
		return err
	}
	if s.groupsInIDToken {
		ui.AppendClaims("groups", s.groups[req.GetSubject()])
	}
	return nil
}

func (s *groupStorage) SetUserinfoFromToken(ctx context.Context, ui *oidc.UserInfo, tokenID, subject, origin string) error {
	if err := s.Storage.SetUserinfoFromToken(ctx, ui, tokenID, subject, origin); err != nil {
		return err
	}
	if g := s.groups[ui.Subject]; g != nil {
		ui.AppendClaims("groups", g)
	}
	return nil
}

// testIDP is one running provider.
type testIDP struct {
	issuer  string
	store   *groupStorage
	secret  string // the client secret file
	srv     *httptest.Server
	mu      sync.Mutex
	issued  []string // every token the token endpoint issued
	infos   int      // userinfo requests served
	advISS  bool     // advertise authorization_response_iss_parameter_supported
	tamper  func(tokenResponse map[string]any)
	clients map[string]*storage.Client
}

var loginForm = template.Must(template.New("login").Parse(`<!DOCTYPE html>
<form method="POST" action="/login/username">
<input type="hidden" name="id" value="{{.}}">
<input name="username"><input name="password" type="password">
<button type="submit">Login</button>
</form>`))

// newIDP starts a provider with the people above and the client mandate.
func newIDP(t *testing.T) *testIDP {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	d := &testIDP{issuer: "http://" + srv.Listener.Addr().String(), srv: srv}
	users := map[string]*storage.User{}
	groups := map[string][]string{}
	for _, p := range people {
		users[p.id] = &storage.User{ID: p.id, Username: p.username, Password: password, FirstName: "First", LastName: p.username,
			Email: p.email, EmailVerified: p.verified, PreferredLanguage: language.English}
		groups[p.id] = p.groups
	}
	d.clients = map[string]*storage.Client{
		clientID:       storage.WebClient(clientID, clientSecret, redirectURI),
		publicClientID: storage.NativeClient(publicClientID, redirectURI), // PKCE, no secret
	}
	d.store = &groupStorage{Storage: storage.NewStorageWithClients(userStore{users}, d.clients), groups: groups}
	provider, err := op.NewProvider(&op.Config{
		CryptoKey:             sha256.Sum256([]byte("test")),
		CodeMethodS256:        true,
		AuthMethodPost:        true,
		GrantTypeRefreshToken: true,
		SupportedUILocales:    []language.Tag{language.English},
	}, d.store, op.StaticIssuer(d.issuer), op.WithAllowInsecure())
	if err != nil {
		t.Fatal(err)
	}
	interceptor := op.NewIssuerInterceptor(provider.IssuerFromRequest)
	callback := op.AuthCallbackURL(provider)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /login/username", func(w http.ResponseWriter, r *http.Request) {
		_ = loginForm.Execute(w, r.FormValue("authRequestID"))
	})
	mux.HandleFunc("POST /login/username", interceptor.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.FormValue("id")
		if err := d.store.CheckUsernamePassword(r.FormValue("username"), r.FormValue("password"), id); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		http.Redirect(w, r, callback(r.Context(), id), http.StatusFound)
	}))
	mux.Handle("/", d.rewrite(provider))
	srv.Config.Handler = mux
	srv.Start()
	t.Cleanup(srv.Close)
	d.secret = filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(d.secret, []byte(clientSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return d
}

// rewrite lets a test change what the provider sends: the discovery
// document (advISS) and the token response (tamper); it records every
// token issued.
func (d *testIDP) rewrite(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		discovery := r.URL.Path == oidc.DiscoveryEndpoint
		token := r.URL.Path == "/oauth/token"
		if r.URL.Path == "/userinfo" {
			d.mu.Lock()
			d.infos++
			d.mu.Unlock()
		}
		if !discovery && !token {
			next.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, r)
		body := rec.Body.Bytes()
		var doc map[string]any
		if rec.Code == http.StatusOK && json.Unmarshal(body, &doc) == nil {
			d.mu.Lock()
			if discovery && d.advISS {
				doc["authorization_response_iss_parameter_supported"] = true
			}
			if token {
				for _, k := range []string{"access_token", "id_token", "refresh_token"} {
					if s, ok := doc[k].(string); ok && s != "" {
						d.issued = append(d.issued, s)
					}
				}
				if d.tamper != nil {
					d.tamper(doc)
				}
			}
			d.mu.Unlock()
			body, _ = json.Marshal(doc)
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.Header().Del("Content-Length")
		w.WriteHeader(rec.Code)
		_, _ = w.Write(body)
	})
}

// login is the configuration of a provider with a login section, for d.
func (d *testIDP) login(name string) config.IdentityProvider {
	return config.IdentityProvider{
		Issuer: d.issuer,
		Login: &config.Login{
			Name: name, ClientID: clientID, ClientSecretFile: d.secret,
			Scopes: []string{"openid", "profile", "email", "offline_access"},
			UserID: "user:{preferred_username}",
			Permissions: []config.ClaimRule{
				{When: config.ClaimMatch{Claim: "groups", Contains: "sre"}, Grant: []string{"deploy:create", "monitoring:read"}},
				{When: config.ClaimMatch{Claim: "groups", Contains: "dev"}, Grant: []string{"monitoring:read"}},
				{When: config.ClaimMatch{Claim: "email", Equals: "sam@example.com"}, Grant: []string{"secrets:manage"}},
			},
			Roles: []config.ClaimRule{{When: config.ClaimMatch{Claim: "groups", Contains: "mandate-admins"}, Grant: []string{"admin"}}},
		},
	}
}

// newProvider builds the Mandate side of d.
func (d *testIDP) newProvider(t *testing.T, edit func(*config.IdentityProvider)) *upstream.Provider {
	t.Helper()
	idp := d.login("Test SSO")
	if edit != nil {
		edit(&idp)
	}
	p, err := upstream.New(context.Background(), idp, redirectURI, http.DefaultClient)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return p
}

// tokens returns every token the provider issued so far.
func (d *testIDP) tokens() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.issued...)
}

var hiddenID = regexp.MustCompile(`name="id" value="([^"]+)"`)

// signIn drives a browser through the provider's login as username, from
// authURL to the redirect to Mandate's callback, and returns the callback's
// query.
func signIn(t *testing.T, authURL, username string) url.Values {
	t.Helper()
	browser := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(u string) *http.Response {
		t.Helper()
		resp, err := browser.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	next := func(resp *http.Response) string {
		t.Helper()
		if resp.StatusCode != http.StatusFound && resp.StatusCode != http.StatusSeeOther {
			b, _ := io.ReadAll(resp.Body)
			t.Fatalf("%s: status %d, want a redirect: %s", resp.Request.URL, resp.StatusCode, b)
		}
		loc, err := resp.Request.URL.Parse(resp.Header.Get("Location"))
		if err != nil {
			t.Fatal(err)
		}
		return loc.String()
	}
	page := get(next(get(authURL))) // the authorization endpoint sends the browser to the login page
	b, _ := io.ReadAll(page.Body)
	m := hiddenID.FindSubmatch(b)
	if m == nil {
		t.Fatalf("no auth request id in the login page: %s", b)
	}
	form := url.Values{"id": {string(m[1])}, "username": {username}, "password": {password}}
	resp, err := browser.Post(page.Request.URL.String(), "application/x-www-form-urlencoded", bytes.NewBufferString(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	cb := next(get(next(resp))) // the login sends the browser to the provider's callback, which redirects to Mandate
	if !strings.HasPrefix(cb, redirectURI+"?") {
		t.Fatalf("redirected to %s, want %s", cb, redirectURI)
	}
	u, _ := url.Parse(cb)
	return u.Query()
}

// start begins a sign-in at p and takes it through the provider's login.
func start(t *testing.T, p *upstream.Provider, username string) (url.Values, upstream.Pending) {
	t.Helper()
	authURL, st, err := p.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return signIn(t, authURL, username), st
}

func with(q url.Values, k, v string) url.Values {
	out := url.Values{}
	for key, vs := range q {
		out[key] = append([]string(nil), vs...)
	}
	if v == "" {
		out.Del(k)
	} else {
		out.Set(k, v)
	}
	return out
}

func describe(v any) string { return fmt.Sprintf("%v %+v %#v", v, v, v) }
