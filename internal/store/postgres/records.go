package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mandate-dev/mandate/internal/store"
)

// create inserts one record, bumps the generation (notifying Listen) and
// appends the events, all in one implicit transaction sent in one round trip.
func (s *Store) create(ctx context.Context, what, id, insert string, args []any, events []store.Event) error {
	if id == "" {
		return fmt.Errorf("postgres: create %s: empty id", what)
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	b := &pgx.Batch{}
	b.Queue(insert, args...)
	queueGeneration(b, s.channel)
	s.queueEvents(b, events)
	if err := send(ctx, s.pool, b); err != nil {
		return fmt.Errorf("postgres: create %s %q: %w", what, id, err)
	}
	return nil
}

// record describes one aggregate to update.
type record[T any] struct {
	what string
	// lock reads the record and locks its row until the transaction ends.
	lock string
	scan pgx.RowToFunc[T]
	id   func(T) string
	// check vets the new value against the stored one; nil accepts all.
	check func(old, new T) error
	// put is the UPDATE statement and its arguments for v.
	put func(v T) (string, []any)
	// revocations derives the revocation entries of the change (one of
	// the store package's derivation functions).
	revocations func(old, new T, gen int64, at time.Time) []store.Revocation
}

// update does the read-modify-write of one record in one transaction: read
// and lock the row, apply fn, check, write and bump the generation (one
// round trip, which reads the new generation back), then append the
// revocation entries the change makes, with that generation, and the events
// (another). A concurrent update of the same record waits for the lock and
// then reads this one's result. An error from fn is returned wrapped and
// rolls everything back.
func update[T any](ctx context.Context, s *Store, r record[T], id string, fn func(T) (T, error), events []store.Event) (T, error) {
	var out T
	if !storable(id) {
		return out, fmt.Errorf("postgres: update %s %q: %w", r.what, id, notFound())
	}
	err := s.write(ctx, "update "+r.what, func(ctx context.Context, tx pgx.Tx) error {
		rows, err := tx.Query(ctx, r.lock, id)
		if err != nil {
			return dbErr(err)
		}
		old, err := pgx.CollectExactlyOneRow(rows, r.scan)
		if err != nil {
			return dbErr(err)
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
		b := &pgx.Batch{}
		q, args := r.put(v)
		b.Queue(q, args...)
		queueGeneration(b, s.channel)
		var gen int64
		b.Queue("SELECT value FROM generation WHERE id = 1").QueryRow(func(row pgx.Row) error { return row.Scan(&gen) })
		if err := send(ctx, tx, b); err != nil {
			return err
		}
		b = &pgx.Batch{}
		queueRevocations(b, r.revocations(old, v, gen, s.now()))
		s.queueEvents(b, events)
		if err := send(ctx, tx, b); err != nil {
			return err
		}
		out = v
		return nil
	})
	if err != nil {
		var zero T
		return zero, fmt.Errorf("postgres: update %s %q: %w", r.what, id, err)
	}
	return out, nil
}

// deleting is r with its write replaced by the deletion of the row from
// table: update with it reads and locks the stored record, derives the
// revocation entries from it and fn's result (store.DeletedUser,
// store.DeletedAgent), deletes the row, bumps the generation and appends
// the events, in one transaction.
func deleting[T any](r record[T], table string) record[T] {
	r.what += " (delete)"
	r.check = nil
	r.put = func(v T) (string, []any) { return "DELETE FROM " + table + " WHERE id = $1", []any{r.id(v)} }
	return r
}

// get reads one record by key.
func get[T any](ctx context.Context, s *Store, what, query, id string, scan pgx.RowToFunc[T]) (T, error) {
	var zero T
	if !storable(id) {
		return zero, fmt.Errorf("postgres: get %s %q: %w", what, id, notFound())
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	rows, err := s.pool.Query(ctx, query, id)
	if err != nil {
		return zero, fmt.Errorf("postgres: get %s %q: %w", what, id, dbErr(err))
	}
	v, err := pgx.CollectExactlyOneRow(rows, scan)
	if err != nil {
		return zero, fmt.Errorf("postgres: get %s %q: %w", what, id, dbErr(err))
	}
	return v, nil
}

// Users.

const userCols = "id, permissions, limits, version, created_at, updated_at, password_hash, roles, provider"

func scanUser(row pgx.CollectableRow) (store.User, error) {
	var (
		u        store.User
		perms    []string
		limits   *string
		roles    []string
		cre, upd *time.Time
	)
	if err := row.Scan(&u.ID, &perms, &limits, &u.Version, &cre, &upd, &u.PasswordHash, &roles, &u.Provider); err != nil {
		return store.User{}, err
	}
	u.Limits = textOut(limits)
	u.Permissions, u.Roles = listOut(perms), listOut(roles)
	u.CreatedAt, u.UpdatedAt = timeOut(cre), timeOut(upd)
	return u, nil
}

// CreateUser inserts u and appends events in one transaction; an existing ID
// is store.ErrAlreadyExists.
func (s *Store) CreateUser(ctx context.Context, u store.User, events ...store.Event) error {
	return s.create(ctx, "user", u.ID, "INSERT INTO users ("+userCols+") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
		[]any{u.ID, listIn(u.Permissions), textIn(u.Limits), u.Version, timeIn(u.CreatedAt), timeIn(u.UpdatedAt),
			u.PasswordHash, listIn(u.Roles), u.Provider}, events)
}

// GetUser returns the user, or store.ErrNotFound.
func (s *Store) GetUser(ctx context.Context, id string) (store.User, error) {
	return get(ctx, s, "user", "SELECT "+userCols+" FROM users WHERE id = $1", id, scanUser)
}

// ListUsers returns every user, ordered by ID (bytewise).
func (s *Store) ListUsers(ctx context.Context) ([]store.User, error) {
	return list(ctx, s, "users", "SELECT "+userCols+" FROM users ORDER BY id", scanUser)
}

// errVersionDecrease refuses an update that lowers User.Version, which would
// bring back tokens the bump revoked.
var errVersionDecrease = errors.New("user version may not decrease")

func userRecord() record[store.User] {
	return record[store.User]{
		what:        "user",
		revocations: store.UserRevocations,
		lock:        "SELECT " + userCols + " FROM users WHERE id = $1 FOR UPDATE",
		scan:        scanUser,
		id:          func(u store.User) string { return u.ID },
		check: func(old, u store.User) error {
			if u.Version < old.Version {
				return fmt.Errorf("%w: %d is below the stored %d", errVersionDecrease, u.Version, old.Version)
			}
			return nil
		},
		put: func(u store.User) (string, []any) {
			return `UPDATE users SET permissions = $1, limits = $2, version = $3, created_at = $4, updated_at = $5,
				password_hash = $7, roles = $8, provider = $9 WHERE id = $6`,
				[]any{listIn(u.Permissions), textIn(u.Limits), u.Version, timeIn(u.CreatedAt), timeIn(u.UpdatedAt), u.ID,
					u.PasswordHash, listIn(u.Roles), u.Provider}
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
	// The person's grants at identity providers go in the same statement.
	r := deleting(userRecord(), "users")
	r.put = func(u store.User) (string, []any) {
		return "WITH g AS (DELETE FROM upstream_grants WHERE subject = $1) DELETE FROM users WHERE id = $1", []any{u.ID}
	}
	_, err := update(ctx, s, r, id, func(u store.User) (store.User, error) {
		return store.DeletedUser(u), nil
	}, events)
	return err
}

// Agents.

const agentCols = "id, secret_hash, jwks, jwks_uri, scopes, delegate_to, max_depth, disabled, created_at, updated_at, resources, redirect_uris, public, client_name, registration"

func scanAgent(row pgx.CollectableRow) (store.Agent, error) {
	var (
		a                                        store.Agent
		secret                                   []byte
		jwks                                     *string
		scopes, delegateTo, resources, redirects []string
		cre, upd                                 *time.Time
	)
	if err := row.Scan(&a.ID, &secret, &jwks, &a.JWKSURI, &scopes, &delegateTo, &a.MaxDepth, &a.Disabled, &cre, &upd,
		&resources, &redirects, &a.Public, &a.Name, &a.Registration); err != nil {
		return store.Agent{}, err
	}
	a.SecretHash = bytesOut(secret)
	a.JWKS = textOut(jwks)
	a.Scopes, a.DelegateTo, a.Resources, a.RedirectURIs = listOut(scopes), listOut(delegateTo), listOut(resources), listOut(redirects)
	a.CreatedAt, a.UpdatedAt = timeOut(cre), timeOut(upd)
	return a, nil
}

// agentArgs is a's columns in agentCols order.
func agentArgs(a store.Agent) []any {
	return []any{a.ID, bytesIn(a.SecretHash), textIn(a.JWKS), a.JWKSURI, listIn(a.Scopes), listIn(a.DelegateTo),
		a.MaxDepth, a.Disabled, timeIn(a.CreatedAt), timeIn(a.UpdatedAt), listIn(a.Resources), listIn(a.RedirectURIs),
		a.Public, a.Name, a.Registration}
}

// CreateAgent inserts a and appends events in one transaction; an existing
// ID is store.ErrAlreadyExists.
func (s *Store) CreateAgent(ctx context.Context, a store.Agent, events ...store.Event) error {
	return s.create(ctx, "agent", a.ID, "INSERT INTO agents ("+agentCols+
		") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)", agentArgs(a), events)
}

// GetAgent returns the agent, or store.ErrNotFound.
func (s *Store) GetAgent(ctx context.Context, id string) (store.Agent, error) {
	return get(ctx, s, "agent", "SELECT "+agentCols+" FROM agents WHERE id = $1", id, scanAgent)
}

// ListAgents returns every agent, ordered by ID (bytewise).
func (s *Store) ListAgents(ctx context.Context) ([]store.Agent, error) {
	return list(ctx, s, "agents", "SELECT "+agentCols+" FROM agents ORDER BY id", scanAgent)
}

func agentRecord() record[store.Agent] {
	return record[store.Agent]{
		what:        "agent",
		revocations: store.AgentRevocations,
		lock:        "SELECT " + agentCols + " FROM agents WHERE id = $1 FOR UPDATE",
		scan:        scanAgent,
		id:          func(a store.Agent) string { return a.ID },
		put: func(a store.Agent) (string, []any) {
			return `UPDATE agents SET secret_hash = $2, jwks = $3, jwks_uri = $4, scopes = $5, delegate_to = $6,
				max_depth = $7, disabled = $8, created_at = $9, updated_at = $10, resources = $11, redirect_uris = $12,
				public = $13, client_name = $14, registration = $15 WHERE id = $1`, agentArgs(a)
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

func scanDelegation(row pgx.CollectableRow) (store.Delegation, error) {
	var (
		d                   store.Delegation
		scopes, auds        []string
		to, handOn          []string
		expires, revAt, cre *time.Time
	)
	if err := row.Scan(&d.ID, &d.Subject, &d.Actor, &scopes, &auds, &to, &handOn, &d.MaxDepth, &expires, &d.Source, &d.Revoked, &revAt, &cre); err != nil {
		return store.Delegation{}, err
	}
	d.Scopes, d.Audiences = listOut(scopes), listOut(auds)
	d.DelegateTo, d.HandOn = listOut(to), listOut(handOn)
	d.Expires, d.RevokedAt, d.CreatedAt = timeOut(expires), timeOut(revAt), timeOut(cre)
	return d, nil
}

// delegationArgs is d's columns in delegationCols order.
func delegationArgs(d store.Delegation) []any {
	return []any{d.ID, d.Subject, d.Actor, listIn(d.Scopes), listIn(d.Audiences), listIn(d.DelegateTo), listIn(d.HandOn), d.MaxDepth, timeIn(d.Expires),
		d.Source, d.Revoked, timeIn(d.RevokedAt), timeIn(d.CreatedAt)}
}

// CreateDelegation inserts d and appends events in one transaction; an
// existing ID is store.ErrAlreadyExists.
func (s *Store) CreateDelegation(ctx context.Context, d store.Delegation, events ...store.Event) error {
	return s.create(ctx, "delegation", d.ID, "INSERT INTO delegations ("+delegationCols+
		") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)", delegationArgs(d), events)
}

// GetDelegation returns the delegation, or store.ErrNotFound.
func (s *Store) GetDelegation(ctx context.Context, id string) (store.Delegation, error) {
	return get(ctx, s, "delegation", "SELECT "+delegationCols+" FROM delegations WHERE id = $1", id, scanDelegation)
}

// ListDelegations returns the delegations f selects, ordered by ID
// (bytewise). Expired delegations are included; revoked ones only with
// f.IncludeRevoked.
func (s *Store) ListDelegations(ctx context.Context, f store.DelegationFilter) ([]store.Delegation, error) {
	// A filter value that cannot be stored matches nothing, like any other
	// unknown value; PostgreSQL would refuse it as a parameter.
	if !storable(f.Subject) || !storable(f.Actor) {
		return nil, nil
	}
	q := "SELECT " + delegationCols + " FROM delegations WHERE true"
	var args []any
	if f.Subject != "" {
		args = append(args, f.Subject)
		q += " AND subject = $" + strconv.Itoa(len(args))
	}
	if f.Actor != "" {
		args = append(args, f.Actor)
		q += " AND actor = $" + strconv.Itoa(len(args))
	}
	if !f.IncludeRevoked {
		q += " AND NOT revoked"
	}
	return list(ctx, s, "delegations", q+" ORDER BY id", scanDelegation, args...)
}

func delegationRecord() record[store.Delegation] {
	return record[store.Delegation]{
		what:        "delegation",
		revocations: store.DelegationRevocations,
		lock:        "SELECT " + delegationCols + " FROM delegations WHERE id = $1 FOR UPDATE",
		scan:        scanDelegation,
		id:          func(d store.Delegation) string { return d.ID },
		put: func(d store.Delegation) (string, []any) {
			return `UPDATE delegations SET subject = $2, actor = $3, scopes = $4, audiences = $5, delegate_to = $6,
				hand_on = $7, max_depth = $8, expires = $9, source = $10, revoked = $11, revoked_at = $12,
				created_at = $13 WHERE id = $1`, delegationArgs(d)
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

func scanKey(row pgx.CollectableRow) (store.Key, error) {
	var (
		k             store.Key
		priv          []byte
		act, ret, cre *time.Time
	)
	if err := row.Scan(&k.KID, &k.Alg, &priv, &k.State, &act, &ret, &cre); err != nil {
		return store.Key{}, err
	}
	k.Private = bytesOut(priv)
	k.ActivateAt, k.RetireAt, k.CreatedAt = timeOut(act), timeOut(ret), timeOut(cre)
	return k, nil
}

// keyArgs is k's columns in keyCols order.
func keyArgs(k store.Key) []any {
	return []any{k.KID, k.Alg, bytesIn(k.Private), k.State, timeIn(k.ActivateAt), timeIn(k.RetireAt), timeIn(k.CreatedAt)}
}

// CreateKey inserts k and appends events in one transaction; an existing KID
// is store.ErrAlreadyExists.
func (s *Store) CreateKey(ctx context.Context, k store.Key, events ...store.Event) error {
	return s.create(ctx, "key", k.KID, "INSERT INTO signing_keys ("+keyCols+
		") VALUES ($1, $2, $3, $4, $5, $6, $7)", keyArgs(k), events)
}

// ListKeys returns every key, oldest first (by CreatedAt, a zero CreatedAt
// first, then KID).
func (s *Store) ListKeys(ctx context.Context) ([]store.Key, error) {
	return list(ctx, s, "keys", "SELECT "+keyCols+" FROM signing_keys ORDER BY created_at NULLS FIRST, kid", scanKey)
}

func keyRecord() record[store.Key] {
	return record[store.Key]{
		what:        "key",
		revocations: store.KeyRevocations,
		lock:        "SELECT " + keyCols + " FROM signing_keys WHERE kid = $1 FOR UPDATE",
		scan:        scanKey,
		id:          func(k store.Key) string { return k.KID },
		put: func(k store.Key) (string, []any) {
			return `UPDATE signing_keys SET alg = $2, private = $3, state = $4, activate_at = $5, retire_at = $6,
				created_at = $7 WHERE kid = $1`, keyArgs(k)
		},
	}
}

// UpdateKey applies fn to the stored key and writes the result with the
// events, atomically. It refuses a changed KID; fn's error is returned
// wrapped and nothing is written. fn must not call the store.
func (s *Store) UpdateKey(ctx context.Context, kid string, fn func(store.Key) (store.Key, error), events ...store.Event) (store.Key, error) {
	return update(ctx, s, keyRecord(), kid, fn, events)
}
