package server

import (
	"cmp"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/mandate-dev/mandate/internal/audit"
	"github.com/mandate-dev/mandate/internal/directory"
	"github.com/mandate-dev/mandate/internal/signin"
	"github.com/mandate-dev/mandate/internal/store"
)

// myAgentsView is My agents: every delegation of the person, newest
// first, with what the agent did under it lately.
type myAgentsView struct {
	Notice      string
	Delegations []delegationView
}

type delegationView struct {
	ID, Agent, Source         string
	Scopes, Audiences, Limits []string
	// DelegateTo and HandOn: who may take the agent's tokens on, and where.
	DelegateTo, HandOn         []string
	Created, Expires, LastUsed time.Time
	Active                     bool
	Actions                    []actionView
}

// actionView is one audit record of the agent acting for the person.
type actionView struct {
	Time          time.Time
	Action, Where string
	// Result is granted, refused, ok or failed.
	Result string
	Reason string
}

// delegationActions are the newest records of d: what was issued or
// refused under it and what the agent asked of APIs for the person since
// it was given (the verifiers' records), newest first.
func (s *Server) delegationActions(r *http.Request, subject string, d store.Delegation) ([]actionView, error) {
	ctx := r.Context()
	under, err := s.cfg.Store.QueryEvents(ctx, store.EventFilter{DelegationID: d.ID, Limit: recentActions})
	if err != nil {
		return nil, err
	}
	calls, err := s.cfg.Store.QueryEvents(ctx, store.EventFilter{Subject: subject, Actor: d.Actor, Action: audit.ActionRequest,
		Since: d.CreatedAt, Limit: recentActions})
	if err != nil {
		return nil, err
	}
	evs := append(under, calls...)
	slices.SortFunc(evs, func(a, b store.Event) int { return cmp.Compare(b.Seq, a.Seq) })
	evs = evs[:min(len(evs), recentActions)]
	out := make([]actionView, 0, len(evs))
	for _, ev := range evs {
		where := ev.Audience
		if ev.Action == audit.ActionRequest && ev.Resource != "" {
			where = strings.TrimSpace(ev.Audience + " " + ev.Resource)
		}
		out = append(out, actionView{Time: ev.Time, Action: ev.Action, Where: where, Result: ev.Result, Reason: ev.Reason})
	}
	return out, nil
}

// recentActions is how many records each delegation shows.
const recentActions = 8

// signedIn returns the session of a page that needs one; without one the
// person is sent to sign in (errSentToLogin).
func (s *Server) signedIn(w http.ResponseWriter, r *http.Request) (store.Session, bool, error) {
	sess, err := s.session(r)
	if errors.Is(err, signin.ErrNoSession) {
		return sess, false, seeOther(w, "/login")
	}
	return sess, err == nil, err
}

// myAgents is GET /my/agents.
func (s *Server) myAgents(w http.ResponseWriter, r *http.Request) error {
	sess, ok, err := s.signedIn(w, r)
	if !ok {
		return err
	}
	view, err := s.myAgentsView(r, sess)
	if err != nil {
		return err
	}
	switch r.URL.Query().Get("done") {
	case "revoked":
		view.Notice = "Revoked. Every service that checks Mandate's tokens refuses it within a second."
	case "revoked-all":
		view.Notice = "Everything you delegated is revoked."
	}
	return s.cfg.Pages.Render(w, http.StatusOK, "myagents", s.pageOf(r, sess, "My agents", view))
}

func (s *Server) myAgentsView(r *http.Request, sess store.Session) (myAgentsView, error) {
	ctx := r.Context()
	ds, err := s.cfg.Store.ListDelegations(ctx, store.DelegationFilter{Subject: sess.Subject, IncludeRevoked: true})
	if err != nil {
		return myAgentsView{}, unavailablePage(err)
	}
	slices.SortFunc(ds, func(a, b store.Delegation) int { return b.CreatedAt.Compare(a.CreatedAt) })
	now := s.cfg.Now()
	var v myAgentsView
	for _, d := range ds {
		dv := delegationView{
			ID: d.ID, Agent: d.Actor, Source: d.Source, Scopes: d.Scopes, Audiences: d.Audiences,
			DelegateTo: d.DelegateTo, HandOn: d.HandOn, Created: d.CreatedAt, Expires: d.Expires, Active: d.Active(now),
		}
		actions, err := s.delegationActions(r, sess.Subject, d)
		if err != nil {
			return myAgentsView{}, unavailablePage(err)
		}
		dv.Actions = actions
		for _, a := range actions {
			if a.Result == audit.ResultGranted {
				dv.LastUsed = a.Time
				break
			}
		}
		v.Delegations = append(v.Delegations, dv)
	}
	return v, nil
}

// revokeMine is POST /my/agents/revoke: the person revokes one of their
// own delegations; the feed carries it to every verifier.
func (s *Server) revokeMine(w http.ResponseWriter, r *http.Request) error {
	sess, ok, err := s.signedIn(w, r)
	if !ok {
		return err
	}
	form, err := readPageForm(w, r, sess.CSRF)
	if err != nil {
		return err
	}
	id := form.Get("delegation")
	d, err := s.cfg.Store.GetDelegation(r.Context(), id)
	switch {
	case errors.Is(err, store.ErrNotFound), err == nil && d.Subject != sess.Subject:
		// Another person's delegation is as unknown as a missing one.
		return &pageFailure{status: http.StatusNotFound, reason: "delegation_unknown", title: "Not found", message: "You have no such delegation."}
	case err != nil:
		return unavailablePage(err)
	}
	p := directory.Performer{ID: sess.Subject, RequestID: requestID(r.Context())}
	if err := s.cfg.Directory.RevokeDelegation(r.Context(), p, id, "revoked_by_person"); err != nil {
		return unavailablePage(err)
	}
	return seeOther(w, "/my/agents?done=revoked")
}

// revokeAllMine is POST /my/agents/revoke-all: every delegation of the
// person, and every token issued for them, ends ("I think an agent is
// compromised").
func (s *Server) revokeAllMine(w http.ResponseWriter, r *http.Request) error {
	sess, ok, err := s.signedIn(w, r)
	if !ok {
		return err
	}
	if _, err := readPageForm(w, r, sess.CSRF); err != nil {
		return err
	}
	p := directory.Performer{ID: sess.Subject, RequestID: requestID(r.Context())}
	if _, err := s.cfg.Directory.RevokeEverything(r.Context(), p, sess.Subject, "revoked_by_person"); err != nil {
		return unavailablePage(err)
	}
	return seeOther(w, "/my/agents?done=revoked-all")
}
