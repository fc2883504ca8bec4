// Package signin is people's part in Mandate: browser sessions, local
// passwords, sign-in at a company's identity provider (kept between its
// start and its callback; the person then follows the provider),
// authorization requests waiting for consent, the approval that
// turns one into a delegation and a single-use code, and the code and
// refresh token grants that follow. It knows no HTTP: the server's
// handlers and pages call it.
package signin

import (
	"context"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/mandate-dev/mandate/internal/audit"
	"github.com/mandate-dev/mandate/internal/auditchain"
	"github.com/mandate-dev/mandate/internal/authorize"
	"github.com/mandate-dev/mandate/internal/directory"
	"github.com/mandate-dev/mandate/internal/exchange"
	"github.com/mandate-dev/mandate/internal/ratelimit"
	"github.com/mandate-dev/mandate/internal/store"
)

// Defaults of a Service's durations.
const (
	DefaultCodeTTL     = 60 * time.Second
	DefaultPendingTTL  = 10 * time.Minute
	DefaultSessionIdle = 30 * time.Minute
	DefaultSessionMax  = 12 * time.Hour
	DefaultRefreshMax  = 30 * 24 * time.Hour
	// DefaultDelegation is how long an approved delegation lasts when the
	// person does not shorten it.
	DefaultDelegation = 8 * time.Hour
)

// Pending kinds.
const (
	kindAuthorize = "authorize"
)

// Reader is what the service reads of people and agents (a cached store).
type Reader interface {
	GetUser(ctx context.Context, id string) (store.User, error)
	GetAgent(ctx context.Context, id string) (store.Agent, error)
}

// Recorder records the service's audit events.
type Recorder interface {
	Record(ctx context.Context, ev store.Event, tokens ...store.IssuedToken) error
}

// Service runs sign-in and consent. All fields but the durations and the
// limits are required.
type Service struct {
	Store     store.SignIn
	Reader    Reader
	Directory *directory.Directory
	Grant     *exchange.Grant
	Audit     Recorder
	// Log reads the audit log: a code redeemed twice at once waits for its
	// first use to issue (awaitFirstUse). Nil: it does not wait.
	Log interface {
		QueryEvents(ctx context.Context, f store.EventFilter) ([]store.Event, error)
	}
	Issuer string
	Now    func() time.Time

	// CodeTTL, PendingTTL, SessionIdle, SessionMax and RefreshMax default
	// to the Default durations.
	CodeTTL, PendingTTL, SessionIdle, SessionMax, RefreshMax time.Duration
	// AccountLimit and AddressLimit bound password attempts per account
	// and per remote address; nil means no limit.
	AccountLimit, AddressLimit *ratelimit.Limiter
	// Grants keeps the identity providers' refresh tokens, sealed, for
	// RecheckDue; nil keeps none (and people are asked about only when
	// they sign in).
	Grants store.UpstreamGrants

	sealMu sync.Mutex
	seal   cipher.AEAD // of Grants' key, once read
}

func (s *Service) now() time.Time { return s.Now().UTC() }

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// newSecret returns 256 random bits, base64url, and their SHA-256: the
// value is handed out, the hash is stored.
func newSecret() (string, []byte) {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	v := base64.RawURLEncoding.EncodeToString(b[:])
	return v, hashOf(v)
}

func hashOf(v string) []byte {
	h := sha256.Sum256([]byte(v))
	return h[:]
}

// SaveRequest keeps a checked authorization request until the person
// approves or declines it, and returns its id for the pages.
func (s *Service) SaveRequest(ctx context.Context, r authorize.Request) (string, error) {
	data, err := json.Marshal(r)
	if err != nil {
		return "", fmt.Errorf("signin: %w", err)
	}
	id, hash := newSecret()
	now := s.now()
	p := store.Pending{Kind: kindAuthorize, Hash: hash, Data: data, CreatedAt: now, ExpiresAt: now.Add(orDefault(s.PendingTTL, DefaultPendingTTL))}
	if err := s.Store.PutPending(ctx, p); err != nil {
		return "", fmt.Errorf("signin: keep the request: %w", err)
	}
	return id, nil
}

// ErrRequestGone means the authorization request was approved, declined
// or expired: the person must start again from the application.
var ErrRequestGone = errors.New("signin: the authorization request is no longer pending")

// Request returns the pending authorization request of id.
func (s *Service) Request(ctx context.Context, id string) (authorize.Request, error) {
	p, err := s.Store.GetPending(ctx, kindAuthorize, hashOf(id))
	return s.decodeRequest(p, err)
}

func (s *Service) decodeRequest(p store.Pending, err error) (authorize.Request, error) {
	var r authorize.Request
	switch {
	case errors.Is(err, store.ErrNotFound):
		return r, ErrRequestGone
	case err != nil:
		return r, fmt.Errorf("signin: %w", err)
	case !s.now().Before(p.ExpiresAt):
		return r, ErrRequestGone
	}
	if err := json.Unmarshal(p.Data, &r); err != nil {
		return r, fmt.Errorf("signin: a pending request does not decode: %w", err)
	}
	return r, nil
}

// event is the audit record of a sign-in action, with its id and time,
// bounded as the log keeps it (records written with a change, such as a
// new session, do not pass through the Recorder, which would stamp them).
func (s *Service) event(action, result, subject, requestID string) store.Event {
	ev := store.Event{
		ID: audit.NewID("evt_"), Time: auditchain.Time(s.now()),
		Action: action, Result: result, Performer: subject, OnBehalf: subject, RequestID: requestID,
	}
	audit.Bound(&ev)
	return ev
}

// record writes ev; the caller fails closed on its error.
func (s *Service) record(ctx context.Context, ev store.Event) error {
	if err := s.Audit.Record(ctx, ev); err != nil {
		return fmt.Errorf("signin: audit: %w", err)
	}
	return nil
}
