package server

import (
	"errors"
	"net/http"
	"net/url"

	"github.com/mandate-dev/mandate/internal/pages"
	"github.com/mandate-dev/mandate/internal/signin"
	"github.com/mandate-dev/mandate/internal/upstream"
)

// Sign-in at a company's OpenID Connect provider: the sign-in page links
// to GET /login/provider, which sends the browser to the provider; the
// provider sends it back to GET /login/callback, one callback for every
// provider (the sign-in kept server-side names the provider, and RFC 9207
// iss is checked against it).

// upstreamCookie binds a sign-in at a provider to the browser that
// started it (login CSRF: a callback brought by another browser is
// refused).
const upstreamCookie = "mandate_upstream"

// CallbackPath is the path of the callback to register at every identity
// provider: the issuer followed by it.
const CallbackPath = "/login/callback"

// maxRequestID bounds the pending request id a sign-in link carries (the
// ids are 43 characters).
const maxRequestID = 128

// providerLinks are the sign-in page's links to the login providers, to
// go on with the pending authorization request request.
func (s *Server) providerLinks(request string) []providerLink {
	if s.cfg.Upstream == nil {
		return nil
	}
	var out []providerLink
	for _, c := range s.cfg.Upstream.Choices() {
		q := url.Values{"issuer": {c.Issuer}}
		if request != "" {
			q.Set("request", request)
		}
		out = append(out, providerLink{Name: c.Name, Start: "/login/provider?" + q.Encode()})
	}
	return out
}

// loginProviderStart is GET /login/provider?issuer=…&request=…: a sign-in
// at that provider starts, and the browser goes there (302).
func (s *Server) loginProviderStart(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	if s.cfg.Upstream == nil {
		return unknownProviderPage(nil)
	}
	if len(q.Get("request")) > maxRequestID {
		return &pageFailure{status: http.StatusBadRequest, title: "Bad request", message: "This sign-in link is not one of this server's."}
	}
	p, err := s.cfg.Upstream.Provider(r.Context(), q.Get("issuer"))
	switch {
	case errors.Is(err, upstream.ErrUnknownProvider):
		return unknownProviderPage(err)
	case err != nil:
		return providerDownPage(err)
	}
	authURL, browser, err := s.cfg.SignIn.StartUpstream(r.Context(), p, q.Get("request"))
	if err != nil {
		return unavailablePage(err)
	}
	s.setCookie(w, upstreamCookie, browser, int(signin.UpstreamTTL.Seconds()))
	pages.Headers(w)
	http.Redirect(w, r, authURL, http.StatusFound)
	return nil
}

// loginCallback is GET /login/callback: the provider's answer. The
// sign-in it belongs to is finished and the person signed in, or the
// answer is refused with an error page and nobody is signed in.
func (s *Server) loginCallback(w http.ResponseWriter, r *http.Request) error {
	if s.cfg.Upstream == nil {
		return unknownProviderPage(nil)
	}
	browser := s.cookie(r, upstreamCookie)
	s.setCookie(w, upstreamCookie, "", -1)
	in, err := s.cfg.SignIn.FinishUpstream(r.Context(), s.cfg.Upstream, r.URL.Query(), browser, requestID(r.Context()))
	if err != nil {
		return callbackFailure(err)
	}
	return s.startSession(w, r, in.User.ID, in.Issuer, in.Request)
}

// callbackFailure is the page of a refused callback.
func callbackFailure(err error) error {
	refused := func(message string) error {
		return &pageFailure{status: http.StatusForbidden, title: "Not signed in", message: message, err: err}
	}
	switch {
	case errors.Is(err, signin.ErrUpstreamState):
		return refused("This answer from the sign-in provider belongs to no sign-in started in this browser, or it has expired. Start again from the sign-in page.")
	case errors.Is(err, upstream.ErrIssuer), errors.Is(err, upstream.ErrState):
		return refused("This answer does not come from the provider the sign-in was started at. Nobody was signed in; start again from the sign-in page.")
	case errors.Is(err, upstream.ErrDenied):
		return refused("The sign-in provider did not sign you in. Start again from the sign-in page.")
	case errors.Is(err, signin.ErrNotManaged):
		return &pageFailure{status: http.StatusConflict, title: "Not signed in", err: err,
			message: "An account with your id exists in Mandate and is not managed by this sign-in provider, so it cannot be used through it. Sign in with your Mandate password, or ask an administrator."}
	case errors.Is(err, upstream.ErrClaims):
		return refused("The sign-in provider's account details do not make a valid Mandate account. Ask an administrator.")
	case errors.Is(err, upstream.ErrExchange):
		return refused("The sign-in provider's answer could not be checked. Start again from the sign-in page.")
	case errors.Is(err, signin.ErrProviderUnavailable):
		return providerDownPage(err)
	}
	return unavailablePage(err)
}

func unknownProviderPage(err error) error {
	return &pageFailure{status: http.StatusNotFound, title: "Unknown sign-in provider",
		message: "This server does not sign people in through that provider.", err: err}
}

func providerDownPage(err error) error {
	return &pageFailure{status: http.StatusBadGateway, title: "Sign-in provider unavailable",
		message: "The sign-in provider cannot be reached now. Nothing was changed; try again later, or sign in with a Mandate password.", err: err}
}
