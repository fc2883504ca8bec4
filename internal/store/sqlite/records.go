package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/mandate-dev/mandate/internal/store"
)

// create inserts one record with insert, bumps the generation and appends
// the events, all in one transaction.
func (s *Store) create(ctx context.Context, what, id string, insert func(*sql.Tx) error, events []store.Event) error {
	if id == "" {
		return fmt.Errorf("sqlite: create %s: empty id", what)
	}
	err := s.write(ctx, "create "+what, func(tx *sql.Tx) error {
		if err := insert(tx); err != nil {
			return dbErr(err)
		}
		if _, err := bumpGeneration(ctx, tx); err != nil {
			return err
		}
		return s.insertEvents(ctx, tx, events)
	})
	if err != nil {
		return fmt.Errorf("sqlite: create %s %q: %w", what, id, err)
	}
	return nil
}

// record describes one aggregate to update.
type record[T any] struct {
	what string
	get  func(ctx context.Context, q querier, id string) (T, error)
	id   func(T) string
	// check vets the new value against the stored one; nil accepts all.
	check func(old, new T) error
	put   func(ctx context.Context, tx *sql.Tx, v T) error
	// revocations derives the revocation entries of the change (one of
	// the store package's derivation functions).
	revocations func(old, new T, gen int64, at time.Time) []store.Revocation
}

// update does the read-modify-write of one record in one transaction: read,
// apply fn, check, write, bump the generation, append the revocation
// entries the change makes (with the new generation) and the events. An
// error from fn is returned wrapped and rolls everything back.
func update[T any](ctx context.Context, s *Store, r record[T], id string, fn func(T) (T, error), events []store.Event) (T, error) {
	var out T
	err := s.write(ctx, "update "+r.what, func(tx *sql.Tx) error {
		old, err := r.get(ctx, tx, id)
		if err != nil {
			return err
		}
		v, err := fn(old)
		if err != nil {
			return err
		}
		if got := r.id(v); got != id {
			return fmt.Errorf("the update changed the id to %q", got)
		}
		if r.check != nil {
			if err := r.check(old, v); err != nil {
				return err
			}
		}
		if err := r.put(ctx, tx, v); err != nil {
			return dbErr(err)
		}
		gen, err := bumpGeneration(ctx, tx)
		if err != nil {
			return err
		}
		if err := insertRevocations(ctx, tx, r.revocations(old, v, gen, s.now())); err != nil {
			return err
		}
		if err := s.insertEvents(ctx, tx, events); err != nil {
			return err
		}
		out = v
		return nil
	})
	if err != nil {
		var zero T
		return zero, fmt.Errorf("sqlite: update %s %q: %w", r.what, id, err)
	}
	return out, nil
}

// deleting is r with its write replaced by the deletion of the row from
// table: update with it reads the stored record, derives the revocation
// entries from it and fn's result (store.DeletedUser, store.DeletedAgent),
// deletes the row, bumps the generation and appends the events, in one
// transaction.
func deleting[T any](r record[T], table string) record[T] {
	r.what += " (delete)"
	r.check = nil
	r.put = func(ctx context.Context, tx *sql.Tx, v T) error {
		_, err := tx.ExecContext(ctx, "DELETE FROM "+table+" WHERE id = ?", r.id(v))
		return err
	}
	return r
}

// list runs query and scans every row with scan.
func list[T any](ctx context.Context, q querier, what, query string, scan func(scanner) (T, error), args ...any) ([]T, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	return collect(rows, err, what, scan, -1)
}

// collect scans the rows of a query's result (rows, err) with scan, at most
// limit of them when limit >= 0.
func collect[T any](rows *sql.Rows, err error, what string, scan func(scanner) (T, error), limit int) ([]T, error) {
	if err != nil {
		return nil, fmt.Errorf("sqlite: list %s: %w", what, dbErr(err))
	}
	defer rows.Close()
	var out []T
	for len(out) != limit && rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: list %s: %w", what, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list %s: %w", what, dbErr(err))
	}
	return out, nil
}

// Users.

const userCols = "id, permissions, limits, version, created_at, updated_at, password_hash, roles, provider"

func scanUser(sc scanner) (store.User, error) {
	var (
		u        store.User
		perms    string
		limits   sql.NullString
		roles    string
		cre, upd sql.NullInt64
	)
	if err := sc.Scan(&u.ID, &perms, &limits, &u.Version, &cre, &upd, &u.PasswordHash, &roles, &u.Provider); err != nil {
		return store.User{}, dbErr(err)
	}
	if limits.Valid && limits.String != "" {
		u.Limits = []byte(limits.String)
	}
	u.CreatedAt, u.UpdatedAt = timeOut(cre), timeOut(upd)
	err := decodeLists(listCol{"permissions", perms, &u.Permissions}, listCol{"roles", roles, &u.Roles})
	return u, err
}

func getUser(ctx context.Context, q querier, id string) (store.User, error) {
	return scanUser(q.QueryRowContext(ctx, "SELECT "+userCols+" FROM users WHERE id = ?", id))
}

// CreateUser inserts u and appends events in one transaction; an existing ID
// is store.ErrAlreadyExists.
func (s *Store) CreateUser(ctx context.Context, u store.User, events ...store.Event) error {
	return s.create(ctx, "user", u.ID, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, "INSERT INTO users ("+userCols+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
			u.ID, listIn(u.Permissions), jsonIn(u.Limits), u.Version, timeIn(u.CreatedAt), timeIn(u.UpdatedAt),
			u.PasswordHash, listIn(u.Roles), u.Provider)
		return err
	}, events)
}

// GetUser returns the user, or store.ErrNotFound.
func (s *Store) GetUser(ctx context.Context, id string) (store.User, error) {
	u, err := getUser(ctx, s.r, id)
	if err != nil {
		return store.User{}, fmt.Errorf("sqlite: get user %q: %w", id, err)
	}
	return u, nil
}

// ListUsers returns every user, ordered by ID.
func (s *Store) ListUsers(ctx context.Context) ([]store.User, error) {
	return list(ctx, s.r, "users", "SELECT "+userCols+" FROM users ORDER BY id", scanUser)
}

// errVersionDecrease refuses an update that lowers User.Version, which would
// bring back tokens the bump revoked.
var errVersionDecrease = errors.New("user version may not decrease")

func userRecord() record[store.User] {
	return record[store.User]{
		what:        "user",
		get:         getUser,
		revocations: store.UserRevocations,
		id:          func(u store.User) string { return u.ID },
		check: func(old, u store.User) error {
			if u.Version < old.Version {
				return fmt.Errorf("%w: %d is below the stored %d", errVersionDecrease, u.Version, old.Version)
			}
			return nil
		},
		put: func(ctx context.Context, tx *sql.Tx, u store.User) error {
			_, err := tx.ExecContext(ctx, `UPDATE users SET permissions = ?, limits = ?, version = ?, created_at = ?, updated_at = ?,
				password_hash = ?, roles = ?, provider = ? WHERE id = ?`,
				listIn(u.Permissions), jsonIn(u.Limits), u.Version, timeIn(u.CreatedAt), timeIn(u.UpdatedAt),
				u.PasswordHash, listIn(u.Roles), u.Provider, u.ID)
			return err
		},
	}
}

// UpdateUser applies fn to the stored user and writes the result with the
// events, atomically. It refuses a lower Version and a changed ID; fn's error
// is returned wrapped and nothing is written. fn must not call the store.
func (s *Store) UpdateUser(ctx context.Context, id string, fn func(store.User) (store.User, error), events ...store.Event) (store.User, error) {
	return update(ctx, s, userRecord(), id, fn, events)
}

// DeleteUser removes the user and appends events, atomically, with the
// revocation entries of store.DeletedUser; store.ErrNotFound when absent.
func (s *Store) DeleteUser(ctx context.Context, id string, events ...store.Event) error {
	// The person's grants at identity providers go in the same
	// transaction.
	r := deleting(userRecord(), "users")
	del := r.put
	r.put = func(ctx context.Context, tx *sql.Tx, u store.User) error {
		if err := del(ctx, tx, u); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, "DELETE FROM upstream_grants WHERE subject = ?", u.ID)
		return err
	}
	_, err := update(ctx, s, r, id, func(u store.User) (store.User, error) {
		return store.DeletedUser(u), nil
	}, events)
	return err
}

// Agents.

const agentCols = "id, secret_hash, jwks, jwks_uri, scopes, delegate_to, max_depth, disabled, created_at, updated_at, resources, redirect_uris, public, client_name, registration"

func scanAgent(sc scanner) (store.Agent, error) {
	var (
		a                                        store.Agent
		secret                                   []byte
		jwks                                     sql.NullString
		scopes, delegateTo, resources, redirects string
		cre, upd                                 sql.NullInt64
	)
	if err := sc.Scan(&a.ID, &secret, &jwks, &a.JWKSURI, &scopes, &delegateTo, &a.MaxDepth, &a.Disabled, &cre, &upd,
		&resources, &redirects, &a.Public, &a.Name, &a.Registration); err != nil {
		return store.Agent{}, dbErr(err)
	}
	a.SecretHash = bytesOut(secret)
	if jwks.Valid && jwks.String != "" {
		a.JWKS = []byte(jwks.String)
	}
	a.CreatedAt, a.UpdatedAt = timeOut(cre), timeOut(upd)
	err := decodeLists(listCol{"scopes", scopes, &a.Scopes}, listCol{"delegate_to", delegateTo, &a.DelegateTo},
		listCol{"resources", resources, &a.Resources}, listCol{"redirect_uris", redirects, &a.RedirectURIs})
	return a, err
}

func getAgent(ctx context.Context, q querier, id string) (store.Agent, error) {
	return scanAgent(q.QueryRowContext(ctx, "SELECT "+agentCols+" FROM agents WHERE id = ?", id))
}

func agentArgs(a store.Agent) []any {
	return []any{bytesIn(a.SecretHash), jsonIn(a.JWKS), a.JWKSURI, listIn(a.Scopes), listIn(a.DelegateTo),
		a.MaxDepth, boolIn(a.Disabled), timeIn(a.CreatedAt), timeIn(a.UpdatedAt), listIn(a.Resources), listIn(a.RedirectURIs),
		boolIn(a.Public), a.Name, a.Registration, a.ID}
}

// CreateAgent inserts a and appends events in one transaction; an existing
// ID is store.ErrAlreadyExists.
func (s *Store) CreateAgent(ctx context.Context, a store.Agent, events ...store.Event) error {
	return s.create(ctx, "agent", a.ID, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO agents (secret_hash, jwks, jwks_uri, scopes, delegate_to,
			max_depth, disabled, created_at, updated_at, resources, redirect_uris, public, client_name, registration, id)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, agentArgs(a)...)
		return err
	}, events)
}

// GetAgent returns the agent, or store.ErrNotFound.
func (s *Store) GetAgent(ctx context.Context, id string) (store.Agent, error) {
	a, err := getAgent(ctx, s.r, id)
	if err != nil {
		return store.Agent{}, fmt.Errorf("sqlite: get agent %q: %w", id, err)
	}
	return a, nil
}

// ListAgents returns every agent, ordered by ID.
func (s *Store) ListAgents(ctx context.Context) ([]store.Agent, error) {
	return list(ctx, s.r, "agents", "SELECT "+agentCols+" FROM agents ORDER BY id", scanAgent)
}

func agentRecord() record[store.Agent] {
	return record[store.Agent]{
		what:        "agent",
		get:         getAgent,
		revocations: store.AgentRevocations,
		id:          func(a store.Agent) string { return a.ID },
		put: func(ctx context.Context, tx *sql.Tx, a store.Agent) error {
			_, err := tx.ExecContext(ctx, `UPDATE agents SET secret_hash = ?, jwks = ?, jwks_uri = ?, scopes = ?,
				delegate_to = ?, max_depth = ?, disabled = ?, created_at = ?, updated_at = ?, resources = ?, redirect_uris = ?,
				public = ?, client_name = ?, registration = ? WHERE id = ?`, agentArgs(a)...)
			return err
		},
	}
}

// UpdateAgent applies fn to the stored agent and writes the result with the
// events, atomically. It refuses a changed ID; fn's error is returned
// wrapped and nothing is written. fn must not call the store.
func (s *Store) UpdateAgent(ctx context.Context, id string, fn func(store.Agent) (store.Agent, error), events ...store.Event) (store.Agent, error) {
	return update(ctx, s, agentRecord(), id, fn, events)
}

// DeleteAgent removes the agent and appends events, atomically, with the
// revocation entries of store.DeletedAgent; store.ErrNotFound when absent.
func (s *Store) DeleteAgent(ctx context.Context, id string, events ...store.Event) error {
	_, err := update(ctx, s, deleting(agentRecord(), "agents"), id, func(a store.Agent) (store.Agent, error) {
		return store.DeletedAgent(a), nil
	}, events)
	return err
}

// Delegations.

const delegationCols = "id, subject, actor, scopes, audiences, delegate_to, hand_on, max_depth, expires, source, revoked, revoked_at, created_at"

func scanDelegation(sc scanner) (store.Delegation, error) {
	var (
		d                   store.Delegation
		scopes, auds        string
		to, handOn          string
		expires, revAt, cre sql.NullInt64
	)
	if err := sc.Scan(&d.ID, &d.Subject, &d.Actor, &scopes, &auds, &to, &handOn, &d.MaxDepth, &expires, &d.Source, &d.Revoked, &revAt, &cre); err != nil {
		return store.Delegation{}, dbErr(err)
	}
	d.Expires, d.RevokedAt, d.CreatedAt = timeOut(expires), timeOut(revAt), timeOut(cre)
	err := decodeLists(listCol{"scopes", scopes, &d.Scopes}, listCol{"audiences", auds, &d.Audiences},
		listCol{"delegate_to", to, &d.DelegateTo}, listCol{"hand_on", handOn, &d.HandOn})
	return d, err
}

func getDelegation(ctx context.Context, q querier, id string) (store.Delegation, error) {
	return scanDelegation(q.QueryRowContext(ctx, "SELECT "+delegationCols+" FROM delegations WHERE id = ?", id))
}

func delegationArgs(d store.Delegation) []any {
	return []any{d.Subject, d.Actor, listIn(d.Scopes), listIn(d.Audiences), listIn(d.DelegateTo), listIn(d.HandOn), d.MaxDepth, timeIn(d.Expires),
		d.Source, boolIn(d.Revoked), timeIn(d.RevokedAt), timeIn(d.CreatedAt), d.ID}
}

// CreateDelegation inserts d and appends events in one transaction; an
// existing ID is store.ErrAlreadyExists.
func (s *Store) CreateDelegation(ctx context.Context, d store.Delegation, events ...store.Event) error {
	return s.create(ctx, "delegation", d.ID, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO delegations (subject, actor, scopes, audiences, delegate_to, hand_on,
			max_depth, expires, source, revoked, revoked_at, created_at, id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, delegationArgs(d)...)
		return err
	}, events)
}

// GetDelegation returns the delegation, or store.ErrNotFound.
func (s *Store) GetDelegation(ctx context.Context, id string) (store.Delegation, error) {
	d, err := getDelegation(ctx, s.r, id)
	if err != nil {
		return store.Delegation{}, fmt.Errorf("sqlite: get delegation %q: %w", id, err)
	}
	return d, nil
}

// ListDelegations returns the delegations f selects, ordered by ID. Expired
// delegations are included; revoked ones only with f.IncludeRevoked.
func (s *Store) ListDelegations(ctx context.Context, f store.DelegationFilter) ([]store.Delegation, error) {
	q := "SELECT " + delegationCols + " FROM delegations WHERE 1 = 1"
	var args []any
	if f.Subject != "" {
		q += " AND subject = ?"
		args = append(args, f.Subject)
	}
	if f.Actor != "" {
		q += " AND actor = ?"
		args = append(args, f.Actor)
	}
	if !f.IncludeRevoked {
		q += " AND revoked = 0"
	}
	return list(ctx, s.r, "delegations", q+" ORDER BY id", scanDelegation, args...)
}

func delegationRecord() record[store.Delegation] {
	return record[store.Delegation]{
		what:        "delegation",
		get:         getDelegation,
		revocations: store.DelegationRevocations,
		id:          func(d store.Delegation) string { return d.ID },
		put: func(ctx context.Context, tx *sql.Tx, d store.Delegation) error {
			_, err := tx.ExecContext(ctx, `UPDATE delegations SET subject = ?, actor = ?, scopes = ?, audiences = ?,
				delegate_to = ?, hand_on = ?, max_depth = ?, expires = ?, source = ?, revoked = ?, revoked_at = ?, created_at = ? WHERE id = ?`, delegationArgs(d)...)
			return err
		},
	}
}

// UpdateDelegation applies fn to the stored delegation and writes the result
// with the events, atomically. It refuses a changed ID; fn's error is
// returned wrapped and nothing is written. fn must not call the store.
func (s *Store) UpdateDelegation(ctx context.Context, id string, fn func(store.Delegation) (store.Delegation, error), events ...store.Event) (store.Delegation, error) {
	return update(ctx, s, delegationRecord(), id, fn, events)
}

// Keys.

const keyCols = "kid, alg, private, state, activate_at, retire_at, created_at"

func scanKey(sc scanner) (store.Key, error) {
	var (
		k             store.Key
		priv          []byte
		act, ret, cre sql.NullInt64
	)
	if err := sc.Scan(&k.KID, &k.Alg, &priv, &k.State, &act, &ret, &cre); err != nil {
		return store.Key{}, dbErr(err)
	}
	k.Private = bytesOut(priv)
	k.ActivateAt, k.RetireAt, k.CreatedAt = timeOut(act), timeOut(ret), timeOut(cre)
	return k, nil
}

func getKey(ctx context.Context, q querier, kid string) (store.Key, error) {
	return scanKey(q.QueryRowContext(ctx, "SELECT "+keyCols+" FROM signing_keys WHERE kid = ?", kid))
}

func keyArgs(k store.Key) []any {
	return []any{k.Alg, bytesIn(k.Private), k.State, timeIn(k.ActivateAt), timeIn(k.RetireAt), timeIn(k.CreatedAt), k.KID}
}

// CreateKey inserts k and appends events in one transaction; an existing KID
// is store.ErrAlreadyExists.
func (s *Store) CreateKey(ctx context.Context, k store.Key, events ...store.Event) error {
	return s.create(ctx, "key", k.KID, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO signing_keys (alg, private, state, activate_at, retire_at,
			created_at, kid) VALUES (?, ?, ?, ?, ?, ?, ?)`, keyArgs(k)...)
		return err
	}, events)
}

// ListKeys returns every key, oldest first (by CreatedAt, then KID).
func (s *Store) ListKeys(ctx context.Context) ([]store.Key, error) {
	return list(ctx, s.r, "keys", "SELECT "+keyCols+" FROM signing_keys ORDER BY created_at, kid", scanKey)
}

func keyRecord() record[store.Key] {
	return record[store.Key]{
		what:        "key",
		get:         getKey,
		revocations: store.KeyRevocations,
		id:          func(k store.Key) string { return k.KID },
		put: func(ctx context.Context, tx *sql.Tx, k store.Key) error {
			_, err := tx.ExecContext(ctx, `UPDATE signing_keys SET alg = ?, private = ?, state = ?, activate_at = ?,
				retire_at = ?, created_at = ? WHERE kid = ?`, keyArgs(k)...)
			return err
		},
	}
}

// UpdateKey applies fn to the stored key and writes the result with the
// events, atomically. It refuses a changed KID; fn's error is returned
// wrapped and nothing is written. fn must not call the store.
func (s *Store) UpdateKey(ctx context.Context, kid string, fn func(store.Key) (store.Key, error), events ...store.Event) (store.Key, error) {
	return update(ctx, s, keyRecord(), kid, fn, events)
}
