package directory

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/mandate-dev/mandate/internal/audit"
	"github.com/mandate-dev/mandate/internal/store"
)

// CreateUser stores a new user with u's ID, Permissions, Limits, Roles,
// PasswordHash and Provider (the rest is the directory's: version 0, the
// times now), recorded as user.created (which never holds the hash). It refuses an invalid user (CheckID, ValidateUser:
// ErrInvalid) and an id a user or an agent has (ErrConflict: a subject
// names one principal).
func (d *Directory) CreateUser(ctx context.Context, p Performer, u store.User) (store.User, error) {
	if err := checkID(u.ID); err != nil {
		return store.User{}, err
	}
	if err := ValidateUser(u); err != nil {
		return store.User{}, err
	}
	if err := idFree(ctx, u.ID, "an agent", d.Store.GetAgent); err != nil {
		return store.User{}, err
	}
	now := d.now()
	u = store.User{ID: u.ID, Permissions: u.Permissions, Limits: normalLimits(u.Limits), Roles: u.Roles,
		PasswordHash: u.PasswordHash, Provider: u.Provider, CreatedAt: now, UpdatedAt: now}
	ev := d.event(p, audit.ActionUserCreated, u.ID)
	ev.OnBehalf, ev.Scopes = u.ID, u.Permissions
	if err := d.Store.CreateUser(ctx, u, bound(ev)); err != nil {
		return store.User{}, storeErr(err, "user", u.ID)
	}
	return u, nil
}

// idFree refuses id when the other kind of principal has it (get reads
// it): users and agents share one namespace of subjects.
func idFree[T any](ctx context.Context, id, holder string, get func(context.Context, string) (T, error)) error {
	_, err := get(ctx, id)
	switch {
	case err == nil:
		return &ConflictError{ID: id, Problem: holder + " has this id; a subject names one principal"}
	case errors.Is(err, store.ErrNotFound):
		return nil
	}
	return err
}

// SetPermissions replaces the permissions of the user id, recorded as
// user.permissions. Tokens carrying a removed permission stop being in
// force at once (the store's scope revocation entries). It refuses an
// unknown user (ErrNotFound: a user is created with CreateUser, never by
// a mistyped id) and invalid permissions (ErrInvalid).
func (d *Directory) SetPermissions(ctx context.Context, p Performer, id string, permissions []string) (store.User, error) {
	if err := CheckScopes("permissions", permissions, false); err != nil {
		return store.User{}, err
	}
	ev := d.event(p, audit.ActionUserPermissions, id)
	ev.OnBehalf, ev.Scopes = id, permissions
	return d.updateUser(ctx, "user", id, func(u store.User) store.User {
		u.Permissions = permissions
		return u
	}, ev)
}

// SetLimits replaces the RFC 9396 limits of the user id (a JSON array of
// objects with a "type"; empty, null or [] for none), recorded as
// user.limits. It refuses an unknown user (ErrNotFound) and invalid limits
// (ErrInvalid).
func (d *Directory) SetLimits(ctx context.Context, p Performer, id string, limits json.RawMessage) (store.User, error) {
	parsed, err := ParseLimits(limits)
	if err != nil {
		return store.User{}, err
	}
	if err := CheckLimits("limits", parsed); err != nil {
		return store.User{}, err
	}
	limits = normalLimits(limits)
	ev := d.event(p, audit.ActionUserLimits, id)
	ev.OnBehalf = id
	return d.updateUser(ctx, "user", id, func(u store.User) store.User {
		u.Limits = limits
		return u
	}, ev)
}

// SetPassword replaces the password hash of the user id, recorded as
// user.password (which names the user and never holds the hash); an empty
// hash removes the password, so that the person signs in only through an
// identity provider. The hash must be one password.Check accepts
// (CheckPasswordHash: ErrInvalid). It does not end the person's sessions
// or tokens: the caller that wants them ended revokes them. An unknown
// user is ErrNotFound.
func (d *Directory) SetPassword(ctx context.Context, p Performer, id, hash string) (store.User, error) {
	if err := CheckPasswordHash("password_hash", hash); err != nil {
		return store.User{}, err
	}
	ev := d.event(p, audit.ActionUserPassword, id)
	ev.OnBehalf = id
	return d.updateUser(ctx, "user", id, func(u store.User) store.User {
		u.PasswordHash = hash
		return u
	}, ev)
}

// SetRoles replaces the roles of the user id in Mandate itself (RoleAdmin,
// RoleAuditor; none for none), recorded as user.roles with the new roles
// in its context ({"roles": [...]}). It refuses an unknown user
// (ErrNotFound) and a role not in Roles or named twice (ErrInvalid).
func (d *Directory) SetRoles(ctx context.Context, p Performer, id string, roles []string) (store.User, error) {
	if err := CheckRoles("roles", roles); err != nil {
		return store.User{}, err
	}
	ev, err := d.rolesEvent(p, id, roles)
	if err != nil {
		return store.User{}, err
	}
	return d.updateUser(ctx, "user", id, func(u store.User) store.User {
		u.Roles = roles
		return u
	}, ev)
}

// rolesEvent is the user.roles record of id now holding roles, listed in
// its context ({"roles": [...]}, empty for none).
func (d *Directory) rolesEvent(p Performer, id string, roles []string) (store.Event, error) {
	ev := d.event(p, audit.ActionUserRoles, id)
	ev.OnBehalf = id
	b, err := json.Marshal(struct {
		Roles []string `json:"roles"`
	}{Roles: append([]string{}, roles...)})
	if err != nil {
		return store.Event{}, fmt.Errorf("directory: roles: %w", err)
	}
	ev.Context = b
	return ev, nil
}

// RevokeSubject raises the revocation version of the user id, recorded as
// user.revoked: every token issued on their behalf before it stops being
// in force. An unknown user is ErrNotFound (What "subject").
func (d *Directory) RevokeSubject(ctx context.Context, p Performer, id string) (store.User, error) {
	ev := d.event(p, audit.ActionUserRevoked, id)
	ev.OnBehalf = id
	return d.updateUser(ctx, "subject", id, func(u store.User) store.User {
		u.Version++
		return u
	}, ev)
}

// RevokeEverything is a person's "I think an agent is compromised": every
// delegation they gave is revoked (each recorded as delegation.revoked with
// reason), then their revocation version is raised (RevokeSubject), so
// that no token issued for them before stays in force, whatever it was
// issued under. An unknown user is ErrNotFound (What "subject").
func (d *Directory) RevokeEverything(ctx context.Context, p Performer, id, reason string) (store.User, error) {
	if err := d.revokeDelegations(ctx, p, store.DelegationFilter{Subject: id}, reason); err != nil {
		return store.User{}, err
	}
	return d.RevokeSubject(ctx, p, id)
}

// DeleteUser removes the user id. First every delegation they gave is
// revoked (each recorded as delegation.revoked, reason user_deleted), then
// the user is deleted, recorded as user.deleted, and every token issued on
// their behalf stops being in force (store.Users.DeleteUser), also if a
// user of the same id is created later. An unknown user is ErrNotFound.
func (d *Directory) DeleteUser(ctx context.Context, p Performer, id string) error {
	if _, err := d.Store.GetUser(ctx, id); err != nil {
		return storeErr(err, "user", id)
	}
	if err := d.revokeDelegations(ctx, p, store.DelegationFilter{Subject: id}, "user_deleted"); err != nil {
		return err
	}
	ev := d.event(p, audit.ActionUserDeleted, id)
	ev.OnBehalf = id
	return storeErr(d.Store.DeleteUser(ctx, id, bound(ev)), "user", id)
}

// updateUser applies change to the stored user id with the record ev,
// atomically; an unknown user is a *NotFoundError of what.
func (d *Directory) updateUser(ctx context.Context, what, id string, change func(store.User) store.User, ev store.Event) (store.User, error) {
	now := d.now()
	u, err := d.Store.UpdateUser(ctx, id, func(u store.User) (store.User, error) {
		u = change(u)
		u.UpdatedAt = now
		return u, nil
	}, bound(ev))
	return u, storeErr(err, what, id)
}

// normalLimits is limits as stored: nil for none (empty, null or []),
// else compact JSON.
func normalLimits(limits json.RawMessage) json.RawMessage {
	if string(bytes.TrimSpace(limits)) == "[]" {
		return nil
	}
	return normalJSON(limits)
}

// SyncPerson makes the stored person u.ID what their identity provider
// (u.Provider, required) says at sign-in: it creates them with u's
// Permissions and Roles, recorded as user.created, or updates the
// permissions and roles of one the same provider manages, recorded as
// user.permissions and user.roles when they changed (nothing is written
// when nothing did). A permission removed stops every token carrying it at
// once (the store's scope revocation entries), as SetPermissions does.
//
// It refuses a person managed in Mandate (Provider "") or by another
// provider, and an id an agent has (ErrConflict, so that a provider
// cannot take over an account it does not manage), invalid permissions
// (ErrInvalid), and fails with the store's error.
func (d *Directory) SyncPerson(ctx context.Context, p Performer, u store.User) (store.User, error) {
	if u.Provider == "" {
		return store.User{}, invalid("provider", "a person synchronised from a provider needs its issuer")
	}
	if err := checkID(u.ID); err != nil {
		return store.User{}, err
	}
	if err := CheckScopes("permissions", u.Permissions, false); err != nil {
		return store.User{}, err
	}
	perms, roles := sortedSet(u.Permissions), sortedSet(u.Roles)
	old, err := d.Store.GetUser(ctx, u.ID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return d.createSynced(ctx, p, store.User{ID: u.ID, Permissions: perms, Roles: roles, Provider: u.Provider})
	case err != nil:
		return store.User{}, err
	}
	if err := managedBy(old, u.Provider); err != nil {
		return store.User{}, err
	}
	permsChanged, rolesChanged := !slices.Equal(sortedSet(old.Permissions), perms), !slices.Equal(sortedSet(old.Roles), roles)
	if !permsChanged && !rolesChanged {
		return old, nil
	}
	var events []store.Event
	if permsChanged {
		ev := d.event(p, audit.ActionUserPermissions, u.ID)
		ev.OnBehalf, ev.Scopes = u.ID, perms
		events = append(events, bound(ev))
	}
	if rolesChanged {
		ev, err := d.rolesEvent(p, u.ID, roles)
		if err != nil {
			return store.User{}, err
		}
		events = append(events, bound(ev))
	}
	now := d.now()
	synced, err := d.Store.UpdateUser(ctx, u.ID, func(cur store.User) (store.User, error) {
		// Checked again inside the write: the person may have changed
		// since the read.
		if err := managedBy(cur, u.Provider); err != nil {
			return store.User{}, err
		}
		cur.Permissions, cur.Roles, cur.UpdatedAt = perms, roles, now
		return cur, nil
	}, events...)
	if errors.Is(err, ErrConflict) {
		return store.User{}, err
	}
	return synced, storeErr(err, "user", u.ID)
}

// createSynced creates the provider-managed person u.
func (d *Directory) createSynced(ctx context.Context, p Performer, u store.User) (store.User, error) {
	if err := idFree(ctx, u.ID, "an agent", d.Store.GetAgent); err != nil {
		return store.User{}, err
	}
	now := d.now()
	u.CreatedAt, u.UpdatedAt = now, now
	ev := d.event(p, audit.ActionUserCreated, u.ID)
	ev.OnBehalf, ev.Scopes = u.ID, u.Permissions
	if err := d.Store.CreateUser(ctx, u, bound(ev)); err != nil {
		return store.User{}, storeErr(err, "user", u.ID)
	}
	return u, nil
}

// managedBy refuses u unless the provider issuer manages them.
func managedBy(u store.User, issuer string) error {
	switch u.Provider {
	case issuer:
		return nil
	case "":
		return &ConflictError{ID: u.ID, Problem: "a person managed in Mandate has this id; an identity provider cannot take it over"}
	}
	return &ConflictError{ID: u.ID, Problem: "another identity provider manages the person of this id"}
}

// sortedSet is v sorted without repeats; nil when empty.
func sortedSet(v []string) []string {
	if len(v) == 0 {
		return nil
	}
	out := slices.Clone(v)
	slices.Sort(out)
	return slices.Compact(out)
}
