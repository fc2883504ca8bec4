package audit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/mandate-dev/mandate/internal/auditchain"
	"github.com/mandate-dev/mandate/internal/store"
)

// Event is one audit record.
type Event = store.Event

// Actions.
const (
	ActionTokenIssue      = "token.issue"
	ActionTokenExchange   = "token.exchange"
	ActionTokenRefused    = "token.refused"
	ActionTokenRevoked    = "token.revoked"
	ActionTokenIntrospect = "token.introspect"
	ActionClientAuth      = "client.auth"
	// ActionAdminAuth records refused admin API calls (a wrong or missing
	// admin bearer token), at most one record a second with the count.
	ActionAdminAuth       = "admin.auth"
	ActionUserPermissions = "user.permissions"
	ActionUserRevoked     = "user.revoked"
	ActionUserLimits      = "user.limits"
	ActionUserCreated     = "user.created"
	// ActionUserPassword records a person's new password (never the
	// password or its hash).
	ActionUserPassword = "user.password"
	// ActionUserRoles records a person's new roles in Mandate itself,
	// listed in its context.
	ActionUserRoles     = "user.roles"
	ActionUserDeleted   = "user.deleted"
	ActionAgentCreated  = "agent.created"
	ActionAgentUpdated  = "agent.updated"
	ActionAgentDisabled = "agent.disabled"
	ActionAgentEnabled  = "agent.enabled"
	ActionAgentDeleted  = "agent.deleted"
	// ActionAgentSecret records a new client secret given to an agent
	// (never the secret); the old one is no longer accepted.
	ActionAgentSecret       = "agent.secret"
	ActionDelegationNew     = "delegation.created"
	ActionDelegationUpdated = "delegation.updated"
	ActionDelegationGone    = "delegation.revoked"
	ActionKeyCreated        = "key.created"
	ActionKeyRevoked        = "key.revoked"
	// ActionEpochAdvanced records `mandate store advance-epoch`: every token
	// issued before the new not-before epoch is refused (THREATS T56).
	ActionEpochAdvanced = "store.epoch_advanced"
	// ActionSignIn records a person's sign-in, granted or refused (a
	// wrong password, an unknown account, too many attempts), and
	// ActionSignOut its end.
	ActionSignIn  = "person.sign_in"
	ActionSignOut = "person.sign_out"
	// ActionAuthorizeRefused records an authorization request refused at
	// /authorize or on the consent page (an error page, or an error sent
	// back to the client), at most once a second per reason with the
	// count, since anyone can provoke most of them.
	ActionAuthorizeRefused = "authorize.refused"
	// ActionConsentDenied records a person declining an authorization
	// request; an approval is recorded as the delegation it creates.
	ActionConsentDenied = "consent.denied"
	// ActionGrantReplayed records an authorization code or refresh token
	// presented again: what its first use issued is revoked.
	ActionGrantReplayed = "grant.replayed"
	// ActionClientRegistration records a refused Dynamic Client
	// Registration (POST /register), at most once a second per reason
	// with the count, since anyone can provoke most of them; a
	// registration itself is recorded as the agent.created it makes.
	ActionClientRegistration = "client.registration"
	// ActionRequest is a request a verifier (an API using the verify
	// package) let through or refused, forwarded to POST /audit/ingest.
	ActionRequest = "request"
)

// Attributes the server adds to a record: a verifier's ("request") or its
// own.
const (
	// ServerAttributePrefix starts the names of the attributes the server
	// adds to a verifier's record: POST /audit/ingest refuses a record
	// that brings one of its own, and verify.Attribute ignores them.
	ServerAttributePrefix = "mandate."
	// AttributeTokenMismatch flags a record whose jti names a token the
	// server issued when the record says otherwise than that token about
	// who acted, for whom or for which audience: its value names the
	// fields that differ, among subject, chain, performed_by and audience
	// (THREATS T101). The record is the reporter's word against the
	// server's.
	AttributeTokenMismatch = ServerAttributePrefix + "token_mismatch"
	// AttributeTraceID is the OpenTelemetry trace id (32 hex digits) of
	// the request a grant's record (token.exchange, token.issue,
	// token.refused) was written for, when tracing is on and the request
	// was sampled: the trace an operator opens from the record.
	AttributeTraceID = ServerAttributePrefix + "trace_id"
)

// Results.
const (
	ResultGranted = "granted"
	ResultRefused = "refused"
	ResultOK      = "ok"
	ResultFailed  = "failed"
)

// ErrClosed is returned by Record after Close.
var ErrClosed = errors.New("audit: recorder closed")

// Committer writes a batch of tokens and events in one durable transaction.
// store.Tokens satisfies it.
type Committer interface {
	Commit(ctx context.Context, b store.Batch) error
}

// Recorder commits events in groups. It is safe for concurrent use; Close
// stops it after the pending records are written.
type Recorder struct {
	committer Committer
	now       func() time.Time
	maxBatch  int
	timeout   time.Duration
	onResult  func(n int, err error)
	observe   func(Commit)

	reqs      chan *pending
	done      chan struct{}
	closeOnce sync.Once
	mu        sync.RWMutex
	closed    bool
}

// Config tunes a Recorder. Zero values take the defaults.
type Config struct {
	// MaxBatch caps the number of requests per transaction; default 256.
	MaxBatch int
	// Timeout bounds one commit; default 2s.
	Timeout time.Duration
	// Now stamps events that have no time; default time.Now.
	Now func() time.Time
	// OnCommit, if set, is called after every commit attempt with the
	// number of events it carried and its error (for metrics).
	OnCommit func(n int, err error)
	// OnCommitted, if set, is called after every commit attempt, after
	// OnCommit, with what the attempt wrote and how long it took (for
	// metrics). Both run on the Recorder's one committing goroutine, so
	// they are never called concurrently, and must return quickly: every
	// waiting request waits for them too.
	OnCommitted func(Commit)
}

// Commit describes one commit attempt of a Recorder.
type Commit struct {
	// Events and Tokens are the numbers of audit events and issued tokens
	// the attempt carried; on success they are durable.
	Events int
	Tokens int
	// Duration is how long the store took to commit or fail.
	Duration time.Duration
	// Err is the store's error; nil when the batch is durable.
	Err error
}

type pending struct {
	events []Event
	tokens []store.IssuedToken
	errc   chan error
}

// NewRecorder starts a Recorder writing to c.
func NewRecorder(c Committer, cfg Config) *Recorder {
	r := &Recorder{
		committer: c,
		now:       cfg.Now,
		maxBatch:  cfg.MaxBatch,
		timeout:   cfg.Timeout,
		onResult:  cfg.OnCommit,
		observe:   cfg.OnCommitted,
		reqs:      make(chan *pending, 1024),
		done:      make(chan struct{}),
	}
	if r.now == nil {
		r.now = time.Now
	}
	if r.maxBatch <= 0 {
		r.maxBatch = 256
	}
	if r.timeout <= 0 {
		r.timeout = 2 * time.Second
	}
	go r.loop()
	return r
}

// Record durably writes ev and the tokens it records, in the same
// transaction, and returns once they are committed. Events without an ID or
// a time get them (Stamp). An error means nothing was written and the caller must
// refuse the request it was recording.
func (r *Recorder) Record(ctx context.Context, ev Event, tokens ...store.IssuedToken) error {
	return r.RecordAll(ctx, []Event{ev}, tokens...)
}

// RecordAll is Record for several events.
func (r *Recorder) RecordAll(ctx context.Context, evs []Event, tokens ...store.IssuedToken) error {
	for i := range evs {
		r.Stamp(&evs[i])
	}
	p := &pending{events: evs, tokens: tokens, errc: make(chan error, 1)}
	r.mu.RLock()
	if r.closed {
		r.mu.RUnlock()
		return ErrClosed
	}
	select {
	case r.reqs <- p:
		r.mu.RUnlock()
	case <-ctx.Done():
		r.mu.RUnlock()
		return fmt.Errorf("audit: queue: %w", ctx.Err())
	}
	select {
	case err := <-p.errc:
		return err
	case <-ctx.Done():
		return fmt.Errorf("audit: waiting for commit: %w", ctx.Err())
	}
}

// Stamp gives ev an ID and a time if it has none, makes its time what the
// log keeps (auditchain.Time: whole microseconds in UTC), so that the
// record is hashed as it reads back, and bounds its text (Bound). Every
// record a Recorder writes is stamped, and so is every record a caller
// commits itself with a change (the admin API's).
func (r *Recorder) Stamp(ev *Event) {
	if ev.ID == "" {
		ev.ID = NewID("evt_")
	}
	if ev.Time.IsZero() {
		ev.Time = r.now()
	}
	ev.Time = auditchain.Time(ev.Time)
	Bound(ev)
}

// MaxFieldBytes bounds each text field of a record, and each item of its
// lists: a URL path, an audience or a client_id is what a caller sent, and
// anyone can send 60 KB of it. The limits before the log (form, scope,
// context and client_id limits, the checks of POST /audit/ingest) keep the
// other fields under it; the JSON fields (context, attributes,
// authorization_details) are bounded there.
const MaxFieldBytes = 1024

// Bound makes every text field of ev, and every item of its lists, one a
// store keeps as given: valid UTF-8 without NUL, each invalid byte and NUL
// written as U+FFFD (PostgreSQL text holds neither, and a record it
// refuses fails every request committed with it), and at most
// MaxFieldBytes of the value, cut at a character and followed by
// "…[N bytes]" with the size it had. A value within the bounds is kept
// exactly as it was; the JSON fields are left as they are.
func Bound(ev *Event) {
	for _, f := range []*string{
		&ev.ID, &ev.RequestID, &ev.Action, &ev.Result, &ev.Reason, &ev.Detail, &ev.Performer, &ev.OnBehalf,
		&ev.ClientID, &ev.Audience, &ev.Resource, &ev.DelegationID, &ev.JTI, &ev.ParentJTI, &ev.AgentVersion,
		&ev.Operation, &ev.ReportedBy,
	} {
		*f = boundText(*f)
	}
	for _, l := range []*[]string{&ev.Chain, &ev.Scopes, &ev.Requested} {
		cloned := false
		for i, v := range *l {
			if b := boundText(v); b != v {
				if !cloned {
					*l, cloned = slices.Clone(*l), true // the caller's array is left as it was
				}
				(*l)[i] = b
			}
		}
	}
}

// boundText is s as Bound keeps it.
func boundText(s string) string {
	if len(s) <= MaxFieldBytes && utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 {
		return s
	}
	// Each invalid byte, and NUL, becomes U+FFFD.
	kept := strings.Map(func(r rune) rune {
		if r == 0 {
			return utf8.RuneError
		}
		return r
	}, s)
	if len(kept) <= MaxFieldBytes {
		return kept
	}
	n := MaxFieldBytes
	for n > 0 && !utf8.RuneStart(kept[n]) {
		n--
	}
	return kept[:n] + "…[" + strconv.Itoa(len(s)) + " bytes]"
}

// Close writes what is queued and stops the Recorder.
func (r *Recorder) Close() {
	r.closeOnce.Do(func() {
		r.mu.Lock()
		r.closed = true
		close(r.reqs)
		r.mu.Unlock()
		<-r.done
	})
}

func (r *Recorder) loop() {
	defer close(r.done)
	batch := make([]*pending, 0, r.maxBatch)
	for p := range r.reqs {
		batch = append(batch[:0], p)
		// Yield once before cutting the group, so that the handlers that
		// are runnable now reach Record and join it. A channel send makes
		// the receiver run next, so without this the group was mostly the
		// one request that woke the loop (1.5 on average with 32 in
		// flight on one core) and each paid a commit and an fsync of its
		// own. With nothing else runnable, as with one request in flight,
		// Gosched returns at once: no request waits for a timer.
		runtime.Gosched()
	drain:
		for len(batch) < r.maxBatch {
			select {
			case q, ok := <-r.reqs:
				if !ok {
					break drain
				}
				batch = append(batch, q)
			default:
				break drain
			}
		}
		r.commit(batch)
	}
}

func (r *Recorder) commit(batch []*pending) {
	var nev, ntok int
	for _, p := range batch {
		nev, ntok = nev+len(p.events), ntok+len(p.tokens)
	}
	// Sized once, nil when empty, as appending to nil slices left them.
	var b store.Batch
	if nev > 0 {
		b.Events = make([]Event, 0, nev)
	}
	if ntok > 0 {
		b.Tokens = make([]store.IssuedToken, 0, ntok)
	}
	for _, p := range batch {
		b.Events = append(b.Events, p.events...)
		b.Tokens = append(b.Tokens, p.tokens...)
	}
	err := r.write(b)
	if err != nil && len(batch) > 1 && errors.Is(err, store.ErrAlreadyExists) {
		// One request's duplicate must not fail its neighbours: retry each
		// on its own.
		for _, p := range batch {
			p.errc <- r.write(store.Batch{Events: p.events, Tokens: p.tokens})
		}
		return
	}
	for _, p := range batch {
		p.errc <- err
	}
}

func (r *Recorder) write(b store.Batch) error {
	ctx, cancel := context.WithTimeout(context.Background(), r.timeout)
	defer cancel()
	start := time.Now()
	err := r.committer.Commit(ctx, b)
	took := time.Since(start)
	if r.onResult != nil {
		r.onResult(len(b.Events), err)
	}
	if r.observe != nil {
		r.observe(Commit{Events: len(b.Events), Tokens: len(b.Tokens), Duration: took, Err: err})
	}
	if err != nil {
		return fmt.Errorf("audit: commit: %w", err)
	}
	return nil
}

// NewID returns prefix followed by 128 random bits in hex.
func NewID(prefix string) string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return prefix + hex.EncodeToString(b[:])
}
