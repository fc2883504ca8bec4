package verify

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/mandate-dev/mandate/jwks"
	"github.com/mandate-dev/mandate/strictjson"
)

// Defaults for Config.
const (
	// DefaultLeeway is the clock skew allowed on exp, nbf and iat.
	DefaultLeeway = 60 * time.Second
	// DefaultMaxTTL bounds exp−iat.
	DefaultMaxTTL = 15 * time.Minute
	// DefaultMaxDepth bounds the act chain.
	DefaultMaxDepth = 4
	// RetryAfter is what a 503 asks the client to wait: the JWKS refetch
	// cooldown.
	RetryAfter = 30 * time.Second

	maxMetadataBody = 64 << 10
	discoveryPath   = "/.well-known/oauth-authorization-server"
	resourcePath    = "/.well-known/oauth-protected-resource"
)

// signingAlgorithms are the algorithms Config.Algorithms may name. Read-only.
var signingAlgorithms = []string{"EdDSA", "ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}

// KeySource finds the issuer's public key by kid. Key returns an error
// matching jwks.ErrUnknownKey when the source holds no such key; any other
// error means the keys could not be obtained (ErrKeyUnavailable, 503).
// *jwks.Cache and jwks.Static satisfy it.
type KeySource interface {
	Key(ctx context.Context, kid string) (jose.JSONWebKey, error)
}

// Revocation says whether a token whose signature and claims are good has
// been revoked (by jti, delegation, subject or actor). An error means the
// answer is unknown and the token is refused with ErrRevocationUnavailable
// (503): never allowed. Implementations must be safe for concurrent use
// and should answer from local state (a pushed feed), not a request per
// token. *feed.Feed (package verify/feed), subscribed to the issuer's
// revocation stream, is the implementation for Mandate.
type Revocation interface {
	Revoked(ctx context.Context, p *Principal) (bool, error)
}

// KeyRevocation is what a Revocation that also knows the issuer's revoked
// signing keys offers; *feed.Feed implements it. When Config.Revocation
// implements it and the Verifier fetches the keys itself (JWKSURI or
// discovery), a revoked key never comes out of the key cache, however long
// ago it was revoked: not from the set held, not from the set kept when a
// refetch fails, not from a stale copy of the JWKS that still lists it
// (jwks.Config.Revoked). KeyRevoked must answer from memory and be safe for
// concurrent use.
type KeyRevocation interface {
	KeyRevoked(kid string) bool
}

// Config configures a Verifier. Issuer, Audience and Algorithms are
// required; everything else has a default.
type Config struct {
	// Issuer is the authorization server, compared exactly with iss (no
	// trailing-slash or case folding).
	Issuer string
	// Audience is this resource server's identifier; aud must contain it.
	Audience string
	// Algorithms are the signature algorithms accepted, e.g. ["EdDSA"].
	// Each key narrows them further to the one its type and "alg" pin.
	// "none" and HMAC algorithms are refused by New.
	Algorithms []string
	// Keys is a fixed key source (jwks.Static in tests, or a *jwks.Cache
	// built elsewhere). When nil, keys come from JWKSURI.
	Keys KeySource
	// JWKSURI is where the issuer publishes its keys. When it and Keys are
	// empty, New reads jwks_uri from the issuer's RFC 8414 metadata once.
	// The keys themselves are fetched on first use, refetched on an unknown
	// kid at most once per 30 s, and a key in use is never evicted by a
	// failed fetch (jwks.Cache), unless the issuer revoked it
	// (KeyRevocation).
	JWKSURI string
	// HTTPClient makes the metadata and key requests; nil means a fresh
	// http.Client. Redirects are never followed.
	HTTPClient *http.Client
	// Leeway is the clock skew allowed on exp, nbf and iat; zero means
	// DefaultLeeway (60 s).
	Leeway time.Duration
	// MaxTTL bounds exp−iat; zero means DefaultMaxTTL (15 min).
	MaxTTL time.Duration
	// MaxDepth bounds the number of actors in the act chain; zero means
	// DefaultMaxDepth (4). Depth is counted from the structure before any
	// actor is decoded. At most 16.
	MaxDepth int
	// Revocation, when set, is asked about every otherwise valid token:
	// set it to the *feed.Feed that feed.New returns (which also keeps the
	// keys the issuer revoked out of the key cache, see KeyRevocation).
	// When nil, a token is valid until it expires: revocation at the
	// issuer takes effect here only when the token's exp passes. A
	// Revocation error refuses the token with ErrRevocationUnavailable
	// (503), so a feed that is stale or has no snapshot yet refuses every
	// token: it fails closed.
	Revocation Revocation
	// Logger receives one audit record per request the middleware sees
	// (field names as in Mandate's audit log: performed_by, on_behalf_of,
	// chain, scopes, context, action, resource, result, reason, jti). Nil
	// means no records. The token itself is never logged.
	Logger *slog.Logger
	// Records, when set, receives the same record of every request as a
	// Record (with an id, the time, the audience, the X-Request-Id and the
	// attributes), after the handler returns: set it to the
	// *forward.Forwarder that forward.New returns to send the records to
	// the issuer. Its Record method runs on the request path and must not
	// block. Nil means none.
	Records RecordSink
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Resource describes this resource server in its RFC 9728 metadata.
	Resource ResourceMetadata
}

// ResourceMetadata is what ProtectedResourceMetadata serves (RFC 9728 §2)
// and where WWW-Authenticate points (RFC 9728 §5.1).
type ResourceMetadata struct {
	// Resource is the resource identifier; empty means Config.Audience.
	Resource string
	// MetadataURL is the URL of the metadata document named in
	// WWW-Authenticate's resource_metadata. Empty means the well-known URL
	// derived from Resource (RFC 9728 §3.1) when Resource is an https or
	// http URL, and no resource_metadata parameter otherwise.
	MetadataURL string
	// ScopesSupported lists the scopes this resource understands.
	ScopesSupported []string
	// RequestScopes are the scopes a client should ask for to use this
	// resource, named in the scope parameter of every 401's
	// WWW-Authenticate (RFC 6750 §3): MCP clients request these, and fall
	// back to ScopesSupported, every scope, only when it is absent. Empty
	// means no scope parameter on a 401. Each must be an RFC 6749 §3.3
	// scope token (New refuses others).
	RequestScopes []string
	// ResourceName is a human-readable name.
	ResourceName string
	// ResourceDocumentation is a URL of documentation for developers.
	ResourceDocumentation string
}

// check validates cfg and fills in the defaults.
func (cfg *Config) check() error {
	var errs []error
	if cfg.Issuer == "" {
		errs = append(errs, errors.New("verify: Config.Issuer is required"))
	}
	if cfg.Audience == "" {
		errs = append(errs, errors.New("verify: Config.Audience is required"))
	}
	if len(cfg.Algorithms) == 0 {
		errs = append(errs, errors.New("verify: Config.Algorithms is required"))
	}
	for _, a := range cfg.Algorithms {
		if !slices.Contains(signingAlgorithms, a) {
			errs = append(errs, fmt.Errorf("verify: algorithm %q is not an asymmetric signature algorithm", a))
		}
	}
	if cfg.MaxDepth < 0 || cfg.MaxDepth > 16 || cfg.Leeway < 0 || cfg.MaxTTL < 0 {
		errs = append(errs, errors.New("verify: Leeway, MaxTTL and MaxDepth (≤ 16) must not be negative"))
	}
	for _, sc := range cfg.Resource.RequestScopes {
		if !scopeToken(sc) {
			errs = append(errs, fmt.Errorf("verify: Resource.RequestScopes: %q is not a scope token", sc))
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	cfg.Leeway = cmp.Or(cfg.Leeway, DefaultLeeway)
	cfg.MaxTTL = cmp.Or(cfg.MaxTTL, DefaultMaxTTL)
	cfg.MaxDepth = cmp.Or(cfg.MaxDepth, DefaultMaxDepth)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Resource.Resource == "" {
		cfg.Resource.Resource = cfg.Audience
	}
	if cfg.Resource.MetadataURL == "" {
		cfg.Resource.MetadataURL = wellKnown(cfg.Resource.Resource, resourcePath)
	}
	cfg.Algorithms = slices.Clone(cfg.Algorithms)
	cfg.Resource.RequestScopes = slices.Clone(cfg.Resource.RequestScopes)
	return nil
}

// scopeToken reports whether s is a scope token (RFC 6749 §3.3: %x21 /
// %x23-5B / %x5D-7E), which also makes it safe inside a quoted
// WWW-Authenticate parameter.
func scopeToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// wellKnown inserts a well-known path between the host and the path of id
// (RFC 8414 §3.1, RFC 9728 §3.1); "" when id is not an http(s) URL.
func wellKnown(id, wk string) string {
	u, err := url.Parse(id)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return ""
	}
	path := strings.TrimSuffix(u.EscapedPath(), "/")
	return u.Scheme + "://" + u.Host + wk + path
}

// keySource returns the configured key source, or a jwks.Cache on the
// JWKS URI, reading it from the issuer's metadata when not configured.
func (cfg *Config) keySource(ctx context.Context) (KeySource, error) {
	if cfg.Keys != nil {
		return cfg.Keys, nil
	}
	uri := cfg.JWKSURI
	if uri == "" {
		var err error
		if uri, err = discoverJWKSURI(ctx, cfg.HTTPClient, cfg.Issuer); err != nil {
			return nil, err
		}
	}
	jc := jwks.Config{URI: uri, Client: cfg.HTTPClient, Now: cfg.Now}
	// An optional interface, as io.WriterTo is: Revocation stays the one
	// method every implementation needs, and a Feed passed as it also
	// guards the key cache without a second field to set.
	if kr, ok := cfg.Revocation.(KeyRevocation); ok {
		jc.Revoked = kr.KeyRevoked
	}
	cache, err := jwks.New(jc)
	if err != nil {
		return nil, fmt.Errorf("verify: jwks_uri: %w", err)
	}
	return cache, nil
}

// discoverJWKSURI reads jwks_uri from the issuer's RFC 8414 metadata, which
// must name the same issuer (RFC 8414 §3.3).
func discoverJWKSURI(ctx context.Context, hc *http.Client, issuer string) (string, error) {
	metaURL := wellKnown(issuer, discoveryPath)
	if metaURL == "" || jwks.CheckURI(metaURL) != nil {
		return "", errors.New("verify: the issuer is not an https URL (or http on loopback); set JWKSURI or Keys")
	}
	var client http.Client
	if hc != nil {
		client = *hc
	}
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	ctx, cancel := context.WithTimeout(ctx, jwks.DefaultTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, metaURL, nil)
	if err != nil {
		return "", fmt.Errorf("verify: metadata: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("verify: metadata: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxMetadataBody+1))
	if err != nil || resp.StatusCode != http.StatusOK || len(body) > maxMetadataBody {
		return "", fmt.Errorf("verify: metadata: status %d: %w", resp.StatusCode, errors.Join(err, errors.New("no usable document")))
	}
	var meta struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := strictjson.Check(body, 0); err != nil {
		return "", fmt.Errorf("verify: metadata: %w", err)
	}
	if err := json.Unmarshal(body, &meta); err != nil {
		return "", fmt.Errorf("verify: metadata: %w", err)
	}
	if meta.Issuer != issuer {
		return "", errors.New("verify: metadata names another issuer")
	}
	if err := jwks.CheckURI(meta.JWKSURI); err != nil {
		return "", fmt.Errorf("verify: metadata jwks_uri: %w", err)
	}
	return meta.JWKSURI, nil
}

// rules returns the Rules of a checked cfg.
func (cfg *Config) rules() Rules {
	return Rules{
		Issuer: cfg.Issuer, Audience: cfg.Audience, Algorithms: cfg.Algorithms,
		Leeway: cfg.Leeway, MaxTTL: cfg.MaxTTL, MaxDepth: cfg.MaxDepth, Now: cfg.Now,
	}
}
