package clientauth

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/mandate-dev/mandate/oauth"
)

// Credentials are what a client presented. Method is one of
// oauth.AuthMethodSecretBasic, oauth.AuthMethodSecretPost,
// oauth.AuthMethodPrivateKeyJWT and oauth.AuthMethodNone (a client_id
// alone, which only Authenticator.AuthenticateGrant accepts, for a public
// client).
type Credentials struct {
	ClientID      string
	Secret        string
	Assertion     string
	AssertionType string
	Method        string
}

// Form parameters of client authentication.
const (
	paramClientID            = "client_id"
	paramClientSecret        = "client_secret"
	paramClientAssertion     = "client_assertion"
	paramClientAssertionType = "client_assertion_type"
)

// Extract reads client credentials from the Authorization header (Basic,
// RFC 6749 §2.3.1: client id and secret are form-urlencoded before the
// base64 step, so they are decoded here) or from form, which must be the
// POST body only (r.PostForm): client_id with client_secret, or
// client_assertion with client_assertion_type (RFC 7523 §2.2). It returns
// an *oauth.Error: invalid_request when a parameter is repeated, when more
// than one method is used at once (RFC 6749 §2.3), or when the Basic client
// id and the form client_id differ; invalid_client when there are no
// credentials, the Authorization header is malformed or not Basic, or the
// assertion type is not jwt-bearer. A form with a client_id and no
// credential gives Method oauth.AuthMethodNone.
func Extract(r *http.Request, form url.Values) (Credentials, error) {
	for _, p := range []string{paramClientID, paramClientSecret, paramClientAssertion, paramClientAssertionType} {
		if len(form[p]) > 1 {
			return Credentials{}, oauth.InvalidRequest("repeated_parameter", "a client authentication parameter is repeated", nil)
		}
	}
	basic, hasBasic, err := basicAuth(r)
	if err != nil {
		return Credentials{}, err
	}
	hasPost := form.Has(paramClientSecret)
	hasJWT := form.Has(paramClientAssertion) || form.Has(paramClientAssertionType)
	methods := 0
	for _, b := range []bool{hasBasic, hasPost, hasJWT} {
		if b {
			methods++
		}
	}
	if methods > 1 {
		return Credentials{}, oauth.InvalidRequest("multiple_client_auth_methods", "more than one client authentication method used", nil)
	}
	formID := form.Get(paramClientID)
	switch {
	case hasBasic:
		if form.Has(paramClientID) && formID != basic.ClientID {
			return Credentials{}, oauth.InvalidRequest("client_id_mismatch", "client_id does not match the authenticated client", nil)
		}
		return basic, nil
	case hasPost:
		if formID == "" {
			return Credentials{}, failure(ReasonMalformed, nil)
		}
		return Credentials{ClientID: formID, Secret: form.Get(paramClientSecret), Method: oauth.AuthMethodSecretPost}, nil
	case hasJWT:
		c := Credentials{
			ClientID: formID, Assertion: form.Get(paramClientAssertion),
			AssertionType: form.Get(paramClientAssertionType), Method: oauth.AuthMethodPrivateKeyJWT,
		}
		if c.Assertion == "" || c.AssertionType == "" {
			return Credentials{}, oauth.InvalidRequest("assertion_incomplete", "client_assertion and client_assertion_type are both required", nil)
		}
		if c.AssertionType != oauth.ClientAssertionTypeJWTBearer {
			return Credentials{}, failure(ReasonAssertionType, nil)
		}
		return c, nil
	case formID != "":
		// A public client's request (RFC 6749 §2.3, OAuth 2.1 §2.4):
		// whether this id may go without a credential is the
		// Authenticator's to say.
		return Credentials{ClientID: formID, Method: oauth.AuthMethodNone}, nil
	default:
		return Credentials{}, failure(ReasonNoCredentials, nil)
	}
}

// basicAuth reads an Authorization: Basic header. Any other scheme, or
// more than one Authorization header, is refused: at these endpoints the
// header can only carry client credentials.
func basicAuth(r *http.Request) (Credentials, bool, error) {
	values := r.Header.Values("Authorization")
	switch {
	case len(values) == 0:
		return Credentials{}, false, nil
	case len(values) > 1:
		return Credentials{}, false, oauth.InvalidRequest("repeated_parameter", "more than one Authorization header", nil)
	}
	scheme, _, _ := strings.Cut(values[0], " ")
	if !strings.EqualFold(scheme, "Basic") {
		return Credentials{}, false, failure(ReasonMalformed, nil)
	}
	user, pass, ok := r.BasicAuth()
	if !ok {
		return Credentials{}, false, failure(ReasonMalformed, nil)
	}
	id, err1 := url.QueryUnescape(user)
	secret, err2 := url.QueryUnescape(pass)
	if err1 != nil || err2 != nil || id == "" {
		return Credentials{}, false, failure(ReasonMalformed, nil)
	}
	return Credentials{ClientID: id, Secret: secret, Method: oauth.AuthMethodSecretBasic}, true, nil
}
