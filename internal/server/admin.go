package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mandate-dev/mandate/actor"
	"github.com/mandate-dev/mandate/internal/directory"
	"github.com/mandate-dev/mandate/internal/forensics"
	"github.com/mandate-dev/mandate/internal/store"
	"github.com/mandate-dev/mandate/oauth"
)

// The admin API (docs/admin.md) reads through Config.Store and changes
// through Config.Directory, which checks every change and commits it with
// its audit record; a handler parses and bounds its input, calls one
// directory method and answers. domainError is the one place a directory
// refusal becomes an answer.

// adminPerformer names the administrator in audit records.
const adminPerformer = directory.PerformerAdmin

// errConflict is the error code of a 409: the id is taken.
const errConflict oauth.ErrorCode = "conflict"

// maxProblems is how many of a refused record's problems an answer lists.
const maxProblems = 4

// domainError maps a directory refusal to the answer: not found is 404
// (naming what), a taken id 409, an invalid record 400 naming each field
// and why; anything else is the store's failure, 503 (fail closed).
func domainError(err error) error {
	var nf *directory.NotFoundError
	var ce *directory.ConflictError
	switch {
	case errors.As(err, &nf):
		return &oauth.Error{Code: oauth.ErrNotFound, Reason: "not_found", Description: nf.What + " not found", Err: err}
	case errors.As(err, &ce):
		return &oauth.Error{Code: errConflict, Status: http.StatusConflict, Reason: "conflict",
			Description: oauth.CleanDescription(ce.Problem), Err: err}
	case errors.Is(err, directory.ErrInvalid):
		var text []string
		for i, p := range directory.Problems(err) {
			if i == maxProblems {
				text = append(text, fmt.Sprintf("and %d more", len(directory.Problems(err))-maxProblems))
				break
			}
			text = append(text, p.Error())
		}
		return oauth.InvalidRequest("record_invalid", strings.Join(text, "; "), err)
	}
	return storeError(err, "")
}

// pathID returns a path parameter that names a user, agent or delegation.
// ServeMux has already unescaped it, so "agent%3Ainfrabot" and
// "agent:infrabot" are the same id.
func pathID(r *http.Request, name string) (string, error) {
	id := r.PathValue(name)
	if actor.ValidSubject(id) != nil {
		return "", oauth.InvalidRequest("invalid_id", "the id in the path is not valid", nil)
	}
	return id, nil
}

// adminID authenticates an admin call and returns the id in its path.
func (s *Server) adminID(r *http.Request) (string, error) {
	if err := s.requireAdmin(r); err != nil {
		return "", err
	}
	return pathID(r, "id")
}

type userJSON struct {
	ID          string          `json:"id"`
	Permissions []string        `json:"permissions"`
	Limits      json.RawMessage `json:"limits,omitempty"`
	Version     int64           `json:"revocation_version"`
}

func toUserJSON(u store.User) userJSON {
	return userJSON{ID: u.ID, Permissions: nonNil(u.Permissions), Limits: u.Limits, Version: u.Version}
}

func (s *Server) adminListUsers(w http.ResponseWriter, r *http.Request) error {
	if err := s.requireAdmin(r); err != nil {
		return err
	}
	users, err := s.cfg.Store.ListUsers(r.Context())
	if err != nil {
		return storeError(err, "users")
	}
	out := make([]userJSON, 0, len(users))
	for _, u := range users {
		out = append(out, toUserJSON(u))
	}
	writeJSON(w, http.StatusOK, map[string]any{"users": out})
	return nil
}

func (s *Server) adminGetUser(w http.ResponseWriter, r *http.Request) error {
	id, err := s.adminID(r)
	if err != nil {
		return err
	}
	u, err := s.cfg.Store.GetUser(r.Context(), id)
	if err != nil {
		return storeError(err, "user")
	}
	writeJSON(w, http.StatusOK, toUserJSON(u))
	return nil
}

// adminCreateUser creates a user: the only way a user comes to exist
// through the API (user.created).
func (s *Server) adminCreateUser(w http.ResponseWriter, r *http.Request) error {
	if err := s.requireAdmin(r); err != nil {
		return err
	}
	var body struct {
		ID          string          `json:"id"`
		Permissions []string        `json:"permissions"`
		Limits      json.RawMessage `json:"limits"`
	}
	if err := decodeJSON(w, r, &body); err != nil {
		return err
	}
	u, err := s.cfg.Directory.CreateUser(r.Context(), asAdmin(r), store.User{ID: body.ID, Permissions: body.Permissions, Limits: body.Limits})
	if err != nil {
		return domainError(err)
	}
	writeJSON(w, http.StatusCreated, toUserJSON(u))
	return nil
}

// adminSetPermissions replaces a user's permissions; an unknown user is 404.
// Tokens carrying a removed scope stop being in force at once.
func (s *Server) adminSetPermissions(w http.ResponseWriter, r *http.Request) error {
	id, err := s.adminID(r)
	if err != nil {
		return err
	}
	var body struct {
		Permissions []string `json:"permissions"`
	}
	if err := decodeJSON(w, r, &body); err != nil {
		return err
	}
	u, err := s.cfg.Directory.SetPermissions(r.Context(), asAdmin(r), id, body.Permissions)
	if err != nil {
		return domainError(err)
	}
	writeJSON(w, http.StatusOK, toUserJSON(u))
	return nil
}

// adminSetLimits replaces a user's authorization_details limits (RFC 9396);
// an unknown user is 404.
func (s *Server) adminSetLimits(w http.ResponseWriter, r *http.Request) error {
	id, err := s.adminID(r)
	if err != nil {
		return err
	}
	var body struct {
		Limits json.RawMessage `json:"limits"`
	}
	if err := decodeJSON(w, r, &body); err != nil {
		return err
	}
	u, err := s.cfg.Directory.SetLimits(r.Context(), asAdmin(r), id, body.Limits)
	if err != nil {
		return domainError(err)
	}
	writeJSON(w, http.StatusOK, toUserJSON(u))
	return nil
}

// adminDeleteUser deletes a user: their delegations are revoked and every
// token on their behalf stops being in force.
func (s *Server) adminDeleteUser(w http.ResponseWriter, r *http.Request) error {
	id, err := s.adminID(r)
	if err != nil {
		return err
	}
	if err := s.cfg.Directory.DeleteUser(r.Context(), asAdmin(r), id); err != nil {
		return domainError(err)
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": id, "deleted": true})
	return nil
}

// adminSignIn issues a person's own token (exchange.Grant.SignIn), the
// stand-in for the sign-in page: agents exchange it for delegated tokens.
func (s *Server) adminSignIn(w http.ResponseWriter, r *http.Request) error {
	id, err := s.adminID(r)
	if err != nil {
		return err
	}
	res, err := s.cfg.Grant.SignIn(r.Context(), id, requestID(r.Context()))
	if err != nil {
		return err
	}
	oauth.WriteJSON(w, http.StatusOK, res)
	return nil
}

type delegationJSON struct {
	ID        string   `json:"id"`
	Subject   string   `json:"subject"`
	Actor     string   `json:"actor"`
	Scopes    []string `json:"scopes"`
	Audiences []string `json:"audiences,omitempty"`
	// DelegateTo and HandOn come from a person's approval for a resource
	// whose server exchanges its tokens; read-only here.
	DelegateTo []string   `json:"delegate_to,omitempty"`
	HandOn     []string   `json:"hand_on,omitempty"`
	MaxDepth   int        `json:"max_depth,omitempty"`
	Expires    *time.Time `json:"expires,omitempty"`
	Source     string     `json:"source,omitempty"`
	Revoked    bool       `json:"revoked"`
}

func toDelegationJSON(d store.Delegation) delegationJSON {
	out := delegationJSON{ID: d.ID, Subject: d.Subject, Actor: d.Actor, Scopes: nonNil(d.Scopes),
		Audiences: d.Audiences, DelegateTo: d.DelegateTo, HandOn: d.HandOn, MaxDepth: d.MaxDepth, Source: d.Source, Revoked: d.Revoked}
	if !d.Expires.IsZero() {
		e := d.Expires
		out.Expires = &e
	}
	return out
}

func (s *Server) adminListDelegations(w http.ResponseWriter, r *http.Request) error {
	if err := s.requireAdmin(r); err != nil {
		return err
	}
	q := r.URL.Query()
	ds, err := s.cfg.Store.ListDelegations(r.Context(), store.DelegationFilter{
		Subject: q.Get("subject"), Actor: q.Get("actor"), IncludeRevoked: q.Get("revoked") == "true",
	})
	if err != nil {
		return storeError(err, "delegations")
	}
	out := make([]delegationJSON, 0, len(ds))
	for _, d := range ds {
		out = append(out, toDelegationJSON(d))
	}
	writeJSON(w, http.StatusOK, map[string]any{"delegations": out})
	return nil
}

func (s *Server) adminGetDelegation(w http.ResponseWriter, r *http.Request) error {
	id, err := s.adminID(r)
	if err != nil {
		return err
	}
	d, err := s.cfg.Store.GetDelegation(r.Context(), id)
	if err != nil {
		return storeError(err, "delegation")
	}
	writeJSON(w, http.StatusOK, toDelegationJSON(d))
	return nil
}

// adminCreateDelegation stores a standing grant from a user to an agent.
func (s *Server) adminCreateDelegation(w http.ResponseWriter, r *http.Request) error {
	if err := s.requireAdmin(r); err != nil {
		return err
	}
	var body delegationJSON
	if err := decodeJSON(w, r, &body); err != nil {
		return err
	}
	if body.ID != "" || body.Revoked || body.Source != "" {
		return oauth.InvalidRequest("delegation_invalid", "id, source and revoked are set by the server", nil)
	}
	d := store.Delegation{Subject: body.Subject, Actor: body.Actor, Scopes: body.Scopes, Audiences: body.Audiences,
		MaxDepth: body.MaxDepth, Source: directory.SourceAdmin}
	if body.Expires != nil {
		d.Expires = *body.Expires
	}
	d, err := s.cfg.Directory.CreateDelegation(r.Context(), asAdmin(r), d)
	if err != nil {
		return domainError(err)
	}
	writeJSON(w, http.StatusCreated, toDelegationJSON(d))
	return nil
}

// adminDeleteDelegation revokes a delegation; the record stays for audit.
func (s *Server) adminDeleteDelegation(w http.ResponseWriter, r *http.Request) error {
	id, err := s.adminID(r)
	if err != nil {
		return err
	}
	if err := s.cfg.Directory.RevokeDelegation(r.Context(), asAdmin(r), id, ""); err != nil {
		return domainError(err)
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": id, "revoked": true})
	return nil
}

// adminRevoke revokes by exactly one of jti, subject, agent or
// delegation_id. Each is durable, with its audit record, before the answer.
func (s *Server) adminRevoke(w http.ResponseWriter, r *http.Request) error {
	if err := s.requireAdmin(r); err != nil {
		return err
	}
	var body struct {
		JTI          string `json:"jti"`
		Subject      string `json:"subject"`
		Agent        string `json:"agent"`
		DelegationID string `json:"delegation_id"`
	}
	if err := decodeJSON(w, r, &body); err != nil {
		return err
	}
	set := slices.DeleteFunc([]string{body.JTI, body.Subject, body.Agent, body.DelegationID}, func(v string) bool { return v == "" })
	if len(set) != 1 {
		return oauth.InvalidRequest("revoke_invalid", "give exactly one of jti, subject, agent, delegation_id", nil)
	}
	if actor.ValidSubject(set[0]) != nil {
		return oauth.InvalidRequest("revoke_invalid", "the id is not valid", nil)
	}
	ctx, p, dir := r.Context(), asAdmin(r), s.cfg.Directory
	var err error
	switch {
	case body.JTI != "":
		_, err = s.revokeToken(r, p, body.JTI, "")
	case body.Subject != "":
		_, err = dir.RevokeSubject(ctx, p, body.Subject)
	case body.Agent != "":
		_, err = dir.SetAgentDisabled(ctx, p, body.Agent, true)
	default:
		err = dir.RevokeDelegation(ctx, p, body.DelegationID, "")
	}
	if err != nil {
		return domainError(err)
	}
	writeJSON(w, http.StatusOK, map[string]any{"revoked": set[0]})
	return nil
}

// revokeToken revokes one token through the directory and counts a first
// revocation under the client the token was issued to
// (mandate_tokens_revoked_total): every revocation of one token, by
// /revoke or the admin API, goes through it. It returns the token's record
// as it was before.
func (s *Server) revokeToken(r *http.Request, p directory.Performer, jti, reason string) (store.IssuedToken, error) {
	rec, err := s.cfg.Directory.RevokeToken(r.Context(), p, jti, reason)
	if err == nil && !rec.Revoked && rec.ClientID != "" {
		s.metrics.revoked.WithLabelValues(rec.ClientID).Inc()
	}
	return rec, err
}

// auditQuery serves GET /audit: events newest first, filtered, 100 by
// default, with a cursor for the next page.
func (s *Server) auditQuery(w http.ResponseWriter, r *http.Request) error {
	if err := s.requireAuditor(r); err != nil {
		return err
	}
	q := r.URL.Query()
	f := store.EventFilter{
		Actor: q.Get("actor"), Subject: q.Get("subject"), Action: q.Get("action"), Result: q.Get("result"),
		Audience: q.Get("audience"), Resource: q.Get("resource"), DelegationID: q.Get("delegation"),
		AgentVersion: q.Get("agent_version"), JTI: q.Get("jti"),
	}
	lineage, err := boolParam(q.Get("lineage"))
	if err != nil {
		return err
	}
	if lineage {
		return s.auditLineage(w, r, f.JTI)
	}
	now := s.cfg.Now()
	if f.Since, err = parseTime(q.Get("since"), now); err != nil {
		return err
	}
	if f.Until, err = parseTime(q.Get("until"), now); err != nil {
		return err
	}
	if f.Limit, err = parseInt(q.Get("limit"), 1, 1000); err != nil {
		return err
	}
	cursor, err := parseInt(q.Get("cursor"), 1, 1<<62)
	if err != nil {
		return err
	}
	f.BeforeSeq = int64(cursor)
	events, err := s.cfg.Store.QueryEvents(r.Context(), f)
	if err != nil {
		return storeError(err, "events")
	}
	resp := map[string]any{"events": nonNil(events)}
	limit := f.Limit
	if limit == 0 {
		limit = 100
	}
	if len(events) == limit {
		resp["next_cursor"] = strconv.FormatInt(events[len(events)-1].Seq, 10)
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}

// auditLineage answers GET /audit?jti=J&lineage=true: every record about
// the token J, the tokens it was exchanged from and every token exchanged
// from it, oldest first, unpaged (forensics.Lineage).
func (s *Server) auditLineage(w http.ResponseWriter, r *http.Request, jti string) error {
	if jti == "" {
		return oauth.InvalidRequest("lineage_needs_jti", "lineage=true needs jti", nil)
	}
	events, err := forensics.Lineage(r.Context(), s.cfg.Store, jti)
	if errors.Is(err, forensics.ErrTooMany) {
		return oauth.InvalidRequest("lineage_too_large", "the lineage has more tokens than one answer may hold", err)
	}
	if err != nil {
		return storeError(err, "events")
	}
	writeJSON(w, http.StatusOK, map[string]any{"events": nonNil(events)})
	return nil
}

// boolParam reads "true" or "false" (absent is false).
func boolParam(v string) (bool, error) {
	switch v {
	case "", "false":
		return false, nil
	case "true":
		return true, nil
	}
	return false, oauth.InvalidRequest("boolean_invalid", "expected true or false", nil)
}

// parseTime accepts RFC 3339 or a duration back from now ("15m").
func parseTime(v string, now time.Time) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(v); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, oauth.InvalidRequest("time_invalid", "times are RFC 3339 or a duration such as 15m", nil)
}

func parseInt(v string, lo, hi int) (int, error) {
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, oauth.InvalidRequest("number_invalid", fmt.Sprintf("expected a number from %d to %d", lo, hi), err)
	}
	return n, nil
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
