package token

import (
	"encoding/json"

	"github.com/mandate-dev/mandate/actor"
)

// Claims are the claims of an access token Mandate mints (DESIGN.md "Token
// format"; RFC 9068, RFC 8693 §4.1, RFC 9396). Times are seconds since the
// epoch.
type Claims struct {
	Issuer   string       `json:"iss"`
	Subject  string       `json:"sub"`
	Act      *actor.Actor `json:"act,omitempty"`
	Audience string       `json:"aud"`
	Scope    string       `json:"scope,omitempty"`
	ClientID string       `json:"client_id"`
	// Context is a JSON object, marshalled by the caller, which also
	// records it: one encoding serves the token and its audit record.
	Context              json.RawMessage `json:"context,omitempty"`
	AuthorizationDetails json.RawMessage `json:"authorization_details,omitempty"`
	DelegationID         string          `json:"delegation_id,omitempty"`
	JTI                  string          `json:"jti"`
	IssuedAt             int64           `json:"iat"`
	NotBefore            int64           `json:"nbf"`
	Expiry               int64           `json:"exp"`
	RevocationURL        string          `json:"revocation_url,omitempty"`
	// ExchangedFrom holds the jti of every Mandate token this one was
	// exchanged from, nearest first, so that a verifier revoking one of
	// them revokes this one too without asking the server.
	ExchangedFrom []string `json:"exchanged_from,omitempty"`
	// Gen is the store generation the grant was decided at: revocation
	// entries about people, agents and delegations made at a higher
	// generation apply to the token.
	Gen    int64  `json:"gen,omitempty"`
	LogURL string `json:"log_url,omitempty"`
}
