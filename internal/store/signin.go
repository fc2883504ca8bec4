package store

import (
	"context"
	"encoding/json"
	"time"
)

// What people's sign-in and consent keep in the store: authorization codes,
// refresh tokens, browser sessions and pending requests. Each is found by
// the SHA-256 of a random value the server handed out, never by the value
// itself, and each has an expiry past which Sweep deletes it.

// AuthCode is an authorization code (RFC 6749 §4.1) as stored. It is bound
// to the client, the person, the redirect URI, the PKCE challenge and the
// delegation the person approved for it.
type AuthCode struct {
	// Hash is SHA-256 of the code.
	Hash []byte
	// ClientID is the client the code was issued to; only it redeems it.
	ClientID string
	// Subject is the person who approved.
	Subject string
	// Actor is the agent the code's tokens name in act: the client itself,
	// or the requested_actor another client asked for.
	Actor string
	// RedirectURI is the redirect_uri of the authorization request, which
	// the token request must repeat exactly.
	RedirectURI string
	// Challenge is the PKCE code_challenge (method S256).
	Challenge string
	// DelegationID is the delegation approved on the consent page: the
	// tokens of the code are bounded by it, and revoking it ends them.
	DelegationID string
	// Scopes are the scopes approved.
	Scopes []string
	// Resource is the RFC 8707 resource (the tokens' audience); empty for
	// none.
	Resource  string
	CreatedAt time.Time
	ExpiresAt time.Time
	// UsedAt is when the code was redeemed; zero while it is unused.
	UsedAt time.Time
}

// RefreshToken is a refresh token as stored. Every refresh token rotated
// from the same first one belongs to one family, the delegation's: using a
// token stores its successor and marks it used; presenting a used one
// again is a replay.
type RefreshToken struct {
	// Hash is SHA-256 of the token.
	Hash []byte
	// DelegationID is the delegation the family acts under; revoking it
	// ends the family.
	DelegationID string
	ClientID     string
	Subject      string
	Actor        string
	Scopes       []string
	Resource     string
	// SubjectVersion is the subject's User.Version when the family began:
	// a later bump of the version ends the family.
	SubjectVersion int64
	CreatedAt      time.Time
	ExpiresAt      time.Time
	// UsedAt is when it was rotated; zero while it is the family's
	// current token.
	UsedAt time.Time
}

// NextRefresh is the token RotateRefresh stores after used: next's Hash
// and CreatedAt, and the rest of the family's (used's), its end included.
func NextRefresh(used, next RefreshToken) RefreshToken {
	out := used
	out.Hash, out.CreatedAt, out.UsedAt = next.Hash, next.CreatedAt, time.Time{}
	return out
}

// Session is a person's signed-in browser session.
type Session struct {
	// Hash is SHA-256 of the session cookie's value.
	Hash []byte
	// Subject is the signed-in person.
	Subject string
	// Provider is the identity provider the person signed in through;
	// empty for a local password.
	Provider string
	// CSRF is the session's anti-forgery token, sent back by every form.
	CSRF      string
	CreatedAt time.Time
	// SeenAt is the last time the session was used; a session unused for
	// the idle time ends.
	SeenAt time.Time
	// ExpiresAt is the session's absolute end.
	ExpiresAt time.Time
}

// Pending is a short-lived step of a sign-in that the server must find
// again: an authorization request waiting for sign-in and consent, or the
// state of a sign-in at an upstream identity provider. Data is the
// caller's, opaque to the store.
type Pending struct {
	// Kind separates the callers' namespaces, e.g. "authorize", "upstream".
	Kind string
	// Hash is SHA-256 of the random id the browser carries.
	Hash      []byte
	Data      json.RawMessage
	CreatedAt time.Time
	ExpiresAt time.Time
}

// SignIn stores what people's sign-in and consent need. Every method that
// takes events appends them in the same transaction as its change, or
// writes neither. None of it is cached, and none of its writes moves the
// Generation: it is never part of a cached read.
//
// Every record needs a Hash and an ExpiresAt (Sweep deletes it past that);
// a create without one is refused as a bad record, and a create of a Hash
// stored before is ErrAlreadyExists. The times given to the methods that
// take one (at) must not be zero. Expiry is the caller's to check:
// lookups return what is stored until Sweep deletes it.
type SignIn interface {
	// CreateCode stores a new code.
	CreateCode(ctx context.Context, c AuthCode, events ...Event) error
	// RedeemCode marks the unused code of hash used at at and returns it,
	// atomically: of concurrent redemptions exactly one returns a nil
	// error. A code used before is returned with an error wrapping
	// ErrReplay (the caller then revokes what its first use issued); an
	// unknown code is ErrNotFound. Expiry is the caller's to check.
	RedeemCode(ctx context.Context, hash []byte, at time.Time) (AuthCode, error)

	// CreateRefresh stores the first refresh token of a family.
	CreateRefresh(ctx context.Context, rt RefreshToken, events ...Event) error
	// GetRefresh returns the refresh token of hash, used or not, or
	// ErrNotFound.
	GetRefresh(ctx context.Context, hash []byte) (RefreshToken, error)
	// RotateRefresh marks the unused token of hash used at at and stores
	// next, atomically, and returns the token used: of concurrent
	// rotations exactly one succeeds. next brings its Hash and CreatedAt;
	// the rest (the family: delegation, client, subject, actor, scopes,
	// resource, subject version, end) is the used token's (NextRefresh). A token used before is returned with
	// an error wrapping ErrReplay and nothing is stored; an unknown token
	// is ErrNotFound.
	RotateRefresh(ctx context.Context, hash []byte, at time.Time, next RefreshToken) (RefreshToken, error)

	// CreateSession stores a new session.
	CreateSession(ctx context.Context, s Session, events ...Event) error
	// GetSession returns the session of hash, or ErrNotFound.
	GetSession(ctx context.Context, hash []byte) (Session, error)
	// TouchSession sets the session's SeenAt; ErrNotFound when it is gone.
	TouchSession(ctx context.Context, hash []byte, at time.Time) error
	// DeleteSession removes the session (sign-out); removing one that is
	// gone succeeds and appends the events all the same.
	DeleteSession(ctx context.Context, hash []byte, events ...Event) error
	// DeleteSessionsOf removes every session of subject and returns how
	// many there were.
	DeleteSessionsOf(ctx context.Context, subject string, events ...Event) (int, error)

	// PutPending stores p, replacing nothing: a (Kind, Hash) stored
	// before is ErrConflict.
	PutPending(ctx context.Context, p Pending) error
	// GetPending returns the pending step, or ErrNotFound.
	GetPending(ctx context.Context, kind string, hash []byte) (Pending, error)
	// TakePending returns the pending step and deletes it, atomically: of
	// concurrent takes exactly one succeeds, the others get ErrNotFound.
	TakePending(ctx context.Context, kind string, hash []byte) (Pending, error)
}

// UpstreamGrant is what Mandate keeps to ask an identity provider again
// about a person who signed in through it: the provider's refresh token,
// sealed, and when it was last asked. There is at most one per person and
// provider.
type UpstreamGrant struct {
	// Subject is the person's Mandate id.
	Subject string
	// Provider is the identity provider's issuer.
	Provider string
	// Sealed is the provider's refresh token sealed by the caller (an
	// AEAD whose additional data names Subject and Provider); the store
	// never sees it in clear.
	Sealed []byte
	// CheckedAt is when the provider was last asked (the sign-in, or the
	// last recheck).
	CheckedAt time.Time
	CreatedAt time.Time
}

// UpstreamGrants stores the grants rechecks at identity providers redeem.
// A grant ends with its person (Users.DeleteUser deletes their grants in
// the same transaction) or when the provider refuses it; Sweep leaves them.
// Times are kept to the microsecond.
type UpstreamGrants interface {
	// PutUpstreamGrant stores g, replacing the grant of the same Subject
	// and Provider if there is one. Subject, Provider, Sealed and
	// CheckedAt are required (ErrBadRecord).
	PutUpstreamGrant(ctx context.Context, g UpstreamGrant) error
	// DueUpstreamGrants returns at most limit grants of provider whose
	// CheckedAt is before before, oldest CheckedAt first. (Each provider
	// has its own recheck interval, hence its own before.)
	DueUpstreamGrants(ctx context.Context, provider string, before time.Time, limit int) ([]UpstreamGrant, error)
	// TouchUpstreamGrant sets the grant's CheckedAt to at, and its Sealed
	// to sealed unless sealed is nil, if its CheckedAt is still was (to
	// the microsecond): of concurrent touches from the same was exactly
	// one succeeds, the others get ErrConflict, as does a grant replaced
	// meanwhile by a sign-in. A grant that is gone is ErrNotFound.
	TouchUpstreamGrant(ctx context.Context, subject, provider string, was time.Time, sealed []byte, at time.Time) error
	// DeleteUpstreamGrant removes the grant, if stored, and appends events
	// in the same transaction.
	DeleteUpstreamGrant(ctx context.Context, subject, provider string, events ...Event) error
	// UpstreamGrantKey returns the key that seals the grants, or stores
	// the one create returns when there is none. Every instance of a
	// shared store gets the same key: when another stored one first, that
	// one is returned and create's dropped.
	UpstreamGrantKey(ctx context.Context, create func() ([]byte, error)) ([]byte, error)
}
