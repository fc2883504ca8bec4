package provision

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"time"

	"github.com/mandate-dev/mandate/internal/audit"
	"github.com/mandate-dev/mandate/internal/auditchain"
	"github.com/mandate-dev/mandate/internal/clientauth"
	"github.com/mandate-dev/mandate/internal/config"
	"github.com/mandate-dev/mandate/internal/store"
)

// performer names the configuration file in audit records.
const performer = "config"

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
// change is audited in its own transaction.
func Sync(ctx context.Context, s store.Store, cfg *config.Config, enforce bool, now time.Time) (Report, error) {
	p := &syncer{s: s, enforce: enforce, now: now.UTC()}
	for _, u := range cfg.Users {
		if err := p.user(ctx, u); err != nil {
			return p.report, err
		}
	}
	for _, a := range cfg.Agents {
		if err := p.agent(ctx, a); err != nil {
			return p.report, err
		}
	}
	for _, d := range cfg.Delegations {
		if err := p.delegation(ctx, d); err != nil {
			return p.report, err
		}
	}
	return p.report, nil
}

type syncer struct {
	s       store.Store
	enforce bool
	now     time.Time
	report  Report
}

func (p *syncer) event(action, resource string) store.Event {
	return store.Event{ID: audit.NewID("evt_"), Time: auditchain.Time(p.now), Action: action, Result: audit.ResultOK, Performer: performer, Resource: resource}
}

// differ records a difference, or returns true when it must be enforced.
func (p *syncer) differ(what string) bool {
	if p.enforce {
		p.report.Updated = append(p.report.Updated, what)
		return true
	}
	p.report.Differences = append(p.report.Differences, what)
	return false
}

func (p *syncer) user(ctx context.Context, cu config.User) error {
	limits, err := cu.LimitsJSON()
	if err != nil {
		return fmt.Errorf("provision: %w", err)
	}
	stored, err := p.s.GetUser(ctx, cu.ID)
	if errors.Is(err, store.ErrNotFound) {
		ev := p.event(audit.ActionUserCreated, cu.ID)
		ev.OnBehalf, ev.Scopes = cu.ID, cu.Permissions
		u := store.User{ID: cu.ID, Permissions: cu.Permissions, Limits: limits, CreatedAt: p.now, UpdatedAt: p.now}
		if err := p.s.CreateUser(ctx, u, ev); err != nil {
			return fmt.Errorf("provision: user %s: %w", cu.ID, err)
		}
		p.report.Created = append(p.report.Created, "user "+cu.ID)
		return nil
	}
	if err != nil {
		return fmt.Errorf("provision: user %s: %w", cu.ID, err)
	}
	if sameSet(stored.Permissions, cu.Permissions) || !p.differ("user "+cu.ID+": permissions") {
		return nil
	}
	ev := p.event(audit.ActionUserPermissions, cu.ID)
	ev.OnBehalf, ev.Scopes = cu.ID, cu.Permissions
	_, err = p.s.UpdateUser(ctx, cu.ID, func(u store.User) (store.User, error) {
		u.Permissions, u.Limits, u.UpdatedAt = cu.Permissions, limits, p.now
		return u, nil
	}, ev)
	if err != nil {
		return fmt.Errorf("provision: user %s: %w", cu.ID, err)
	}
	return nil
}

// toAgent converts a config agent to its stored form.
func toAgent(ca config.Agent, now time.Time) (store.Agent, error) {
	a := store.Agent{ID: ca.ID, JWKSURI: ca.JWKSURI, Scopes: ca.Scopes, DelegateTo: ca.DelegateTo,
		MaxDepth: ca.MaxDepth, Resources: ca.Resources, Disabled: ca.Disabled, CreatedAt: now, UpdatedAt: now}
	secret, err := ca.ResolveSecret()
	if err != nil {
		return a, fmt.Errorf("provision: %w", err)
	}
	if secret != "" {
		a.SecretHash = clientauth.HashSecret(secret)
	}
	if a.JWKS, err = ca.JWKSJSON(); err != nil {
		return a, fmt.Errorf("provision: %w", err)
	}
	return a, nil
}

func (p *syncer) agent(ctx context.Context, ca config.Agent) error {
	want, err := toAgent(ca, p.now)
	if err != nil {
		return err
	}
	stored, err := p.s.GetAgent(ctx, ca.ID)
	if errors.Is(err, store.ErrNotFound) {
		ev := p.event(audit.ActionAgentCreated, ca.ID)
		ev.Chain, ev.Scopes = []string{ca.ID}, ca.Scopes
		if err := p.s.CreateAgent(ctx, want, ev); err != nil {
			return fmt.Errorf("provision: agent %s: %w", ca.ID, err)
		}
		p.report.Created = append(p.report.Created, "agent "+ca.ID)
		return nil
	}
	if err != nil {
		return fmt.Errorf("provision: agent %s: %w", ca.ID, err)
	}
	var diffs []string
	for _, d := range []struct {
		field string
		same  bool
	}{
		{"secret", bytes.Equal(stored.SecretHash, want.SecretHash)},
		{"jwks", bytes.Equal(stored.JWKS, want.JWKS) && stored.JWKSURI == want.JWKSURI},
		{"scopes", sameSet(stored.Scopes, want.Scopes)},
		{"delegate_to", sameSet(stored.DelegateTo, want.DelegateTo)},
		{"max_depth", stored.MaxDepth == want.MaxDepth},
		{"resources", sameSet(stored.Resources, want.Resources)},
		{"disabled", stored.Disabled == want.Disabled},
	} {
		if !d.same {
			diffs = append(diffs, d.field)
		}
	}
	if len(diffs) == 0 || !p.differ(fmt.Sprintf("agent %s: %v", ca.ID, diffs)) {
		return nil
	}
	ev := p.event(audit.ActionAgentUpdated, ca.ID)
	ev.Chain, ev.Scopes = []string{ca.ID}, ca.Scopes
	_, err = p.s.UpdateAgent(ctx, ca.ID, func(a store.Agent) (store.Agent, error) {
		want.CreatedAt = a.CreatedAt
		return want, nil
	}, ev)
	if err != nil {
		return fmt.Errorf("provision: agent %s: %w", ca.ID, err)
	}
	return nil
}

func (p *syncer) delegation(ctx context.Context, cd config.Delegation) error {
	want := store.Delegation{ID: cd.ID, Subject: cd.Subject, Actor: cd.Actor, Scopes: cd.Scopes,
		Audiences: cd.Audiences, MaxDepth: cd.MaxDepth, Expires: cd.Expires.UTC(), Source: "config", CreatedAt: p.now}
	if want.ID == "" {
		want.ID = config.DelegationID(cd.Subject, cd.Actor)
	}
	if cd.Expires.IsZero() {
		want.Expires = time.Time{}
	}
	stored, err := p.s.GetDelegation(ctx, want.ID)
	if errors.Is(err, store.ErrNotFound) {
		ev := p.event(audit.ActionDelegationNew, want.ID)
		ev.DelegationID, ev.OnBehalf, ev.Chain, ev.Scopes = want.ID, want.Subject, []string{want.Actor}, want.Scopes
		if err := p.s.CreateDelegation(ctx, want, ev); err != nil {
			return fmt.Errorf("provision: delegation %s: %w", want.ID, err)
		}
		p.report.Created = append(p.report.Created, "delegation "+want.ID)
		return nil
	}
	if err != nil {
		return fmt.Errorf("provision: delegation %s: %w", want.ID, err)
	}
	same := stored.Subject == want.Subject && stored.Actor == want.Actor && sameSet(stored.Scopes, want.Scopes) &&
		sameSet(stored.Audiences, want.Audiences) && stored.MaxDepth == want.MaxDepth &&
		stored.Expires.Equal(want.Expires) && !stored.Revoked
	if same || !p.differ("delegation "+want.ID) {
		return nil
	}
	ev := p.event(audit.ActionDelegationNew, want.ID)
	ev.DelegationID, ev.OnBehalf, ev.Chain, ev.Scopes = want.ID, want.Subject, []string{want.Actor}, want.Scopes
	_, err = p.s.UpdateDelegation(ctx, want.ID, func(d store.Delegation) (store.Delegation, error) {
		want.CreatedAt = d.CreatedAt
		return want, nil
	}, ev)
	if err != nil {
		return fmt.Errorf("provision: delegation %s: %w", want.ID, err)
	}
	return nil
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

// sameJSON compares two JSON documents by value.
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
