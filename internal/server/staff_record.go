package server

import (
	"cmp"
	"encoding/hex"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/mandate-dev/mandate/internal/audit"
	"github.com/mandate-dev/mandate/internal/directory"
	"github.com/mandate-dev/mandate/internal/exchange"
	"github.com/mandate-dev/mandate/internal/forensics"
	"github.com/mandate-dev/mandate/internal/picture"
	"github.com/mandate-dev/mandate/internal/store"
)

// recordView is the page of one audit record: the record in full, who
// stood behind it and the picture of its chain.
type recordView struct {
	Seq    int64
	Fields []recordField
	// Person is the person on whose behalf; Agents the chain, first to
	// act first.
	Person string
	Agents []string
	// Delegation is the standing grant the action used, when the record
	// or its token's ancestry names one.
	Delegation *delegationFacts
	// Authority are the records that issued the token and each token it
	// came from, oldest first.
	Authority []authorityRow
	Chain     template.HTML
	Note      string
}

// authorityRow is a record that issued a token of the ancestry.
type authorityRow struct {
	Seq                                  int64
	Time                                 time.Time
	Action, Client, Chain, Audience, JTI string
	Scopes                               []string
}

// recordField is one field of a record; Link, when set, opens what the
// value names.
type recordField struct {
	Name, Value, Link string
}

// delegationFacts says what the delegation was and who approved it.
type delegationFacts struct {
	ID, Actor         string
	Scopes, Audiences []string
	Source            string
	Created, Expires  time.Time
	Revoked           bool
	// Approval says how it was given; ApprovedBy is the performer of its
	// delegation.created record, ApprovedSeq that record.
	Approval, ApprovedBy string
	ApprovedAt           time.Time
	ApprovedSeq          int64
	Known                bool
}

// auditRecord is GET /manage/audit/record?seq=N or ?jti=J (the record that
// issued the token J, else its oldest record), for administrators and
// auditors.
func (s *Server) auditRecord(w http.ResponseWriter, r *http.Request) error {
	sess, ok, err := s.staff(w, r, roleAdmin, roleAuditor)
	if !ok {
		return err
	}
	ev, err := s.findRecord(r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	view := recordView{Seq: ev.Seq, Fields: recordFields(ev), Person: ev.OnBehalf}
	for i := len(ev.Chain) - 1; i >= 0; i-- {
		view.Agents = append(view.Agents, ev.Chain[i])
	}
	// The token the action used or was issued: its own, or for a refused
	// exchange the token it presented.
	var authority []store.Event
	if tok := cmp.Or(ev.JTI, ev.ParentJTI); tok != "" {
		authority, err = forensics.Ancestry(ctx, s.cfg.Store, tok)
		switch {
		case errors.Is(err, forensics.ErrTooMany):
			view.Note = "The token's ancestry is too long to show."
		case err != nil:
			return unavailablePage(err)
		}
	}
	delegation := ev.DelegationID
	for _, a := range authority {
		view.Authority = append(view.Authority, authorityRow{
			Seq: a.Seq, Time: a.Time, Action: a.Action, Client: a.ClientID, Chain: chainText(a.Chain),
			Scopes: a.Scopes, Audience: a.Audience, JTI: a.JTI,
		})
		if delegation == "" {
			delegation = a.DelegationID
		}
		if view.Person == "" {
			view.Person = a.OnBehalf
		}
	}
	if delegation != "" {
		if view.Delegation, err = s.delegationFacts(r, delegation); err != nil {
			return err
		}
	}
	view.Chain = picture.Chain("Delegation chain of record "+strconv.FormatInt(ev.Seq, 10), chainHops(ev, authority))
	return s.cfg.Pages.Render(w, http.StatusOK, "record", s.pageOf(r, sess, "Audit record "+strconv.FormatInt(ev.Seq, 10), view))
}

// findRecord reads the record the query names: seq=N, or jti=J.
func (s *Server) findRecord(r *http.Request) (store.Event, error) {
	q := r.URL.Query()
	notFound := &pageFailure{status: http.StatusNotFound, title: "Not found", message: "The audit log has no such record."}
	var evs []store.Event
	var err error
	switch {
	case q.Get("seq") != "":
		seq, perr := strconv.ParseInt(q.Get("seq"), 10, 64)
		if perr != nil || seq <= 0 || seq == 1<<63-1 {
			return store.Event{}, notFound
		}
		evs, err = s.cfg.Store.QueryEvents(r.Context(), store.EventFilter{BeforeSeq: seq + 1, Limit: 1})
		if err == nil && (len(evs) == 0 || evs[0].Seq != seq) {
			return store.Event{}, notFound
		}
	case q.Get("jti") != "":
		jti := q.Get("jti")
		all, qerr := forensics.All(r.Context(), s.cfg.Store, store.EventFilter{JTI: jti, Limit: 1000})
		err = qerr
		// Newest first: keep the oldest of the token's own records, the
		// one that issued it when the log holds it.
		for _, ev := range all {
			if ev.JTI != jti {
				continue
			}
			if len(evs) == 0 || issuing(ev) || !issuing(evs[0]) {
				evs = []store.Event{ev}
			}
		}
		if err == nil && len(evs) == 0 {
			return store.Event{}, notFound
		}
	default:
		return store.Event{}, &pageFailure{status: http.StatusBadRequest, title: "Which record?", message: "Open a record from the Audit page."}
	}
	if err != nil {
		return store.Event{}, unavailablePage(err)
	}
	return evs[0], nil
}

// issuing says whether ev issued its token.
func issuing(ev store.Event) bool {
	return (ev.Action == audit.ActionTokenIssue || ev.Action == audit.ActionTokenExchange) && ev.Result == audit.ResultGranted
}

// delegationFacts reads the delegation id and the record of its creation.
func (s *Server) delegationFacts(r *http.Request, id string) (*delegationFacts, error) {
	ctx := r.Context()
	df := &delegationFacts{ID: id}
	d, err := s.cfg.Store.GetDelegation(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return nil, unavailablePage(err)
	default:
		df.Known, df.Actor, df.Scopes, df.Audiences, df.Source = true, d.Actor, d.Scopes, d.Audiences, d.Source
		df.Created, df.Expires, df.Revoked = d.CreatedAt, d.Expires, d.Revoked
	}
	evs, err := s.cfg.Store.QueryEvents(ctx, store.EventFilter{DelegationID: id, Action: audit.ActionDelegationNew, Limit: 1})
	if err != nil {
		return nil, unavailablePage(err)
	}
	if len(evs) > 0 {
		df.ApprovedBy, df.ApprovedAt, df.ApprovedSeq = evs[0].Performer, evs[0].Time, evs[0].Seq
	}
	switch df.Source {
	case directory.SourceConsent:
		df.Approval = "approved by the person on the consent page"
	case directory.SourceAdmin:
		df.Approval = "created by an administrator"
	case directory.SourceConfig:
		df.Approval = "declared in the configuration file"
	}
	return df, nil
}

// chainHops draws ev's chain: the person, then each agent in the order it
// acted, each with what its token was given. With the token's ancestry
// (oldest first) each hop is an issued token; without it the hops come
// from ev's own chain, the last with ev's scopes and audience, drawn
// refused when ev is a refusal. A refused exchange of a token in the log
// adds the hop it asked for, refused.
func chainHops(ev store.Event, authority []store.Event) []picture.Hop {
	refused := refusedEvent(ev)
	person := picture.Hop{ID: ev.OnBehalf, Kind: picture.KindPerson, Granted: true}
	var agents []picture.Hop
	if len(authority) > 0 {
		if person.ID == "" {
			person.ID = authority[0].OnBehalf
		}
		for _, a := range authority {
			if len(a.Chain) == 0 || a.ClientID == exchange.SignInClientID {
				// The person's own token.
				person.Scopes, person.Audience = a.Scopes, a.Audience
				continue
			}
			agents = append(agents, picture.Hop{ID: a.Chain[0], Kind: picture.KindAgent, Scopes: a.Scopes, Audience: a.Audience, Granted: true})
		}
		if refused && ev.Action == audit.ActionTokenRefused && len(ev.Chain) > 0 {
			// The exchange the token was presented to was refused: the
			// hop it asked for.
			scopes := ev.Requested
			if len(scopes) == 0 {
				scopes = ev.Scopes
			}
			agents = append(agents, picture.Hop{ID: ev.Chain[0], Kind: picture.KindAgent, Scopes: scopes, Audience: ev.Audience})
		}
	} else {
		for i := len(ev.Chain) - 1; i >= 0; i-- {
			h := picture.Hop{ID: ev.Chain[i], Kind: picture.KindAgent, Granted: true}
			if i == 0 {
				h.Scopes, h.Audience, h.Granted = ev.Scopes, ev.Audience, !refused
				if refused && len(ev.Requested) > 0 {
					h.Scopes = ev.Requested
				}
			}
			agents = append(agents, h)
		}
	}
	if person.ID == "" {
		return agents
	}
	if len(ev.Chain) == 0 && ev.OnBehalf != "" && ev.OnBehalf == ev.ClientID {
		// An agent's token for itself: no person stands behind it.
		person.Kind = picture.KindAgent
	}
	return append([]picture.Hop{person}, agents...)
}

// recordFields lists ev's fields that are set, named as the exported
// record names them; the token ids and the delegation link to their
// records.
func recordFields(ev store.Event) []recordField {
	var out []recordField
	add := func(name, value, link string) {
		if value != "" {
			out = append(out, recordField{Name: name, Value: value, Link: link})
		}
	}
	tokenLink := func(jti string) string { return "/manage/audit/record?jti=" + url.QueryEscape(jti) }
	add("seq", strconv.FormatInt(ev.Seq, 10), "")
	add("id", ev.ID, "")
	add("time", ev.Time.UTC().Format(time.RFC3339Nano), "")
	add("request_id", ev.RequestID, "")
	add("action", ev.Action, "")
	add("result", ev.Result, "")
	add("reason", ev.Reason, "")
	add("reason_text", ev.Detail, "")
	add("performed_by", ev.Performer, "")
	add("on_behalf_of", ev.OnBehalf, "")
	add("chain", strings.Join(ev.Chain, " "), "")
	add("client_id", ev.ClientID, "")
	add("scopes", strings.Join(ev.Scopes, " "), "")
	add("requested_scopes", strings.Join(ev.Requested, " "), "")
	add("audience", ev.Audience, "")
	add("resource", ev.Resource, "")
	add("context", string(ev.Context), "")
	add("delegation_id", ev.DelegationID, "")
	if ev.JTI != "" {
		add("jti", ev.JTI, tokenLink(ev.JTI))
	}
	if ev.ParentJTI != "" {
		add("parent_jti", ev.ParentJTI, tokenLink(ev.ParentJTI))
	}
	add("agent_version", ev.AgentVersion, "")
	add("authorization_details", string(ev.AuthorizationDetails), "")
	add("operation", ev.Operation, "")
	add("attributes", string(ev.Attributes), "")
	add("reported_by", forensics.ReportedBy(ev), "")
	if len(ev.Hash) > 0 {
		add("hash", hex.EncodeToString(ev.Hash), "")
	}
	return out
}
