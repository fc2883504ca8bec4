package clientauth

import (
	"net/url"
	"testing"

	"github.com/mandate-dev/mandate/internal/store"
	"github.com/mandate-dev/mandate/oauth"
)

func TestAuthenticateGrantPublic(t *testing.T) {
	f := newFixture(t)
	for _, a := range []store.Agent{
		{ID: "agent:public", Public: true, RedirectURIs: []string{"http://127.0.0.1/cb"}},
		{ID: "agent:public-off", Public: true, Disabled: true},
		{ID: "agent:dcr", SecretHash: HashSecret("dcr-secret"), Registration: store.RegistrationDCR},
	} {
		if err := f.store.CreateAgent(t.Context(), a); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name       string
		form       url.Values
		basic      [2]string
		grant      string
		wantID     string
		wantCode   oauth.ErrorCode
		wantReason string
		registered bool
	}{
		{name: "ok/code", form: url.Values{"client_id": {"agent:public"}}, grant: oauth.GrantAuthorizationCode, wantID: "agent:public"},
		{name: "ok/refresh", form: url.Values{"client_id": {"agent:public"}}, grant: oauth.GrantRefreshToken, wantID: "agent:public"},
		{name: "ok/confidential-still-authenticates", form: url.Values{}, basic: [2]string{url.QueryEscape("agent:secret"), url.QueryEscape("s3cret+/:%")},
			grant: oauth.GrantTokenExchange, wantID: "agent:secret"},
		{name: "ok/registered-code", form: url.Values{"client_id": {"agent:dcr"}, "client_secret": {"dcr-secret"}},
			grant: oauth.GrantAuthorizationCode, wantID: "agent:dcr"},
		{name: "fail/registered-client-credentials", form: url.Values{"client_id": {"agent:dcr"}, "client_secret": {"dcr-secret"}},
			grant: oauth.GrantClientCredentials, wantCode: oauth.ErrUnauthorizedClient, wantReason: ReasonPublicGrant, registered: true},
		{name: "fail/public-token-exchange", form: url.Values{"client_id": {"agent:public"}}, grant: oauth.GrantTokenExchange,
			wantCode: oauth.ErrUnauthorizedClient, wantReason: ReasonPublicGrant, registered: true},
		{name: "fail/public-client-credentials", form: url.Values{"client_id": {"agent:public"}}, grant: oauth.GrantClientCredentials,
			wantCode: oauth.ErrUnauthorizedClient, wantReason: ReasonPublicGrant, registered: true},
		{name: "fail/public-disabled", form: url.Values{"client_id": {"agent:public-off"}}, grant: oauth.GrantAuthorizationCode,
			wantCode: oauth.ErrInvalidClient, wantReason: ReasonDisabled, registered: true},
		{name: "fail/confidential-without-secret", form: url.Values{"client_id": {"agent:secret"}}, grant: oauth.GrantAuthorizationCode,
			wantCode: oauth.ErrInvalidClient, wantReason: ReasonNoCredentials},
		{name: "fail/unknown-without-secret", form: url.Values{"client_id": {"agent:nobody"}}, grant: oauth.GrantAuthorizationCode,
			wantCode: oauth.ErrInvalidClient, wantReason: ReasonNoCredentials},
		{name: "fail/public-with-a-secret", form: url.Values{"client_id": {"agent:public"}, "client_secret": {"guess"}},
			grant: oauth.GrantAuthorizationCode, wantCode: oauth.ErrInvalidClient, wantReason: ReasonMethodMismatch, registered: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Extract(request(tc.form, tc.basic[0], tc.basic[1]), tc.form)
			if err != nil {
				t.Fatalf("Extract: %v", err)
			}
			got, err := f.auth.AuthenticateGrant(t.Context(), c, tc.grant)
			if tc.wantCode == "" {
				if err != nil || got.ID != tc.wantID {
					t.Fatalf("AuthenticateGrant = %q, %v; want %q", got.ID, err, tc.wantID)
				}
				return
			}
			e := oauth.As(err)
			if err == nil || e.Code != tc.wantCode || e.Reason != tc.wantReason {
				t.Fatalf("AuthenticateGrant error = %v (code %q, reason %q); want %q, %q", err, e.Code, e.Reason, tc.wantCode, tc.wantReason)
			}
			if _, ok := RegisteredClient(err); ok != tc.registered {
				t.Errorf("RegisteredClient = %t, want %t", ok, tc.registered)
			}
		})
	}
}

// TestAuthenticateRefusesPublic: outside a grant (introspection,
// revocation, reports) a client_id alone authenticates no one, not even a
// public client.
func TestAuthenticateRefusesPublic(t *testing.T) {
	f := newFixture(t)
	if err := f.store.CreateAgent(t.Context(), store.Agent{ID: "agent:public", Public: true}); err != nil {
		t.Fatal(err)
	}
	form := url.Values{"client_id": {"agent:public"}}
	c, err := Extract(request(form, "", ""), form)
	if err != nil || c.Method != oauth.AuthMethodNone {
		t.Fatalf("Extract = %+v, %v; want method none", c, err)
	}
	_, err = f.auth.Authenticate(t.Context(), c)
	if e := oauth.As(err); err == nil || e.Code != oauth.ErrInvalidClient || e.Reason != ReasonNoCredentials {
		t.Fatalf("Authenticate error = %v, want invalid_client %s", err, ReasonNoCredentials)
	}
}
