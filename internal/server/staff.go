package server

import (
	"cmp"
	"context"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/mandate-dev/mandate/internal/audit"
	"github.com/mandate-dev/mandate/internal/directory"
	"github.com/mandate-dev/mandate/internal/forensics"
	"github.com/mandate-dev/mandate/internal/picture"
	"github.com/mandate-dev/mandate/internal/store"
)

// The staff pages: Agents for administrators (every agent, its refusal
// rate, Disable and Enable) and Audit for administrators and auditors (the
// filterable log, one record in full with who stood behind it and the
// picture of its chain, refusal rates). They read the store, count through
// internal/forensics and write through the directory, like My agents.

// Roles of store.User.Roles that open the staff pages.
const (
	roleAdmin   = directory.RoleAdmin
	roleAuditor = directory.RoleAuditor
)

// statsWindow is the recent window the refusal rates count.
const statsWindow = 24 * time.Hour

// statsWindowText says statsWindow in words.
const statsWindowText = "the last 24 hours"

// noOwner is shown for an agent's owner: the store keeps none.
const noOwner = "—"

// staff returns the session of a staff page that needs one of roles:
// without a session the person is sent to sign in; a person without any
// of roles gets a 403 page.
func (s *Server) staff(w http.ResponseWriter, r *http.Request, roles ...string) (store.Session, bool, error) {
	sess, ok, err := s.signedIn(w, r)
	if !ok {
		return sess, false, err
	}
	u, err := s.cfg.Store.GetUser(r.Context(), sess.Subject)
	switch {
	case errors.Is(err, store.ErrNotFound):
		u = store.User{}
	case err != nil:
		return sess, false, unavailablePage(err)
	}
	for _, role := range u.Roles {
		if slices.Contains(roles, role) {
			return sess, true, nil
		}
	}
	return sess, false, &pageFailure{status: http.StatusForbidden, title: "Not allowed",
		message: "This page is for Mandate's administrators and auditors. Ask an administrator if you need it."}
}

// statsLimit bounds the token records a staff page counts, and
// statsBudget the time it may spend counting them (at most half of what
// is left of the request's RequestTimeout), so that a busy day shows the page without the rates
// instead of failing it.
const (
	statsLimit  = 200_000
	statsBudget = time.Second
)

// agentStats counts the agents' token requests over statsWindow
// (forensics.RefusalRates). note is set, and the answer empty, when the
// window holds more than statsLimit of them or counting them takes longer
// than statsBudget.
func (s *Server) agentStats(r *http.Request) (stats []forensics.AgentStats, note string, err error) {
	budget := statsBudget
	if end, ok := r.Context().Deadline(); ok {
		// Leave the rest of the page at least as much time.
		budget = min(budget, time.Until(end)/2)
	}
	ctx, cancel := context.WithTimeout(r.Context(), budget)
	defer cancel()
	stats, err = forensics.RefusalRates(ctx, s.cfg.Store, forensics.Window{Since: s.cfg.Now().Add(-statsWindow)}, statsLimit)
	switch {
	case errors.Is(err, forensics.ErrTooMany), errors.Is(err, context.DeadlineExceeded) && r.Context().Err() == nil:
		return nil, "Too many token requests in " + statsWindowText + " to count them here; run mandate audit agents with a shorter window.", nil
	case err != nil:
		return nil, "", unavailablePage(err)
	}
	return stats, "", nil
}

// staffAgentsView is the Agents page.
type staffAgentsView struct {
	Notice, Window, StatsNote string
	Agents                    []staffAgentView
}

// staffAgentView is one agent on the Agents page.
type staffAgentView struct {
	ID, Owner          string
	Scopes, DelegateTo []string
	Disabled           bool
	// Rate is its token refusal rate in words ("25% (1 of 4)").
	Rate string
}

// rateText says refused of total as "25% (1 of 4)".
func rateText(refused, total int) string {
	if total == 0 {
		return "no token requests"
	}
	pct := strconv.FormatFloat(100*float64(refused)/float64(total), 'f', 0, 64)
	return pct + "% (" + strconv.Itoa(refused) + " of " + strconv.Itoa(total) + ")"
}

// manageAgents is GET /manage/agents, for administrators.
func (s *Server) manageAgents(w http.ResponseWriter, r *http.Request) error {
	sess, ok, err := s.staff(w, r, roleAdmin)
	if !ok {
		return err
	}
	agents, err := s.cfg.Store.ListAgents(r.Context())
	if err != nil {
		return unavailablePage(err)
	}
	slices.SortFunc(agents, func(a, b store.Agent) int { return cmp.Compare(a.ID, b.ID) })
	stats, note, err := s.agentStats(r)
	if err != nil {
		return err
	}
	byAgent := map[string]forensics.AgentStats{}
	for _, st := range stats {
		if st.Version == "" {
			byAgent[st.Agent] = st
		}
	}
	view := staffAgentsView{Window: statsWindowText, StatsNote: note}
	for _, a := range agents {
		st := byAgent[a.ID]
		av := staffAgentView{ID: a.ID, Owner: noOwner, Scopes: a.Scopes, DelegateTo: a.DelegateTo, Disabled: a.Disabled}
		if note == "" {
			av.Rate = rateText(st.Refused, st.Issued+st.Refused)
		}
		view.Agents = append(view.Agents, av)
	}
	// The notice names an agent of the list only: a link cannot make the
	// page say anything else.
	q := r.URL.Query()
	i := slices.IndexFunc(agents, func(a store.Agent) bool { return a.ID == q.Get("agent") })
	switch {
	case i < 0:
	case q.Get("done") == "disabled" && agents[i].Disabled:
		view.Notice = "Disabled " + agents[i].ID + ". Its tokens are refused everywhere within a second."
	case q.Get("done") == "enabled" && !agents[i].Disabled:
		view.Notice = "Enabled " + agents[i].ID + ". Tokens revoked while it was disabled stay revoked."
	}
	return s.cfg.Pages.Render(w, http.StatusOK, "agents", s.pageOf(r, sess, "Agents", view))
}

// manageAgentState is POST /manage/agents/disable (disabled true) or
// /manage/agents/enable: an administrator disables or enables the agent
// named by the form, recorded with the person as the performer.
func (s *Server) manageAgentState(disabled bool) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		sess, ok, err := s.staff(w, r, roleAdmin)
		if !ok {
			return err
		}
		form, err := readPageForm(w, r, sess.CSRF)
		if err != nil {
			return err
		}
		id := form.Get("agent")
		p := directory.Performer{ID: sess.Subject, RequestID: requestID(r.Context())}
		_, err = s.cfg.Directory.SetAgentDisabled(r.Context(), p, id, disabled)
		switch {
		case errors.Is(err, directory.ErrNotFound):
			return &pageFailure{status: http.StatusNotFound, title: "Not found", message: "There is no such agent."}
		case err != nil:
			return unavailablePage(err)
		}
		done := "enabled"
		if disabled {
			done = "disabled"
		}
		return seeOther(w, "/manage/agents?done="+done+"&agent="+url.QueryEscape(id))
	}
}

// auditPageSize is how many records one page of the Audit page shows.
const auditPageSize = 50

// auditFilter is the Audit page's filter, as the form sends it.
type auditFilter struct {
	Actor, Subject, Action, Result, JTI, Since string
}

// query is f as a query string, with before when positive.
func (f auditFilter) query(before int64) string {
	q := url.Values{}
	for k, v := range map[string]string{"actor": f.Actor, "subject": f.Subject, "action": f.Action, "result": f.Result, "jti": f.JTI, "since": f.Since} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if before > 0 {
		q.Set("before", strconv.FormatInt(before, 10))
	}
	return q.Encode()
}

// auditView is the Audit page.
type auditView struct {
	Filter  auditFilter
	Results []string
	Message string
	Records []recordRow
	// First and Next link to the newest page and the next older one;
	// empty when there is none.
	First, Next string
	// Bars and VersionBars draw refusal rates per agent and per agent
	// version; StatsNote says why they are missing.
	Bars, VersionBars template.HTML
	Window, StatsNote string
}

// recordRow is one record in the Audit page's table.
type recordRow struct {
	Seq                                  int64
	Time                                 time.Time
	Action, Result, Reason               string
	Performer, OnBehalf, Chain, JTI, Aud string
	Refused                              bool
}

// chainText is an audit chain (current actor first) as the person's
// order: the first agent to act first.
func chainText(chain []string) string {
	out := ""
	for i := len(chain) - 1; i >= 0; i-- {
		if out != "" {
			out += " → "
		}
		out += chain[i]
	}
	return out
}

// refusedEvent says whether ev records a refusal or a failure.
func refusedEvent(ev store.Event) bool {
	return ev.Result == audit.ResultRefused || ev.Result == audit.ResultFailed
}

// parseSince reads the Audit page's since: RFC 3339, a duration back from
// now ("24h"), or a day ("2026-12-05", from midnight UTC).
func parseSince(v string, now time.Time) (time.Time, error) {
	if t, err := time.Parse("2006-01-02", v); err == nil {
		return t, nil
	}
	return parseTime(v, now)
}

// manageAudit is GET /manage/audit, for administrators and auditors: the
// records matching the filter, newest first, a page at a time, and on the
// first page the refusal rates of the agents.
func (s *Server) manageAudit(w http.ResponseWriter, r *http.Request) error {
	sess, ok, err := s.staff(w, r, roleAdmin, roleAuditor)
	if !ok {
		return err
	}
	q := r.URL.Query()
	view := auditView{
		Filter: auditFilter{Actor: q.Get("actor"), Subject: q.Get("subject"), Action: q.Get("action"),
			Result: q.Get("result"), JTI: q.Get("jti"), Since: q.Get("since")},
		Results: []string{audit.ResultGranted, audit.ResultRefused, audit.ResultFailed, audit.ResultOK},
		Window:  statsWindowText,
	}
	f := store.EventFilter{Actor: view.Filter.Actor, Subject: view.Filter.Subject, Action: view.Filter.Action,
		Result: view.Filter.Result, JTI: view.Filter.JTI, Limit: auditPageSize}
	status := http.StatusOK
	if f.Since, err = parseSince(view.Filter.Since, s.cfg.Now()); err != nil {
		status, view.Message = http.StatusBadRequest, "Since is a date (2026-12-05), a time (RFC 3339) or a duration back from now (24h)."
	}
	before, perr := strconv.ParseInt(q.Get("before"), 10, 64)
	if q.Get("before") != "" && (perr != nil || before <= 0) {
		status, view.Message = http.StatusBadRequest, "That page does not exist; start from the newest records."
	}
	f.BeforeSeq = before
	if status == http.StatusOK {
		evs, err := s.cfg.Store.QueryEvents(r.Context(), f)
		if err != nil {
			return unavailablePage(err)
		}
		for _, ev := range evs {
			view.Records = append(view.Records, recordRow{
				Seq: ev.Seq, Time: ev.Time, Action: ev.Action, Result: ev.Result, Reason: ev.Reason,
				Performer: ev.Performer, OnBehalf: ev.OnBehalf, Chain: chainText(ev.Chain), JTI: ev.JTI,
				Aud: ev.Audience, Refused: refusedEvent(ev),
			})
		}
		if len(evs) == auditPageSize {
			view.Next = "/manage/audit?" + view.Filter.query(evs[len(evs)-1].Seq)
		}
	}
	if before > 0 {
		view.First = "/manage/audit?" + view.Filter.query(0)
	} else if err := s.refusalBars(r, &view); err != nil {
		return err
	}
	return s.cfg.Pages.Render(w, status, "audit", s.pageOf(r, sess, "Audit", view))
}

// refusalBars draws the agents' refusal rates into view: per agent, and
// per version an agent declared; agents without token requests are left
// out.
func (s *Server) refusalBars(r *http.Request, view *auditView) error {
	stats, note, err := s.agentStats(r)
	if err != nil {
		return err
	}
	view.StatsNote = note
	if note != "" {
		return nil
	}
	var agents, versions []picture.Bar
	for _, st := range stats {
		total := st.Issued + st.Refused
		if total == 0 {
			continue
		}
		if st.Version == "" {
			agents = append(agents, picture.Bar{Label: st.Agent, Refused: st.Refused, Total: total})
		} else {
			versions = append(versions, picture.Bar{Label: st.Agent + " " + st.Version, Refused: st.Refused, Total: total})
		}
	}
	view.Bars = picture.RefusalBars("Refused token requests per agent, "+statsWindowText, agents)
	if len(versions) > 0 {
		view.VersionBars = picture.RefusalBars("Refused token requests per agent version, "+statsWindowText, versions)
	}
	return nil
}
