package server

import (
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"

	"github.com/mandate-dev/mandate/internal/audit"
	"github.com/mandate-dev/mandate/internal/directory"
	"github.com/mandate-dev/mandate/internal/registration"
	"github.com/mandate-dev/mandate/oauth"
	"github.com/mandate-dev/mandate/strictjson"
)

// maxRegistrationBytes bounds a registration request's body: the metadata
// of a client is a few hundred bytes, sixteen redirect URIs of 2 KiB at
// most.
const maxRegistrationBytes = 64 << 10

// register is the client registration endpoint (RFC 7591 §3): the rate
// limit per remote address, then an administrator's bearer if one is
// sent, then the metadata, then the registrar. A client registered is
// recorded as agent.created (registration "dcr"); every refusal as
// client.registration, tallied per reason.
func (s *Server) register(w http.ResponseWriter, r *http.Request) error {
	if s.cfg.Registration == nil {
		return &oauth.Error{Code: oauth.ErrNotFound, Reason: "registration_off", Description: "client registration is not offered"}
	}
	if l := s.cfg.RegisterLimit; l != nil && !l.Allow(remoteAddr(r)) {
		return s.registrationRefused(r, directory.PerformerAnonymous, &oauth.Error{Code: oauth.ErrTemporarilyUnavailable, Reason: "rate_limited_address",
			Status: http.StatusTooManyRequests, Description: "too many registrations, retry later"})
	}
	req := registration.Request{Performer: directory.Performer{ID: directory.PerformerAnonymous, RequestID: requestID(r.Context())}}
	if r.Header.Get("Authorization") != "" {
		// A bearer that is not an administrator's is refused (and
		// recorded as admin.auth), never read as anonymous.
		if err := s.requireAdmin(r); err != nil {
			return err
		}
		req.Admin, req.Performer = true, asAdmin(r)
	}
	m, err := readMetadata(w, r)
	if err != nil {
		return s.registrationRefused(r, req.Performer.ID, err)
	}
	req.Metadata = m
	out, err := s.cfg.Registration.Register(r.Context(), req)
	if err != nil {
		return s.registrationRefused(r, req.Performer.ID, err)
	}
	oauth.WriteJSON(w, http.StatusCreated, out)
	return nil
}

// readMetadata reads the client metadata: a JSON object (RFC 7591 §3.1)
// of at most maxRegistrationBytes, without a member twice. Members the
// server does not know are ignored (§2).
func readMetadata(w http.ResponseWriter, r *http.Request) (registration.Metadata, error) {
	var m registration.Metadata
	bad := func(description string, err error) error {
		return oauth.New(registration.ErrInvalidClientMetadata, registration.ReasonMalformed, description, err)
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return m, oauth.InvalidRequest(registration.ReasonMalformed, "the request body must be application/json", err)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRegistrationBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return m, &oauth.Error{Code: oauth.ErrRequestTooLarge, Reason: registration.ReasonMalformed, Description: "the request body is too large"}
		}
		return m, bad("the request body could not be read", err)
	}
	if err := strictjson.Check(body, maxBodyDepth); err != nil {
		return m, bad("the client metadata is not one JSON object without repeated members", err)
	}
	// Members are matched by their exact names (encoding/json alone would
	// take "Redirect_URIs" for redirect_uris), and the others ignored.
	var members map[string]json.RawMessage
	if err := json.Unmarshal(body, &members); err != nil || members == nil {
		return m, bad("the client metadata is not a JSON object", err)
	}
	for name, v := range map[string]any{
		"redirect_uris": &m.RedirectURIs, "token_endpoint_auth_method": &m.TokenEndpointAuthMethod,
		"grant_types": &m.GrantTypes, "response_types": &m.ResponseTypes, "client_name": &m.ClientName, "scope": &m.Scope,
	} {
		if raw, ok := members[name]; ok {
			if err := json.Unmarshal(raw, v); err != nil {
				return m, bad(name+" is not of the expected type", err)
			}
		}
	}
	return m, nil
}

// registrationRefused records err, a refused registration asked by
// performer, at most once a second per reason with the count, and returns
// it; 503 when a due record cannot be written.
func (s *Server) registrationRefused(r *http.Request, performer string, err error) error {
	e := oauth.As(err)
	if e.Code == oauth.ErrTemporarilyUnavailable && e.HTTPStatus() >= 500 {
		return e
	}
	ev := audit.Event{
		Action: audit.ActionClientRegistration, Result: audit.ResultRefused, Reason: e.Reason, Detail: e.Description,
		RequestID: requestID(r.Context()), Resource: r.URL.Path, Performer: performer,
	}
	due := s.registerRefusals.add(e.Reason, ev, s.cfg.Now())
	if rerr := s.recordTallied(r.Context(), &s.registerRefusals, due); rerr != nil {
		return oauth.Unavailable("audit_unavailable", errors.Join(e, rerr))
	}
	return e
}
