package server

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/mandate-dev/mandate/internal/directory"
	"github.com/mandate-dev/mandate/internal/signin"
	"github.com/mandate-dev/mandate/internal/store"
)

// consentView is the consent page's content: who asks, for which agent,
// what, where, within which limits, for how long, and to whom the agent
// may hand on.
type consentView struct {
	RequestID     string
	Shown         string
	Client, Agent string
	ClientIsAgent bool
	Scopes        []scopeView
	Audience      string
	Limits        []string
	DelegateTo    []string
	Durations     []durationView
	RedirectHost  string

	// AudienceName is the registered resource's name (resources.go).
	AudienceName string
	// ClaimedName is the name a client that registered itself gave,
	// shown as its own claim; empty for the agents an administrator
	// registered.
	ClaimedName string
	// LoopbackOnly warns that the code goes back to this computer, where
	// any program may be listening.
	LoopbackOnly bool
	// Server is the agent the resource's server is, when it may exchange
	// the tokens; HandOn what for (an approval records both).
	Server string
	HandOn []handOnView
}

// handOnView is an audience the resource's server may hand the tokens on
// to: its id, and its name when it is a registered resource.
type handOnView struct {
	ID, Name string
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
	return &pageFailure{status: http.StatusForbidden, reason: "request_gone", title: "This request is no longer pending",
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
	o, err := s.cfg.SignIn.Offer(r.Context(), sess, id)
	if err != nil {
		return consentFailure(err)
	}
	view := consentViewOf(id, o, s.cfg.ScopeDescriptions)
	s.describeResource(&view)
	s.describeClient(r, &view)
	return s.cfg.Pages.Render(w, http.StatusOK, "consent", s.pageOf(r, sess, "Approve an agent", view), formTarget(o.Request.RedirectURI))
}

// consentFailure is the page of a consent that cannot go on.
func consentFailure(err error) error {
	switch {
	case errors.Is(err, signin.ErrRequestGone):
		return goneRequest()
	case errors.Is(err, signin.ErrAgentUnknown):
		return &pageFailure{status: http.StatusBadRequest, reason: "agent_unknown", title: "This request cannot be used", message: "The agent it names is not known to this server."}
	case errors.Is(err, signin.ErrNotShown):
		return &pageFailure{status: http.StatusForbidden, reason: "consent_not_shown", title: "This approval does not match",
			message: "What was sent is not what this page showed you, or the request changed since. Nothing was granted; open the request again to see it as it is now."}
	case errors.Is(err, signin.ErrNothingApproved):
		return &pageFailure{status: http.StatusBadRequest, reason: "nothing_approved", title: "Nothing approved",
			message: "Tick at least one permission, or decline. The request is no longer pending; start again from the application."}
	}
	return unavailablePage(err)
}

// describeClient says, on the consent page, when the client registered
// itself (its name is its own claim) and when its code goes back to a
// program on this computer (a loopback redirect any local program could
// listen on).
func (s *Server) describeClient(r *http.Request, v *consentView) {
	client, err := s.cfg.Store.GetAgent(r.Context(), v.Client)
	if err != nil {
		return
	}
	if client.Registration == store.RegistrationDCR || client.Registration == store.RegistrationCIMD {
		v.ClaimedName = cmp.Or(client.Name, client.ID)
	}
	v.LoopbackOnly = loopbackOnly(client.RedirectURIs)
}

// loopbackOnly reports whether every redirect URI is a loopback address:
// the code then goes to whatever program listens on this computer.
func loopbackOnly(uris []string) bool {
	for _, u := range uris {
		p, err := url.Parse(u)
		if err != nil || p.Scheme != "http" || !directory.IsLoopbackHost(p.Hostname()) {
			return false
		}
	}
	return len(uris) > 0
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

// consentViewOf is the consent page of the offer for request id, with the
// scopes described in descriptions.
func consentViewOf(id string, o signin.Offer, descriptions map[string]string) consentView {
	req := o.Request
	v := consentView{
		RequestID: id, Shown: o.Shown, Client: req.ClientID, Agent: req.Actor(), ClientIsAgent: req.RequestedActor == "",
		Audience: req.Resource, DelegateTo: o.Agent.DelegateTo, RedirectHost: formTarget(req.RedirectURI),
		Limits: limitWords(o.Person.Limits), Server: o.Server,
	}
	for _, a := range o.HandOn {
		v.HandOn = append(v.HandOn, handOnView{ID: a})
	}
	for _, sc := range o.Scopes {
		v.Scopes = append(v.Scopes, scopeView{Name: sc.Name, Description: descriptions[sc.Name], Held: sc.Approvable})
	}
	for i, c := range durationChoices() {
		v.Durations = append(v.Durations, durationView{Value: c.value, Label: c.label, Selected: i == 0})
	}
	return v
}

// consentDecision is POST /consent: approve the ticked scopes for the
// chosen time, or decline; either way 303 back to the application with
// iss and state.
func (s *Server) consentDecision(w http.ResponseWriter, r *http.Request) error {
	sess, err := s.session(r)
	if errors.Is(err, signin.ErrNoSession) {
		return &pageFailure{status: http.StatusForbidden, reason: "signed_out", title: "Signed out",
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
		a := signin.Approval{Scopes: form["scope"], Duration: parseDuration(form.Get("duration")), Shown: form.Get("shown")}
		location, err = s.cfg.SignIn.Approve(r.Context(), sess, id, a, requestID(r.Context()))
	case "deny":
		location, err = s.cfg.SignIn.Deny(r.Context(), sess, id, requestID(r.Context()))
	default:
		return &pageFailure{status: http.StatusBadRequest, reason: "decision_missing", title: "Bad request", message: "Choose approve or decline."}
	}
	if err != nil {
		return consentFailure(err)
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
