package server

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/mandate-dev/mandate/internal/audit"
	"github.com/mandate-dev/mandate/internal/clientauth"
	"github.com/mandate-dev/mandate/internal/exchange"
	"github.com/mandate-dev/mandate/internal/signin"
	"github.com/mandate-dev/mandate/internal/store"
	"github.com/mandate-dev/mandate/oauth"
	"github.com/mandate-dev/mandate/strictjson"
)

// token is the token endpoint (RFC 6749 §3.2): client authentication, then
// the grant. Every outcome is counted (metrics.observeToken).
func (s *Server) token(w http.ResponseWriter, r *http.Request) error {
	start := time.Now()
	out := s.grantToken(w, r)
	s.metrics.observeToken(out, time.Since(start))
	if out.err != nil {
		return out.err
	}
	if out.body != nil {
		oauth.WriteJSON(w, http.StatusOK, out.body)
		return nil
	}
	oauth.WriteJSON(w, http.StatusOK, out.res)
	return nil
}

// tokenOutcome is what one token request came to, for the metrics.
type tokenOutcome struct {
	// client is the authenticated client's id; empty until it has
	// authenticated.
	client string
	// grant is the grant_type as sent; empty before the form was read.
	grant string
	res   *exchange.Result
	// body is the response when it is more than res (a refresh token).
	body any
	err  error
}

// setTokens takes the outcome of a code or refresh token grant.
func (o *tokenOutcome) setTokens(t *signin.Tokens, err error) {
	o.err = err
	if err == nil {
		o.res, o.body = t.Result, t
	}
}

// grantToken reads the form, authenticates the client and runs the grant.
func (s *Server) grantToken(w http.ResponseWriter, r *http.Request) tokenOutcome {
	form, err := s.parseForm(w, r)
	if err != nil {
		return tokenOutcome{err: err}
	}
	out := tokenOutcome{grant: form.Get("grant_type")}
	gen := s.cfg.Grant.CurrentGeneration()
	// A well-formed agent_version goes into the client.auth record too: a
	// version whose credentials fail is worth seeing. A malformed one is
	// refused after authentication, like every other parameter.
	version, _ := parseAgentVersion(form) // "" when malformed
	client, err := s.authenticateVersion(r, form, out.grant, version)
	if err != nil {
		out.err = err
		return out
	}
	out.client = client.ID
	req, err := tokenRequest(form, client, requestID(r.Context()))
	req.Generation = gen
	switch {
	case err != nil:
		// A malformed parameter is still a refusal worth a record.
		out.err = s.recordRefusal(r.Context(), out.grant, req, err)
	case out.grant == oauth.GrantTokenExchange:
		out.res, out.err = s.cfg.Grant.Exchange(r.Context(), req)
	case out.grant == oauth.GrantClientCredentials:
		out.res, out.err = s.cfg.Grant.ClientCredentials(r.Context(), req)
	case out.grant == exchange.GrantAuthorizationCode && s.cfg.SignIn != nil:
		out.setTokens(s.cfg.SignIn.RedeemCode(r.Context(), req, form.Get("code"), form.Get("redirect_uri"), form.Get("code_verifier")))
	case out.grant == exchange.GrantRefreshToken && s.cfg.SignIn != nil:
		out.setTokens(s.cfg.SignIn.Refresh(r.Context(), req, form.Get("refresh_token")))
	default:
		out.err = s.recordRefusal(r.Context(), out.grant, req,
			oauth.New(oauth.ErrUnsupportedGrantType, "grant_type_unsupported", "grant_type is missing or not supported", nil))
	}
	return out
}

// parseForm is ParseForm for /token, /introspect and /revoke, with the
// refusal of a form that cannot be read recorded as the endpoint's refused
// action (token.refused, token.introspect, token.revoked). It comes before
// client authentication, so anyone can provoke it: the refusals are
// recorded at most once a second per endpoint, with their count (THREATS
// T77, refusalTally). A due record that cannot be written answers 503.
func (s *Server) parseForm(w http.ResponseWriter, r *http.Request) (url.Values, error) {
	form, err := ParseForm(w, r)
	if err == nil {
		return form, nil
	}
	e := oauth.As(err)
	action := refusedAction(r)
	ev := audit.Event{
		Action: action, Result: audit.ResultRefused, Reason: e.Reason, Detail: e.Description,
		RequestID: requestID(r.Context()), Resource: r.URL.Path,
	}
	if rerr := s.recordTallied(r.Context(), &s.formRefusals, s.formRefusals.add(action, ev, s.cfg.Now())); rerr != nil {
		return nil, oauth.Unavailable("audit_unavailable", errors.Join(err, rerr))
	}
	return nil, e
}

// refusedAction is the audit action of a request to r's endpoint that is
// refused before its client is known.
func refusedAction(r *http.Request) string {
	switch r.URL.Path {
	case "/introspect":
		return audit.ActionTokenIntrospect
	case "/revoke":
		return audit.ActionTokenRevoked
	}
	return audit.ActionTokenRefused
}

// admit applies the per-address and per-client rate limits (THREATS T78),
// before any signature, hash or database work. A refusal is answered 429
// with Retry-After and recorded like a failed authentication: at most once
// a second per limited caller, with the count of its refusals.
func (s *Server) admit(r *http.Request, clientID string) error {
	var key, reason string
	if l := s.cfg.IPLimit; l != nil {
		if addr := remoteAddr(r); !l.Allow(addr) {
			key, reason = "ip "+addr, "rate_limited_address"
		}
	}
	if l := s.cfg.ClientLimit; key == "" && l != nil && !l.Allow(clientID) {
		key, reason = "client "+clientID, "rate_limited_client"
	}
	if key == "" {
		return nil
	}
	e := &oauth.Error{Code: oauth.ErrTemporarilyUnavailable, Reason: reason, Status: http.StatusTooManyRequests,
		Description: "too many requests, retry later"}
	ev := audit.Event{
		Action: refusedAction(r), Result: audit.ResultRefused, Reason: reason, Detail: key,
		RequestID: requestID(r.Context()), Resource: r.URL.Path, ClientID: clientID,
	}
	if rerr := s.recordTallied(r.Context(), &s.limitRefusals, s.limitRefusals.add(key, ev, s.cfg.Now())); rerr != nil {
		return oauth.Unavailable("audit_unavailable", errors.Join(e, rerr))
	}
	return e
}

// remoteAddr is the address the request came from, without its port; the
// X-Forwarded-For header is not trusted.
func remoteAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// authenticate runs client authentication (RFC 6749 §2.3) and audits a
// failure. A failure that cannot be audited is answered with 503.
func (s *Server) authenticate(r *http.Request, form url.Values) (store.Agent, error) {
	return s.authenticateVersion(r, form, "", "")
}

// authenticateVersion is authenticate for the token endpoint: a public
// client may authenticate with its client_id alone for the grants
// clientauth.PublicGrants, and a failure's record also carries the
// agent_version the request declared. An empty grant is any other
// endpoint's, where a public client cannot authenticate.
func (s *Server) authenticateVersion(r *http.Request, form url.Values, grant, agentVersion string) (store.Agent, error) {
	creds, err := clientauth.Extract(r, form)
	clientID := ""
	if creds.ClientID != "" && len(creds.ClientID) <= 256 {
		clientID = creds.ClientID
	}
	if lerr := s.admit(r, clientID); lerr != nil {
		return store.Agent{}, lerr
	}
	if err == nil {
		var agent store.Agent
		if grant != "" {
			agent, err = s.cfg.Auth.AuthenticateGrant(r.Context(), creds, grant)
		} else {
			agent, err = s.cfg.Auth.Authenticate(r.Context(), creds)
		}
		if err == nil {
			return agent, nil
		}
	}
	e := oauth.As(err)
	if e.Code == oauth.ErrTemporarilyUnavailable {
		return store.Agent{}, e
	}
	// Anyone can make client authentication fail, as often as they like,
	// under any client_id (THREATS T77, T86, refusalTally): the failures of
	// a registered client are counted under its id and recorded at most
	// once a second each; those of ids the store does not hold (and of
	// credentials that name none) are summed into one record a second.
	ev := audit.Event{
		Action:    audit.ActionClientAuth,
		Result:    audit.ResultRefused,
		Reason:    e.Reason,
		Detail:    e.Description,
		RequestID: requestID(r.Context()),
		Resource:  r.URL.Path,

		AgentVersion: agentVersion,
		ClientID:     clientID,
	}
	var due []tallyRecord
	if id, ok := clientauth.RegisteredClient(e); ok {
		ev.ClientID = id
		due = s.clientRefusals.add(id, ev, s.cfg.Now())
	} else {
		due = s.clientRefusals.addUnnamed(clientID, ev, s.cfg.Now())
	}
	if rerr := s.recordTallied(r.Context(), &s.clientRefusals, due); rerr != nil {
		return store.Agent{}, oauth.Unavailable("audit_unavailable", errors.Join(err, rerr))
	}
	return store.Agent{}, e
}

// recordRefusal audits a refusal decided before a grant ran, with what of
// req was parsed before it.
func (s *Server) recordRefusal(ctx context.Context, grant string, req exchange.Request, err error) error {
	e := oauth.As(err)
	ev := audit.Event{
		Action:    audit.ActionTokenRefused,
		Result:    audit.ResultRefused,
		Reason:    e.Reason,
		Detail:    e.Description,
		RequestID: req.RequestID,
		Performer: req.Client.ID,
		ClientID:  req.Client.ID,

		AgentVersion:         req.AgentVersion,
		AuthorizationDetails: exchange.DetailsJSON(req.AuthorizationDetails),
	}
	// The same Resource as a refusal the grant itself records
	// (exchange.Grant.refuse): the action that was refused.
	switch grant {
	case oauth.GrantTokenExchange:
		ev.Resource = audit.ActionTokenExchange
	case oauth.GrantClientCredentials:
		ev.Resource = audit.ActionTokenIssue
	}
	if rerr := s.cfg.Audit.Record(ctx, ev); rerr != nil {
		return oauth.Unavailable("audit_unavailable", errors.Join(err, rerr))
	}
	return e
}

// tokenRequest turns the form into an exchange.Request, enforcing the size
// limits on tokens, scopes, audiences and context.
func tokenRequest(form url.Values, client store.Agent, reqID string) (exchange.Request, error) {
	req := exchange.Request{
		Client:             client,
		SubjectToken:       form.Get("subject_token"),
		SubjectTokenType:   form.Get("subject_token_type"),
		ActorToken:         form.Get("actor_token"),
		ActorTokenType:     form.Get("actor_token_type"),
		RequestedTokenType: form.Get("requested_token_type"),
		Audiences:          form["audience"],
		Resources:          form["resource"],
		RequestID:          reqID,
	}
	// First, so that the refusals of the checks below carry the version.
	version, err := parseAgentVersion(form)
	if err != nil {
		return req, err
	}
	req.AgentVersion = version
	if len(req.SubjectToken) > maxTokenBytes || len(req.ActorToken) > maxTokenBytes {
		return req, oauth.InvalidRequest("token_too_large", "a presented token is too large", nil)
	}
	if len(req.Audiences)+len(req.Resources) > maxAudiences {
		return req, oauth.InvalidTarget("audience_too_many", "too many audiences", nil)
	}
	if scope, ok := form["scope"]; ok {
		scopes, err := ParseScope(scope[0])
		if err != nil {
			return req, err
		}
		req.Scopes, req.ScopeGiven = scopes, true
	}
	if ad := form.Get("authorization_details"); ad != "" {
		details, err := exchange.ParseDetails(ad)
		if err != nil {
			return req, err
		}
		req.AuthorizationDetails = details
	}
	if c := form.Get("context"); c != "" {
		ctx, err := ParseContext(c)
		if err != nil {
			return req, err
		}
		req.Context = ctx
	}
	return req, nil
}

// maxAgentVersion is the longest agent_version accepted, in bytes.
const maxAgentVersion = 64

// parseAgentVersion reads the optional agent_version parameter: at most 64
// bytes of A-Z a-z 0-9 . _ + - (a semantic version, a build tag, a commit).
// It names the agent build in the audit log; it is the client's say-so and
// grants nothing.
func parseAgentVersion(form url.Values) (string, error) {
	v := form.Get("agent_version")
	ok := len(v) <= maxAgentVersion
	for i := 0; ok && i < len(v); i++ {
		c := v[i]
		ok = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '.' || c == '_' || c == '+' || c == '-'
	}
	if !ok {
		return "", oauth.InvalidRequest("agent_version_invalid", "agent_version must be at most 64 characters of A-Z a-z 0-9 . _ + -", nil)
	}
	return v, nil
}

// ParseContext decodes the context parameter: one JSON object of at most
// 2 KiB that every JSON parser reads the same way.
func ParseContext(s string) (map[string]any, error) {
	bad := func(err error) error {
		return oauth.InvalidRequest("context_invalid", "context must be a JSON object of at most 2 KiB", err)
	}
	if len(s) > maxContextSize {
		return nil, bad(nil)
	}
	if err := strictjson.Check([]byte(s), 8); err != nil {
		return nil, bad(err)
	}
	var ctx map[string]any
	if err := json.Unmarshal([]byte(s), &ctx); err != nil || ctx == nil {
		return nil, bad(err)
	}
	for _, k := range []string{"environment", "trigger"} {
		if v, ok := ctx[k]; ok {
			if _, isString := v.(string); !isString {
				return nil, bad(errors.New(k + " must be a string"))
			}
		}
	}
	return ctx, nil
}
