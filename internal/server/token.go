package server

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"

	"github.com/mandate-dev/mandate/internal/audit"
	"github.com/mandate-dev/mandate/internal/clientauth"
	"github.com/mandate-dev/mandate/internal/exchange"
	"github.com/mandate-dev/mandate/internal/store"
	"github.com/mandate-dev/mandate/oauth"
	"github.com/mandate-dev/mandate/strictjson"
)

// token is the token endpoint (RFC 6749 §3.2): client authentication, then
// the grant.
func (s *Server) token(w http.ResponseWriter, r *http.Request) error {
	form, err := ParseForm(w, r)
	if err != nil {
		return err
	}
	gen := s.cfg.Grant.CurrentGeneration()
	client, err := s.authenticate(r, form)
	if err != nil {
		return err
	}
	req, err := tokenRequest(form, client, requestID(r.Context()))
	req.Generation = gen
	var res *exchange.Result
	grant := form.Get("grant_type")
	switch {
	case err != nil:
		// A malformed parameter is still a refusal worth a record.
		err = s.recordRefusal(r.Context(), client.ID, grant, req.RequestID, err)
	case grant == oauth.GrantTokenExchange:
		res, err = s.cfg.Grant.Exchange(r.Context(), req)
	case grant == oauth.GrantClientCredentials:
		res, err = s.cfg.Grant.ClientCredentials(r.Context(), req)
	default:
		err = s.recordRefusal(r.Context(), client.ID, grant, req.RequestID,
			oauth.New(oauth.ErrUnsupportedGrantType, "grant_type_unsupported", "grant_type is missing or not supported", nil))
	}
	if err != nil {
		s.metrics.refused.WithLabelValues(oauth.As(err).Reason).Inc()
		return err
	}
	s.metrics.issued.WithLabelValues(client.ID, grant).Inc()
	oauth.WriteJSON(w, http.StatusOK, res)
	return nil
}

// authenticate runs client authentication (RFC 6749 §2.3) and audits a
// failure. A failure that cannot be audited is answered with 503.
func (s *Server) authenticate(r *http.Request, form url.Values) (store.Agent, error) {
	creds, err := clientauth.Extract(r, form)
	if err == nil {
		var agent store.Agent
		agent, err = s.cfg.Auth.Authenticate(r.Context(), creds)
		if err == nil {
			return agent, nil
		}
	}
	e := oauth.As(err)
	if e.Code == oauth.ErrTemporarilyUnavailable {
		return store.Agent{}, e
	}
	ev := audit.Event{
		Action:    audit.ActionClientAuth,
		Result:    audit.ResultRefused,
		Reason:    e.Reason,
		Detail:    e.Description,
		RequestID: requestID(r.Context()),
		Resource:  r.URL.Path,
	}
	if creds.ClientID != "" && len(creds.ClientID) <= 256 {
		ev.ClientID = creds.ClientID
	}
	if rerr := s.cfg.Audit.Record(r.Context(), ev); rerr != nil {
		return store.Agent{}, oauth.Unavailable("audit_unavailable", errors.Join(err, rerr))
	}
	return store.Agent{}, e
}

// recordRefusal audits a refusal decided before a grant ran.
func (s *Server) recordRefusal(ctx context.Context, clientID, grant, reqID string, err error) error {
	e := oauth.As(err)
	ev := audit.Event{
		Action:    audit.ActionTokenRefused,
		Result:    audit.ResultRefused,
		Reason:    e.Reason,
		Detail:    e.Description,
		RequestID: reqID,
		Performer: clientID,
		ClientID:  clientID,
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
