package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/mandate-dev/mandate/internal/store"
)

// What people's sign-in and consent keep (store.SignIn). A single use (a
// code redeemed, a refresh token rotated, a pending step taken) is one
// UPDATE … WHERE used_at IS NULL RETURNING or DELETE … RETURNING: of
// concurrent ones, from any number of instances, the first takes the row's
// lock and the others wait for it, then find the row used (or gone) and
// change nothing. None of these writes bumps the generation: nothing here
// is cached.

// errZeroTime refuses a use or a touch at the zero time, which would store
// as "never".
var errZeroTime = errors.New("zero time")

// Authorization codes.

const codeCols = `hash, client_id, subject, actor, redirect_uri, challenge, delegation_id, scopes, resource,
	created_at, expires_at, used_at`

func scanCode(row pgx.CollectableRow) (store.AuthCode, error) {
	var (
		c             store.AuthCode
		scopes        []string
		cre, exp, use *time.Time
	)
	if err := row.Scan(&c.Hash, &c.ClientID, &c.Subject, &c.Actor, &c.RedirectURI, &c.Challenge, &c.DelegationID,
		&scopes, &c.Resource, &cre, &exp, &use); err != nil {
		return store.AuthCode{}, err
	}
	c.Hash, c.Scopes = bytesOut(c.Hash), listOut(scopes)
	c.CreatedAt, c.ExpiresAt, c.UsedAt = timeOut(cre), timeOut(exp), timeOut(use)
	return c, nil
}

// one runs query and scans its one row with scan; no row is
// store.ErrNotFound.
func one[T any](ctx context.Context, q querier, scan pgx.RowToFunc[T], query string, args ...any) (T, error) {
	rows, err := q.Query(ctx, query, args...)
	if err != nil {
		var zero T
		return zero, dbErr(err)
	}
	v, err := pgx.CollectExactlyOneRow(rows, scan)
	return v, dbErr(err)
}

// writeWithEvents runs the statement q with args and appends events, in
// one implicit transaction sent in one round trip; done, when not nil, gets
// the statement's command tag.
func (s *Store) writeWithEvents(ctx context.Context, q string, args []any, done func(pgconn.CommandTag) error, events []store.Event) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	b := &pgx.Batch{}
	qq := b.Queue(q, args...)
	if done != nil {
		qq.Exec(done)
	}
	s.queueEvents(b, events)
	return send(ctx, s.pool, b)
}

// CreateCode stores c and appends events in one transaction; a hash stored
// before is store.ErrAlreadyExists.
func (s *Store) CreateCode(ctx context.Context, c store.AuthCode, events ...store.Event) error {
	err := s.writeWithEvents(ctx, "INSERT INTO auth_codes ("+codeCols+") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
		[]any{bytesIn(c.Hash), c.ClientID, c.Subject, c.Actor, c.RedirectURI, c.Challenge, c.DelegationID,
			listIn(c.Scopes), c.Resource, timeIn(c.CreatedAt), timeIn(c.ExpiresAt), timeIn(c.UsedAt)}, nil, events)
	if err != nil {
		return fmt.Errorf("postgres: create code: %w", err)
	}
	return nil
}

// RedeemCode marks the unused code of hash used at at and returns it, in
// one statement; a used code is returned with store.ErrReplay, an unknown
// one is store.ErrNotFound.
func (s *Store) RedeemCode(ctx context.Context, hash []byte, at time.Time) (store.AuthCode, error) {
	if at.IsZero() {
		return store.AuthCode{}, fmt.Errorf("postgres: redeem code: %w", errZeroTime)
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	c, err := one(ctx, s.pool, scanCode,
		"UPDATE auth_codes SET used_at = $2 WHERE hash = $1 AND used_at IS NULL RETURNING "+codeCols, hash, at)
	if errors.Is(err, store.ErrNotFound) {
		// Used before, or unknown: a used row never becomes unused again.
		c, err = one(ctx, s.pool, scanCode, "SELECT "+codeCols+" FROM auth_codes WHERE hash = $1", hash)
		if err == nil {
			return c, fmt.Errorf("postgres: redeem code: %w", store.ErrReplay)
		}
	}
	if err != nil {
		return store.AuthCode{}, fmt.Errorf("postgres: redeem code: %w", err)
	}
	return c, nil
}

// Refresh tokens.

const refreshCols = `hash, delegation_id, client_id, subject, actor, scopes, resource, subject_version,
	created_at, expires_at, used_at`

func scanRefresh(row pgx.CollectableRow) (store.RefreshToken, error) {
	var (
		rt            store.RefreshToken
		scopes        []string
		cre, exp, use *time.Time
	)
	if err := row.Scan(&rt.Hash, &rt.DelegationID, &rt.ClientID, &rt.Subject, &rt.Actor, &scopes, &rt.Resource,
		&rt.SubjectVersion, &cre, &exp, &use); err != nil {
		return store.RefreshToken{}, err
	}
	rt.Hash, rt.Scopes = bytesOut(rt.Hash), listOut(scopes)
	rt.CreatedAt, rt.ExpiresAt, rt.UsedAt = timeOut(cre), timeOut(exp), timeOut(use)
	return rt, nil
}

const insertRefresh = "INSERT INTO refresh_tokens (" + refreshCols + ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"

func refreshArgs(rt store.RefreshToken) []any {
	return []any{bytesIn(rt.Hash), rt.DelegationID, rt.ClientID, rt.Subject, rt.Actor, listIn(rt.Scopes), rt.Resource,
		rt.SubjectVersion, timeIn(rt.CreatedAt), timeIn(rt.ExpiresAt), timeIn(rt.UsedAt)}
}

// CreateRefresh stores rt, the first token of a family, and appends events
// in one transaction; a hash stored before is store.ErrAlreadyExists.
func (s *Store) CreateRefresh(ctx context.Context, rt store.RefreshToken, events ...store.Event) error {
	if err := s.writeWithEvents(ctx, insertRefresh, refreshArgs(rt), nil, events); err != nil {
		return fmt.Errorf("postgres: create refresh token: %w", err)
	}
	return nil
}

// GetRefresh returns the refresh token of hash, or store.ErrNotFound.
func (s *Store) GetRefresh(ctx context.Context, hash []byte) (store.RefreshToken, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	rt, err := one(ctx, s.pool, scanRefresh, "SELECT "+refreshCols+" FROM refresh_tokens WHERE hash = $1", hash)
	if err != nil {
		return store.RefreshToken{}, fmt.Errorf("postgres: get refresh token: %w", err)
	}
	return rt, nil
}

// RotateRefresh marks the unused token of hash used at at, stores next and
// returns the token used, in one transaction; a used token is returned with
// store.ErrReplay and nothing is stored, an unknown one is
// store.ErrNotFound.
func (s *Store) RotateRefresh(ctx context.Context, hash []byte, at time.Time, next store.RefreshToken) (store.RefreshToken, error) {
	if at.IsZero() {
		return store.RefreshToken{}, fmt.Errorf("postgres: rotate refresh token: %w", errZeroTime)
	}
	var rt store.RefreshToken
	err := s.write(ctx, "rotate refresh token", func(ctx context.Context, tx pgx.Tx) error {
		var err error
		rt, err = one(ctx, tx, scanRefresh,
			"UPDATE refresh_tokens SET used_at = $2 WHERE hash = $1 AND used_at IS NULL RETURNING "+refreshCols, hash, at)
		if errors.Is(err, store.ErrNotFound) {
			// Used before, or unknown: a used row never becomes unused again.
			rt, err = one(ctx, tx, scanRefresh, "SELECT "+refreshCols+" FROM refresh_tokens WHERE hash = $1", hash)
			if err == nil {
				return store.ErrReplay
			}
		}
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, insertRefresh, refreshArgs(store.NextRefresh(rt, next))...); err != nil {
			return fmt.Errorf("store the next token: %w", dbErr(err))
		}
		return nil
	})
	if err != nil {
		if errors.Is(err, store.ErrReplay) {
			return rt, fmt.Errorf("postgres: rotate refresh token: %w", err)
		}
		return store.RefreshToken{}, fmt.Errorf("postgres: rotate refresh token: %w", err)
	}
	return rt, nil
}

// Sessions.

const sessionCols = "hash, subject, provider, csrf, created_at, seen_at, expires_at"

func scanSession(row pgx.CollectableRow) (store.Session, error) {
	var (
		se             store.Session
		cre, seen, exp *time.Time
	)
	if err := row.Scan(&se.Hash, &se.Subject, &se.Provider, &se.CSRF, &cre, &seen, &exp); err != nil {
		return store.Session{}, err
	}
	se.Hash = bytesOut(se.Hash)
	se.CreatedAt, se.SeenAt, se.ExpiresAt = timeOut(cre), timeOut(seen), timeOut(exp)
	return se, nil
}

// CreateSession stores se and appends events in one transaction; a hash
// stored before is store.ErrAlreadyExists.
func (s *Store) CreateSession(ctx context.Context, se store.Session, events ...store.Event) error {
	err := s.writeWithEvents(ctx, "INSERT INTO sessions ("+sessionCols+") VALUES ($1, $2, $3, $4, $5, $6, $7)",
		[]any{bytesIn(se.Hash), se.Subject, se.Provider, se.CSRF, timeIn(se.CreatedAt), timeIn(se.SeenAt),
			timeIn(se.ExpiresAt)}, nil, events)
	if err != nil {
		return fmt.Errorf("postgres: create session: %w", err)
	}
	return nil
}

// GetSession returns the session of hash, or store.ErrNotFound.
func (s *Store) GetSession(ctx context.Context, hash []byte) (store.Session, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	se, err := one(ctx, s.pool, scanSession, "SELECT "+sessionCols+" FROM sessions WHERE hash = $1", hash)
	if err != nil {
		return store.Session{}, fmt.Errorf("postgres: get session: %w", err)
	}
	return se, nil
}

// TouchSession sets the session's SeenAt to at; store.ErrNotFound when it
// is gone.
func (s *Store) TouchSession(ctx context.Context, hash []byte, at time.Time) error {
	if at.IsZero() {
		return fmt.Errorf("postgres: touch session: %w", errZeroTime)
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	tag, err := s.pool.Exec(ctx, "UPDATE sessions SET seen_at = $2 WHERE hash = $1", hash, at)
	switch {
	case err != nil:
		return fmt.Errorf("postgres: touch session: %w", dbErr(err))
	case tag.RowsAffected() == 0:
		return fmt.Errorf("postgres: touch session: %w", store.ErrNotFound)
	}
	return nil
}

// DeleteSession removes the session of hash, if stored, and appends events
// in one transaction.
func (s *Store) DeleteSession(ctx context.Context, hash []byte, events ...store.Event) error {
	if err := s.writeWithEvents(ctx, "DELETE FROM sessions WHERE hash = $1", []any{hash}, nil, events); err != nil {
		return fmt.Errorf("postgres: delete session: %w", err)
	}
	return nil
}

// DeleteSessionsOf removes every session of subject and appends events in
// one transaction, and returns how many it removed.
func (s *Store) DeleteSessionsOf(ctx context.Context, subject string, events ...store.Event) (int, error) {
	var n int64
	q, args := "DELETE FROM sessions WHERE subject = $1", []any{subject}
	if !storable(subject) {
		// No session can have it; the events are appended all the same.
		q, args = "SELECT 1 WHERE false", nil
	}
	err := s.writeWithEvents(ctx, q, args, func(tag pgconn.CommandTag) error {
		n = tag.RowsAffected()
		return nil
	}, events)
	if err != nil {
		return 0, fmt.Errorf("postgres: delete sessions of %q: %w", subject, err)
	}
	return int(n), nil
}

// Pending steps.

const pendingCols = "kind, hash, data, created_at, expires_at"

func scanPending(row pgx.CollectableRow) (store.Pending, error) {
	var (
		p        store.Pending
		data     []byte
		cre, exp *time.Time
	)
	if err := row.Scan(&p.Kind, &p.Hash, &data, &cre, &exp); err != nil {
		return store.Pending{}, err
	}
	p.Hash, p.Data = bytesOut(p.Hash), bytesOut(data)
	p.CreatedAt, p.ExpiresAt = timeOut(cre), timeOut(exp)
	return p, nil
}

// PutPending stores p; a (Kind, Hash) stored before is store.ErrConflict.
func (s *Store) PutPending(ctx context.Context, p store.Pending) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	_, err := s.pool.Exec(ctx, "INSERT INTO pending ("+pendingCols+") VALUES ($1, $2, $3, $4, $5)",
		p.Kind, bytesIn(p.Hash), bytesIn(p.Data), timeIn(p.CreatedAt), timeIn(p.ExpiresAt))
	if err = dbErr(err); errors.Is(err, store.ErrAlreadyExists) {
		err = fmt.Errorf("%w: a pending %q step of that hash is stored", store.ErrConflict, p.Kind)
	}
	if err != nil {
		return fmt.Errorf("postgres: put pending: %w", err)
	}
	return nil
}

// GetPending returns the pending step, or store.ErrNotFound.
func (s *Store) GetPending(ctx context.Context, kind string, hash []byte) (store.Pending, error) {
	return s.pending(ctx, "get", "SELECT "+pendingCols+" FROM pending WHERE kind = $1 AND hash = $2", kind, hash)
}

// TakePending deletes the pending step and returns it, in one statement;
// store.ErrNotFound when it is not (or no longer) stored.
func (s *Store) TakePending(ctx context.Context, kind string, hash []byte) (store.Pending, error) {
	return s.pending(ctx, "take", "DELETE FROM pending WHERE kind = $1 AND hash = $2 RETURNING "+pendingCols, kind, hash)
}

// pending runs q, which reads or takes the pending step (kind, hash).
func (s *Store) pending(ctx context.Context, op, q, kind string, hash []byte) (store.Pending, error) {
	if !storable(kind) {
		return store.Pending{}, fmt.Errorf("postgres: %s pending: %w", op, notFound())
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	p, err := one(ctx, s.pool, scanPending, q, kind, hash)
	if err != nil {
		return store.Pending{}, fmt.Errorf("postgres: %s pending %q: %w", op, kind, err)
	}
	return p, nil
}
