package upstream_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"testing"

	"github.com/mandate-dev/mandate/internal/config"
	"github.com/mandate-dev/mandate/internal/upstream"
	"github.com/mandate-dev/mandate/internal/upstream/upstreamtest"
)

// The provider in these tests is upstreamtest's: zitadel/oidc's OpenID
// Provider with its example storage and a groups claim.

const (
	clientID       = upstreamtest.ClientID
	clientSecret   = upstreamtest.ClientSecret
	publicClientID = upstreamtest.PublicClientID
	redirectURI    = "http://127.0.0.1:9/callback"
)

// testIDP is one running provider.
type testIDP struct {
	*upstreamtest.IDP
	issuer string
}

// newIDP starts a provider whose clients call back to redirectURI.
func newIDP(t *testing.T) *testIDP {
	t.Helper()
	d := upstreamtest.New(t, redirectURI)
	return &testIDP{IDP: d, issuer: d.Issuer}
}

func (d *testIDP) login(name string) config.IdentityProvider { return d.Login(name) }

func (d *testIDP) tokens() []string { return d.Tokens() }

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

// start begins a sign-in at p and takes it through the provider's login.
func (d *testIDP) start(t *testing.T, p *upstream.Provider, username string) (url.Values, upstream.Pending) {
	t.Helper()
	authURL, st, err := p.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return d.SignIn(t, authURL, username).Query(), st
}

func describe(v any) string { return fmt.Sprintf("%v %+v %#v", v, v, v) }
