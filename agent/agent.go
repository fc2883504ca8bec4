package agent

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/mandate-dev/mandate/oauth"
)

// Token types a subject token may be declared as (RFC 8693 §3).
const (
	TokenTypeAccessToken = oauth.TokenTypeAccessToken
	TokenTypeIDToken     = oauth.TokenTypeIDToken
	TokenTypeJWT         = oauth.TokenTypeJWT
)

// DefaultRefreshBefore is how long before expiry a cached token is renewed.
const DefaultRefreshBefore = 30 * time.Second

// maxResponse caps a token response body.
const maxResponse = 64 << 10

// Config configures a Client. TokenURL and ClientID are required, and one
// credential: ClientSecret, or Key for private_key_jwt.
type Config struct {
	// TokenURL is the authorization server's token endpoint: https, or
	// plain http to a loopback host (localhost, 127.0.0.0/8, ::1). New
	// refuses plain http to any other host.
	TokenURL string
	// ClientID is the agent's client_id, e.g. "agent:infrabot".
	ClientID string
	// ClientSecret authenticates with client_secret_post.
	ClientSecret string
	// Key signs private_key_jwt client assertions (RFC 7523 §2.2); KeyID
	// is its kid and Algorithm its JWS algorithm (EdDSA, ES256, RS256, ...).
	Key       crypto.Signer
	KeyID     string
	Algorithm string
	// Audience is the aud of client assertions; default: the issuer, taken
	// as TokenURL without its path.
	Audience string
	// HTTPClient sends the token requests; default: a client with a 10 s
	// timeout. The Client uses a copy of it that never follows a redirect,
	// so that the client secret and the person's token go to TokenURL and
	// nowhere else; a redirect is an error.
	HTTPClient *http.Client
	// RefreshBefore renews a cached token this long before it expires;
	// default DefaultRefreshBefore.
	RefreshBefore time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Version, if set, is sent as agent_version with every token request,
	// so that the server's audit log can compare refusals across versions
	// of the agent (e.g. "1.4.2" or "2026.03.1+g3f2a9c"). At most 64
	// characters of A-Z a-z 0-9 . _ + -; New refuses anything else. It is
	// the agent's own claim and grants nothing. Default: none is sent.
	Version string
	// Origins maps the audience of a Request (or its resource, when it
	// has no audience) to the origin, scheme://host[:port], of the API
	// that accepts its tokens: Transport sends the token to that origin
	// only. An audience that is an http(s) URL needs no entry, its own
	// scheme, host and port are its origin; an entry for it overrides
	// that. An audience that is not a URL, such as an agent id
	// ("agent:cleanup_agent"), needs an entry, or Transport refuses it.
	// New refuses an entry that is not an origin, or that is plain http
	// to a host that is not loopback.
	Origins map[string]string
	// CacheSize bounds how many tokens the Client keeps; beyond it the
	// least recently used leaves. Default DefaultCacheSize.
	CacheSize int
}

// Request is one token exchange: the person's token and what the agent
// needs it for.
type Request struct {
	SubjectToken     string
	SubjectTokenType string
	// ActorToken optionally proves the agent's own identity (its
	// client_credentials token).
	ActorToken string
	// Audience and/or Resource name the one service the token is for.
	Audience string
	Resource string
	// Scopes requested; empty asks for everything allowed.
	Scopes []string
	// Context is the agent's assertion about the request: environment,
	// trigger, and anything policies read.
	Context map[string]any
	// AuthorizationDetails are RFC 9396 details requested, e.g.
	// {"type": "expense_approval", "max_amount": 1000, "currency": "USD"};
	// the server grants them only within the person's limits.
	AuthorizationDetails []map[string]any
}

// Token is an issued access token.
type Token struct {
	AccessToken     string
	IssuedTokenType string
	Scopes          []string
	ExpiresAt       time.Time
	// AuthorizationDetails are the details granted, as JSON.
	AuthorizationDetails json.RawMessage
}

// Error is a refusal from the authorization server (RFC 6749 §5.2).
type Error struct {
	Status      int
	Code        oauth.ErrorCode
	Description string
}

func (e *Error) Error() string {
	return fmt.Sprintf("token endpoint: %d %s: %s", e.Status, e.Code, e.Description)
}

// Client gets and caches tokens. It is safe for concurrent use; concurrent
// requests for the same token share one exchange. It keeps at most
// Config.CacheSize tokens, each until RefreshBefore ahead of its expiry,
// under an HMAC of its request rather than the person's token itself.
type Client struct {
	cfg         Config
	origins     map[string]origin // Config.Origins, parsed
	cacheSecret [32]byte          // keys the HMAC that names cache entries
	mu          sync.Mutex
	cache       *tokenCache
}

// New checks cfg and returns a Client. It refuses plain http to a host
// that is not loopback, for TokenURL and for every entry of Origins.
func New(cfg Config) (*Client, error) {
	u, err := url.Parse(cfg.TokenURL)
	switch {
	case err != nil || u.Scheme == "" || u.Host == "":
		return nil, errors.New("agent: TokenURL must be an absolute URL")
	case cfg.ClientID == "":
		return nil, errors.New("agent: ClientID is required")
	case (cfg.ClientSecret == "") == (cfg.Key == nil):
		return nil, errors.New("agent: give exactly one of ClientSecret and Key")
	case cfg.Key != nil && (cfg.KeyID == "" || cfg.Algorithm == ""):
		return nil, errors.New("agent: Key needs KeyID and Algorithm")
	case !validVersion(cfg.Version):
		return nil, errors.New("agent: Version must be at most 64 characters of A-Z a-z 0-9 . _ + -")
	}
	if err := checkScheme("TokenURL", u); err != nil {
		return nil, err
	}
	origins := make(map[string]origin, len(cfg.Origins))
	for aud, raw := range cfg.Origins {
		o, err := parseOrigin(fmt.Sprintf("Origins[%q]", aud), raw)
		if err != nil {
			return nil, err
		}
		origins[aud] = o
	}
	if cfg.Audience == "" {
		cfg.Audience = u.Scheme + "://" + u.Host
	}
	hc := http.Client{Timeout: 10 * time.Second}
	if cfg.HTTPClient != nil {
		hc = *cfg.HTTPClient
	}
	// A redirected token request would re-post the client credentials
	// and the person's token (307, 308) to wherever it points.
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	cfg.HTTPClient = &hc
	if cfg.CacheSize <= 0 {
		cfg.CacheSize = DefaultCacheSize
	}
	if cfg.RefreshBefore <= 0 {
		cfg.RefreshBefore = DefaultRefreshBefore
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	c := &Client{cfg: cfg, origins: origins, cache: newTokenCache(cfg.CacheSize)}
	if _, err := rand.Read(c.cacheSecret[:]); err != nil {
		return nil, fmt.Errorf("agent: cache key: %w", err)
	}
	return c, nil
}

// validVersion reports whether v is an agent_version the server accepts
// (or empty).
func validVersion(v string) bool {
	if len(v) > 64 {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '.' || c == '_' || c == '+' || c == '-') {
			return false
		}
	}
	return true
}

// Exchange returns a token for req, from the cache while it has more than
// RefreshBefore left, else by an RFC 8693 token exchange. A refusal is an
// *Error.
func (c *Client) Exchange(ctx context.Context, req Request) (*Token, error) {
	if req.SubjectToken == "" {
		return nil, errors.New("agent: SubjectToken is required")
	}
	if req.SubjectTokenType == "" {
		req.SubjectTokenType = TokenTypeAccessToken
	}
	form := url.Values{
		"grant_type":         {oauth.GrantTokenExchange},
		"subject_token":      {req.SubjectToken},
		"subject_token_type": {req.SubjectTokenType},
	}
	if req.ActorToken != "" {
		form.Set("actor_token", req.ActorToken)
		form.Set("actor_token_type", TokenTypeAccessToken)
	}
	if err := addTarget(form, req.Audience, req.Resource, req.Scopes, req.Context); err != nil {
		return nil, err
	}
	if req.AuthorizationDetails != nil {
		b, err := json.Marshal(req.AuthorizationDetails)
		if err != nil {
			return nil, fmt.Errorf("agent: authorization_details: %w", err)
		}
		form.Set("authorization_details", string(b))
	}
	return c.cached(ctx, form)
}

// ClientCredentials returns the agent's own token (RFC 6749 §4.4), cached
// like Exchange's.
func (c *Client) ClientCredentials(ctx context.Context, audience string, scopes []string) (*Token, error) {
	form := url.Values{"grant_type": {oauth.GrantClientCredentials}}
	if err := addTarget(form, audience, "", scopes, nil); err != nil {
		return nil, err
	}
	return c.cached(ctx, form)
}

func addTarget(form url.Values, audience, resource string, scopes []string, reqCtx map[string]any) error {
	if audience != "" {
		form.Set("audience", audience)
	}
	if resource != "" {
		form.Set("resource", resource)
	}
	if len(scopes) > 0 {
		form.Set("scope", strings.Join(scopes, " "))
	}
	if reqCtx != nil {
		b, err := json.Marshal(reqCtx)
		if err != nil {
			return fmt.Errorf("agent: context: %w", err)
		}
		form.Set("context", string(b))
	}
	return nil
}

func (c *Client) request(ctx context.Context, form url.Values) (*Token, error) {
	form.Set("client_id", c.cfg.ClientID)
	if c.cfg.Version != "" {
		form.Set("agent_version", c.cfg.Version)
	}
	if c.cfg.Key != nil {
		assertion, err := c.assertion()
		if err != nil {
			return nil, err
		}
		form.Set("client_assertion_type", oauth.ClientAssertionTypeJWTBearer)
		form.Set("client_assertion", assertion)
	} else {
		form.Set("client_secret", c.cfg.ClientSecret)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.cfg.TokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	start := c.cfg.Now()
	resp, err := c.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("agent: token request: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		return nil, fmt.Errorf("agent: the token endpoint redirected (%d to %.200q); token requests never follow redirects, set TokenURL to the endpoint itself", resp.StatusCode, resp.Header.Get("Location"))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return nil, fmt.Errorf("agent: token response: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var e oauth.Body
		_ = json.Unmarshal(body, &e)
		return nil, &Error{Status: resp.StatusCode, Code: e.Error, Description: e.Description}
	}
	var ok struct {
		AccessToken     string          `json:"access_token"`
		IssuedTokenType string          `json:"issued_token_type"`
		ExpiresIn       int64           `json:"expires_in"`
		Scope           string          `json:"scope"`
		Details         json.RawMessage `json:"authorization_details"`
	}
	if err := json.NewDecoder(bytes.NewReader(body)).Decode(&ok); err != nil || ok.AccessToken == "" {
		return nil, fmt.Errorf("agent: malformed token response")
	}
	return &Token{
		AccessToken:     ok.AccessToken,
		IssuedTokenType: ok.IssuedTokenType,
		Scopes:          strings.Fields(ok.Scope),
		ExpiresAt:       start.Add(time.Duration(ok.ExpiresIn) * time.Second),

		AuthorizationDetails: ok.Details,
	}, nil
}

// assertion signs a private_key_jwt client assertion (RFC 7523 §3):
// iss = sub = the client, aud = the server, a fresh jti, one minute of life.
func (c *Client) assertion() (string, error) {
	signer, err := jose.NewSigner(
		jose.SigningKey{Algorithm: jose.SignatureAlgorithm(c.cfg.Algorithm), Key: jose.JSONWebKey{Key: c.cfg.Key, KeyID: c.cfg.KeyID}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return "", fmt.Errorf("agent: assertion signer: %w", err)
	}
	var jti [16]byte
	_, _ = rand.Read(jti[:])
	now := c.cfg.Now()
	claims := jwt.Claims{
		Issuer:   c.cfg.ClientID,
		Subject:  c.cfg.ClientID,
		Audience: jwt.Audience{c.cfg.Audience},
		ID:       hex.EncodeToString(jti[:]),
		IssuedAt: jwt.NewNumericDate(now),
		Expiry:   jwt.NewNumericDate(now.Add(time.Minute)),
	}
	s, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		return "", fmt.Errorf("agent: assertion: %w", err)
	}
	return s, nil
}
