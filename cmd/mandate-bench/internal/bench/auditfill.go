package bench

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/mandate-dev/mandate/internal/audit"
	"github.com/mandate-dev/mandate/internal/store"
	"github.com/mandate-dev/mandate/oauth"
)

// fillPlan is the shape of the log `mandate-bench fill` writes.
type fillPlan struct {
	// Records is how many audit records to append.
	Records int64
	// People and Agents are the cast: user:u00000… and agent:a000…; each
	// agent declares one to four versions.
	People, Agents int
	// Span is how far back the first record lies from End; records are
	// spread evenly over it, in seq order.
	Span time.Duration
	End  time.Time
	// Batch is the records per Commit (one transaction).
	Batch int
	// Seed makes the log reproducible: the same plan writes the same
	// records (but for the chain hashes, which depend on the log before).
	Seed uint64
}

// The mix of a filled log, as fractions of its records; what is left are
// granted token exchanges (about 44 %).
const (
	fillRequests = 0.40 // verifiers' request records
	fillRefused  = 0.10 // token.refused, with a reason
	fillSignIns  = 0.04 // token.issue: a person's own token
	// fillRevoke is the chance that an issued token is revoked two
	// minutes after its issuance (about 2 % of the records).
	fillRevoke = 0.05
	// fillHandOn is the chance that an exchange hands a live token on to
	// another agent (a chain of two or three), rather than starting from
	// the person.
	fillHandOn = 0.45
)

// fillSignInClient is the client of a person's own token, the sign-in
// (exchange.SignInClientID, which forensics.Agents leaves out; the test
// keeps them equal).
const fillSignInClient = "mandate"

// fillTokenLife is the lifetime of the tokens filled, the server's default.
const fillTokenLife = 10 * time.Minute

// fillResourcesPer is how many request records name one resource, on
// average (expense/EXP-N).
const fillResourcesPer = 20

// fillReasons are the refusals of a filled log, with their texts.
var fillReasons = [][2]string{
	{"actor_not_delegated", "no delegation lets this client act for the subject"},
	{"scope_widening", "the requested scope is wider than the subject token's"},
	{"no_scope_granted", "none of the requested scopes may be granted"},
	{"delegation_depth_exceeded", "the delegation chain would be longer than allowed"},
	{"subject_token_invalid", "the subject token is expired or not valid"},
	{"policy_denied", "the policy refuses this context"},
	{"authorization_details_not_held", "the subject does not hold these authorization details"},
}

// fillScopes are the scopes the filled tokens hold.
var fillScopes = [][]string{
	{"expense:read"}, {"expense:approve"}, {"expense:read", "expense:approve"},
	{"deploy:create"}, {"monitoring:read"}, {"calendar:read", "mail:send"},
}

// fillAudiences are the APIs the filled tokens are for.
var fillAudiences = []string{"https://expense.example", "https://deploy.example", "https://mail.example"}

// liveToken is a token of the filled log still in force, which requests
// use and exchanges hand on.
type liveToken struct {
	jti, subject, delegation, audience string
	chain, scopes                      []string
	expires                            time.Time
}

// pendingRevocation is a token.revoked record due at at.
type pendingRevocation struct {
	at  time.Time
	tok liveToken
}

// filler generates the records of a fillPlan in seq order.
type filler struct {
	plan     fillPlan
	rng      *rand.Rand
	versions [][]string // per agent
	signIn   []string   // per person: the jti of their latest own token
	// resources is how many resources the request records name.
	resources int64
	live      []liveToken
	revoke    []pendingRevocation
	step      time.Duration
	start     time.Time
	n         int64 // records generated
	batch     store.Batch
}

func newFiller(p fillPlan) *filler {
	f := &filler{plan: p, rng: rand.New(rand.NewPCG(p.Seed, 0x6d616e64617465)), signIn: make([]string, p.People)}
	f.versions = make([][]string, p.Agents)
	for i := range f.versions {
		for v := range 1 + f.rng.IntN(4) {
			f.versions[i] = append(f.versions[i], fmt.Sprintf("%d.%d.0", 1+i%3, v))
		}
	}
	f.resources = max(int64(float64(p.Records)*fillRequests)/fillResourcesPer, 100)
	f.step = p.Span / time.Duration(max(p.Records, 1))
	f.start = p.End.Add(-p.Span)
	return f
}

// person and agent name the cast.
func person(i int) string { return fmt.Sprintf("user:u%05d", i) }
func agent(i int) string  { return fmt.Sprintf("agent:a%03d", i) }

// pickAgent favours the first agents: agent i is picked with a chance
// that falls with i (the first of 200 gets about 7 % of the records), as
// a few agents do most of the work in practice.
func (f *filler) pickAgent() int {
	u := f.rng.Float64()
	return min(int(u*u*float64(f.plan.Agents)), f.plan.Agents-1)
}

func (f *filler) hex() string {
	var b [16]byte
	for i := range 2 {
		v := f.rng.Uint64()
		for j := range 8 {
			b[i*8+j] = byte(v >> (8 * j))
		}
	}
	return hex.EncodeToString(b[:])
}

func (f *filler) pick(l []string) string { return l[f.rng.IntN(len(l))] }

// now is the time of the next record.
func (f *filler) now() time.Time { return f.start.Add(time.Duration(f.n) * f.step) }

// next appends the next record (and the token row of a grant, and any
// revocation that has come due before it) to f.batch.
func (f *filler) next() {
	now := f.now()
	f.expire(now)
	if len(f.revoke) > 0 && !f.revoke[0].at.After(now) {
		f.revoked(f.revoke[0].tok)
		f.revoke = f.revoke[1:]
		return
	}
	u := f.rng.Float64()
	switch {
	case u < fillRequests && len(f.live) > 0:
		f.request(now)
	case u < fillRequests+fillRefused:
		f.refused(now)
	case u < fillRequests+fillRefused+fillSignIns:
		f.signInToken(now)
	default:
		f.exchanged(now)
	}
}

// expire drops the live tokens that expired before now, keeping the last
// few so that a quiet stretch still has tokens to use.
func (f *filler) expire(now time.Time) {
	i := 0
	for i < len(f.live)-16 && f.live[i].expires.Before(now) {
		i++
	}
	if i > 0 {
		f.live = append(f.live[:0], f.live[i:]...)
	}
}

func (f *filler) add(ev store.Event) {
	ev.Time = f.now()
	ev.RequestID = "rq_" + f.hex()[:16]
	if ev.ID == "" {
		ev.ID = "evt_" + f.hex()
	}
	f.batch.Events = append(f.batch.Events, ev)
	f.n++
}

// issue records tok's row, keeps it live and, now and then, schedules its
// revocation.
func (f *filler) issue(tok liveToken, parent, grant, client string, now time.Time) {
	f.batch.Tokens = append(f.batch.Tokens, store.IssuedToken{
		JTI: tok.jti, ParentJTI: parent, GrantType: grant, Subject: tok.subject, ClientID: client,
		Chain: tok.chain, DelegationID: tok.delegation, Scopes: tok.scopes, Audience: tok.audience,
		IssuedAt: now, ExpiresAt: tok.expires,
	})
	f.live = append(f.live, tok)
	if f.rng.Float64() < fillRevoke {
		f.revoke = append(f.revoke, pendingRevocation{at: now.Add(2 * time.Minute), tok: tok})
	}
}

// signInToken is a person's own token (the sign-in client), the parent of
// the exchanges that start from them.
func (f *filler) signInToken(now time.Time) {
	p := f.rng.IntN(f.plan.People)
	tok := liveToken{jti: f.hex(), subject: person(p), scopes: f.pickList(fillScopes), audience: "https://mandate.example",
		expires: now.Add(fillTokenLife)}
	f.signIn[p] = tok.jti
	f.add(store.Event{Action: audit.ActionTokenIssue, Result: audit.ResultGranted, Performer: tok.subject,
		OnBehalf: tok.subject, ClientID: fillSignInClient, Scopes: tok.scopes, Audience: tok.audience, JTI: tok.jti})
	f.issue(tok, "", "authorization_code", fillSignInClient, now)
}

func (f *filler) pickList(l [][]string) []string { return l[f.rng.IntN(len(l))] }

// exchanged is a granted token exchange: from a live token handed on to
// another agent (up to three in the chain), or from the person.
func (f *filler) exchanged(now time.Time) {
	a := f.pickAgent()
	actor := agent(a)
	var parent liveToken
	handOn := len(f.live) > 0 && f.rng.Float64() < fillHandOn
	if handOn {
		parent = f.live[f.rng.IntN(len(f.live))]
		handOn = len(parent.chain) > 0 && len(parent.chain) < 3 && !slices.Contains(parent.chain, actor)
	}
	tok := liveToken{jti: f.hex(), expires: now.Add(fillTokenLife)}
	parentJTI := ""
	if handOn {
		tok.subject, tok.delegation, tok.scopes = parent.subject, parent.delegation, parent.scopes
		tok.chain = append([]string{actor}, parent.chain...)
		tok.audience = parent.audience
		parentJTI = parent.jti
		tok.expires = minTime(tok.expires, parent.expires)
	} else {
		p := f.rng.IntN(f.plan.People)
		tok.subject, tok.chain = person(p), []string{actor}
		tok.delegation = fmt.Sprintf("dlg_u%05d_a%03d", p, a)
		tok.scopes, tok.audience = f.pickList(fillScopes), f.pick(fillAudiences)
		parentJTI = f.signIn[p] // "" when the person came with an IdP's token
	}
	f.add(store.Event{Action: audit.ActionTokenExchange, Result: audit.ResultGranted, Performer: actor,
		OnBehalf: tok.subject, Chain: tok.chain, ClientID: actor, Scopes: tok.scopes, Requested: tok.scopes,
		Audience: tok.audience, DelegationID: tok.delegation, JTI: tok.jti, ParentJTI: parentJTI,
		AgentVersion: f.pick(f.versions[a]), Context: json.RawMessage(`{"environment":"prod","trigger":"chat"}`)})
	f.issue(tok, parentJTI, oauth.GrantTokenExchange, actor, now)
}

// refused is a refused token request, with a reason.
func (f *filler) refused(now time.Time) {
	a := f.pickAgent()
	actor := agent(a)
	ev := store.Event{Action: audit.ActionTokenRefused, Result: audit.ResultRefused, Performer: actor,
		ClientID: actor, Chain: []string{actor}, Resource: audit.ActionTokenExchange, AgentVersion: f.pick(f.versions[a]),
		Requested: f.pickList(fillScopes)}
	if len(f.live) > 0 && f.rng.IntN(2) == 0 {
		parent := f.live[f.rng.IntN(len(f.live))]
		ev.OnBehalf, ev.ParentJTI = parent.subject, parent.jti
		ev.Chain = append([]string{actor}, parent.chain...)
	} else {
		ev.OnBehalf = person(f.rng.IntN(f.plan.People))
	}
	r := fillReasons[f.rng.IntN(len(fillReasons))]
	ev.Reason, ev.Detail = r[0], r[1]
	f.add(ev)
}

// request is a verifier's record of an API request made with a live
// token, forwarded by the API's reporter.
func (f *filler) request(now time.Time) {
	tok := f.live[f.rng.IntN(len(f.live))]
	ev := store.Event{ID: "req_" + f.hex(), Action: audit.ActionRequest, Result: audit.ResultGranted,
		OnBehalf: tok.subject, Chain: tok.chain, Scopes: tok.scopes, Audience: "https://expense.example",
		JTI: tok.jti, Operation: "expense:approve", ReportedBy: "rs:expense",
		Context:    json.RawMessage(`{"environment":"prod"}`),
		Attributes: json.RawMessage(fmt.Sprintf(`{"amount":"%d.%02d","currency":"USD"}`, f.rng.IntN(2000), f.rng.IntN(100))),
	}
	if len(tok.chain) > 0 {
		ev.Performer = tok.chain[0]
	} else {
		ev.Performer = tok.subject
	}
	ev.Resource = fmt.Sprintf("expense/EXP-%d", 1000+f.rng.Int64N(f.resources))
	if f.rng.IntN(100) < 8 {
		ev.Result, ev.Reason, ev.Detail = audit.ResultRefused, "over_limit", "the amount is above the token's limit"
	}
	f.add(ev)
}

// revoked is an administrator's revocation of tok.
func (f *filler) revoked(tok liveToken) {
	f.add(store.Event{Action: audit.ActionTokenRevoked, Result: audit.ResultOK, Performer: "admin",
		OnBehalf: tok.subject, Chain: tok.chain, JTI: tok.jti})
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// fillResult is what a fill did.
type fillResult struct {
	Records int64         `json:"records"`
	Tokens  int64         `json:"tokens"`
	Elapsed time.Duration `json:"elapsed_ns"`
	PerSec  float64       `json:"records_per_second"`
}

// fill appends p.Records records to the log of s, with their token rows,
// p.Batch records per Commit: the store numbers and chains them as it does
// the server's. progress, when not nil, gets a line every ten seconds.
func fill(ctx context.Context, s store.Tokens, p fillPlan, progress io.Writer) (fillResult, error) {
	f := newFiller(p)
	var res fillResult
	start := time.Now()
	lastReport := start
	for f.n < p.Records {
		for f.n < p.Records && len(f.batch.Events) < p.Batch {
			f.next()
		}
		if err := s.Commit(ctx, f.batch); err != nil {
			return res, fmt.Errorf("commit after %d records: %w", res.Records, err)
		}
		res.Records += int64(len(f.batch.Events))
		res.Tokens += int64(len(f.batch.Tokens))
		f.batch.Events, f.batch.Tokens = f.batch.Events[:0], f.batch.Tokens[:0]
		if progress != nil && time.Since(lastReport) >= 10*time.Second {
			lastReport = time.Now()
			el := lastReport.Sub(start)
			fmt.Fprintf(progress, "%d records in %s (%.0f/s)\n", res.Records, el.Round(time.Second), float64(res.Records)/el.Seconds())
		}
	}
	res.Elapsed = time.Since(start)
	res.PerSec = float64(res.Records) / res.Elapsed.Seconds()
	return res, nil
}
