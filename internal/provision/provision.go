package provision

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/mandate-dev/mandate/internal/clientauth"
	"github.com/mandate-dev/mandate/internal/config"
	"github.com/mandate-dev/mandate/internal/directory"
	"github.com/mandate-dev/mandate/internal/store"
)

// performer names the configuration file in audit records.
var performer = directory.Performer{ID: directory.PerformerConfig}

// Report says what a Sync did and found.
type Report struct {
	// Created lists what was absent and is now stored.
	Created []string
	// Updated lists what Enforce changed to match the file.
	Updated []string
	// Differences lists where the store and the file disagree and the
	// store was kept.
	Differences []string
}

// Sync creates what cfg declares and the store lacks. With enforce, it also
// makes stored records match cfg; without, it lists the differences. Every
// change is written through the directory (internal/directory), audited
// as performed by "config" in its own transaction, with now as its time.
func Sync(ctx context.Context, s directory.Store, cfg *config.Config, enforce bool, now time.Time) (Report, error) {
	p := &syncer{s: s, d: &directory.Directory{Store: s, Now: func() time.Time { return now }}, enforce: enforce}
	for _, u := range cfg.Users {
		if err := p.user(ctx, u); err != nil {
			return p.report, fmt.Errorf("provision: user %s: %w", u.ID, err)
		}
	}
	for _, a := range cfg.Agents {
		if err := p.agent(ctx, a); err != nil {
			return p.report, fmt.Errorf("provision: agent %s: %w", a.ID, err)
		}
	}
	for _, d := range cfg.Delegations {
		if err := p.delegation(ctx, d); err != nil {
			return p.report, fmt.Errorf("provision: delegation %s: %w", d.ID, err)
		}
	}
	return p.report, nil
}

type syncer struct {
	s       directory.Store
	d       *directory.Directory
	enforce bool
	report  Report
}

// differ records that what differs in the fields listed, or returns true
// when it must be enforced.
func (p *syncer) differ(what string, fields []string) bool {
	what += ": " + strings.Join(fields, ", ")
	if p.enforce {
		p.report.Updated = append(p.report.Updated, what)
		return true
	}
	p.report.Differences = append(p.report.Differences, what)
	return false
}

// field is a field of a record and whether the store and the file agree
// on it.
type field struct {
	name string
	same bool
}

// differing returns the names of the fields whose same is false.
func differing(fields ...field) []string {
	var out []string
	for _, f := range fields {
		if !f.same {
			out = append(out, f.name)
		}
	}
	return out
}

func (p *syncer) user(ctx context.Context, cu config.User) error {
	limits, err := cu.LimitsJSON()
	if err != nil {
		return err
	}
	stored, err := p.s.GetUser(ctx, cu.ID)
	if errors.Is(err, store.ErrNotFound) {
		if _, err := p.d.CreateUser(ctx, performer, store.User{ID: cu.ID, Permissions: cu.Permissions, Limits: limits,
			PasswordHash: cu.PasswordHash, Roles: cu.Roles}); err != nil {
			return err
		}
		p.report.Created = append(p.report.Created, "user "+cu.ID)
		return nil
	}
	if err != nil {
		return err
	}
	permissions := sameSet(stored.Permissions, cu.Permissions)
	roles := sameSet(stored.Roles, cu.Roles)
	// A file without a password hash leaves the stored one alone: people
	// set their own (mandate users set-password).
	password := cu.PasswordHash == "" || stored.PasswordHash == cu.PasswordHash
	diffs := differing(field{"permissions", permissions}, field{"limits", sameJSON(stored.Limits, limits)},
		field{"roles", roles}, field{"password_hash", password})
	if len(diffs) == 0 || !p.differ("user "+cu.ID, diffs) {
		return nil
	}
	if !permissions {
		if _, err := p.d.SetPermissions(ctx, performer, cu.ID, cu.Permissions); err != nil {
			return err
		}
	}
	if !sameJSON(stored.Limits, limits) {
		if _, err := p.d.SetLimits(ctx, performer, cu.ID, limits); err != nil {
			return err
		}
	}
	if !roles {
		if _, err := p.d.SetRoles(ctx, performer, cu.ID, cu.Roles); err != nil {
			return err
		}
	}
	if !password {
		if _, err := p.d.SetPassword(ctx, performer, cu.ID, cu.PasswordHash); err != nil {
			return err
		}
	}
	return nil
}

// toAgent converts a config agent to its stored form.
func toAgent(ca config.Agent) (store.Agent, error) {
	a := store.Agent{ID: ca.ID, JWKSURI: ca.JWKSURI, Scopes: ca.Scopes, DelegateTo: ca.DelegateTo,
		MaxDepth: ca.MaxDepth, Resources: ca.Resources, RedirectURIs: ca.RedirectURIs, Disabled: ca.Disabled,
		Public: ca.Public, Registration: store.RegistrationConfig}
	secret, err := ca.ResolveSecret()
	if err != nil {
		return a, err
	}
	if secret != "" {
		a.SecretHash = clientauth.HashSecret(secret)
	}
	if a.JWKS, err = ca.JWKSJSON(); err != nil {
		return a, err
	}
	return a, nil
}

func (p *syncer) agent(ctx context.Context, ca config.Agent) error {
	want, err := toAgent(ca)
	if err != nil {
		return err
	}
	stored, err := p.s.GetAgent(ctx, ca.ID)
	if errors.Is(err, store.ErrNotFound) {
		if _, _, err := p.d.CreateAgent(ctx, performer, want); err != nil {
			return err
		}
		p.report.Created = append(p.report.Created, "agent "+ca.ID)
		return nil
	}
	if err != nil {
		return err
	}
	diffs := differing(
		field{"secret", bytes.Equal(stored.SecretHash, want.SecretHash)},
		field{"jwks", sameJSON(stored.JWKS, want.JWKS) && stored.JWKSURI == want.JWKSURI},
		field{"scopes", sameSet(stored.Scopes, want.Scopes)},
		field{"delegate_to", sameSet(stored.DelegateTo, want.DelegateTo)},
		field{"max_depth", stored.MaxDepth == want.MaxDepth},
		field{"resources", sameSet(stored.Resources, want.Resources)},
		field{"redirect_uris", sameSet(stored.RedirectURIs, want.RedirectURIs)},
		field{"disabled", stored.Disabled == want.Disabled},
		field{"public", stored.Public == want.Public},
	)
	if len(diffs) == 0 || !p.differ("agent "+ca.ID, diffs) {
		return nil
	}
	_, err = p.d.UpdateAgent(ctx, performer, ca.ID, directory.AgentChange{
		Scopes: &want.Scopes, DelegateTo: &want.DelegateTo, MaxDepth: &want.MaxDepth, Resources: &want.Resources, RedirectURIs: &want.RedirectURIs,
		Keys: &directory.Keys{JWKS: want.JWKS, JWKSURI: want.JWKSURI}, SecretHash: &want.SecretHash, Disabled: &want.Disabled, Public: &want.Public,
	})
	return err
}

func (p *syncer) delegation(ctx context.Context, cd config.Delegation) error {
	want := store.Delegation{ID: cd.ID, Subject: cd.Subject, Actor: cd.Actor, Scopes: cd.Scopes,
		Audiences: cd.Audiences, MaxDepth: cd.MaxDepth, Source: directory.SourceConfig}
	if want.ID == "" {
		want.ID = config.DelegationID(cd.Subject, cd.Actor)
	}
	if !cd.Expires.IsZero() {
		want.Expires = cd.Expires.UTC()
	}
	stored, err := p.s.GetDelegation(ctx, want.ID)
	if errors.Is(err, store.ErrNotFound) {
		if _, err := p.d.CreateDelegation(ctx, performer, want); err != nil {
			return err
		}
		p.report.Created = append(p.report.Created, "delegation "+want.ID)
		return nil
	}
	if err != nil {
		return err
	}
	what := "delegation " + want.ID
	if stored.Subject != want.Subject || stored.Actor != want.Actor {
		// A delegation's subject and actor never change (its tokens name
		// them); not even apply rewrites them.
		p.report.Differences = append(p.report.Differences, what+": subject or actor; the stored one is kept, "+
			"give the file's delegation another id (or revoke the stored one)")
		return nil
	}
	diffs := differing(
		field{"scopes", sameSet(stored.Scopes, want.Scopes)},
		field{"audiences", sameSet(stored.Audiences, want.Audiences)},
		field{"max_depth", stored.MaxDepth == want.MaxDepth},
		field{"expires", stored.Expires.Equal(want.Expires)},
		field{"revoked", !stored.Revoked},
	)
	if len(diffs) == 0 || !p.differ(what, diffs) {
		return nil
	}
	_, err = p.d.UpdateDelegation(ctx, performer, want.ID, directory.DelegationChange{
		Scopes: &want.Scopes, Audiences: &want.Audiences, MaxDepth: &want.MaxDepth, Expires: &want.Expires, Reinstate: true,
	})
	return err
}

// sameSet compares two scope lists ignoring order and repeats.
func sameSet(a, b []string) bool {
	for _, s := range a {
		if !slices.Contains(b, s) {
			return false
		}
	}
	for _, s := range b {
		if !slices.Contains(a, s) {
			return false
		}
	}
	return true
}

// sameJSON compares two JSON documents by value; empty is none.
func sameJSON(a, b json.RawMessage) bool {
	if len(a) == 0 || len(b) == 0 {
		return len(a) == len(b)
	}
	var va, vb any
	if json.Unmarshal(a, &va) != nil || json.Unmarshal(b, &vb) != nil {
		return false
	}
	return reflect.DeepEqual(va, vb)
}
