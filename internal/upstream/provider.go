package upstream

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/zitadel/oidc/v3/pkg/client/rp"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"golang.org/x/oauth2"

	"github.com/mandate-dev/mandate/internal/config"
)

// Errors Finish and Recheck wrap, for callers to branch on. None of their
// texts holds a code, a token or a secret.
var (
	// ErrState is a callback whose state is not the pending sign-in's, or
	// a pending sign-in of another provider.
	ErrState = errors.New("upstream: the callback does not belong to this sign-in")
	// ErrIssuer is a callback whose iss (RFC 9207) is missing where the
	// provider promises it, or names another issuer: a mix-up of two
	// providers.
	ErrIssuer = errors.New("upstream: the callback's iss is not this provider's")
	// ErrDenied is a callback that carries an error instead of a code:
	// the person declined, or the provider refused.
	ErrDenied = errors.New("upstream: the provider answered with an error")
	// ErrExchange is a code that could not be redeemed, or tokens that
	// failed verification.
	ErrExchange = errors.New("upstream: the provider's tokens were not accepted")
	// ErrClaims is a person whose claims make no valid Mandate id.
	ErrClaims = errors.New("upstream: the provider's claims make no valid person id")
	// ErrRefused is a refresh token the provider refused (invalid_grant):
	// the person was removed or disabled there, or withdrew the grant.
	// Recheck's caller then ends what the person delegated.
	ErrRefused = errors.New("upstream: the provider refused the refresh token")
)

// maxDiscovery is the largest discovery document New reads.
const maxDiscovery = 1 << 20

// defaultTimeout bounds each request to the provider when New is given no
// client.
const defaultTimeout = 10 * time.Second

// maxShown bounds the text of the provider's own that an error carries.
const maxShown = 200

// Provider is one identity provider people sign in through. It is safe for
// concurrent use; it keeps no state between Start and Finish (the caller
// keeps Pending).
type Provider struct {
	issuer string
	name   string
	rp     rp.RelyingParty
	// refresh redeems refresh tokens; its ID tokens are checked by
	// refreshVerifier, which does not expect the sign-in's nonce.
	refresh         rp.RelyingParty
	refreshVerifier *rp.IDTokenVerifier
	// issParam is the provider's authorization_response_iss_parameter_supported
	// (RFC 9207 §3): every callback then carries iss.
	issParam bool
	userID   []config.TemplatePart
	perms    []config.ClaimRule
	roles    []config.ClaimRule
}

// nonceKey carries the pending sign-in's nonce to the ID token verifier,
// which reads it from the context of the code exchange.
type nonceKey struct{}

func nonceFrom(ctx context.Context) string {
	n, _ := ctx.Value(nonceKey{}).(string)
	return n
}

// New builds the provider of idp, which must have a login section, from
// its discovery document at ISSUER/.well-known/openid-configuration, whose
// issuer must equal idp.Issuer. redirectURI is Mandate's callback, as
// registered at the provider; hc makes every request to the provider (nil:
// a client with a 10 s timeout). ID tokens are accepted signed with
// idp.Algorithms only. New fails when the provider cannot be reached or
// the client secret file cannot be read; the error holds no secret.
func New(ctx context.Context, idp config.IdentityProvider, redirectURI string, hc *http.Client) (*Provider, error) {
	l := idp.Login
	if l == nil {
		return nil, fmt.Errorf("upstream: %s has no login section", idp.Issuer)
	}
	if hc == nil {
		hc = &http.Client{Timeout: defaultTimeout}
	}
	scopes := l.RequestedScopes()
	if !slices.Contains(scopes, oidc.ScopeOpenID) {
		return nil, fmt.Errorf("upstream: %s: scopes must hold openid", idp.Issuer)
	}
	tmpl, err := config.ParseUserIDTemplate(l.UserID)
	if err != nil {
		return nil, fmt.Errorf("upstream: %s: user_id %w", idp.Issuer, err)
	}
	secret, err := l.ResolveClientSecret()
	if err != nil {
		return nil, fmt.Errorf("upstream: %s: %w", idp.Issuer, err)
	}
	issParam, err := discoverISSParameter(ctx, hc, idp.Issuer)
	if err != nil {
		return nil, err
	}
	algs := idp.Algorithms
	if len(algs) == 0 {
		algs = config.DefaultIdentityProviderAlgs()
	}
	relying, err := rp.NewRelyingPartyOIDC(ctx, idp.Issuer, l.ClientID, secret, redirectURI, scopes,
		rp.WithHTTPClient(hc),
		rp.WithVerifierOpts(rp.WithNonce(nonceFrom), rp.WithSupportedSigningAlgorithms(algs...)))
	if err != nil {
		return nil, fmt.Errorf("upstream: discovery at %s: %s", idp.Issuer, describe(err))
	}
	oc := relying.OAuthConfig()
	refresh, err := rp.NewRelyingPartyOAuth(&oauth2.Config{
		ClientID: oc.ClientID, ClientSecret: oc.ClientSecret, Endpoint: oc.Endpoint, RedirectURL: oc.RedirectURL, Scopes: oc.Scopes,
	}, rp.WithHTTPClient(hc))
	if err != nil {
		return nil, fmt.Errorf("upstream: %s: %w", idp.Issuer, err)
	}
	// OpenID Connect Core §12.2: a refreshed ID token need not carry the
	// nonce of the sign-in; iss, aud, the signature and exp are checked
	// as at sign-in, and Recheck checks sub.
	refreshVerifier := rp.NewIDTokenVerifier(idp.Issuer, l.ClientID, relying.IDTokenVerifier().KeySet,
		rp.WithSupportedSigningAlgorithms(algs...), rp.WithNonce(nil))
	return &Provider{
		issuer: idp.Issuer, name: l.Name, rp: relying, refresh: refresh, refreshVerifier: refreshVerifier,
		issParam: issParam, userID: tmpl, perms: l.Permissions, roles: l.Roles,
	}, nil
}

// discoverISSParameter reads authorization_response_iss_parameter_supported
// from the discovery document (the rp package does not keep it).
func discoverISSParameter(ctx context.Context, hc *http.Client, issuer string) (bool, error) {
	u := strings.TrimSuffix(issuer, "/") + oidc.DiscoveryEndpoint
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return false, fmt.Errorf("upstream: discovery at %s: %w", issuer, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return false, fmt.Errorf("upstream: discovery at %s: %w", issuer, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false, fmt.Errorf("upstream: discovery at %s: status %d", issuer, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxDiscovery+1))
	if err != nil {
		return false, fmt.Errorf("upstream: discovery at %s: %w", issuer, err)
	}
	if len(body) > maxDiscovery {
		return false, fmt.Errorf("upstream: discovery at %s: larger than %d bytes", issuer, maxDiscovery)
	}
	var doc struct {
		Issuer   string `json:"issuer"`
		ISSParam bool   `json:"authorization_response_iss_parameter_supported"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return false, fmt.Errorf("upstream: discovery at %s: %w", issuer, err)
	}
	if doc.Issuer != issuer {
		return false, fmt.Errorf("upstream: discovery at %s names issuer %s", issuer, shown(doc.Issuer))
	}
	return doc.ISSParam, nil
}

// Issuer returns the provider's issuer, as configured.
func (p *Provider) Issuer() string { return p.issuer }

// Name returns the name shown on the sign-in page.
func (p *Provider) Name() string { return p.name }

// Pending is what the caller keeps, server-side, between Start and Finish,
// found again by State. It is JSON-serialisable and holds secrets (Nonce,
// Verifier): store it, never log it, and use it once.
type Pending struct {
	Issuer   string `json:"issuer"`
	State    string `json:"state"`
	Nonce    string `json:"nonce"`
	Verifier string `json:"verifier"`
}

// String never prints Nonce and Verifier.
func (st Pending) String() string {
	return fmt.Sprintf("{Issuer:%s State:%s Nonce:[redacted] Verifier:[redacted]}", st.Issuer, st.State)
}

// GoString never prints Nonce and Verifier.
func (st Pending) GoString() string { return "upstream.Pending" + st.String() }

// Start begins a sign-in: it returns the provider's authorization URL to
// send the browser to, asking for a code with PKCE (S256) and a nonce, and
// the Pending state the caller must keep, keyed by its State, until the
// callback. Every value is fresh and random (256 bits).
func (p *Provider) Start(ctx context.Context) (authURL string, st Pending, err error) {
	st = Pending{Issuer: p.issuer}
	for _, v := range []*string{&st.State, &st.Nonce, &st.Verifier} {
		if *v, err = random(); err != nil {
			return "", Pending{}, err
		}
	}
	nonce := rp.AuthURLOpt(func() []oauth2.AuthCodeOption {
		return []oauth2.AuthCodeOption{oauth2.SetAuthURLParam("nonce", st.Nonce)}
	})
	authURL = rp.AuthURL(st.State, p.rp, rp.WithCodeChallenge(oidc.NewSHACodeChallenge(st.Verifier)), nonce)
	return authURL, st, nil
}

func random() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("upstream: random: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// Finish checks the callback's query against st, the Pending of its
// state, and returns who signed in. In order: st is this provider's; the
// iss parameter (RFC 9207 §2.4), required when the provider advertises it
// and, when present, equal to the issuer, so that a code from another
// provider is never sent here; state equals st.State; an error parameter
// ends it (ErrDenied, with the provider's code and description escaped and
// bounded); the code is redeemed with st.Verifier; the ID token's
// signature, iss, aud, exp and nonce are verified. Claims the rules need
// and the ID token lacks are read from the userinfo endpoint.
//
// The caller must take st out of its store before calling Finish, so that
// a callback is used once. Errors wrap ErrState, ErrIssuer, ErrDenied,
// ErrExchange or ErrClaims and never hold a code, token or secret.
func (p *Provider) Finish(ctx context.Context, query url.Values, st Pending) (Identity, error) {
	if st.Issuer != p.issuer || st.State == "" || st.Nonce == "" || st.Verifier == "" {
		return Identity{}, fmt.Errorf("%w: the pending sign-in is not one of %s", ErrState, p.issuer)
	}
	if iss, ok := query["iss"]; ok || p.issParam {
		if len(iss) != 1 || iss[0] != p.issuer {
			return Identity{}, fmt.Errorf("%w: want %s, got %s", ErrIssuer, p.issuer, shown(strings.Join(iss, " ")))
		}
	}
	if state := query.Get("state"); len(query["state"]) != 1 || subtle.ConstantTimeCompare([]byte(state), []byte(st.State)) != 1 {
		return Identity{}, fmt.Errorf("%w: state differs", ErrState)
	}
	if query.Has("error") {
		why := shown(query.Get("error"))
		if d := query.Get("error_description"); d != "" {
			why += " (" + shown(d) + ")"
		}
		return Identity{}, fmt.Errorf("%w: %s: %s", ErrDenied, p.issuer, why)
	}
	code := query.Get("code")
	if len(query["code"]) != 1 || code == "" {
		return Identity{}, fmt.Errorf("%w: the callback has no code", ErrExchange)
	}
	ctx = context.WithValue(ctx, nonceKey{}, st.Nonce)
	tokens, err := rp.CodeExchange[*oidc.IDTokenClaims](ctx, code, p.rp, rp.WithCodeVerifier(st.Verifier))
	if err != nil {
		return Identity{}, fmt.Errorf("%w: %s: %s", ErrExchange, p.issuer, describe(err))
	}
	id, err := p.identity(ctx, tokens, tokens.IDTokenClaims.Subject)
	if err != nil {
		return Identity{}, err
	}
	id.RefreshToken = tokens.RefreshToken
	return id, nil
}

// Recheck asks the provider again whether subject (Identity.Subject of the
// sign-in) still holds what it held: it redeems refreshToken (granted at
// sign-in when the scopes hold offline_access) and maps the claims of the
// new ID token, or of userinfo when the provider sends none, as Finish
// does. The returned Identity carries the refresh token to keep next: the
// provider's new one, or refreshToken when it does not rotate them.
//
// A refusal (invalid_grant: the person was removed or disabled, or the
// grant withdrawn) wraps ErrRefused: the caller revokes what the person
// delegated. Any other error (the provider unreachable) says nothing about
// the person; the caller tries again later.
func (p *Provider) Recheck(ctx context.Context, subject, refreshToken string) (Identity, error) {
	if refreshToken == "" || subject == "" {
		return Identity{}, fmt.Errorf("upstream: recheck at %s: no refresh token or subject", p.issuer)
	}
	tokens, err := rp.RefreshTokens[*oidc.IDTokenClaims](ctx, p.refresh, refreshToken, "", "")
	if err != nil {
		var oe *oidc.Error
		var re *oauth2.RetrieveError
		if (errors.As(err, &oe) && oe.ErrorType == oidc.InvalidGrant) || (errors.As(err, &re) && re.ErrorCode == string(oidc.InvalidGrant)) {
			return Identity{}, fmt.Errorf("%w: %s: %s", ErrRefused, p.issuer, describe(err))
		}
		return Identity{}, fmt.Errorf("upstream: recheck at %s: %s", p.issuer, describe(err))
	}
	if raw, ok := tokens.Extra("id_token").(string); ok && raw != "" {
		claims, err := rp.VerifyTokens[*oidc.IDTokenClaims](ctx, tokens.AccessToken, raw, p.refreshVerifier)
		if err != nil {
			return Identity{}, fmt.Errorf("%w: %s: refreshed ID token: %s", ErrExchange, p.issuer, describe(err))
		}
		if claims.Subject != subject {
			return Identity{}, fmt.Errorf("%w: %s: the refreshed ID token names another subject", ErrExchange, p.issuer)
		}
		tokens.IDTokenClaims = claims
	} else {
		// No ID token: every claim comes from userinfo, whose sub must be
		// the person's (checked by rp.Userinfo).
		tokens.IDTokenClaims = &oidc.IDTokenClaims{Claims: map[string]any{}}
	}
	id, err := p.identity(ctx, tokens, subject)
	if err != nil {
		return Identity{}, err
	}
	id.RefreshToken = tokens.RefreshToken
	if id.RefreshToken == "" {
		id.RefreshToken = refreshToken
	}
	return id, nil
}

// describe is the text of an error of the rp package, the token endpoint
// or userinfo, without what the provider sent (a response body may be
// printed whole by the libraries), quoted and bounded.
func describe(err error) string {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		status := 0
		if re.Response != nil {
			status = re.Response.StatusCode
		}
		s := fmt.Sprintf("token endpoint answered %d %s", status, shown(re.ErrorCode))
		if re.ErrorDescription != "" {
			s += " (" + shown(re.ErrorDescription) + ")"
		}
		return s
	}
	// The library's verification errors wrap one of its sentinels with
	// the values compared, a nonce among them: say the sentinel only.
	for _, sentinel := range verificationErrors {
		if errors.Is(err, sentinel) {
			return sentinel.Error()
		}
	}
	var oe *oidc.Error
	if errors.As(err, &oe) {
		s := shown(string(oe.ErrorType))
		if oe.Description != "" {
			s += " (" + shown(oe.Description) + ")"
		}
		return s
	}
	// The libraries append a body after the message ("http status not
	// ok: 400 Bad Request {...}", "failed to unmarshal response: ...
	// BODY"): keep the message only.
	msg := err.Error()
	if i := strings.IndexAny(msg, "{\n"); i >= 0 {
		msg = msg[:i]
	}
	if i := strings.Index(msg, "unmarshal response: "); i >= 0 {
		msg = msg[:i+len("unmarshal response")]
	}
	return shown(strings.TrimSpace(msg))
}

// verificationErrors are the rp and oidc packages' errors of tokens that
// fail verification.
var verificationErrors = []error{
	oidc.ErrParse, oidc.ErrIssuerInvalid, oidc.ErrSubjectMissing, oidc.ErrSubjectInvalid, oidc.ErrAudience,
	oidc.ErrAzpMissing, oidc.ErrAzpInvalid, oidc.ErrSignatureMissing, oidc.ErrSignatureMultiple,
	oidc.ErrSignatureUnsupportedAlg, oidc.ErrSignatureInvalidPayload, oidc.ErrSignatureInvalid, oidc.ErrExpired,
	oidc.ErrIatMissing, oidc.ErrIatInFuture, oidc.ErrIatToOld, oidc.ErrNonceInvalid, oidc.ErrAcrInvalid,
	oidc.ErrAuthTimeNotPresent, oidc.ErrAuthTimeToOld, oidc.ErrAtHash, rp.ErrMissingIDToken, rp.ErrUserInfoSubNotMatching,
}

// shown quotes text from the provider for an error (strconv.Quote escapes
// control, format and invalid bytes) after cutting it to maxShown bytes.
func shown(s string) string {
	if len(s) > maxShown {
		s = s[:maxShown] + "…"
	}
	return strconv.Quote(s)
}
