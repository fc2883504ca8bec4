package server

import (
	"encoding/json"
	"net/http"

	"github.com/mandate-dev/mandate/internal/directory"
	"github.com/mandate-dev/mandate/internal/store"
	"github.com/mandate-dev/mandate/oauth"
)

// agentJSON is an agent as the admin API shows it: never its secret, only
// whether it has one.
type agentJSON struct {
	ID         string          `json:"id"`
	Scopes     []string        `json:"scopes"`
	DelegateTo []string        `json:"delegate_to"`
	MaxDepth   int             `json:"max_depth,omitempty"`
	Disabled   bool            `json:"disabled"`
	HasSecret  bool            `json:"has_secret"`
	JWKS       json.RawMessage `json:"jwks,omitempty"`
	JWKSURI    string          `json:"jwks_uri,omitempty"`
	// RedirectURIs are where people are sent back after consent.
	RedirectURIs []string `json:"redirect_uris,omitempty"`
	// Public is true for a public client (no credential).
	Public bool `json:"public,omitempty"`
	// ClientName is the name a registered client gave, for display.
	ClientName string `json:"client_name,omitempty"`
	// Registration says how the agent was registered: config, admin,
	// dcr or cimd.
	Registration string `json:"registration,omitempty"`
	// ClientSecret is a generated secret, in the one answer that gives it.
	ClientSecret string `json:"client_secret,omitempty"`
}

func toAgentJSON(a store.Agent) agentJSON {
	return agentJSON{ID: a.ID, Scopes: nonNil(a.Scopes), DelegateTo: nonNil(a.DelegateTo), MaxDepth: a.MaxDepth,
		Disabled: a.Disabled, HasSecret: len(a.SecretHash) > 0, JWKS: a.JWKS, JWKSURI: a.JWKSURI, RedirectURIs: a.RedirectURIs,
		Public: a.Public, ClientName: a.Name, Registration: a.Registration}
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
		out = append(out, toAgentJSON(a))
	}
	writeJSON(w, http.StatusOK, map[string]any{"agents": out})
	return nil
}

func (s *Server) adminGetAgent(w http.ResponseWriter, r *http.Request) error {
	id, err := s.adminID(r)
	if err != nil {
		return err
	}
	a, err := s.cfg.Store.GetAgent(r.Context(), id)
	if err != nil {
		return storeError(err, "agent")
	}
	writeJSON(w, http.StatusOK, toAgentJSON(a))
	return nil
}

// adminCreateAgent creates an agent (agent.created). With jwks or
// jwks_uri it authenticates with private_key_jwt; without, it gets a
// generated client secret, in this answer only.
func (s *Server) adminCreateAgent(w http.ResponseWriter, r *http.Request) error {
	if err := s.requireAdmin(r); err != nil {
		return err
	}
	var body struct {
		ID         string          `json:"id"`
		Scopes     []string        `json:"scopes"`
		DelegateTo []string        `json:"delegate_to"`
		MaxDepth   int             `json:"max_depth"`
		JWKS       json.RawMessage `json:"jwks"`
		JWKSURI    string          `json:"jwks_uri"`
		// RedirectURIs are where people are sent back after consent.
		RedirectURIs []string `json:"redirect_uris"`
	}
	if err := decodeJSON(w, r, &body); err != nil {
		return err
	}
	a, secret, err := s.cfg.Directory.CreateAgent(r.Context(), asAdmin(r), store.Agent{ID: body.ID, Scopes: body.Scopes,
		DelegateTo: body.DelegateTo, MaxDepth: body.MaxDepth, JWKS: body.JWKS, JWKSURI: body.JWKSURI, RedirectURIs: body.RedirectURIs,
		Registration: store.RegistrationAdmin})
	if err != nil {
		return domainError(err)
	}
	out := toAgentJSON(a)
	out.ClientSecret = secret
	writeJSON(w, http.StatusCreated, out)
	return nil
}

// adminUpdateAgent changes the members the body gives (agent.updated):
// scopes, delegate_to, max_depth, and the key set, jwks or jwks_uri (giving
// one replaces the other; null or "" removes it, which an agent without a
// secret cannot do).
func (s *Server) adminUpdateAgent(w http.ResponseWriter, r *http.Request) error {
	id, err := s.adminID(r)
	if err != nil {
		return err
	}
	var body struct {
		Scopes     *[]string       `json:"scopes"`
		DelegateTo *[]string       `json:"delegate_to"`
		MaxDepth   *int            `json:"max_depth"`
		JWKS       json.RawMessage `json:"jwks"`
		JWKSURI    *string         `json:"jwks_uri"`
		// RedirectURIs replaces where people are sent back after consent.
		RedirectURIs *[]string `json:"redirect_uris"`
	}
	if err := decodeJSON(w, r, &body); err != nil {
		return err
	}
	c := directory.AgentChange{Scopes: body.Scopes, DelegateTo: body.DelegateTo, MaxDepth: body.MaxDepth, RedirectURIs: body.RedirectURIs}
	if body.JWKS != nil || body.JWKSURI != nil {
		c.Keys = &directory.Keys{JWKS: body.JWKS}
		if body.JWKSURI != nil {
			c.Keys.JWKSURI = *body.JWKSURI
		}
	}
	if c == (directory.AgentChange{}) {
		return oauth.InvalidRequest("agent_unchanged", "give at least one of scopes, delegate_to, max_depth, jwks, jwks_uri, redirect_uris", nil)
	}
	a, err := s.cfg.Directory.UpdateAgent(r.Context(), asAdmin(r), id, c)
	if err != nil {
		return domainError(err)
	}
	writeJSON(w, http.StatusOK, toAgentJSON(a))
	return nil
}

// adminAgentState disables or enables an agent. Disabling stops its client
// authentication and every token with it anywhere in the chain.
func (s *Server) adminAgentState(disable bool) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		id, err := s.adminID(r)
		if err != nil {
			return err
		}
		if _, err := s.cfg.Directory.SetAgentDisabled(r.Context(), asAdmin(r), id, disable); err != nil {
			return domainError(err)
		}
		writeJSON(w, http.StatusOK, map[string]any{"id": id, "disabled": disable})
		return nil
	}
}

// adminNewSecret gives an agent a generated client secret, in this answer
// only; the old one is refused from then on.
func (s *Server) adminNewSecret(w http.ResponseWriter, r *http.Request) error {
	id, err := s.adminID(r)
	if err != nil {
		return err
	}
	secret, err := s.cfg.Directory.NewSecret(r.Context(), asAdmin(r), id)
	if err != nil {
		return domainError(err)
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": id, "client_secret": secret})
	return nil
}

// adminDeleteAgent deletes an agent: its delegations are revoked, its
// client authentication fails and every token with it in the chain stops
// being in force.
func (s *Server) adminDeleteAgent(w http.ResponseWriter, r *http.Request) error {
	id, err := s.adminID(r)
	if err != nil {
		return err
	}
	if err := s.cfg.Directory.DeleteAgent(r.Context(), asAdmin(r), id); err != nil {
		return domainError(err)
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": id, "deleted": true})
	return nil
}
