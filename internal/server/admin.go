package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/mandate-dev/mandate/actor"
	"github.com/mandate-dev/mandate/internal/audit"
	"github.com/mandate-dev/mandate/internal/exchange"
	"github.com/mandate-dev/mandate/internal/forensics"
	"github.com/mandate-dev/mandate/internal/store"
	"github.com/mandate-dev/mandate/oauth"
)

// adminPerformer names the administrator in audit records.
const adminPerformer = "admin"

// adminEvent is the audit record of an admin change; it is committed in the
// same transaction as the change.
func (s *Server) adminEvent(r *http.Request, action, resource string) store.Event {
	ev := audit.Event{
		Action:    action,
		Result:    audit.ResultOK,
		RequestID: requestID(r.Context()),
		Performer: adminPerformer,
		Resource:  resource,
	}
	s.cfg.Audit.Stamp(&ev)
	return ev
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

type userJSON struct {
	ID          string          `json:"id"`
	Permissions []string        `json:"permissions"`
	Limits      json.RawMessage `json:"limits,omitempty"`
	Version     int64           `json:"revocation_version"`
}

func toUserJSON(u store.User) userJSON {
	return userJSON{ID: u.ID, Permissions: nonNil(u.Permissions), Limits: u.Limits, Version: u.Version}
}

// adminSetPermissions replaces a user's permissions, creating the user if
// needed. Tokens carrying a removed scope stop being in force at once.
func (s *Server) adminSetPermissions(w http.ResponseWriter, r *http.Request) error {
	if err := s.requireAdmin(r); err != nil {
		return err
	}
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	var body struct {
		Permissions []string `json:"permissions"`
	}
	if err := decodeJSON(w, r, &body); err != nil {
		return err
	}
	if err := validScopes(body.Permissions); err != nil {
		return err
	}
	ev := s.adminEvent(r, audit.ActionUserPermissions, id)
	ev.OnBehalf, ev.Scopes = id, body.Permissions
	u, err := s.cfg.Store.UpdateUser(r.Context(), id, func(u store.User) (store.User, error) {
		u.Permissions = body.Permissions
		return u, nil
	}, ev)
	if errors.Is(err, store.ErrNotFound) {
		now := s.cfg.Now()
		u = store.User{ID: id, Permissions: body.Permissions, CreatedAt: now, UpdatedAt: now}
		err = s.cfg.Store.CreateUser(r.Context(), u, ev)
	}
	if err != nil {
		return storeError(err, "user")
	}
	writeJSON(w, http.StatusOK, toUserJSON(u))
	return nil
}

// adminSignIn issues a person's own token (exchange.Grant.SignIn), the
// stand-in for the sign-in page: agents exchange it for delegated tokens.
func (s *Server) adminSignIn(w http.ResponseWriter, r *http.Request) error {
	if err := s.requireAdmin(r); err != nil {
		return err
	}
	id, err := pathID(r, "id")
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

// adminSetLimits replaces a user's authorization_details limits (RFC 9396).
func (s *Server) adminSetLimits(w http.ResponseWriter, r *http.Request) error {
	if err := s.requireAdmin(r); err != nil {
		return err
	}
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	var body struct {
		Limits json.RawMessage `json:"limits"`
	}
	if err := decodeJSON(w, r, &body); err != nil {
		return err
	}
	var limits json.RawMessage
	if len(body.Limits) > 0 && string(body.Limits) != "null" && string(body.Limits) != "[]" {
		if _, err := exchange.ParseDetails(string(body.Limits)); err != nil {
			return oauth.InvalidRequest("limits_invalid", "limits must be an array of 1 to 8 objects with a type", err)
		}
		limits = body.Limits
	}
	ev := s.adminEvent(r, audit.ActionUserLimits, id)
	ev.OnBehalf = id
	u, err := s.cfg.Store.UpdateUser(r.Context(), id, func(u store.User) (store.User, error) {
		u.Limits, u.UpdatedAt = limits, s.cfg.Now()
		return u, nil
	}, ev)
	if err != nil {
		return storeError(err, "user")
	}
	writeJSON(w, http.StatusOK, toUserJSON(u))
	return nil
}

func validScopes(scopes []string) error {
	if len(scopes) > maxScopes {
		return oauth.InvalidRequest("scope_too_many", "too many scopes", nil)
	}
	for _, sc := range scopes {
		if _, err := ParseScope(sc); err != nil || len(sc) > 128 {
			return oauth.InvalidRequest("scope_malformed", "a scope is not a valid scope-token", err)
		}
	}
	return nil
}

type agentJSON struct {
	ID         string   `json:"id"`
	Scopes     []string `json:"scopes"`
	DelegateTo []string `json:"delegate_to"`
	MaxDepth   int      `json:"max_depth,omitempty"`
	Disabled   bool     `json:"disabled"`
}

func (s *Server) adminListAgents(w http.ResponseWriter, r *http.Request) error {
	if err := s.requireAdmin(r); err != nil {
		return err
	}
	agents, err := s.cfg.Store.ListAgents(r.Context())
	if err != nil {
		return storeError(err, "agents")
	}
	out := make([]agentJSON, 0, len(agents))
	for _, a := range agents {
		out = append(out, agentJSON{ID: a.ID, Scopes: nonNil(a.Scopes), DelegateTo: nonNil(a.DelegateTo), MaxDepth: a.MaxDepth, Disabled: a.Disabled})
	}
	writeJSON(w, http.StatusOK, map[string]any{"agents": out})
	return nil
}

// adminAgentState disables or enables an agent. Disabling stops its client
// authentication and every token with it anywhere in the chain.
func (s *Server) adminAgentState(disable bool) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		if err := s.requireAdmin(r); err != nil {
			return err
		}
		id, err := pathID(r, "id")
		if err != nil {
			return err
		}
		if err := s.setAgentDisabled(r, id, disable); err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, map[string]any{"id": id, "disabled": disable})
		return nil
	}
}

func (s *Server) setAgentDisabled(r *http.Request, id string, disable bool) error {
	action := audit.ActionAgentEnabled
	if disable {
		action = audit.ActionAgentDisabled
	}
	ev := s.adminEvent(r, action, id)
	ev.Chain = []string{id}
	_, err := s.cfg.Store.UpdateAgent(r.Context(), id, func(a store.Agent) (store.Agent, error) {
		a.Disabled = disable
		a.UpdatedAt = s.cfg.Now()
		return a, nil
	}, ev)
	if err != nil {
		return storeError(err, "agent")
	}
	return nil
}

type delegationJSON struct {
	ID        string     `json:"id"`
	Subject   string     `json:"subject"`
	Actor     string     `json:"actor"`
	Scopes    []string   `json:"scopes"`
	Audiences []string   `json:"audiences,omitempty"`
	MaxDepth  int        `json:"max_depth,omitempty"`
	Expires   *time.Time `json:"expires,omitempty"`
	Source    string     `json:"source,omitempty"`
	Revoked   bool       `json:"revoked"`
}

func toDelegationJSON(d store.Delegation) delegationJSON {
	out := delegationJSON{ID: d.ID, Subject: d.Subject, Actor: d.Actor, Scopes: nonNil(d.Scopes),
		Audiences: d.Audiences, MaxDepth: d.MaxDepth, Source: d.Source, Revoked: d.Revoked}
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

// adminCreateDelegation stores a standing grant from a user to an agent.
func (s *Server) adminCreateDelegation(w http.ResponseWriter, r *http.Request) error {
	if err := s.requireAdmin(r); err != nil {
		return err
	}
	var body delegationJSON
	if err := decodeJSON(w, r, &body); err != nil {
		return err
	}
	if err := s.validDelegation(r, body); err != nil {
		return err
	}
	now := s.cfg.Now()
	d := store.Delegation{
		ID: audit.NewID("dlg_"), Subject: body.Subject, Actor: body.Actor, Scopes: body.Scopes,
		Audiences: body.Audiences, MaxDepth: body.MaxDepth, Source: "admin", CreatedAt: now,
	}
	if body.Expires != nil {
		d.Expires = body.Expires.UTC()
	}
	ev := s.adminEvent(r, audit.ActionDelegationNew, d.ID)
	ev.DelegationID, ev.OnBehalf, ev.Chain, ev.Scopes = d.ID, d.Subject, []string{d.Actor}, d.Scopes
	if err := s.cfg.Store.CreateDelegation(r.Context(), d, ev); err != nil {
		return storeError(err, "delegation")
	}
	writeJSON(w, http.StatusCreated, toDelegationJSON(d))
	return nil
}

func (s *Server) validDelegation(r *http.Request, d delegationJSON) error {
	switch {
	case d.ID != "" || d.Revoked || d.Source != "":
		return oauth.InvalidRequest("delegation_invalid", "id, source and revoked are set by the server", nil)
	case len(d.Scopes) == 0:
		return oauth.InvalidRequest("delegation_invalid", "scopes are required", nil)
	case d.MaxDepth < 0 || d.MaxDepth > 10:
		return oauth.InvalidRequest("delegation_invalid", "max_depth must be between 0 and 10", nil)
	case len(d.Audiences) > 16:
		return oauth.InvalidRequest("delegation_invalid", "too many audiences", nil)
	case d.Expires != nil && !d.Expires.After(s.cfg.Now()):
		return oauth.InvalidRequest("delegation_invalid", "expires is in the past", nil)
	}
	if err := validScopes(d.Scopes); err != nil {
		return err
	}
	for _, a := range d.Audiences {
		if actor.ValidSubject(a) != nil {
			return oauth.InvalidRequest("delegation_invalid", "an audience is not valid", nil)
		}
	}
	if _, err := s.cfg.Store.GetUser(r.Context(), d.Subject); err != nil {
		return storeError(err, "subject")
	}
	if _, err := s.cfg.Store.GetAgent(r.Context(), d.Actor); err != nil {
		return storeError(err, "actor")
	}
	return nil
}

func (s *Server) adminDeleteDelegation(w http.ResponseWriter, r *http.Request) error {
	if err := s.requireAdmin(r); err != nil {
		return err
	}
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	if err := s.revokeDelegation(r, id); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": id, "revoked": true})
	return nil
}

// revokeDelegation marks a delegation revoked; the record stays for audit.
func (s *Server) revokeDelegation(r *http.Request, id string) error {
	ev := s.adminEvent(r, audit.ActionDelegationGone, id)
	ev.DelegationID = id
	now := s.cfg.Now()
	_, err := s.cfg.Store.UpdateDelegation(r.Context(), id, func(d store.Delegation) (store.Delegation, error) {
		if !d.Revoked {
			d.Revoked, d.RevokedAt = true, now
		}
		return d, nil
	}, ev)
	if err != nil {
		return storeError(err, "delegation")
	}
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
	var err error
	switch {
	case body.JTI != "":
		ev := s.adminEvent(r, audit.ActionTokenRevoked, body.JTI)
		ev.JTI = body.JTI
		if err = s.cfg.Store.RevokeToken(r.Context(), body.JTI, s.cfg.Now(), ev); err != nil {
			err = storeError(err, "token")
		}
	case body.Subject != "":
		err = s.revokeSubject(r, body.Subject)
	case body.Agent != "":
		err = s.setAgentDisabled(r, body.Agent, true)
	default:
		err = s.revokeDelegation(r, body.DelegationID)
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"revoked": set[0]})
	return nil
}

// revokeSubject bumps the user's revocation version: every token issued for
// them before it stops being in force.
func (s *Server) revokeSubject(r *http.Request, id string) error {
	ev := s.adminEvent(r, audit.ActionUserRevoked, id)
	ev.OnBehalf = id
	_, err := s.cfg.Store.UpdateUser(r.Context(), id, func(u store.User) (store.User, error) {
		u.Version++
		return u, nil
	}, ev)
	if err != nil {
		return storeError(err, "subject")
	}
	return nil
}

// auditQuery serves GET /audit: events newest first, filtered, 100 by
// default, with a cursor for the next page.
func (s *Server) auditQuery(w http.ResponseWriter, r *http.Request) error {
	if err := s.requireAdmin(r); err != nil {
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
