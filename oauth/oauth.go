package oauth

// Grant types (RFC 6749 §4.1.3, §4.4, §6, RFC 8693 §2.1).
const (
	GrantAuthorizationCode = "authorization_code"
	GrantRefreshToken      = "refresh_token"
	GrantClientCredentials = "client_credentials"
	GrantTokenExchange     = "urn:ietf:params:oauth:grant-type:token-exchange"
)

// Token type identifiers (RFC 8693 §3).
const (
	TokenTypeAccessToken  = "urn:ietf:params:oauth:token-type:access_token"
	TokenTypeRefreshToken = "urn:ietf:params:oauth:token-type:refresh_token"
	TokenTypeIDToken      = "urn:ietf:params:oauth:token-type:id_token"
	TokenTypeJWT          = "urn:ietf:params:oauth:token-type:jwt"
)

// ClientAssertionTypeJWTBearer is the client_assertion_type of RFC 7523 §2.2.
const ClientAssertionTypeJWTBearer = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// Client authentication methods (RFC 8414 §2, RFC 7591 §2).
const (
	AuthMethodSecretBasic   = "client_secret_basic"
	AuthMethodSecretPost    = "client_secret_post"
	AuthMethodPrivateKeyJWT = "private_key_jwt"
	// AuthMethodNone is a public client's: it presents its client_id and
	// no credential (RFC 7591 §2).
	AuthMethodNone = "none"
)

// AccessTokenJWTType is the JOSE "typ" of an RFC 9068 access token.
const AccessTokenJWTType = "at+jwt"

// ScopeOfflineAccess asks for a refresh token (OpenID Connect Core §11).
// Mandate issues one with every authorization code, so it accepts the scope
// and grants nothing for it: it is never put in a token.
const ScopeOfflineAccess = "offline_access"
