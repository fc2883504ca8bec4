package clientauth

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mandate-dev/mandate/internal/store"
	"github.com/mandate-dev/mandate/internal/token"
	"github.com/mandate-dev/mandate/jwks"
	"github.com/mandate-dev/mandate/jwt"
	"github.com/mandate-dev/mandate/oauth"
)

// Reasons recorded in oauth.Error.Reason (and so in the audit trail) for a
// refused client authentication. The client sees only invalid_client with
// the same description for all of them.
const (
	ReasonNoCredentials       = "client_unauthenticated"
	ReasonMalformed           = "client_credentials_malformed"
	ReasonUnknown             = "client_unknown"
	ReasonSecretMismatch      = "client_secret_mismatch"
	ReasonMethodMismatch      = "client_auth_method_mismatch"
	ReasonDisabled            = "client_disabled"
	ReasonAssertionType       = "assertion_type_unsupported"
	ReasonAssertionInvalid    = "assertion_invalid"
	ReasonAssertionSignature  = "assertion_signature_invalid"
	ReasonAssertionKeyUnknown = "assertion_key_unknown"
	ReasonAssertionAudience   = "assertion_audience_invalid"
	ReasonAssertionSubject    = "assertion_subject_mismatch"
	ReasonAssertionExpired    = "assertion_expired"
	ReasonAssertionLifetime   = "assertion_lifetime_too_long"
	ReasonAssertionNotYet     = "assertion_not_yet_valid"
	ReasonAssertionNoJTI      = "assertion_jti_missing"
	ReasonAssertionReplayed   = "assertion_replayed"
	ReasonKeysInvalid         = "client_keys_invalid"
	// ReasonPublicGrant is a public or self-registered client asking for
	// a grant other than the authorization code and the refresh token
	// (unauthorized_client).
	ReasonPublicGrant = "public_client_grant"
)

// Limits and defaults.
const (
	// MaxAssertionLifetime bounds exp−iat of a client assertion, and exp−now
	// up to the leeway.
	MaxAssertionLifetime = 5 * time.Minute
	// DefaultLeeway is the allowed clock skew.
	DefaultLeeway = 60 * time.Second
	// NonceNamespace is the store.Nonces namespace of assertion jti values.
	NonceNamespace = "client_assertion"
	maxClientIDLen = 256
	maxInlineSets  = 4096
)

// AssertionAlgorithms returns the algorithms a client assertion
// (private_key_jwt) may be signed with: ES256, EdDSA, RS256 and PS256. Each
// key narrows them further to its own (jwt.AlgorithmsFor). The discovery
// document advertises the same list.
func AssertionAlgorithms() []string { return []string{"ES256", "EdDSA", "RS256", "PS256"} }

// AgentSource finds agents; store.Agents and caches over it satisfy it.
// GetAgent returns an error wrapping store.ErrNotFound for an unknown id.
type AgentSource interface {
	GetAgent(ctx context.Context, id string) (store.Agent, error)
}

// Authenticator checks client credentials. Agents, Nonces and Issuer are
// required. Its exported fields must not change once it is in use; it is
// then safe for concurrent use.
type Authenticator struct {
	Agents AgentSource
	// Nonces records assertion jti values (single use, RFC 7523 §3 item 7).
	Nonces store.Nonces
	// Issuer and TokenEndpoint are the audiences a client assertion may
	// name (RFC 7523 §3 item 3).
	Issuer        string
	TokenEndpoint string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Leeway is the allowed clock skew; zero means DefaultLeeway.
	Leeway time.Duration
	// KeySourceFor returns the key source of an agent that publishes its
	// keys at a jwks_uri (usually a *jwks.Cache per agent). Nil means such
	// agents cannot use private_key_jwt. Agents with inline JWKS do not
	// need it.
	KeySourceFor func(a store.Agent) (token.KeySource, error)

	mu     sync.Mutex
	inline map[string]inlineSet // parsed store.Agent.JWKS by agent id
}

type inlineSet struct {
	raw []byte
	set jwks.Static
}

// dummyHash is compared against when there is no stored hash, so an unknown
// client costs what a known one does.
var dummyHash = sha256.Sum256([]byte("mandate: no such client"))

// HashSecret returns the stored form of a client secret: SHA-256. Secrets
// are high-entropy random values, so a fast hash is enough and keeps a slow
// password hash off the token path (THREATS.md "Decisions" 9).
func HashSecret(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// failure is the one invalid_client answer; only reason and cause differ.
func failure(reason string, cause error) *oauth.Error {
	return oauth.InvalidClient(reason, "client authentication failed", cause)
}

// registered is the cause of a refusal of a client the store holds; see
// RegisteredClient.
type registered struct {
	id  string
	err error
}

func (r *registered) Error() string {
	if r.err == nil {
		return "registered client refused"
	}
	return r.err.Error()
}

func (r *registered) Unwrap() error { return r.err }

// refusedClient marks err, a refusal of the registered client id, so that
// RegisteredClient finds it. Other errors (temporarily_unavailable) are
// returned as they are.
func refusedClient(id string, err error) error {
	var e *oauth.Error
	if !errors.As(err, &e) || (e.Code != oauth.ErrInvalidClient && e.Code != oauth.ErrUnauthorizedClient) {
		return err
	}
	marked := *e
	marked.Err = &registered{id: id, err: e.Err}
	return &marked
}

// RegisteredClient returns the id of the client an Authenticate refusal
// is about when the store holds that client: a wrong secret, a forged or
// replayed assertion, a disabled client. ok is false when the presented
// id is not one the store holds, or when the refusal came before any id
// was looked up (no credentials, malformed ones, an assertion that does
// not parse). The id is the store's, and for private_key_jwt without a
// client_id it is the assertion's subject.
func RegisteredClient(err error) (id string, ok bool) {
	var r *registered
	if errors.As(err, &r) {
		return r.id, true
	}
	return "", false
}

// Authenticate checks c and returns the authenticated agent. Every refusal
// is an *oauth.Error: invalid_client (401) with a Reason from the constants
// above; a store or key source that cannot answer gives
// temporarily_unavailable (503), so that the request fails closed. A
// client_id alone (oauth.AuthMethodNone) is refused as no credentials,
// whoever it names: a public client authenticates only for a grant
// (AuthenticateGrant), never to introspect, revoke or report.
func (a *Authenticator) Authenticate(ctx context.Context, c Credentials) (store.Agent, error) {
	return a.authenticate(ctx, c)
}

// PublicGrants are the grants a public client may use: the authorization
// code (PKCE is required of every client) and the refresh token (rotated
// at each use, so a stolen one that is used twice revokes the grant).
func PublicGrants() []string {
	return []string{oauth.GrantAuthorizationCode, oauth.GrantRefreshToken}
}

// AuthenticateGrant is Authenticate at the token endpoint for grantType.
// A client that registered itself (store.RegistrationDCR, RegistrationCIMD)
// may use PublicGrants only, whatever its credential: it acts for people
// only through their consent. It also accepts a public client (store.Agent.Public) that presents its
// client_id and no credential (oauth.AuthMethodNone), for PublicGrants
// only: for any other grant the answer is unauthorized_client (400,
// ReasonPublicGrant), recorded under the client's id (RegisteredClient).
// A client_id alone that names no public client is refused as no
// credentials (invalid_client), as before public clients existed.
func (a *Authenticator) AuthenticateGrant(ctx context.Context, c Credentials, grantType string) (store.Agent, error) {
	if c.Method != oauth.AuthMethodNone {
		agent, err := a.authenticate(ctx, c)
		if err == nil && selfRegistered(agent) && !slices.Contains(PublicGrants(), grantType) {
			return store.Agent{}, refusedClient(agent.ID, oauth.UnauthorizedClient(ReasonPublicGrant,
				"a registered client may use only the authorization_code and refresh_token grants", nil))
		}
		return agent, err
	}
	if len(c.ClientID) > maxClientIDLen {
		return store.Agent{}, failure(ReasonNoCredentials, nil)
	}
	agent, err := a.Agents.GetAgent(ctx, c.ClientID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return store.Agent{}, failure(ReasonNoCredentials, nil)
	case err != nil:
		return store.Agent{}, oauth.Unavailable("client_store_unavailable", err)
	case !agent.Public:
		return store.Agent{}, failure(ReasonNoCredentials, nil)
	case agent.Disabled:
		return store.Agent{}, refusedClient(agent.ID, failure(ReasonDisabled, nil))
	case !slices.Contains(PublicGrants(), grantType):
		return store.Agent{}, refusedClient(agent.ID, oauth.UnauthorizedClient(ReasonPublicGrant,
			"a public client may use only the authorization_code and refresh_token grants", nil))
	}
	return agent, nil
}

// selfRegistered reports whether the agent registered itself rather than
// being made by an administrator or the configuration file.
func selfRegistered(agent store.Agent) bool {
	return agent.Registration == store.RegistrationDCR || agent.Registration == store.RegistrationCIMD
}

func (a *Authenticator) authenticate(ctx context.Context, c Credentials) (store.Agent, error) {
	switch c.Method {
	case oauth.AuthMethodSecretBasic, oauth.AuthMethodSecretPost:
		return a.secret(ctx, c)
	case oauth.AuthMethodPrivateKeyJWT:
		return a.assertion(ctx, c)
	default:
		return store.Agent{}, failure(ReasonNoCredentials, nil)
	}
}

// secret checks a client secret in constant time. An unknown client, or one
// without a secret, is compared against a dummy hash first.
func (a *Authenticator) secret(ctx context.Context, c Credentials) (store.Agent, error) {
	sum := HashSecret(c.Secret)
	if c.ClientID == "" || len(c.ClientID) > maxClientIDLen {
		subtle.ConstantTimeCompare(sum, dummyHash[:])
		return store.Agent{}, failure(ReasonMalformed, nil)
	}
	agent, err := a.Agents.GetAgent(ctx, c.ClientID)
	if errors.Is(err, store.ErrNotFound) {
		subtle.ConstantTimeCompare(sum, dummyHash[:])
		return store.Agent{}, failure(ReasonUnknown, nil)
	}
	if err != nil {
		return store.Agent{}, oauth.Unavailable("client_store_unavailable", err)
	}
	stored, hasSecret := agent.SecretHash, len(agent.SecretHash) == sha256.Size
	if !hasSecret {
		stored = dummyHash[:]
	}
	match := subtle.ConstantTimeCompare(sum, stored) == 1
	switch {
	case !hasSecret:
		return store.Agent{}, refusedClient(agent.ID, failure(ReasonMethodMismatch, nil))
	case !match:
		return store.Agent{}, refusedClient(agent.ID, failure(ReasonSecretMismatch, nil))
	case agent.Disabled:
		// Checked after the secret, so that only the holder learns it.
		return store.Agent{}, refusedClient(agent.ID, failure(ReasonDisabled, nil))
	}
	return agent, nil
}

// assertion checks a private_key_jwt client assertion (RFC 7523 §3).
func (a *Authenticator) assertion(ctx context.Context, c Credentials) (store.Agent, error) {
	j, err := jwt.ParseJWS(c.Assertion)
	if err != nil {
		return store.Agent{}, failure(ReasonAssertionInvalid, err)
	}
	clientID := c.ClientID
	if clientID == "" {
		// RFC 7523 §3: sub is the client_id; read unverified to find the
		// client, and checked again once the signature verifies.
		if clientID, _, err = j.UnverifiedString("sub"); err != nil || clientID == "" {
			return store.Agent{}, failure(ReasonAssertionInvalid, err)
		}
	}
	if len(clientID) > maxClientIDLen {
		return store.Agent{}, failure(ReasonMalformed, nil)
	}
	agent, err := a.Agents.GetAgent(ctx, clientID)
	if errors.Is(err, store.ErrNotFound) {
		return store.Agent{}, failure(ReasonUnknown, nil)
	}
	if err != nil {
		return store.Agent{}, oauth.Unavailable("client_store_unavailable", err)
	}
	if err := a.verifyAssertion(ctx, j, agent, clientID); err != nil {
		return store.Agent{}, refusedClient(agent.ID, err)
	}
	return agent, nil
}

// verifyAssertion checks the assertion j of the registered client agent,
// presented as clientID, and spends its jti.
func (a *Authenticator) verifyAssertion(ctx context.Context, j *jwt.JWS, agent store.Agent, clientID string) error {
	keys, err := a.keySource(agent)
	if err != nil {
		return err
	}
	key, err := keys.Key(ctx, j.Header.KeyID)
	if errors.Is(err, jwks.ErrUnknownKey) {
		return failure(ReasonAssertionKeyUnknown, err)
	}
	if err != nil {
		return oauth.Unavailable("client_keys_unavailable", err)
	}
	claims, err := j.Verify(key, jwt.AlgorithmsFor(key, AssertionAlgorithms()))
	if err != nil {
		if errors.Is(err, token.ErrSignature) {
			return failure(ReasonAssertionSignature, err)
		}
		return failure(ReasonAssertionInvalid, err)
	}
	if j.Header.Type == oauth.AccessTokenJWTType {
		// An access token is never a client assertion (RFC 8725 §3.11).
		return failure(ReasonAssertionInvalid, errors.New("typ at+jwt"))
	}
	jti, exp, err := a.checkClaims(claims, clientID)
	if err != nil {
		return err
	}
	if agent.Disabled {
		return failure(ReasonDisabled, nil)
	}
	// The jti is spent last, after every other check passed, and keyed by
	// client and jti, never by token bytes (THREATS.md T08, T36).
	err = a.Nonces.UseNonce(ctx, NonceNamespace, replayKey(clientID, jti), exp.Add(a.leeway()))
	if errors.Is(err, store.ErrReplay) {
		return failure(ReasonAssertionReplayed, nil)
	}
	if err != nil {
		return oauth.Unavailable("nonce_store_unavailable", err)
	}
	return nil
}

// replayKey is the store.Nonces id of an assertion: the client id with a
// backslash before each backslash and "|" in it, then "|" and the jti. The
// first unescaped "|" ends the client id, so no two (client, jti) pairs
// share a key: client "a|b" with jti "c" is `a\|b|c`, client "a" with jti
// "b|c" is "a|b|c" (THREATS T89). A client id with neither character keeps
// the plain "client|jti" of earlier versions, so nonces stored before an
// upgrade go on refusing replays after it; only ids holding them change
// form, and their old keys expire with their assertions (a few minutes).
func replayKey(clientID, jti string) string {
	if !strings.ContainsAny(clientID, `\|`) {
		return clientID + "|" + jti
	}
	var b strings.Builder
	b.Grow(len(clientID) + len(jti) + 8)
	for i := 0; i < len(clientID); i++ {
		if c := clientID[i]; c == '\\' || c == '|' {
			b.WriteByte('\\')
		}
		b.WriteByte(clientID[i])
	}
	b.WriteByte('|')
	b.WriteString(jti)
	return b.String()
}

func (a *Authenticator) leeway() time.Duration {
	if a.Leeway > 0 {
		return a.Leeway
	}
	return DefaultLeeway
}

// checkClaims applies RFC 7523 §3 to a verified assertion and returns its
// jti and exp.
func (a *Authenticator) checkClaims(c jwt.ClaimSet, clientID string) (string, time.Time, error) {
	iss, _, err1 := c.String("iss")
	sub, _, err2 := c.String("sub")
	if err1 != nil || err2 != nil || iss != clientID || sub != clientID {
		return "", time.Time{}, failure(ReasonAssertionSubject, errors.Join(err1, err2))
	}
	aud, _, err := c.Audience()
	if err != nil || !a.audienceOK(aud) {
		return "", time.Time{}, failure(ReasonAssertionAudience, err)
	}
	now := time.Now()
	if a.Now != nil {
		now = a.Now()
	}
	leeway := a.leeway()
	exp, ok, err := c.NumericDate("exp")
	if err != nil || !ok {
		return "", time.Time{}, failure(ReasonAssertionInvalid, errors.Join(errors.New("exp required"), err))
	}
	if !exp.After(now.Add(-leeway)) {
		return "", time.Time{}, failure(ReasonAssertionExpired, nil)
	}
	nbf, _, err1 := c.NumericDate("nbf")
	iat, hasIAT, err2 := c.NumericDate("iat")
	if err1 != nil || err2 != nil {
		return "", time.Time{}, failure(ReasonAssertionInvalid, errors.Join(err1, err2))
	}
	if nbf.After(now.Add(leeway)) || iat.After(now.Add(leeway)) {
		return "", time.Time{}, failure(ReasonAssertionNotYet, nil)
	}
	if exp.Sub(now) > MaxAssertionLifetime+leeway || (hasIAT && exp.Sub(iat) > MaxAssertionLifetime) {
		return "", time.Time{}, failure(ReasonAssertionLifetime, nil)
	}
	jti, _, err := c.String("jti")
	if err != nil || jti == "" || len(jti) > 256 {
		return "", time.Time{}, failure(ReasonAssertionNoJTI, err)
	}
	return jti, exp, nil
}

// audienceOK reports whether aud names the issuer or the token endpoint.
func (a *Authenticator) audienceOK(aud []string) bool {
	return (a.Issuer != "" && slices.Contains(aud, a.Issuer)) ||
		(a.TokenEndpoint != "" && slices.Contains(aud, a.TokenEndpoint))
}

// keySource returns the agent's registered keys: its inline JWKS (parsed
// once per content) or, for a jwks_uri, KeySourceFor.
func (a *Authenticator) keySource(agent store.Agent) (token.KeySource, error) {
	if len(agent.JWKS) > 0 {
		a.mu.Lock()
		defer a.mu.Unlock()
		if cached, ok := a.inline[agent.ID]; ok && bytes.Equal(cached.raw, agent.JWKS) {
			return cached.set, nil
		}
		set, err := jwks.ParseSet(agent.JWKS)
		if err != nil {
			return nil, failure(ReasonKeysInvalid, err)
		}
		if a.inline == nil || len(a.inline) >= maxInlineSets {
			a.inline = map[string]inlineSet{}
		}
		a.inline[agent.ID] = inlineSet{raw: bytes.Clone(agent.JWKS), set: set}
		return set, nil
	}
	if agent.JWKSURI != "" && a.KeySourceFor != nil {
		ks, err := a.KeySourceFor(agent)
		if err != nil {
			return nil, oauth.Unavailable("client_keys_unavailable", err)
		}
		return ks, nil
	}
	return nil, failure(ReasonMethodMismatch, nil)
}
