package directory

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"strings"

	"github.com/mandate-dev/mandate/internal/audit"
	"github.com/mandate-dev/mandate/internal/clientauth"
	"github.com/mandate-dev/mandate/internal/store"
)

// secretBytes is the entropy of a generated client secret: 256 bits
// (THREATS.md, Decisions 9), stored as SHA-256 only.
const secretBytes = 32

// newSecret returns a random client secret and its stored form.
func newSecret() (secret string, hash []byte) {
	var b [secretBytes]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	secret = base64.RawURLEncoding.EncodeToString(b[:])
	return secret, clientauth.HashSecret(secret)
}

// CreateAgent stores a new agent: a's ID, SecretHash, JWKS, JWKSURI,
// Scopes, DelegateTo, MaxDepth, RedirectURIs, Public, Name, Registration
// and Disabled (the times are the directory's), recorded as agent.created.
// A confidential agent given no credential at all gets a generated client
// secret, returned once as secret and stored only as its hash; otherwise,
// and for a public client, secret is empty. It refuses an invalid agent
// (CheckID, ValidateAgent: ErrInvalid) and an id an agent or a user has
// (ErrConflict).
func (d *Directory) CreateAgent(ctx context.Context, p Performer, a store.Agent) (created store.Agent, secret string, err error) {
	if err := checkID(a.ID); err != nil {
		return store.Agent{}, "", err
	}
	a.JWKS = normalJSON(a.JWKS)
	if !a.Public && len(a.SecretHash) == 0 && len(a.JWKS) == 0 && a.JWKSURI == "" {
		secret, a.SecretHash = newSecret()
	}
	if err := ValidateAgent(a); err != nil {
		return store.Agent{}, "", err
	}
	if err := idFree(ctx, a.ID, "a user", d.Store.GetUser); err != nil {
		return store.Agent{}, "", err
	}
	now := d.now()
	a.CreatedAt, a.UpdatedAt = now, now
	ev := d.event(p, audit.ActionAgentCreated, a.ID)
	ev.Chain, ev.Scopes = []string{a.ID}, a.Scopes
	ev.Detail = createdDetail(a)
	if err := d.Store.CreateAgent(ctx, a, bound(ev)); err != nil {
		return store.Agent{}, "", storeErr(err, "agent", a.ID)
	}
	return a, secret, nil
}

// Keys is an agent's key set for private_key_jwt: an inline JWK Set or the
// URL it is published at, not both; both empty for none.
type Keys struct {
	JWKS    json.RawMessage
	JWKSURI string
}

// AgentChange is a change to an agent; nil fields are left as they are.
type AgentChange struct {
	Scopes     *[]string
	DelegateTo *[]string
	MaxDepth   *int
	// Resources replaces the resource identifiers the agent serves and
	// may report audit records for.
	Resources *[]string
	// RedirectURIs replaces where the authorization endpoint may send a
	// person back to the agent.
	RedirectURIs *[]string
	// Keys replaces the key set (both fields; empty removes it, which an
	// agent without a secret cannot do).
	Keys *Keys
	// SecretHash replaces the stored client secret hash (provisioning
	// from the file); empty removes the secret. NewSecret gives a
	// generated one.
	SecretHash *[]byte
	// Disabled disables or enables the agent (SetAgentDisabled says the
	// same in its own record).
	Disabled *bool
	// Public makes the agent a public client or a confidential one; a
	// public client must hold no secret and no keys (set SecretHash and
	// Keys empty in the same change).
	Public *bool
}

// createdDetail is the text of an agent.created record: how the agent was
// registered and whether it is public, when either says something.
func createdDetail(a store.Agent) string {
	var parts []string
	if a.Registration != "" {
		parts = append(parts, "registration: "+a.Registration)
	}
	if a.Public {
		parts = append(parts, "public client")
	}
	return strings.Join(parts, "; ")
}

// fields names the fields c changes, for the record's text.
func (c AgentChange) fields() []string {
	var out []string
	for _, f := range []struct {
		name string
		set  bool
	}{
		{"scopes", c.Scopes != nil}, {"delegate_to", c.DelegateTo != nil}, {"max_depth", c.MaxDepth != nil},
		{"resources", c.Resources != nil}, {"redirect_uris", c.RedirectURIs != nil}, {"keys", c.Keys != nil}, {"secret", c.SecretHash != nil}, {"disabled", c.Disabled != nil},
		{"public", c.Public != nil},
	} {
		if f.set {
			out = append(out, f.name)
		}
	}
	return out
}

// apply returns a changed by c.
func (c AgentChange) apply(a store.Agent) store.Agent {
	if c.Scopes != nil {
		a.Scopes = *c.Scopes
	}
	if c.DelegateTo != nil {
		a.DelegateTo = *c.DelegateTo
	}
	if c.MaxDepth != nil {
		a.MaxDepth = *c.MaxDepth
	}
	if c.Resources != nil {
		a.Resources = *c.Resources
	}
	if c.RedirectURIs != nil {
		a.RedirectURIs = *c.RedirectURIs
	}
	if c.Keys != nil {
		a.JWKS, a.JWKSURI = normalJSON(c.Keys.JWKS), c.Keys.JWKSURI
	}
	if c.SecretHash != nil {
		a.SecretHash = *c.SecretHash
	}
	if c.Disabled != nil {
		a.Disabled = *c.Disabled
	}
	if c.Public != nil {
		a.Public = *c.Public
	}
	return a
}

// UpdateAgent applies c to the agent id, recorded as agent.updated (with
// the new scopes when c sets them, and the changed fields in its text).
// The changed agent must pass ValidateAgent, checked in the same
// transaction (ErrInvalid); an unknown agent is ErrNotFound. Disabling it
// stops every token with it in the chain at once; removing a scope stops
// nothing already issued (tokens carry what was granted when minted):
// disable the agent for that.
func (d *Directory) UpdateAgent(ctx context.Context, p Performer, id string, c AgentChange) (store.Agent, error) {
	ev := d.event(p, audit.ActionAgentUpdated, id)
	ev.Chain = []string{id}
	if c.Scopes != nil {
		ev.Scopes = *c.Scopes
	}
	ev.Detail = "changed: " + strings.Join(c.fields(), ", ")
	return d.updateAgent(ctx, id, c, true, ev)
}

// SetAgentDisabled disables or enables the agent id, recorded as
// agent.disabled or agent.enabled. Disabling stops its client
// authentication and every token with it anywhere in the chain; enabling
// does not bring those tokens back (the revocation entry outlives it). An
// unknown agent is ErrNotFound.
func (d *Directory) SetAgentDisabled(ctx context.Context, p Performer, id string, disabled bool) (store.Agent, error) {
	action := audit.ActionAgentEnabled
	if disabled {
		action = audit.ActionAgentDisabled
	}
	ev := d.event(p, action, id)
	ev.Chain = []string{id}
	return d.updateAgent(ctx, id, AgentChange{Disabled: &disabled}, false, ev)
}

// NewSecret gives the agent id a generated client secret, returned once
// and stored only as its hash, recorded as agent.secret: from then on the
// old secret is refused. Tokens the agent already holds stay in force
// until they expire; disable the agent first when the old secret leaked.
// An unknown agent is ErrNotFound.
func (d *Directory) NewSecret(ctx context.Context, p Performer, id string) (string, error) {
	secret, hash := newSecret()
	ev := d.event(p, audit.ActionAgentSecret, id)
	ev.Chain = []string{id}
	if _, err := d.updateAgent(ctx, id, AgentChange{SecretHash: &hash}, false, ev); err != nil {
		return "", err
	}
	return secret, nil
}

// DeleteAgent removes the agent id. First every delegation to it is
// revoked (each recorded as delegation.revoked, reason agent_deleted),
// then the agent is deleted, recorded as agent.deleted: its client
// authentication fails and every token with it in the chain or as its
// client stops being in force (store.Agents.DeleteAgent). Other agents'
// delegate_to entries naming it are left as they are: they hand on to no
// one until an agent of that id exists again. An unknown agent is
// ErrNotFound.
func (d *Directory) DeleteAgent(ctx context.Context, p Performer, id string) error {
	if _, err := d.Store.GetAgent(ctx, id); err != nil {
		return storeErr(err, "agent", id)
	}
	if err := d.revokeDelegations(ctx, p, store.DelegationFilter{Actor: id}, "agent_deleted"); err != nil {
		return err
	}
	ev := d.event(p, audit.ActionAgentDeleted, id)
	ev.Chain = []string{id}
	return storeErr(d.Store.DeleteAgent(ctx, id, bound(ev)), "agent", id)
}

// updateAgent applies c to the stored agent id with the record ev,
// atomically; with validate, it refuses a result ValidateAgent refuses.
// Disabling an agent and giving it a new secret are never refused for
// what else the record holds: they are what an administrator does when
// something is wrong.
func (d *Directory) updateAgent(ctx context.Context, id string, c AgentChange, validate bool, ev store.Event) (store.Agent, error) {
	now := d.now()
	a, err := d.Store.UpdateAgent(ctx, id, func(a store.Agent) (store.Agent, error) {
		a = c.apply(a)
		if validate {
			if err := ValidateAgent(a); err != nil {
				return a, err
			}
		}
		a.UpdatedAt = now
		return a, nil
	}, bound(ev))
	return a, storeErr(err, "agent", id)
}

// normalJSON is raw as stored: nil for none (empty or null), else compact.
func normalJSON(raw json.RawMessage) json.RawMessage {
	if t := bytes.TrimSpace(raw); len(t) == 0 || string(t) == "null" {
		return nil
	}
	var b bytes.Buffer
	if json.Compact(&b, raw) != nil {
		return raw
	}
	return b.Bytes()
}
