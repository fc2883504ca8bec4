package registration

import (
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/mandate-dev/mandate/internal/directory"
	"github.com/mandate-dev/mandate/internal/store"
	"github.com/mandate-dev/mandate/internal/store/sqlite"
	"github.com/mandate-dev/mandate/oauth"
)

func newRegistrar(t *testing.T, p Policy) (*Registrar, *sqlite.Store) {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "mandate.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	n := 0
	return &Registrar{Directory: &directory.Directory{Store: st}, Agents: st, Policy: p, NewID: func() string {
		n++
		return "agent:reg-" + string(rune('a'+n))
	}}, st
}

func TestRegister(t *testing.T) {
	anyone := directory.Performer{ID: "anonymous"}
	for _, tc := range []struct {
		name       string
		policy     Policy
		req        Request
		wantCode   oauth.ErrorCode
		wantReason string
		want       Metadata
		public     bool
	}{
		{name: "ok/open-public", policy: Policy{Mode: PolicyOpen, Scopes: []string{"notes:read", "notes:write"}},
			req: Request{Performer: anyone, Metadata: Metadata{RedirectURIs: []string{"http://127.0.0.1:3000/cb"},
				TokenEndpointAuthMethod: "none", GrantTypes: []string{"authorization_code", "refresh_token"}, ClientName: " Notes ", Scope: "notes:read"}},
			want: Metadata{RedirectURIs: []string{"http://127.0.0.1:3000/cb"}, TokenEndpointAuthMethod: "none",
				GrantTypes: []string{"authorization_code", "refresh_token"}, ResponseTypes: []string{"code"}, ClientName: "Notes", Scope: "notes:read"},
			public: true},
		{name: "ok/defaults-confidential-ceiling", policy: Policy{Mode: PolicyOpen, Scopes: []string{"a", "b"}},
			req: Request{Performer: anyone, Metadata: Metadata{RedirectURIs: []string{"https://app.example/cb"}}},
			want: Metadata{RedirectURIs: []string{"https://app.example/cb"}, TokenEndpointAuthMethod: "client_secret_basic",
				GrantTypes: []string{"authorization_code"}, ResponseTypes: []string{"code"}, Scope: "a b"}},
		{name: "ok/approved-loopback-any-port", policy: Policy{Mode: PolicyApprovedRedirects, RedirectURIs: []string{"http://127.0.0.1/cb"}},
			req: Request{Performer: anyone, Metadata: Metadata{RedirectURIs: []string{"http://127.0.0.1:49152/cb"}, TokenEndpointAuthMethod: "none"}},
			want: Metadata{RedirectURIs: []string{"http://127.0.0.1:49152/cb"}, TokenEndpointAuthMethod: "none",
				GrantTypes: []string{"authorization_code"}, ResponseTypes: []string{"code"}}, public: true},
		{name: "ok/admin-only-admin", policy: Policy{},
			req: Request{Admin: true, Performer: directory.Performer{ID: "admin"}, Metadata: Metadata{RedirectURIs: []string{"https://app.example/cb"}, TokenEndpointAuthMethod: "client_secret_post"}},
			want: Metadata{RedirectURIs: []string{"https://app.example/cb"}, TokenEndpointAuthMethod: "client_secret_post",
				GrantTypes: []string{"authorization_code"}, ResponseTypes: []string{"code"}}},
		{name: "fail/admin-only-anonymous", policy: Policy{Mode: PolicyAdminOnly},
			req:      Request{Performer: anyone, Metadata: Metadata{RedirectURIs: []string{"https://app.example/cb"}}},
			wantCode: oauth.ErrInvalidToken, wantReason: ReasonAdminOnly},
		{name: "fail/approved-other-redirect", policy: Policy{Mode: PolicyApprovedRedirects, RedirectURIs: []string{"https://app.example/cb"}},
			req:      Request{Performer: anyone, Metadata: Metadata{RedirectURIs: []string{"https://evil.example/cb"}}},
			wantCode: ErrInvalidRedirectURI, wantReason: ReasonNotApproved},
		{name: "fail/no-redirect", policy: Policy{Mode: PolicyOpen},
			req: Request{Performer: anyone}, wantCode: ErrInvalidRedirectURI, wantReason: ReasonRedirectURI},
		{name: "fail/http-redirect", policy: Policy{Mode: PolicyOpen},
			req:      Request{Performer: anyone, Metadata: Metadata{RedirectURIs: []string{"http://app.example/cb"}}},
			wantCode: ErrInvalidRedirectURI, wantReason: ReasonRedirectURI},
		{name: "fail/grant-client-credentials", policy: Policy{Mode: PolicyOpen},
			req:      Request{Performer: anyone, Metadata: Metadata{RedirectURIs: []string{"https://app.example/cb"}, GrantTypes: []string{"client_credentials"}}},
			wantCode: ErrInvalidClientMetadata, wantReason: ReasonMetadata},
		{name: "fail/auth-method-private-key-jwt", policy: Policy{Mode: PolicyOpen},
			req:      Request{Performer: anyone, Metadata: Metadata{RedirectURIs: []string{"https://app.example/cb"}, TokenEndpointAuthMethod: "private_key_jwt"}},
			wantCode: ErrInvalidClientMetadata, wantReason: ReasonMetadata},
		{name: "fail/response-type-token", policy: Policy{Mode: PolicyOpen},
			req:      Request{Performer: anyone, Metadata: Metadata{RedirectURIs: []string{"https://app.example/cb"}, ResponseTypes: []string{"token"}}},
			wantCode: ErrInvalidClientMetadata, wantReason: ReasonMetadata},
		{name: "fail/scope-beyond-ceiling", policy: Policy{Mode: PolicyOpen, Scopes: []string{"a"}},
			req:      Request{Performer: anyone, Metadata: Metadata{RedirectURIs: []string{"https://app.example/cb"}, Scope: "a admin"}},
			wantCode: ErrInvalidClientMetadata, wantReason: ReasonScope},
		{name: "fail/client-name-control", policy: Policy{Mode: PolicyOpen},
			req:      Request{Performer: anyone, Metadata: Metadata{RedirectURIs: []string{"https://app.example/cb"}, ClientName: "a\x1bb"}},
			wantCode: ErrInvalidClientMetadata, wantReason: ReasonMetadata},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, st := newRegistrar(t, tc.policy)
			got, err := r.Register(t.Context(), tc.req)
			if tc.wantCode != "" {
				if e := oauth.As(err); err == nil || e.Code != tc.wantCode || e.Reason != tc.wantReason {
					t.Fatalf("Register error = %v, want %s (%s)", err, tc.wantCode, tc.wantReason)
				}
				if agents, _ := st.ListAgents(t.Context()); len(agents) != 0 {
					t.Errorf("a refused registration stored %d agents", len(agents))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.want, got.Metadata); d != "" {
				t.Errorf("metadata (-want +got):\n%s", d)
			}
			if (got.ClientSecret == "") != tc.public {
				t.Errorf("client_secret given = %t, public = %t", got.ClientSecret != "", tc.public)
			}
			a, err := st.GetAgent(t.Context(), got.ClientID)
			if err != nil {
				t.Fatal(err)
			}
			if a.Public != tc.public || a.Registration != store.RegistrationDCR || a.Name != tc.want.ClientName ||
				len(a.DelegateTo) != 0 || a.CreatedAt.Unix() != got.ClientIDIssuedAt {
				t.Errorf("stored agent = %+v", a)
			}
		})
	}
}

func TestRegisterMaxClients(t *testing.T) {
	r, _ := newRegistrar(t, Policy{Mode: PolicyOpen, MaxClients: 1})
	req := Request{Performer: directory.Performer{ID: "anonymous"},
		Metadata: Metadata{RedirectURIs: []string{"https://app.example/cb"}, TokenEndpointAuthMethod: "none"}}
	if _, err := r.Register(t.Context(), req); err != nil {
		t.Fatal(err)
	}
	_, err := r.Register(t.Context(), req)
	if e := oauth.As(err); err == nil || e.Reason != ReasonTooManyClients || e.HTTPStatus() != 403 {
		t.Fatalf("second registration: %v, want access_denied %s", err, ReasonTooManyClients)
	}
	req.Admin = true
	if _, err := r.Register(t.Context(), req); err != nil {
		t.Fatalf("an administrator is not bound by max_clients: %v", err)
	}
}
