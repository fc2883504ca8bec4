package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/mandate-dev/mandate/revocation"
)

// Sentinel errors. Backends wrap them with %w.
var (
	// ErrNotFound means the record does not exist.
	ErrNotFound = errors.New("store: not found")
	// ErrAlreadyExists means a record with the same key exists.
	ErrAlreadyExists = errors.New("store: already exists")
	// ErrReplay means a single-use value was used before.
	ErrReplay = errors.New("store: already used")
	// ErrUnavailable means the backend could not be reached or could not
	// commit; the caller must refuse (fail closed) and may retry later.
	ErrUnavailable = errors.New("store: unavailable")
	// ErrConflict means a write contradicts a stored record that never
	// changes, such as a checkpoint of a size already checkpointed with
	// another root: evidence of a fork or of tampering, not a retryable
	// race.
	ErrConflict = errors.New("store: conflicts with a stored record")
)

// User is a person (or service) whose authority agents use.
type User struct {
	ID string
	// Permissions are the scopes the user holds now.
	Permissions []string
	// Limits are the user's RFC 9396 authorization_details limits, a JSON
	// array of objects with a "type" (e.g. expense_approval with max_amount
	// and currency); empty for none. Exchanges grant no wider.
	Limits json.RawMessage
	// Version is the user's revocation version: bumping it revokes every
	// token issued with the user as subject before the bump. It only grows.
	Version int64
	// PasswordHash is the argon2id hash of the person's local password in
	// the PHC string format; empty when they sign in only through an
	// identity provider.
	PasswordHash string
	// Roles are the person's roles in Mandate itself: "admin", "auditor".
	Roles []string
	// Provider is the identity provider that manages the person (their
	// permissions and roles follow it at each sign-in); empty for people
	// managed in Mandate.
	Provider  string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Agent is an OAuth client that acts for users.
type Agent struct {
	ID string
	// SecretHash is SHA-256 of the client secret; empty when the agent
	// authenticates only with private_key_jwt.
	SecretHash []byte
	// JWKS is the agent's public JSON Web Key Set for private_key_jwt.
	JWKS json.RawMessage
	// JWKSURI is where the agent publishes its keys, if not in JWKS.
	JWKSURI string
	// Scopes is the most the agent may ever hold.
	Scopes []string
	// DelegateTo lists the agents it may hand its delegation on to.
	DelegateTo []string
	// MaxDepth, when positive, caps the chain length of tokens it acts in.
	MaxDepth int
	// Resources are the resource identifiers (token audiences) the client
	// serves as a resource server, besides its own ID: as a reporter
	// (audit:report) it may forward verifiers' records for these
	// audiences only.
	Resources []string
	// RedirectURIs are where the authorization endpoint may send a person
	// back to the client with a code: compared exactly, but for a
	// loopback address's port.
	RedirectURIs []string
	// Public marks a client with no credential at all
	// (token_endpoint_auth_method "none", RFC 7591 §2): it holds neither
	// SecretHash nor keys, and may use only the authorization code and
	// refresh token grants.
	Public bool
	// Name is the client_name it registered with, for display only.
	Name string
	// Registration says how the agent came to be: "config", "admin",
	// "dcr" (RFC 7591 Dynamic Client Registration) or "cimd" (a client ID
	// metadata document); empty for agents stored before it was kept.
	Registration string
	Disabled     bool
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

// Registration values of Agent.Registration.
const (
	RegistrationConfig = "config"
	RegistrationAdmin  = "admin"
	RegistrationDCR    = "dcr"
	RegistrationCIMD   = "cimd"
)

// Delegation is a standing grant: Subject lets Actor use Scopes for
// Audiences until Expires.
type Delegation struct {
	ID      string
	Subject string
	Actor   string
	Scopes  []string
	// Audiences the tokens may be addressed to; empty means any.
	Audiences []string
	// DelegateTo are agents the actor may hand the delegation's tokens on
	// to, besides those its own delegate_to names: a person approved
	// them on the consent page, for the agent that serves the resource
	// the tokens are for. Only the actor's own tokens are handed on so.
	DelegateTo []string
	// HandOn are audiences a hop after the actor's may reach besides
	// Audiences (when Audiences is not empty), as the person approved.
	HandOn []string
	// MaxDepth, when positive, caps the chain length under this delegation.
	MaxDepth int
	// Expires is zero for no expiry.
	Expires time.Time
	// Source says who made it: "config", "admin" or "consent".
	Source    string
	Revoked   bool
	RevokedAt time.Time
	CreatedAt time.Time
}

// Active reports whether the delegation may be used at now.
func (d Delegation) Active(now time.Time) bool {
	return !d.Revoked && (d.Expires.IsZero() || now.Before(d.Expires))
}

// DelegationFilter selects delegations; empty fields match any.
type DelegationFilter struct {
	Subject string
	Actor   string
	// IncludeRevoked also returns revoked delegations.
	IncludeRevoked bool
}

// IssuedToken is the server's record of a token it issued, kept so that
// introspection, revocation and further exchanges can find it.
type IssuedToken struct {
	JTI string
	// ParentJTI is the jti of the Mandate token it was exchanged from.
	ParentJTI string
	GrantType string
	Subject   string
	ClientID  string
	// Chain is the actors, current first; empty for a client's own token.
	Chain        []string
	DelegationID string
	Scopes       []string
	Audience     string
	// SubjectVersion is the subject's User.Version at issuance.
	SubjectVersion int64
	// Gen is the store Generation the token was minted at (its gen claim):
	// revocation entries made at a higher generation apply to it.
	Gen       int64
	IssuedAt  time.Time
	ExpiresAt time.Time
	Revoked   bool
	RevokedAt time.Time
}

// Revocation is one entry of the revocation feed. The store writes it in the
// same transaction as the change that causes it, derived from the record
// before and after the change (see the Update methods and RevokeToken), so
// that no backend and no caller can forget one.
type Revocation struct {
	// Seq is assigned by the store from 1, without gaps, in commit order
	// across every instance on the database.
	Seq int64
	// Kind is one of the revocation package's Kind constants.
	Kind  string
	ID    string
	Scope string
	// Gen is the Generation the change was committed at, for the kinds
	// that hit tokens minted below it (subject, scope, agent, delegation);
	// zero for token and key entries.
	Gen int64
	// At is when the change was made.
	At time.Time
	// Expires is, for a token entry, the revoked token's expiry (no token
	// exchanged from it outlives it); zero for the other kinds.
	Expires time.Time
}

// Key states, in the order a key passes through them.
const (
	// KeyNext is published in the JWKS but does not sign yet.
	KeyNext = "next"
	// KeyActive signs new tokens.
	KeyActive = "active"
	// KeyRetired no longer signs; it stays published until RetireAt.
	KeyRetired = "retired"
	// KeyRevoked is withdrawn at once (compromise).
	KeyRevoked = "revoked"
)

// Key is a signing key.
type Key struct {
	KID string
	// Alg is the JWS algorithm the key is used with (EdDSA, ES256, RS256).
	Alg string
	// Private is the PKCS #8 DER encoding of the private key.
	Private []byte
	State   string
	// ActivateAt is when a next key may start signing.
	ActivateAt time.Time
	// RetireAt is when a retired key leaves the JWKS.
	RetireAt  time.Time
	CreatedAt time.Time
}

// Event is one audit record. Seq and Hash are assigned by the store, in
// commit order; the values a caller sets are ignored.
type Event struct {
	Seq       int64           `json:"seq"`
	ID        string          `json:"id"`
	Time      time.Time       `json:"time"`
	RequestID string          `json:"request_id,omitempty"`
	Action    string          `json:"action"`
	Result    string          `json:"result"`
	Reason    string          `json:"reason,omitempty"`
	Detail    string          `json:"reason_text,omitempty"`
	Performer string          `json:"performed_by,omitempty"`
	OnBehalf  string          `json:"on_behalf_of,omitempty"`
	Chain     []string        `json:"chain,omitempty"`
	ClientID  string          `json:"client_id,omitempty"`
	Scopes    []string        `json:"scopes,omitempty"`
	Requested []string        `json:"requested_scopes,omitempty"`
	Audience  string          `json:"audience,omitempty"`
	Resource  string          `json:"resource,omitempty"`
	Context   json.RawMessage `json:"context,omitempty"`
	// DelegationID, JTI and ParentJTI identify what the event concerns.
	DelegationID string `json:"delegation_id,omitempty"`
	JTI          string `json:"jti,omitempty"`
	ParentJTI    string `json:"parent_jti,omitempty"`
	// AgentVersion is the version the acting agent declared in its token
	// request (the agent_version parameter), so that refusal rates can be
	// compared between versions of one agent.
	AgentVersion string `json:"agent_version,omitempty"`
	// AuthorizationDetails is the RFC 9396 authorization_details a token
	// was granted (a JSON array), or that a refused request asked for.
	AuthorizationDetails json.RawMessage `json:"authorization_details,omitempty"`
	// Operation is what a verifier's API did in a "request" record, named
	// by the API (verify.SetAction), for example "expense:approve".
	Operation string `json:"operation,omitempty"`
	// Attributes is a JSON object of facts the API recorded about the
	// request (verify.Attribute), for example {"amount":"487.50"}.
	Attributes json.RawMessage `json:"attributes,omitempty"`
	// ReportedBy is the client that forwarded a verifier's record to
	// POST /audit/ingest; the server sets it, never the sender.
	ReportedBy string `json:"reported_by,omitempty"`
	// Hash is the record's chain hash (THREATS T67): auditchain.Next of the
	// Hash of record Seq-1 (auditchain.Genesis before record 1) and this
	// record with its Seq. The store computes it in the transaction that
	// appends the record, from the last hash kept with the last Seq, so
	// that the chain follows commit order across every instance (T72). It
	// is not part of the record's canonical encoding.
	Hash []byte `json:"hash,omitempty"`
}

// EventFilter selects audit events; empty fields match any. Events come back
// newest first. Since is inclusive and Until exclusive; JTI also matches an
// event's ParentJTI (so a token's trail shows what was exchanged from it);
// Subject matches OnBehalf; Limit is capped at 1000.
type EventFilter struct {
	// Actor matches an event whose chain holds the actor anywhere, or whose
	// performer or client is the actor.
	Actor   string
	Subject string
	Action  string
	// Result, Audience, Resource, DelegationID and AgentVersion match the
	// event's field exactly.
	Result       string
	Audience     string
	Resource     string
	DelegationID string
	AgentVersion string
	JTI          string
	// IDs, when not empty, matches an event whose ID is one of them (at
	// most MaxEventIDs). Only verifiers' records (Action "request") have
	// unique ids; with Action "request" the stores answer it from their
	// index of those ids.
	IDs   []string
	Since time.Time
	Until time.Time
	// BeforeSeq, when positive, returns only events with Seq < BeforeSeq
	// (the pagination cursor).
	BeforeSeq int64
	// Limit caps the result; zero means 100.
	Limit int
}

// MaxEventIDs is the most ids EventFilter.IDs may name; QueryEvents
// refuses more.
const MaxEventIDs = 1000

// Batch is written in one transaction by Commit: the tokens a group of
// requests issued and the audit events that record them.
type Batch struct {
	Tokens []IssuedToken
	Events []Event
}

// Update functions (UpdateUser, UpdateAgent, ...) run fn inside the
// backend's write transaction: fn must be quick and must not call the store.

// Users stores users.
type Users interface {
	CreateUser(ctx context.Context, u User, events ...Event) error
	GetUser(ctx context.Context, id string) (User, error)
	ListUsers(ctx context.Context) ([]User, error)
	// UpdateUser applies fn to the stored user atomically; a Version lower
	// than the stored one is refused.
	UpdateUser(ctx context.Context, id string, fn func(User) (User, error), events ...Event) (User, error)
	// DeleteUser removes the user and appends events, atomically, or
	// returns an error wrapping ErrNotFound and writes nothing. The
	// revocation entries are those of DeletedUser: every token issued on
	// the user's behalf stops being in force, even if a user of the same
	// id is created later.
	DeleteUser(ctx context.Context, id string, events ...Event) error
}

// Agents stores agents.
type Agents interface {
	CreateAgent(ctx context.Context, a Agent, events ...Event) error
	GetAgent(ctx context.Context, id string) (Agent, error)
	ListAgents(ctx context.Context) ([]Agent, error)
	UpdateAgent(ctx context.Context, id string, fn func(Agent) (Agent, error), events ...Event) (Agent, error)
	// DeleteAgent removes the agent and appends events, atomically, or
	// returns an error wrapping ErrNotFound and writes nothing. The
	// revocation entries are those of DeletedAgent: every token with the
	// agent in its chain or as its client stops being in force.
	DeleteAgent(ctx context.Context, id string, events ...Event) error
}

// Delegations stores delegations.
type Delegations interface {
	CreateDelegation(ctx context.Context, d Delegation, events ...Event) error
	GetDelegation(ctx context.Context, id string) (Delegation, error)
	ListDelegations(ctx context.Context, f DelegationFilter) ([]Delegation, error)
	UpdateDelegation(ctx context.Context, id string, fn func(Delegation) (Delegation, error), events ...Event) (Delegation, error)
}

// Tokens stores issued tokens. New tokens arrive through Commit.
type Tokens interface {
	GetToken(ctx context.Context, jti string) (IssuedToken, error)
	// RevokeToken marks the token revoked at the given time with the events
	// in the same transaction. Revoking a revoked token succeeds and keeps
	// the first RevokedAt.
	RevokeToken(ctx context.Context, jti string, at time.Time, events ...Event) error
	// Commit writes the batch in one durable transaction.
	Commit(ctx context.Context, b Batch) error
}

// Keys stores signing keys.
type Keys interface {
	CreateKey(ctx context.Context, k Key, events ...Event) error
	ListKeys(ctx context.Context) ([]Key, error)
	UpdateKey(ctx context.Context, kid string, fn func(Key) (Key, error), events ...Event) (Key, error)
}

// AuditLog reads the audit events that writes appended.
type AuditLog interface {
	QueryEvents(ctx context.Context, f EventFilter) ([]Event, error)
	// TallyEvents counts the records of f's window as Tally counts them,
	// grouped into rows in no particular order, from one snapshot of the
	// log: every record committed before the call is counted, whether or
	// not a background indexer has reached it. It reads the window once,
	// in the database, and returns a row per distinct key rather than a
	// record per record.
	TallyEvents(ctx context.Context, f TallyFilter) ([]EventTally, error)
	// EventsAfter returns up to limit events (PageLimit: zero means
	// DefaultPageLimit, at most MaxPageLimit) with Seq above afterSeq, in
	// Seq order, oldest first: the log read forward, as a checkpointer or
	// an exporter does. Seqs run from 1 without gaps, in commit order, so a
	// reader that has seen Seq n never sees a lower one appear later.
	EventsAfter(ctx context.Context, afterSeq int64, limit int) ([]Event, error)
}

// Checkpoint is a signed statement of the audit log's state at Size
// records (THREATS T68), kept apart from the events, so that truncating,
// rolling back or rewriting the log is detected against it.
type Checkpoint struct {
	// Size is the number of records it covers: Seq 1 to Size.
	Size int64
	// Root is the root of the log's Merkle tree (RFC 6962, the leaves
	// auditchain.LeafHash) at Size.
	Root []byte
	// Head is the chain hash (Event.Hash) of record Size.
	Head []byte
	// Tree is the JSON of the auditchain.Tree at Size, from which the next
	// checkpoint continues without reading the log from the start.
	Tree []byte
	// Note is the signed note (the text and its signatures) that states
	// Size and Root.
	Note string
	// CreatedAt is when it was made; the zero time means the store's clock.
	CreatedAt time.Time
}

// Check refuses a checkpoint no store keeps: a Size below 1, or an empty
// Root, Head or Note. Backends add their own limits.
func (c Checkpoint) Check() error {
	switch {
	case c.Size < 1:
		return fmt.Errorf("size %d, want 1 or more", c.Size)
	case len(c.Root) == 0, len(c.Head) == 0:
		return errors.New("empty root or head")
	case c.Note == "":
		return errors.New("empty note")
	}
	return nil
}

// EventReader reads the audit log forward (AuditLog.EventsAfter).
type EventReader interface {
	EventsAfter(ctx context.Context, afterSeq int64, limit int) ([]Event, error)
}

// EachEventPage is how many events EachEvent reads at a time. An event
// takes about 1.4 KB in memory, so a page of MaxPageLimit (14 MB) made the
// server's heap jump every time the checkpointer read the records of the
// last 10 s under load, and the garbage collector's target with it.
const EachEventPage = 1000

// EachEvent calls fn with every event after afterSeq, oldest first, reading
// the log EachEventPage events at a time; it stops at fn's first error and
// returns it. It reads the next page while fn handles the one before, so
// that an export or a verification does not wait for the store between
// pages: log sees one EventsAfter call at a time, from another goroutine,
// and none is left running when EachEvent returns.
func EachEvent(ctx context.Context, log EventReader, afterSeq int64, fn func(Event) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type page struct {
		evs []Event
		err error
	}
	next := make(chan page, 1)
	read := func(after int64) {
		evs, err := log.EventsAfter(ctx, after, EachEventPage)
		next <- page{evs, err}
	}
	reading := true
	defer func() {
		if reading { // fn failed with a read under way: stop it and wait
			cancel()
			<-next
		}
	}()
	go read(afterSeq)
	for {
		p := <-next
		reading = false
		if p.err != nil {
			return p.err
		}
		full := len(p.evs) == EachEventPage
		if full {
			reading = true
			go read(p.evs[len(p.evs)-1].Seq)
		}
		for _, ev := range p.evs {
			if err := fn(ev); err != nil {
				return err
			}
		}
		if !full {
			return nil
		}
	}
}

// CheckpointReader reads the stored checkpoints (Checkpoints.Checkpoints).
type CheckpointReader interface {
	Checkpoints(ctx context.Context, after int64, limit int) ([]Checkpoint, error)
}

// AllCheckpoints returns every stored checkpoint, oldest first.
func AllCheckpoints(ctx context.Context, cs CheckpointReader) ([]Checkpoint, error) {
	var out []Checkpoint
	for after := int64(0); ; {
		page, err := cs.Checkpoints(ctx, after, MaxPageLimit)
		if err != nil {
			return nil, err
		}
		out = append(out, page...)
		if len(page) < MaxPageLimit {
			return out, nil
		}
		after = page[len(page)-1].Size
	}
}

// Checkpoints stores audit-log checkpoints and the key that signs them.
type Checkpoints interface {
	// AddCheckpoint stores c. Checkpoints are stored in Size order, at
	// most one per Size, and never change:
	//   - c with the Size, Root and Head of a stored checkpoint succeeds
	//     and stores nothing (a retry, or two instances checkpointing the
	//     same size), even with another Note;
	//   - c with the Size of a stored checkpoint but another Root or Head
	//     is refused with an error wrapping ErrConflict (a fork, or a log
	//     rewritten under the checkpointer);
	//   - c below the latest checkpoint's Size, at a Size not stored, is
	//     refused with an error wrapping ErrAlreadyExists (a later
	//     checkpoint covers it).
	// A Size below 1, or an empty Root, Head or Note, is refused.
	AddCheckpoint(ctx context.Context, c Checkpoint) error
	// Checkpoints returns up to limit checkpoints (PageLimit) with Size
	// above after, oldest first.
	Checkpoints(ctx context.Context, after int64, limit int) ([]Checkpoint, error)
	// LatestCheckpoint returns the checkpoint with the largest Size, or an
	// error wrapping ErrNotFound when there is none.
	LatestCheckpoint(ctx context.Context) (Checkpoint, error)
	// CheckpointKey returns the checkpoint signing key, an opaque string
	// (the caller's encoding of a private key). The first call on a
	// database calls create and stores what it returns; when several
	// callers, in any number of instances, race to create it, one key is
	// stored and every caller gets that one. create's error is returned
	// wrapped, and an empty key is refused; either way nothing is stored.
	CheckpointKey(ctx context.Context, create func() (string, error)) (string, error)
}

// Limits for the reads that page forward (EventsAfter, Checkpoints).
const (
	DefaultPageLimit = 1000
	MaxPageLimit     = 10000
)

// PageLimit is the number of records a forward read returns for the limit
// asked: DefaultPageLimit for zero or less, at most MaxPageLimit.
func PageLimit(limit int) int { return clampLimit(limit, DefaultPageLimit, MaxPageLimit) }

// clampLimit is limit within (0, most], def for zero or less.
func clampLimit(limit, def, most int) int {
	if limit <= 0 {
		return def
	}
	return min(limit, most)
}

// Nonces records single-use values such as client-assertion jti.
type Nonces interface {
	// UseNonce records (namespace, id) until expires; a second use of a
	// pair that has not expired returns ErrReplay. Expired pairs may be
	// collected.
	UseNonce(ctx context.Context, namespace, id string, expires time.Time) error
}

// NotBefore stores the global not-before epoch: every token issued before it
// is inactive, whatever its own record says. Restoring the store from a
// backup advances it to the restore time (THREATS T56), so that a token
// revoked after the backup was taken, whose revocation the backup lost,
// cannot come back.
type NotBefore interface {
	// NotBefore returns the epoch, in UTC to the microsecond, or the zero
	// time when it was never set.
	NotBefore(ctx context.Context) (time.Time, error)
	// AdvanceNotBefore sets the epoch to the later of its current value and
	// t (it never moves back), appends the events and bumps Generation, all
	// in one transaction, and returns the epoch now in force (t truncated to
	// the microsecond, or the later current value). Backends that notify
	// other instances of changes (PostgreSQL) notify this one too, so that
	// their caches drop the old epoch. The events are appended even when the
	// epoch was already later than t. A zero t is refused.
	AdvanceNotBefore(ctx context.Context, t time.Time, events ...Event) (time.Time, error)
}

// Revocations reads the revocation feed that updates append to.
//
// Entries are derived inside the write transactions:
//   - UpdateUser: Version raised → a subject entry; each permission held
//     before and not after → a scope entry (ID the user, Scope the
//     permission);
//   - UpdateAgent: Disabled false → true → an agent entry;
//   - DeleteUser, DeleteAgent: the entries of the update to DeletedUser or
//     DeletedAgent (a subject entry and a scope entry per permission; an
//     agent entry unless it was disabled already);
//   - UpdateDelegation: an active delegation revoked, or a scope or
//     audience removed from it, or its expiry brought forward → a
//     delegation entry;
//   - UpdateKey: State → KeyRevoked → a key entry (ID the kid);
//   - RevokeToken: the first revocation of a token → a token entry with
//     the token's expiry.
//
// Entries with a Gen carry the generation the same transaction bumped to.
// UserRevocations, AgentRevocations, DelegationRevocations, KeyRevocations
// and TokenRevocation implement these rules once, for every backend.
type Revocations interface {
	// ListRevocations returns up to limit entries (at most 10000; zero
	// means 1000) with Seq above after, in Seq order.
	ListRevocations(ctx context.Context, after int64, limit int) ([]Revocation, error)
	// RevocationSeq returns the highest Seq handed out, 0 when none; it
	// does not fall when entries are collected.
	RevocationSeq(ctx context.Context) (int64, error)
	// CollectRevocations deletes the token entries whose Expires is before
	// tokensBefore and the other entries whose At is before othersBefore,
	// and returns how many it deleted.
	CollectRevocations(ctx context.Context, tokensBefore, othersBefore time.Time) (int, error)
}

// SweepCutoffs says what Sweeper.Sweep deletes: every row of a kind whose
// time is before (strictly) the kind's cutoff. A zero cutoff deletes
// nothing of its kind.
type SweepCutoffs struct {
	// Tokens deletes issued tokens whose ExpiresAt is before it. A token
	// exchanged from another never outlives it, so a cutoff below every
	// presentable exp (now less the verifiers' leeway) leaves every row
	// a lineage walk can reach.
	Tokens time.Time
	// Nonces deletes single-use values whose expiry is before it.
	Nonces time.Time
	// TokenRevocations and OtherRevocations delete revocation feed entries
	// as CollectRevocations does: token entries whose Expires is before
	// TokenRevocations, the other entries whose At is before
	// OtherRevocations.
	TokenRevocations time.Time
	OtherRevocations time.Time
	// SignIn deletes what people's sign-in keeps (SignIn: authorization
	// codes, refresh tokens, sessions and pending steps) whose ExpiresAt
	// is before it, used or not: a used code or refresh token stays until
	// its own expiry, so that presenting it again is still a replay.
	SignIn time.Time
}

// Swept counts the rows one Sweep deleted, by kind.
type Swept struct {
	Tokens      int
	Nonces      int
	Revocations int
	// SignIn counts codes, refresh tokens, sessions and pending steps.
	SignIn int
}

// Total is the number of rows deleted, of every kind.
func (s Swept) Total() int { return s.Tokens + s.Nonces + s.Revocations + s.SignIn }

// Sweep limits: the most rows one Sweep deletes.
const (
	DefaultSweepLimit = 1000
	MaxSweepLimit     = 10000
)

// SweepLimit is the number of rows Sweep deletes at most for the limit
// asked: DefaultSweepLimit for zero or less, at most MaxSweepLimit.
func SweepLimit(limit int) int { return clampLimit(limit, DefaultSweepLimit, MaxSweepLimit) }

// Sweeper deletes the rows that have expired, so that storage stays bounded
// (tokens, nonces, sign-in rows and revocation feed entries; never audit
// records).
type Sweeper interface {
	// Sweep deletes at most limit rows in all (SweepLimit), in one
	// transaction short enough not to hold up writers: token rows first,
	// then nonces, then sign-in rows (codes, refresh tokens, sessions,
	// pending steps), then revocation feed entries, each by c. It
	// returns how many of each it deleted; a Total below the limit means
	// that nothing more was due at c when it ran (but rows other
	// transactions held, which a backend may skip), and the caller may
	// stop.
	// Deletes are idempotent: several instances may sweep at once. It
	// bumps no Generation, appends no audit record and notifies nothing:
	// what it deletes was no longer presentable.
	Sweep(ctx context.Context, c SweepCutoffs, limit int) (Swept, error)
}

// Revocation limits for ListRevocations.
const (
	DefaultRevocationLimit = 1000
	MaxRevocationLimit     = 10000
)

// RevocationLimit is the number of entries ListRevocations returns for the
// limit asked: DefaultRevocationLimit for zero or less, at most
// MaxRevocationLimit.
func RevocationLimit(limit int) int {
	if limit <= 0 {
		return DefaultRevocationLimit
	}
	return min(limit, MaxRevocationLimit)
}

// The derivation functions below are the one place that decides which
// revocation entries a change makes: every backend calls them inside the
// write transaction, with the record before and after the change, the
// Generation that transaction bumped to (gen) and the time of the change.
// They return nil when the change revokes nothing.

// UserRevocations returns the entries of a user update: a subject entry when
// Version was raised, then a scope entry for each permission held before and
// not after, in the order held before.
func UserRevocations(before, after User, gen int64, at time.Time) []Revocation {
	var out []Revocation
	if after.Version > before.Version {
		out = append(out, Revocation{Kind: revocation.KindSubject, ID: after.ID, Gen: gen, At: at})
	}
	// A set, and not slices.Contains: a user may hold thousands.
	seen := make(map[string]bool, len(before.Permissions)+len(after.Permissions))
	for _, p := range after.Permissions {
		seen[p] = true
	}
	for _, p := range before.Permissions {
		if !seen[p] {
			seen[p] = true
			out = append(out, Revocation{Kind: revocation.KindScope, ID: after.ID, Scope: p, Gen: gen, At: at})
		}
	}
	return out
}

// AgentRevocations returns the entries of an agent update: an agent entry
// when it was disabled.
func AgentRevocations(before, after Agent, gen int64, at time.Time) []Revocation {
	if before.Disabled || !after.Disabled {
		return nil
	}
	return []Revocation{{Kind: revocation.KindAgent, ID: after.ID, Gen: gen, At: at}}
}

// DelegationRevocations returns the entries of a delegation update: one
// delegation entry when a delegation active at at was revoked, lost a scope,
// lost an audience (a delegation with no audiences allows any, so adding
// the first one narrows it too), or had its expiry set or brought forward.
// A delegation that was not active at at makes none: it was revoked or had
// expired before, and no token minted under it outlives that.
func DelegationRevocations(before, after Delegation, gen int64, at time.Time) []Revocation {
	if !before.Active(at) {
		return nil
	}
	narrowed := after.Revoked ||
		removed(before.Scopes, after.Scopes) ||
		(len(before.Audiences) == 0 && len(after.Audiences) > 0) ||
		(len(after.Audiences) > 0 && removed(before.Audiences, after.Audiences)) ||
		(!after.Expires.IsZero() && (before.Expires.IsZero() || after.Expires.Before(before.Expires)))
	if !narrowed {
		return nil
	}
	return []Revocation{{Kind: revocation.KindDelegation, ID: after.ID, Gen: gen, At: at}}
}

// DeletedUser is u as its deletion leaves it for UserRevocations: its
// Version raised and every permission removed. Backends derive the entries
// of DeleteUser from the stored user and DeletedUser of it.
func DeletedUser(u User) User {
	u.Version++
	u.Permissions = nil
	return u
}

// DeletedAgent is a as its deletion leaves it for AgentRevocations:
// disabled. Backends derive the entries of DeleteAgent from the stored
// agent and DeletedAgent of it.
func DeletedAgent(a Agent) Agent {
	a.Disabled = true
	return a
}

// KeyRevocations returns the entries of a key update: a key entry, without
// a Gen, when the key was revoked.
func KeyRevocations(before, after Key, _ int64, at time.Time) []Revocation {
	if before.State == KeyRevoked || after.State != KeyRevoked {
		return nil
	}
	return []Revocation{{Kind: revocation.KindKey, ID: after.KID, At: at}}
}

// TokenRevocation is the entry of the first revocation of the token jti,
// which expires at expires, made at at; it has no Gen.
func TokenRevocation(jti string, expires, at time.Time) Revocation {
	return Revocation{Kind: revocation.KindToken, ID: jti, At: at, Expires: expires}
}

// removed reports whether before holds a value after does not.
func removed(before, after []string) bool {
	for _, v := range before {
		if !slices.Contains(after, v) {
			return true
		}
	}
	return false
}

// Listener is the optional capability of a backend shared by several
// instances: Listen pushes the store's generation whenever another instance
// changes users, agents, delegations, keys or the not-before epoch
// (PostgreSQL LISTEN/NOTIFY), so that caches need not wait for their poll.
// A single-process backend (SQLite) does not implement it.
type Listener interface {
	// Listen calls fn with the current generation once it listens, then on
	// every change, until ctx ends (nil) or the connection breaks (an error
	// wrapping ErrUnavailable); the caller reconnects by calling it again.
	// Notifications may be coalesced or repeated, and fn must be quick.
	Listen(ctx context.Context, fn func(generation int64)) error
}

// Store is a complete backend.
type Store interface {
	Users
	Agents
	Delegations
	Tokens
	Keys
	AuditLog
	Checkpoints
	Nonces
	NotBefore
	Revocations
	Sweeper
	AuditArchive
	SignIn
	UpstreamGrants
	// Generation is a counter that grows on every change to users, agents,
	// delegations, keys or the not-before epoch, by any process; caches
	// compare it to know they are stale.
	Generation(ctx context.Context) (int64, error)
	// Ping checks that the backend can be reached.
	Ping(ctx context.Context) error
	Close() error
}

// ArchivedLog is the part of the audit log moved out to archives: records
// 1 to Size, whose last chain hash is Head and whose Merkle tree is Tree.
// The live log in the store goes on from it: record Size+1 links to Head.
// The zero ArchivedLog is a log nothing was archived from.
type ArchivedLog struct {
	// Size is the seq of the last archived record.
	Size int64
	// Head is the chain hash (Event.Hash) of record Size.
	Head []byte
	// Tree is the JSON of the auditchain.Tree at Size.
	Tree []byte
}

// CheckMarkMove checks a move of the archived mark from from to a, given
// the stored mark cur, as every backend's MarkArchived must (see
// AuditArchive): retry is true when the mark is a already; an error wraps
// ErrConflict. The checks against the stored records are the backend's.
func CheckMarkMove(cur ArchivedLog, from int64, a ArchivedLog) (retry bool, err error) {
	switch {
	case cur.Size == a.Size && bytes.Equal(cur.Head, a.Head) && a.Size > 0:
		return true, nil
	case cur.Size != from:
		return false, fmt.Errorf("%w: the archived mark is at %d, not %d", ErrConflict, cur.Size, from)
	case a.Size <= from || len(a.Head) == 0 || len(a.Tree) == 0:
		return false, fmt.Errorf("%w: a mark at %d does not move forward from %d, or has no head or tree", ErrConflict, a.Size, from)
	}
	return false, nil
}

// CheckMarkRecord checks the record a mark moves to, as every backend's
// MarkArchived must after CheckMarkMove: hash is the chain hash of stored
// record a.Size (nil when there is none) and last the newest record's seq.
// An error wraps ErrConflict.
func CheckMarkRecord(a ArchivedLog, hash []byte, last int64) error {
	switch {
	case hash == nil:
		return fmt.Errorf("%w: record %d is not in the store", ErrConflict, a.Size)
	case !bytes.Equal(hash, a.Head):
		return fmt.Errorf("%w: the head is not the chain hash of record %d", ErrConflict, a.Size)
	case a.Size >= last:
		return fmt.Errorf("%w: record %d is the newest, which stays", ErrConflict, a.Size)
	}
	return nil
}

// AuditArchive is what the retention of the audit log needs of a store:
// where the archived part ends, and deleting records once they are
// archived. The order an archiver keeps (write and check the archive,
// MarkArchived, then DeleteArchivedEvents) makes every step safe to redo
// after a crash: records are deleted only below the mark, and the mark
// only moves forward.
type AuditArchive interface {
	// ArchivedLog returns where the archived part of the log ends; the
	// zero ArchivedLog when nothing was archived.
	ArchivedLog(ctx context.Context) (ArchivedLog, error)
	// MarkArchived moves the mark from the archived size from to a:
	// records 1 to a.Size are archived. It succeeds and changes nothing
	// when the mark is a already (a retry). A stored mark other than from
	// (another archiver moved it), an a.Size not above from, an a.Head that
	// is not the chain hash of the stored record a.Size, or an a.Size at or
	// past the newest record (which stays, so that appends chain on from
	// it) is refused with an error wrapping ErrConflict.
	MarkArchived(ctx context.Context, from int64, a ArchivedLog) error
	// DeleteArchivedEvents deletes the oldest records with Seq at most
	// through, at most limit of them (PageLimit) in one transaction, or
	// more when it removes a whole partition of the log at once (the
	// PostgreSQL store), and returns how many it deleted: callers repeat
	// it until it returns 0.
	// A through above the archived size is refused with an error wrapping
	// ErrConflict: only archived records are ever deleted.
	DeleteArchivedEvents(ctx context.Context, through int64, limit int) (int, error)
	// LeaseArchive takes the archive lease for holder, or renews it,
	// until ttl from now by the store's clock: one archiver at a time
	// writes segments, however many instances share the store and the
	// archive. It returns true when the lease was free, expired (its
	// holder stopped without releasing it) or holder's already, and
	// false, without an error, while another holder's lease runs.
	LeaseArchive(ctx context.Context, holder string, ttl time.Duration) (bool, error)
	// RenewArchive extends holder's archive lease until ttl from now,
	// while no one else took it: also when it expired, since no other
	// archiver ran meanwhile. It returns false, without an error, when
	// holder lost the lease (another took it after it expired, or it was
	// released): holder must stop, as another archiver may be running.
	RenewArchive(ctx context.Context, holder string, ttl time.Duration) (bool, error)
	// ReleaseArchive gives up holder's archive lease; it does nothing
	// when holder does not hold it.
	ReleaseArchive(ctx context.Context, holder string) error
}
