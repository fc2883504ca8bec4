package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/mandate-dev/mandate/internal/authorize"
	"github.com/mandate-dev/mandate/internal/signin"
	"github.com/mandate-dev/mandate/internal/store"
)

// consentView is the consent page's content: who asks, for which agent,
// what, where, within which limits, for how long, and to whom the agent
// may hand on.
type consentView struct {
	RequestID     string
	Client, Agent string
	ClientIsAgent bool
	Scopes        []scopeView
	Audience      string
	Limits        []string
	DelegateTo    []string
	Durations     []durationView
	RedirectHost  string
}

type scopeView struct {
	Name, Description string
	// Held says whether the person holds the permission: one they do not
	// hold is shown, and cannot be approved.
	Held bool
}

type durationView struct {
	Value, Label string
	Selected     bool
}

// goneRequest is the page of an authorization request that was decided,
// expired or never existed: replaying an approval lands here.
func goneRequest() *pageFailure {
	return &pageFailure{status: http.StatusForbidden, title: "This request is no longer pending",
		message: "It was approved or declined already, or it expired. Nothing was granted now; start again from the application."}
}

// consentPage is GET /consent?request=ID: the signed-in person sees the
// request in words.
func (s *Server) consentPage(w http.ResponseWriter, r *http.Request) error {
	id := r.URL.Query().Get("request")
	sess, err := s.session(r)
	if errors.Is(err, signin.ErrNoSession) {
		return seeOther(w, "/login?request="+url.QueryEscape(id))
	}
	if err != nil {
		return err
	}
	req, err := s.cfg.SignIn.Request(r.Context(), id)
	switch {
	case errors.Is(err, signin.ErrRequestGone):
		return goneRequest()
	case err != nil:
		return unavailablePage(err)
	}
	view, err := s.consentView(r, sess, id, req)
	if err != nil {
		return err
	}
	return s.cfg.Pages.Render(w, http.StatusOK, "consent", s.pageOf(r, sess, "Approve an agent", view), formTarget(req.RedirectURI))
}

// formTarget is the origin the consent form's answer redirects to, for
// the page's form-action.
func formTarget(redirectURI string) string {
	u, err := url.Parse(redirectURI)
	if err != nil || u.Host == "" {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

func (s *Server) consentView(r *http.Request, sess store.Session, id string, req authorize.Request) (consentView, error) {
	u, err := s.cfg.Store.GetUser(r.Context(), sess.Subject)
	if err != nil {
		return consentView{}, unavailablePage(err)
	}
	agent, err := s.cfg.Store.GetAgent(r.Context(), req.Actor())
	if errors.Is(err, store.ErrNotFound) {
		return consentView{}, &pageFailure{status: http.StatusBadRequest, title: "This request cannot be used", message: "The agent it names is not known to this server."}
	}
	if err != nil {
		return consentView{}, unavailablePage(err)
	}
	v := consentView{
		RequestID: id, Client: req.ClientID, Agent: req.Actor(), ClientIsAgent: req.RequestedActor == "",
		Audience: req.Resource, DelegateTo: agent.DelegateTo, RedirectHost: formTarget(req.RedirectURI),
		Limits: limitWords(u.Limits),
	}
	scopes := req.Scopes
	if len(scopes) == 0 {
		scopes = agent.Scopes
	}
	for _, sc := range scopes {
		v.Scopes = append(v.Scopes, scopeView{Name: sc, Description: s.cfg.ScopeDescriptions[sc],
			Held: slices.Contains(u.Permissions, sc) && slices.Contains(agent.Scopes, sc)})
	}
	for i, c := range durationChoices() {
		v.Durations = append(v.Durations, durationView{Value: c.value, Label: c.label, Selected: i == 0})
	}
	return v, nil
}

// consentDecision is POST /consent: approve the ticked scopes for the
// chosen time, or decline; either way 303 back to the application with
// iss and state.
func (s *Server) consentDecision(w http.ResponseWriter, r *http.Request) error {
	sess, err := s.session(r)
	if errors.Is(err, signin.ErrNoSession) {
		return &pageFailure{status: http.StatusForbidden, title: "Signed out",
			message: "You are not signed in any more, so nothing was approved. Start again from the application."}
	}
	if err != nil {
		return err
	}
	form, err := readPageForm(w, r, sess.CSRF)
	if err != nil {
		return err
	}
	id := form.Get("request")
	var location string
	switch form.Get("decision") {
	case "approve":
		location, err = s.cfg.SignIn.Approve(r.Context(), sess, id, signin.Approval{Scopes: form["scope"], Duration: parseDuration(form.Get("duration"))}, requestID(r.Context()))
	case "deny":
		location, err = s.cfg.SignIn.Deny(r.Context(), sess, id, requestID(r.Context()))
	default:
		return &pageFailure{status: http.StatusBadRequest, title: "Bad request", message: "Choose approve or decline."}
	}
	switch {
	case errors.Is(err, signin.ErrRequestGone):
		return goneRequest()
	case errors.Is(err, signin.ErrNothingApproved):
		return &pageFailure{status: http.StatusBadRequest, title: "Nothing approved",
			message: "Tick at least one permission, or decline. The request is no longer pending; start again from the application."}
	case err != nil:
		return unavailablePage(err)
	}
	return seeOther(w, location)
}

// parseDuration is the consent form's duration; anything else is the
// default.
func parseDuration(v string) time.Duration {
	for _, c := range durationChoices() {
		if c.value == v {
			return c.d
		}
	}
	return durationChoices()[0].d
}

// limitWords says each of the person's limits in words, e.g.
// "expense approval: amount up to 1000 USD" for {type: expense_approval,
// max_amount: 1000, currency: USD}: the agent acts within them.
func limitWords(limits []byte) []string {
	if len(limits) == 0 {
		return nil
	}
	var entries []map[string]any
	if err := json.Unmarshal(limits, &entries); err != nil {
		return []string{"limits that cannot be shown"}
	}
	var out []string
	for _, e := range entries {
		typ, _ := e["type"].(string)
		currency, _ := e["currency"].(string)
		var parts []string
		for _, k := range slices.Sorted(maps.Keys(e)) {
			name := strings.ReplaceAll(k, "_", " ")
			switch {
			case k == "type", k == "currency" && e["max_amount"] != nil:
			case k == "max_amount" && currency != "":
				parts = append(parts, fmt.Sprintf("amount up to %v %s", e[k], currency))
			case strings.HasPrefix(k, "max_"):
				parts = append(parts, fmt.Sprintf("%s up to %v", strings.TrimPrefix(name, "max "), e[k]))
			default:
				parts = append(parts, fmt.Sprintf("%s %v", name, e[k]))
			}
		}
		out = append(out, strings.ReplaceAll(typ, "_", " ")+": "+strings.Join(parts, ", "))
	}
	return out
}
