package forensics

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"

	"github.com/mandate-dev/mandate/internal/audit"
	"github.com/mandate-dev/mandate/internal/exchange"
	"github.com/mandate-dev/mandate/internal/store"
)

// Activity is everything one agent did, as AgentActivity finds it.
type Activity struct {
	Agent string `json:"agent"`
	// Events are the records in which the agent appears anywhere: as the
	// client, the performer, or anywhere in the chain; oldest first.
	Events []store.Event `json:"events"`
	// For is what it did per person it acted for, most active first.
	For []Subject `json:"for"`
	// Refusals are the refused and failed records among Events.
	Refusals []store.Event `json:"refusals"`
}

// Subject counts an agent's records on behalf of one person.
type Subject struct {
	Subject string `json:"subject"`
	// Tokens is the number of tokens it was issued for the person.
	Tokens int `json:"tokens"`
	// Requests is the number of API requests verifiers reported.
	Requests int `json:"requests"`
	// Refused is the number of refused or failed records.
	Refused int `json:"refused"`
	// ReportedBy names who reported its API requests (ReportedBy of each,
	// once, sorted): the reporters' word, not the server's.
	ReportedBy []string `json:"reported_by,omitempty"`
}

// AgentActivity answers "this agent is compromised: what did it touch, and
// for whom?": every record in w where the agent appears anywhere in the
// chain, whoever the person.
func AgentActivity(ctx context.Context, src Source, agent string, w Window) (Activity, error) {
	f := w.filter()
	f.Actor = agent
	evs, err := All(ctx, src, f)
	if err != nil {
		return Activity{}, err
	}
	slices.Reverse(evs)
	a := Activity{Agent: agent, Events: evs}
	bySubject := map[string]*Subject{}
	for _, ev := range evs {
		if refused(ev) {
			a.Refusals = append(a.Refusals, ev)
		}
		if ev.OnBehalf == "" || ev.OnBehalf == agent {
			continue
		}
		s := bySubject[ev.OnBehalf]
		if s == nil {
			s = &Subject{Subject: ev.OnBehalf}
			bySubject[ev.OnBehalf] = s
		}
		switch {
		case refused(ev):
			s.Refused++
		case ev.Action == audit.ActionRequest:
			s.Requests++
		case issued(ev) && ev.ClientID == agent:
			s.Tokens++
		}
		if ev.Action == audit.ActionRequest {
			s.ReportedBy = addReporter(s.ReportedBy, ev)
		}
	}
	for _, s := range bySubject {
		a.For = append(a.For, *s)
	}
	slices.SortFunc(a.For, func(x, y Subject) int {
		return cmp.Or(cmp.Compare(y.Tokens+y.Requests+y.Refused, x.Tokens+x.Requests+x.Refused), cmp.Compare(x.Subject, y.Subject))
	})
	return a, nil
}

// Approval is one record of an action on a resource with the authority
// behind it.
type Approval struct {
	// Event is the record of the action: a verifier's request record, or
	// the server's own record naming the resource.
	Event store.Event `json:"event"`
	// Authority is how the token it used came to be, oldest first: the
	// record that issued each token from the person's own to the one used
	// (empty when the action's token is not in the log).
	Authority []store.Event `json:"authority"`
}

// WhoApproved answers "who approved this?": every record of an action on
// resource (exact match) in w, oldest first, each with the records that
// issued its token and the tokens it came from: the person, every agent
// of the chain, the delegation and the authorization_details granted.
func WhoApproved(ctx context.Context, src Source, resource string, w Window) ([]Approval, error) {
	f := w.filter()
	f.Resource = resource
	evs, err := All(ctx, src, f)
	if err != nil {
		return nil, err
	}
	slices.Reverse(evs)
	out := make([]Approval, 0, len(evs))
	for _, ev := range evs {
		ap := Approval{Event: ev}
		if ev.JTI != "" {
			if ap.Authority, err = ancestry(ctx, src, ev.JTI); err != nil {
				return nil, err
			}
		}
		out = append(out, ap)
	}
	return out, nil
}

// Ancestry answers "where did this token's authority come from?": the
// records that issued the token jti and each token it was exchanged from,
// oldest first, the person's own token first when the log holds it. It is
// empty when no record issued jti. It walks the parent_jti links one query
// per token and returns ErrTooMany past maxLineage tokens.
func Ancestry(ctx context.Context, src Source, jti string) ([]store.Event, error) {
	return ancestry(ctx, src, jti)
}

// ancestry returns the records that issued jti and each token before it,
// oldest first, after the record of the person's approval that the first
// of them was issued under (a delegation.created by the person on the
// consent page), when it has one.
func ancestry(ctx context.Context, src Source, jti string) ([]store.Event, error) {
	var out []store.Event
	err := walkUp(ctx, src, jti, func(tok string, evs []store.Event) {
		for _, ev := range evs {
			if ev.JTI == tok && issued(ev) {
				out = append(out, ev)
				break
			}
		}
	})
	if err != nil {
		return nil, err
	}
	slices.Reverse(out)
	if len(out) == 0 || out[0].DelegationID == "" || out[0].ParentJTI != "" {
		return out, nil
	}
	approvals, err := All(ctx, src, store.EventFilter{DelegationID: out[0].DelegationID, Action: audit.ActionDelegationNew, Limit: 1})
	if err != nil {
		return nil, err
	}
	if len(approvals) == 1 && approvals[0].Performer == approvals[0].OnBehalf {
		out = append(approvals, out...)
	}
	return out, nil
}

// AgentStats counts one agent's tokens and requests over a window. In
// Agents' answer a row with an empty Version totals every version.
type AgentStats struct {
	Agent   string `json:"agent"`
	Version string `json:"agent_version,omitempty"`
	// Issued, Refused and Revoked count token requests granted, token
	// requests refused, and tokens issued to it that were revoked.
	Issued  int `json:"issued"`
	Refused int `json:"refused"`
	Revoked int `json:"revoked"`
	// RefusalRate is Refused / (Issued + Refused), 0 without requests.
	RefusalRate float64 `json:"refusal_rate"`
	// APIGranted and APIRefused count the requests verifiers reported it
	// made (as the current actor), let through or refused.
	APIGranted int `json:"api_granted"`
	APIRefused int `json:"api_refused"`
	// APIReportedBy names who reported those requests (ReportedBy of
	// each, once, sorted): the reporters' word, not the server's.
	APIReportedBy []string `json:"api_reported_by,omitempty"`
}

// Agents answers "which agents misbehave?": per agent, and per version an
// agent declared, the tokens it was issued, refused and had revoked in w,
// its token refusal rate, and its requests that APIs let through or
// refused; highest refusal rate first. It counts from the source's tally
// of w (TallyEvents), not from the records, and reads records only for
// a token revoked in w but issued before it, to find whom it was issued
// to (Ancestry).
func Agents(ctx context.Context, src Source, w Window) ([]AgentStats, error) {
	f := w.tally()
	f.Revoked, f.Issued, f.IssuedResult = audit.ActionTokenRevoked, []string{audit.ActionTokenIssue, audit.ActionTokenExchange}, audit.ResultGranted
	tally, err := src.TallyEvents(ctx, f)
	if err != nil {
		return nil, fmt.Errorf("audit tally: %w", err)
	}
	rows := statsTable{}
	for _, t := range tally {
		ev, n := tallied(t), t.Count
		switch {
		case ev.ClientID == exchange.SignInClientID:
			// A person's own token: no agent asked for it.
		case issued(ev) && ev.ClientID != "":
			rows.count(ev.ClientID, ev.AgentVersion, func(r *AgentStats) { r.Issued += n })
		case tokenRefusal(ev) && ev.ClientID != "":
			rows.count(ev.ClientID, ev.AgentVersion, func(r *AgentStats) { r.Refused += n * refusals(ev) })
		case ev.Action == audit.ActionTokenRevoked && ev.Result != audit.ResultRefused && (t.Issuer != nil || t.JTI != ""):
			// The tally pairs a revocation with a jti with the record of
			// w that issued the token, or names the jti when w has none.
			var k statsKey
			ok := t.Issuer != nil
			if ok {
				k = statsKey{t.Issuer.ClientID, t.Issuer.AgentVersion}
			} else {
				// Issued before the window: find who it was issued to.
				anc, err := ancestry(ctx, src, t.JTI)
				if err != nil {
					return nil, err
				}
				if len(anc) > 0 {
					k, ok = statsKey{anc[len(anc)-1].ClientID, anc[len(anc)-1].AgentVersion}, true
				}
			}
			if ok && k.agent != "" {
				rows.count(k.agent, k.version, func(r *AgentStats) { r.Revoked += n })
			}
		case ev.Action == audit.ActionRequest && ev.Performer != "":
			rows.count(ev.Performer, "", func(r *AgentStats) {
				if refused(ev) {
					r.APIRefused += n
				} else {
					r.APIGranted += n
				}
				r.APIReportedBy = addReporter(r.APIReportedBy, ev)
			})
		}
	}
	return rows.sorted(), nil
}

// RefusalRates answers "which agents are refused most, lately?" cheaply
// enough for a page: per agent, and per version an agent declared, the
// token requests granted and refused in w, counted as Agents counts them
// (Issued, Refused and RefusalRate; the other counts stay zero), highest
// refusal rate first. It counts from the source's tally of w
// (TallyEvents), and past limit token requests (MaxEvents when limit is
// not positive) it answers ErrTooMany.
func RefusalRates(ctx context.Context, src Source, w Window, limit int) ([]AgentStats, error) {
	if limit <= 0 {
		limit = MaxEvents
	}
	tally, err := src.TallyEvents(ctx, w.tally())
	if err != nil {
		return nil, fmt.Errorf("audit tally: %w", err)
	}
	rows := statsTable{}
	seen := 0
	for _, t := range tally {
		ev, n := tallied(t), t.Count
		if !issued(ev) && !tokenRefusal(ev) {
			continue
		}
		if seen += n; seen > limit {
			return nil, ErrTooMany
		}
		switch {
		case ev.ClientID == exchange.SignInClientID, ev.ClientID == "":
			// A person's own token, or no agent named.
		case issued(ev):
			rows.count(ev.ClientID, ev.AgentVersion, func(r *AgentStats) { r.Issued += n })
		default:
			rows.count(ev.ClientID, ev.AgentVersion, func(r *AgentStats) { r.Refused += n * refusals(ev) })
		}
	}
	return rows.sorted(), nil
}

// tally is the tally of w that Agents and RefusalRates read: the
// attributes refusals and ReportedBy read.
func (w Window) tally() store.TallyFilter {
	return store.TallyFilter{Since: w.Since, Until: w.Until,
		Attributes: []string{attributeRefusals, audit.AttributeTokenMismatch}}
}

// tallied is a record with the fields of a tally row, which are all the
// rules of Agents read of a record (issued, tokenRefusal, refusals,
// refused, ReportedBy).
func tallied(t store.EventTally) store.Event {
	return store.Event{Action: t.Action, Result: t.Result, ClientID: t.ClientID, AgentVersion: t.AgentVersion,
		Performer: t.Performer, ReportedBy: t.ReportedBy, Attributes: t.Attributes}
}

// statsKey names a row of a statsTable: an agent, and one of its versions
// or "" for all of them.
type statsKey struct{ agent, version string }

// statsTable is the rows Agents and RefusalRates count into.
type statsTable map[statsKey]*AgentStats

// count applies fn to the agent's row and, when version is set, to the
// row of the agent at that version.
func (t statsTable) count(agent, version string, fn func(*AgentStats)) {
	keys := []statsKey{{agent, ""}}
	if version != "" {
		keys = append(keys, statsKey{agent, version})
	}
	for _, k := range keys {
		r := t[k]
		if r == nil {
			r = &AgentStats{Agent: k.agent, Version: k.version}
			t[k] = r
		}
		fn(r)
	}
}

// sorted returns the rows with their refusal rates, highest rate first,
// then by agent and version.
func (t statsTable) sorted() []AgentStats {
	out := make([]AgentStats, 0, len(t))
	for _, r := range t {
		if n := r.Issued + r.Refused; n > 0 {
			r.RefusalRate = float64(r.Refused) / float64(n)
		}
		out = append(out, *r)
	}
	slices.SortFunc(out, func(a, b AgentStats) int {
		return cmp.Or(cmp.Compare(b.RefusalRate, a.RefusalRate), cmp.Compare(a.Agent, b.Agent), cmp.Compare(a.Version, b.Version))
	})
	return out
}

// ReportedBy says who reported a verifier's record, for a report: the
// reporting client, and when the server flagged the record
// (audit.AttributeTokenMismatch) the fields in which it contradicts the
// token it names, as "rs:api (token mismatch: subject,chain)"; "" for the
// server's own records.
func ReportedBy(ev store.Event) string {
	if ev.ReportedBy == "" {
		return ""
	}
	if differ := attribute(ev.Attributes, audit.AttributeTokenMismatch); differ != "" {
		return ev.ReportedBy + " (token mismatch: " + differ + ")"
	}
	return ev.ReportedBy
}

// addReporter adds ReportedBy(ev) to the sorted set l.
func addReporter(l []string, ev store.Event) []string {
	r := ReportedBy(ev)
	if r == "" {
		return l
	}
	i, found := slices.BinarySearch(l, r)
	if found {
		return l
	}
	return slices.Insert(l, i, r)
}

// issued says whether ev records a token being issued.
func issued(ev store.Event) bool {
	return (ev.Action == audit.ActionTokenIssue || ev.Action == audit.ActionTokenExchange) && ev.Result == audit.ResultGranted
}

// tokenRefusal says whether ev records a token request refused, at the
// grant or at client authentication.
func tokenRefusal(ev store.Event) bool {
	return ev.Action == audit.ActionTokenRefused || ev.Action == audit.ActionClientAuth && ev.Result == audit.ResultRefused
}

// attributeRefusals is the attribute of a record that stands for several
// refusals: their number.
const attributeRefusals = "refusals"

// refusals is how many refusals ev records: the count in its "refusals"
// attribute for a record that stands for several (failed client
// authentications are recorded at most once a second per client, with the
// count since the client's previous record), 1 otherwise.
func refusals(ev store.Event) int {
	if n, err := strconv.Atoi(attribute(ev.Attributes, attributeRefusals)); err == nil && n > 0 {
		return n
	}
	return 1
}

// attribute is the value of the attribute name in attrs, a JSON object,
// when it is a string; "" otherwise.
//
// It reads an attribute only where attrs spells its name plainly, in
// quotes (store.SpellsAttribute), the records a store's tally keeps the
// attributes of (store.TallyFilter.Attributes), so that a report counts
// the same from a tally as from the records. The server writes the
// attributes these reports read so: "refusals" as a literal (the server's
// refusal records) and audit.AttributeTokenMismatch with json.Marshal of a
// map of strings (POST /audit/ingest), which escapes no letter, dot or
// underscore. Earlier reports also read a name spelled with escapes, a
// "refusals" in another case, and no mismatch when another attribute was
// not a string; the server writes none of those.
func attribute(attrs json.RawMessage, name string) string {
	if !store.SpellsAttribute(attrs, name) {
		return ""
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(attrs, &m) != nil {
		return ""
	}
	var v string
	if json.Unmarshal(m[name], &v) != nil {
		return ""
	}
	return v
}

// refused says whether ev records a refusal or a failure.
func refused(ev store.Event) bool {
	return ev.Result == audit.ResultRefused || ev.Result == audit.ResultFailed
}
