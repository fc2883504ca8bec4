package directory

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/mandate-dev/mandate/internal/audit"
	"github.com/mandate-dev/mandate/internal/auditchain"
	"github.com/mandate-dev/mandate/internal/store"
)

// Sentinel errors. Every refusal the directory decides wraps one of them;
// any other error is the store's (store.ErrUnavailable and the like), and
// the caller refuses the request (fail closed).
var (
	// ErrNotFound means the record a write names does not exist
	// (*NotFoundError says which).
	ErrNotFound = errors.New("directory: not found")
	// ErrInvalid means a record breaks a rule (*InvalidError says which
	// field and why; Problems lists them all).
	ErrInvalid = errors.New("directory: invalid")
	// ErrConflict means the id is taken (*ConflictError says by what).
	ErrConflict = errors.New("directory: conflict")
)

// NotFoundError names the record that does not exist: What is "user",
// "agent", "delegation", "token", "subject" or "actor".
type NotFoundError struct {
	What string
	ID   string
}

// Error reads like `agent "agent:x" not found`.
func (e *NotFoundError) Error() string { return e.What + " " + strconv.Quote(e.ID) + " not found" }

// Unwrap makes errors.Is(err, ErrNotFound) true.
func (e *NotFoundError) Unwrap() error { return ErrNotFound }

// ConflictError says why a record cannot be created under ID: Problem is
// a sentence without the id, safe to show.
type ConflictError struct {
	ID      string
	Problem string
}

// Error reads like `"user:sam": a user with this id exists`.
func (e *ConflictError) Error() string { return strconv.Quote(e.ID) + ": " + e.Problem }

// Unwrap makes errors.Is(err, ErrConflict) true.
func (e *ConflictError) Unwrap() error { return ErrConflict }

// Performers that are not people.
const (
	// PerformerAdmin is the holder of the admin API's bearer token.
	PerformerAdmin = "admin"
	// PerformerConfig is the configuration file (provisioning).
	PerformerConfig = "config"
	// PerformerCLI is a command run on the store directly.
	PerformerCLI = "cli"
	// PerformerAnonymous is a caller that did not authenticate: a client
	// registering itself (RFC 7591).
	PerformerAnonymous = "anonymous"
)

// Performer is who takes an action, as its audit record names them.
type Performer struct {
	// ID is recorded as performed_by: PerformerAdmin, PerformerConfig,
	// PerformerCLI, a signed-in person's subject, or a client's id.
	ID string
	// ClientID, when the performer is an OAuth client acting for itself
	// (a client revoking a token issued to it), is recorded as client_id.
	ClientID string
	// RequestID correlates the record with the request that caused it;
	// empty outside a request.
	RequestID string
}

// Delegation sources (store.Delegation.Source).
const (
	SourceConfig  = "config"
	SourceAdmin   = "admin"
	SourceConsent = "consent"
)

// Store is what the directory reads and writes: users, agents,
// delegations, issued tokens (to revoke one) and the not-before epoch. A
// store.Store satisfies it; pass the cached store the server reads, so
// that every write invalidates what it changed.
type Store interface {
	store.Users
	store.Agents
	store.Delegations
	GetToken(ctx context.Context, jti string) (store.IssuedToken, error)
	RevokeToken(ctx context.Context, jti string, at time.Time, events ...store.Event) error
	AdvanceNotBefore(ctx context.Context, t time.Time, events ...store.Event) (time.Time, error)
}

// Directory writes people, agents, delegations and revocations. Each
// write checks the record, then changes the store and appends its audit
// record, naming the Performer, in one transaction; a write that touches
// several records (deleting a user revokes their delegations first) is
// several transactions, ordered so that a failure part-way leaves nothing
// in force that the finished write would have ended, and a retry finishes
// it. It is safe for concurrent use.
type Directory struct {
	Store Store
	// Now is the clock of the records and of expiry checks; nil means
	// time.Now.
	Now func() time.Time
}

func (d *Directory) now() time.Time {
	if d.Now == nil {
		return time.Now().UTC()
	}
	return d.Now().UTC()
}

// event is the audit record of a change by p: action on resource.
func (d *Directory) event(p Performer, action, resource string) store.Event {
	return store.Event{
		ID:        audit.NewID("evt_"),
		Time:      auditchain.Time(d.now()),
		RequestID: p.RequestID,
		Action:    action,
		Result:    audit.ResultOK,
		Performer: p.ID,
		ClientID:  p.ClientID,
		Resource:  resource,
	}
}

// bound is ev as the store keeps it (audit.Bound).
func bound(ev store.Event) store.Event {
	audit.Bound(&ev)
	return ev
}

// storeErr maps the store's answer about the record what named id:
// store.ErrNotFound is a *NotFoundError, store.ErrAlreadyExists a
// *ConflictError; anything else is returned as it is.
func storeErr(err error, what, id string) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("%w (%w)", &NotFoundError{What: what, ID: id}, err)
	case errors.Is(err, store.ErrAlreadyExists):
		return fmt.Errorf("%w (%w)", &ConflictError{ID: id, Problem: "a " + what + " with this id exists"}, err)
	}
	return err
}

// invalid is the refusal of field for problem.
func invalid(field, format string, args ...any) error {
	return &InvalidError{Field: field, Problem: fmt.Sprintf(format, args...)}
}

// checkID refuses an invalid id as the field "id".
func checkID(id string) error {
	if err := CheckID(id); err != nil {
		return invalid("id", "%v", err)
	}
	return nil
}
