package server

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/mandate-dev/mandate/internal/audit"
	"github.com/mandate-dev/mandate/internal/authorize"
	"github.com/mandate-dev/mandate/internal/cimd"
	"github.com/mandate-dev/mandate/internal/directory"
	"github.com/mandate-dev/mandate/internal/pages"
	"github.com/mandate-dev/mandate/internal/registration"
	"github.com/mandate-dev/mandate/internal/signin"
	"github.com/mandate-dev/mandate/internal/store"
	"github.com/mandate-dev/mandate/oauth"
)

// People's pages: the authorization endpoint, sign-in, consent and My
// agents. Each answers with a page, never JSON: a failure is an error page
// (pageFailure) and a refused authorization request goes back to the
// application when its redirect URI can be trusted.

// Cookie names: with an https issuer the session cookie is a __Host-
// cookie (Secure, Path=/, no Domain), which a sub-domain cannot set.
const (
	sessionCookie = "mandate_session"
	loginCookie   = "mandate_login"
	securePrefix  = "__Host-"
	maxFormBytes  = 16 << 10
)

// pageFailure is an error a page handler shows as an error page with its
// status; its message is for the person and names nothing internal.
type pageFailure struct {
	status int
	// reason is the machine-readable cause of a refusal (4xx), for its
	// audit record, with the client it concerns when known.
	reason, clientID string
	title            string
	message          string
	err              error
}

func (e *pageFailure) Error() string {
	if e.err != nil {
		return e.title + ": " + e.err.Error()
	}
	return e.title
}

func (e *pageFailure) Unwrap() error { return e.err }

// unavailablePage is the page of a store or audit log that cannot be
// reached: nothing was done, try again.
func unavailablePage(err error) *pageFailure {
	return &pageFailure{status: http.StatusServiceUnavailable, title: "Try again later",
		message: "The server cannot do this now. Nothing was changed.", err: err}
}

// page wraps a page handler: a returned error is shown as an error page.
func (s *Server) page(name string, h handlerFunc) http.Handler {
	return s.serve(name, func(w http.ResponseWriter, r *http.Request) error {
		err := h(w, r)
		if err == nil {
			return nil
		}
		var pf *pageFailure
		if !errors.As(err, &pf) {
			pf = &pageFailure{status: http.StatusInternalServerError, title: "Something went wrong", message: "The server could not show this page.", err: err}
		}
		if pf.status < http.StatusInternalServerError {
			if rerr := s.recordPageRefusal(r, name, pf.reason, pf.clientID, pf.title); rerr != nil {
				pf = unavailablePage(errors.Join(err, rerr))
			}
		}
		if pf.err != nil {
			s.cfg.Logger.WarnContext(r.Context(), "page", "route", name, "request_id", requestID(r.Context()), "error", pf.err.Error())
		}
		return s.cfg.Pages.Render(w, pf.status, "error", pages.Page{Title: pf.title, Data: pf.message})
	})
}

// recordPageRefusal records a refused page request of route: at most once
// a second per action and reason, with the count (refusalTally), since
// anyone can provoke most of them. Its error is the audit log's, and the
// caller then answers 503.
func (s *Server) recordPageRefusal(r *http.Request, route, reason, clientID, detail string) error {
	if reason == "" {
		reason = "refused"
	}
	action := pageRefusedAction(route)
	ev := audit.Event{
		Action: action, Result: audit.ResultRefused, Reason: reason, Detail: detail, ClientID: clientID,
		RequestID: requestID(r.Context()), Resource: r.URL.Path,
	}
	return s.recordTallied(r.Context(), &s.pageRefusals, s.pageRefusals.add(action+" "+reason, ev, s.cfg.Now()))
}

// pageRefusedAction is the audit action of a refused request to a page
// route.
func pageRefusedAction(route string) string {
	switch route {
	case "login":
		return audit.ActionSignIn
	case "logout":
		return audit.ActionSignOut
	case "my_agents":
		return audit.ActionDelegationGone
	}
	return audit.ActionAuthorizeRefused
}

// cookieName is name with the __Host- prefix when cookies are Secure.
func (s *Server) cookieName(name string) string {
	if s.secureCookies() {
		return securePrefix + name
	}
	return name
}

func (s *Server) secureCookies() bool { return strings.HasPrefix(s.cfg.Issuer, "https://") }

// setCookie sets an HttpOnly, SameSite=Lax, Path=/ cookie; Secure with an
// https issuer. maxAge 0 leaves it to the browser session; -1 deletes it.
func (s *Server) setCookie(w http.ResponseWriter, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name: s.cookieName(name), Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, Secure: s.secureCookies(), SameSite: http.SameSiteLaxMode,
	})
}

func (s *Server) cookie(r *http.Request, name string) string {
	c, err := r.Cookie(s.cookieName(name))
	if err != nil {
		return ""
	}
	return c.Value
}

// session returns the signed-in person's session, or signin.ErrNoSession.
func (s *Server) session(r *http.Request) (store.Session, error) {
	sess, err := s.cfg.SignIn.Session(r.Context(), s.cookie(r, sessionCookie))
	if err != nil && !errors.Is(err, signin.ErrNoSession) {
		return sess, unavailablePage(err)
	}
	return sess, err
}

// pageOf is the frame of a page for the person of sess.
func (s *Server) pageOf(r *http.Request, sess store.Session, title string, data any) pages.Page {
	p := pages.Page{Title: title, Person: sess.Subject, CSRF: sess.CSRF, Data: data}
	if u, err := s.cfg.Store.GetUser(r.Context(), sess.Subject); err == nil {
		for _, role := range u.Roles {
			p.Admin = p.Admin || role == "admin"
			p.Auditor = p.Auditor || role == "auditor"
		}
	}
	return p
}

// readPageForm reads a page's POST form, bounded, and checks its CSRF
// token against want: a missing or wrong token is 403 and changes
// nothing.
func readPageForm(w http.ResponseWriter, r *http.Request, want string) (url.Values, error) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		return nil, &pageFailure{status: http.StatusBadRequest, reason: "form_unreadable", title: "Bad request", message: "The form could not be read."}
	}
	if want == "" || !signin.CheckCSRF(store.Session{CSRF: want}, r.PostForm.Get("csrf")) {
		return nil, &pageFailure{status: http.StatusForbidden, reason: "csrf_invalid", title: "Form expired",
			message: "This form was not sent from this server's page, or it has expired. Nothing was changed; open the page again."}
	}
	return r.PostForm, nil
}

// seeOther answers a POST with 303 to location (RFC 9700 §4.12).
func seeOther(w http.ResponseWriter, location string) error {
	pages.Headers(w)
	w.Header().Set("Location", location)
	w.WriteHeader(http.StatusSeeOther)
	return nil
}

// authorizeEndpoint is GET /authorize (RFC 6749 §4.1.1): the request is
// checked, kept, and the person is sent to sign in or straight to consent.
func (s *Server) authorizeEndpoint(w http.ResponseWriter, r *http.Request) error {
	req, err := authorize.Parse(r.URL.Query(), s.lookupClient(r), s.cfg.Resources)
	var pe *authorize.PageError
	switch {
	case errors.As(err, &pe):
		if pe.Err != nil {
			return unavailablePage(pe.Err)
		}
		return &pageFailure{status: http.StatusBadRequest, reason: pe.Reason, clientID: req.ClientID, title: "This request cannot be used", message: pe.Text()}
	case err != nil:
		e := oauth.As(err)
		if rerr := s.recordPageRefusal(r, "authorize", e.Reason, req.ClientID, e.Description); rerr != nil {
			return unavailablePage(errors.Join(err, rerr))
		}
		pages.Headers(w)
		http.Redirect(w, r, authorize.Redirect(req.RedirectURI, authorize.ErrorParams(e, req.State, s.cfg.Issuer)), http.StatusFound)
		return nil
	}
	id, err := s.cfg.SignIn.SaveRequest(r.Context(), req)
	if err != nil {
		return unavailablePage(err)
	}
	next := "/consent?request=" + url.QueryEscape(id)
	if _, err := s.session(r); err != nil {
		if errors.Is(err, signin.ErrNoSession) {
			next = "/login?request=" + url.QueryEscape(id)
		} else {
			return err
		}
	}
	pages.Headers(w)
	http.Redirect(w, r, next, http.StatusFound)
	return nil
}

// lookupClient finds a client for authorize.Parse.
func (s *Server) lookupClient(r *http.Request) authorize.Lookup {
	return func(id string) (authorize.Client, error) {
		a, err := s.cfg.Store.GetAgent(r.Context(), id)
		switch {
		case s.cfg.Documents != nil && cimd.IsURL(id) && (errors.Is(err, store.ErrNotFound) || err == nil && a.Registration == store.RegistrationCIMD):
			var existing *store.Agent
			if err == nil {
				existing = &a
			}
			return s.documentClient(r, id, existing)
		case errors.Is(err, store.ErrNotFound):
			return authorize.Client{}, authorize.ErrUnknownClient
		case err != nil:
			return authorize.Client{}, err
		}
		return authorize.Client{ID: a.ID, RedirectURIs: a.RedirectURIs, Disabled: a.Disabled}, nil
	}
}

// documentClient is the client whose client_id is the https URL of its
// Client ID Metadata Document: fetched (cimd.Fetcher: public addresses
// only, bounded, cached), admitted by the registration policy and stored
// (or brought up to date) as a client registered by "cimd". Anything that
// fails is authorize.ErrClientDocument, shown as an error page and never
// redirected.
func (s *Server) documentClient(r *http.Request, id string, existing *store.Agent) (authorize.Client, error) {
	if err := s.admitNewDocument(r, existing); err != nil {
		return authorize.Client{}, err
	}
	doc, err := s.cfg.Documents.Lookup(r.Context(), id)
	if err != nil {
		return authorize.Client{}, documentRefused(err)
	}
	p := directory.Performer{ID: "cimd", RequestID: requestID(r.Context())}
	a, err := s.cfg.Registration.AdmitDocument(r.Context(), p, doc, existing)
	switch {
	case errors.Is(err, registration.ErrDocumentRefused), errors.Is(err, directory.ErrInvalid), errors.Is(err, directory.ErrConflict):
		return authorize.Client{}, documentRefused(err)
	case err != nil:
		return authorize.Client{}, err
	}
	return authorize.Client{ID: a.ID, RedirectURIs: a.RedirectURIs, Disabled: a.Disabled}, nil
}

// loginView is the sign-in page's content.
type loginView struct {
	CSRF, Request, Username, Message string
	Providers                        []providerLink
}

// providerLink is a company identity provider on the sign-in page.
type providerLink struct{ Name, Start string }

// loginPage is GET /login: the password form, with a fresh login
// anti-forgery cookie (double submit: no session exists yet).
func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) error {
	return s.renderLogin(w, r, http.StatusOK, r.URL.Query().Get("request"), "", "")
}

func (s *Server) renderLogin(w http.ResponseWriter, r *http.Request, status int, request, username, message string) error {
	token := s.cookie(r, loginCookie)
	if len(token) < 32 {
		token = audit.NewID("")
		s.setCookie(w, loginCookie, token, 600)
	}
	view := loginView{CSRF: token, Request: request, Username: username, Message: message, Providers: s.providerLinks(request)}
	return s.cfg.Pages.Render(w, status, "login", pages.Page{Title: "Sign in", Data: view})
}

// login is POST /login: a local password. The same answer for an unknown
// account and a wrong password; 429 before any hashing when the account
// or the address has tried too often.
func (s *Server) login(w http.ResponseWriter, r *http.Request) error {
	form, err := readPageForm(w, r, s.cookie(r, loginCookie))
	if err != nil {
		return err
	}
	user, request := form.Get("username"), form.Get("request")
	if len(user) > 256 || len(form.Get("password")) > 1024 {
		if err := s.recordPageRefusal(r, "login", "credentials_too_long", "", "id or password too long"); err != nil {
			return unavailablePage(err)
		}
		return s.renderLogin(w, r, http.StatusBadRequest, request, "", "That id or password is too long.")
	}
	u, err := s.cfg.SignIn.CheckPassword(r.Context(), user, form.Get("password"), remoteAddr(r), requestID(r.Context()))
	switch {
	case errors.Is(err, signin.ErrTooManyAttempts):
		w.Header().Set("Retry-After", "60")
		return s.renderLogin(w, r, http.StatusTooManyRequests, request, user, "Too many attempts. Wait a minute and try again.")
	case errors.Is(err, signin.ErrBadCredentials):
		return s.renderLogin(w, r, http.StatusUnauthorized, request, user, "That id and password do not match.")
	case err != nil:
		return unavailablePage(err)
	}
	return s.startSession(w, r, u.ID, "", request)
}

// startSession signs the person in: a new session, a new cookie (never
// one the browser brought), then on to the pending request or My agents.
func (s *Server) startSession(w http.ResponseWriter, r *http.Request, subject, provider, request string) error {
	cookie, _, err := s.cfg.SignIn.NewSession(r.Context(), subject, provider, requestID(r.Context()))
	if err != nil {
		return unavailablePage(err)
	}
	s.setCookie(w, sessionCookie, cookie, 0)
	s.setCookie(w, loginCookie, "", -1)
	if request != "" {
		return seeOther(w, "/consent?request="+url.QueryEscape(request))
	}
	return seeOther(w, "/my/agents")
}

// logout is POST /logout: the session ends.
func (s *Server) logout(w http.ResponseWriter, r *http.Request) error {
	sess, err := s.session(r)
	if err != nil {
		return seeOther(w, "/login")
	}
	if _, err := readPageForm(w, r, sess.CSRF); err != nil {
		return err
	}
	if err := s.cfg.SignIn.EndSession(r.Context(), s.cookie(r, sessionCookie), requestID(r.Context())); err != nil {
		return unavailablePage(err)
	}
	s.setCookie(w, sessionCookie, "", -1)
	return seeOther(w, "/login")
}

// stylesheet is GET /static/mandate.css.
func (s *Server) stylesheet(w http.ResponseWriter, _ *http.Request) error {
	w.Header().Set("Content-Type", "text/css; charset=utf-8")
	w.Header().Set("Cache-Control", "public, max-age=3600")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, err := w.Write(pages.Stylesheet())
	return err
}

// durationChoice is a length the consent page offers.
type durationChoice struct {
	value string
	d     time.Duration
	label string
}

// durationChoices are the lengths the consent page offers, longest (the
// default) first.
func durationChoices() []durationChoice {
	return []durationChoice{
		{"8h", 8 * time.Hour, "8 hours"},
		{"1h", time.Hour, "1 hour"},
		{"15m", 15 * time.Minute, "15 minutes"},
	}
}
