// Package upstreamtest runs an OpenID Connect provider for tests of
// sign-in through a company's provider: zitadel/oidc's OpenID Provider
// (pkg/op) with its example storage, on httptest, so that discovery, JWKS,
// authorization, token and userinfo are real. It adds a groups claim, lets
// a test change what the provider sends (the RFC 9207 iss promise, the
// token response, a person's groups), and drives a browser through its
// login page. It is for tests only.
package upstreamtest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"html/template"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/zitadel/oidc/v3/example/server/storage"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
	"golang.org/x/text/language"

	"github.com/mandate-dev/mandate/internal/config"
)

// The provider's clients and people.
const (
	// ClientID is Mandate's confidential client at the provider.
	ClientID = "mandate"
	// ClientSecret is its secret, in the file SecretFile names.
	ClientSecret = "the-client-secret-at-the-provider"
	// PublicClientID is a public client (PKCE, no secret).
	PublicClientID = "mandate-public"
	// Password is every person's password at the provider.
	Password = "verysecure"
)

// Person is a person at the provider.
type Person struct {
	ID, Username, Email string
	Verified            bool
	Groups              []string
}

// People are the provider's people: sam (sre, mandate-admins), alex
// (dev), "eve smith" (a space: no valid Mandate id), mallory (claims
// sam's address, unverified) and a 300-character name.
func People() []Person {
	return []Person{
		{ID: "u1", Username: "sam", Email: "sam@example.com", Verified: true, Groups: []string{"sre", "mandate-admins"}},
		{ID: "u2", Username: "alex", Email: "alex@example.com", Verified: true, Groups: []string{"dev"}},
		{ID: "u3", Username: "eve smith", Email: "eve@example.com", Verified: true},
		{ID: "u4", Username: "mallory", Email: "sam@example.com", Verified: false},
		{ID: "u5", Username: strings.Repeat("x", 300), Email: "x@example.com", Verified: true},
	}
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

// groupStorage is the example storage with a groups claim: in userinfo
// always, in the ID token when groupsInIDToken is set.
type groupStorage struct {
	*storage.Storage
	d *IDP
}

func (s *groupStorage) groupsOf(subject string) ([]string, bool) {
	s.d.mu.Lock()
	defer s.d.mu.Unlock()
	return slices.Clone(s.d.groups[subject]), s.d.groupsInIDToken
}

func (s *groupStorage) SetUserinfoFromRequest(ctx context.Context, ui *oidc.UserInfo, req op.IDTokenRequest, scopes []string) error {
	if err := s.Storage.SetUserinfoFromRequest(ctx, ui, req, scopes); err != nil {
		return err
	}
	if g, inID := s.groupsOf(req.GetSubject()); inID {
		ui.AppendClaims("groups", g)
	}
	return nil
}

func (s *groupStorage) SetUserinfoFromToken(ctx context.Context, ui *oidc.UserInfo, tokenID, subject, origin string) error {
	if err := s.Storage.SetUserinfoFromToken(ctx, ui, tokenID, subject, origin); err != nil {
		return err
	}
	if g, _ := s.groupsOf(ui.Subject); g != nil {
		ui.AppendClaims("groups", g)
	}
	return nil
}

// IDP is one running provider. Its methods are safe for concurrent use.
type IDP struct {
	// Issuer is the provider's issuer, http://127.0.0.1:PORT.
	Issuer string
	// SecretFile holds ClientSecret, for the login section.
	SecretFile string
	// RedirectURI is the callback registered for both clients.
	RedirectURI string

	store *groupStorage

	mu              sync.Mutex
	groups          map[string][]string
	groupsInIDToken bool
	issued          []string // every token the token endpoint issued
	infos           int      // userinfo requests served
	advISS          bool     // advertise authorization_response_iss_parameter_supported
	tamper          func(tokenResponse map[string]any)
	down            bool // answer every request 503
}

var loginForm = template.Must(template.New("login").Parse(`<!DOCTYPE html>
<form method="POST" action="/login/username">
<input type="hidden" name="id" value="{{.}}">
<input name="username"><input name="password" type="password">
<button type="submit">Login</button>
</form>`))

// New starts a provider with People and the clients ClientID and
// PublicClientID, whose callback is redirectURI; it stops at the end of
// the test.
func New(t testing.TB, redirectURI string) *IDP {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	d := &IDP{Issuer: "http://" + srv.Listener.Addr().String(), RedirectURI: redirectURI, groups: map[string][]string{}}
	users := map[string]*storage.User{}
	for _, p := range People() {
		users[p.ID] = &storage.User{ID: p.ID, Username: p.Username, Password: Password, FirstName: "First", LastName: p.Username,
			Email: p.Email, EmailVerified: p.Verified, PreferredLanguage: language.English}
		d.groups[p.ID] = p.Groups
	}
	clients := map[string]*storage.Client{
		ClientID:       storage.WebClient(ClientID, ClientSecret, redirectURI),
		PublicClientID: storage.NativeClient(PublicClientID, redirectURI),
	}
	d.store = &groupStorage{Storage: storage.NewStorageWithClients(userStore{users}, clients), d: d}
	provider, err := op.NewProvider(&op.Config{
		CryptoKey:             sha256.Sum256([]byte("test")),
		CodeMethodS256:        true,
		AuthMethodPost:        true,
		GrantTypeRefreshToken: true,
		SupportedUILocales:    []language.Tag{language.English},
	}, d.store, op.StaticIssuer(d.Issuer), op.WithAllowInsecure())
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
	d.SecretFile = filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(d.SecretFile, []byte(ClientSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return d
}

// rewrite lets a test change what the provider sends: the discovery
// document (advISS) and the token response (tamper); it records every
// token issued.
func (d *IDP) rewrite(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d.mu.Lock()
		down := d.down
		d.mu.Unlock()
		if down {
			http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
			return
		}
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

// SetDown sets whether the provider is down: every request to it then
// answers 503 Service Unavailable.
func (d *IDP) SetDown(on bool) { d.mu.Lock(); d.down = on; d.mu.Unlock() }

// AdvertiseISS sets whether the discovery document promises iss in every
// callback (RFC 9207 §3).
func (d *IDP) AdvertiseISS(on bool) { d.mu.Lock(); d.advISS = on; d.mu.Unlock() }

// GroupsInIDToken sets whether the ID token carries the groups claim
// (userinfo always does).
func (d *IDP) GroupsInIDToken(on bool) { d.mu.Lock(); d.groupsInIDToken = on; d.mu.Unlock() }

// Tamper sets a change made to every successful token response; nil for
// none.
func (d *IDP) Tamper(f func(tokenResponse map[string]any)) { d.mu.Lock(); d.tamper = f; d.mu.Unlock() }

// SetGroups replaces the groups of the person whose ID is subject.
func (d *IDP) SetGroups(subject string, groups []string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.groups[subject] = slices.Clone(groups)
}

// Userinfos returns how many userinfo requests the provider served.
func (d *IDP) Userinfos() int { d.mu.Lock(); defer d.mu.Unlock(); return d.infos }

// Tokens returns every token the provider issued so far.
func (d *IDP) Tokens() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.issued)
}

// EndSessions ends every token the provider issued to ClientID for the
// person subject, as disabling them at the provider would.
func (d *IDP) EndSessions(ctx context.Context, subject string) error {
	return d.store.TerminateSession(ctx, subject, ClientID)
}

// Login is the configuration of the provider with a login section named
// name: ClientID with SecretFile, user:{preferred_username}; sre grants
// deploy:create and monitoring:read, dev monitoring:read, the verified
// address sam@example.com secrets:manage, mandate-admins the role admin.
func (d *IDP) Login(name string) config.IdentityProvider {
	return config.IdentityProvider{
		Issuer: d.Issuer,
		Login: &config.Login{
			Name: name, ClientID: ClientID, ClientSecretFile: d.SecretFile,
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

var hiddenID = regexp.MustCompile(`name="id" value="([^"]+)"`)

// SignIn drives a browser through the provider's login as username, from
// authURL (the provider's authorization URL) to the redirect to the
// callback, and returns the callback URL, not followed.
func (d *IDP) SignIn(t testing.TB, authURL, username string) *url.URL {
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
	form := url.Values{"id": {string(m[1])}, "username": {username}, "password": {Password}}
	resp, err := browser.Post(page.Request.URL.String(), "application/x-www-form-urlencoded", bytes.NewBufferString(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	cb := next(get(next(resp))) // the login sends the browser to the provider's callback, which redirects to Mandate
	if !strings.HasPrefix(cb, d.RedirectURI+"?") {
		t.Fatalf("redirected to %s, want %s", cb, d.RedirectURI)
	}
	u, err := url.Parse(cb)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
