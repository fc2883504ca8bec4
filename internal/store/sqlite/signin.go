package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/mandate-dev/mandate/internal/store"
)

// What people's sign-in and consent keep (store.SignIn). Every write is one
// write transaction: SQLite has one writer at a time, so a read and the
// write that depends on it (a code found unused, then marked used) cannot
// interleave with another's, in this process or another. None of these
// writes bumps the generation: nothing here is cached.

// errZeroTime refuses a use or a touch at the zero time, which would store
// as "never".
var errZeroTime = errors.New("zero time")

// Authorization codes.

const codeCols = `hash, client_id, subject, actor, redirect_uri, challenge, delegation_id, scopes, resource,
	created_at, expires_at, used_at`

func scanCode(sc scanner) (store.AuthCode, error) {
	var (
		c             store.AuthCode
		hash          []byte
		scopes        string
		cre, exp, use sql.NullInt64
	)
	if err := sc.Scan(&hash, &c.ClientID, &c.Subject, &c.Actor, &c.RedirectURI, &c.Challenge, &c.DelegationID,
		&scopes, &c.Resource, &cre, &exp, &use); err != nil {
		return store.AuthCode{}, dbErr(err)
	}
	c.Hash = bytesOut(hash)
	c.CreatedAt, c.ExpiresAt, c.UsedAt = timeOut(cre), timeOut(exp), timeOut(use)
	err := decodeLists(listCol{"scopes", scopes, &c.Scopes})
	return c, err
}

// CreateCode stores c and appends events in one transaction; a hash stored
// before is store.ErrAlreadyExists.
func (s *Store) CreateCode(ctx context.Context, c store.AuthCode, events ...store.Event) error {
	err := s.write(ctx, "create code", func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, "INSERT INTO auth_codes ("+codeCols+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
			bytesIn(c.Hash), c.ClientID, c.Subject, c.Actor, c.RedirectURI, c.Challenge, c.DelegationID,
			listIn(c.Scopes), c.Resource, timeIn(c.CreatedAt), timeIn(c.ExpiresAt), timeIn(c.UsedAt)); err != nil {
			return dbErr(err)
		}
		return s.insertEvents(ctx, tx, events)
	})
	if err != nil {
		return fmt.Errorf("sqlite: create code: %w", err)
	}
	return nil
}

// RedeemCode marks the unused code of hash used at at and returns it, in
// one write transaction; a used code is returned with store.ErrReplay, an
// unknown one is store.ErrNotFound.
func (s *Store) RedeemCode(ctx context.Context, hash []byte, at time.Time) (store.AuthCode, error) {
	if at.IsZero() {
		return store.AuthCode{}, fmt.Errorf("sqlite: redeem code: %w", errZeroTime)
	}
	var c store.AuthCode
	err := s.write(ctx, "redeem code", func(tx *sql.Tx) error {
		var err error
		c, err = scanCode(tx.QueryRowContext(ctx, "SELECT "+codeCols+" FROM auth_codes WHERE hash = ?", hash))
		if err != nil {
			return err
		}
		if !c.UsedAt.IsZero() {
			return store.ErrReplay
		}
		if _, err := tx.ExecContext(ctx, "UPDATE auth_codes SET used_at = ? WHERE hash = ?", timeIn(at), hash); err != nil {
			return dbErr(err)
		}
		c.UsedAt = timeOut(sql.NullInt64{Int64: at.UnixMicro(), Valid: true})
		return nil
	})
	if err != nil {
		if errors.Is(err, store.ErrReplay) {
			return c, fmt.Errorf("sqlite: redeem code: %w", err)
		}
		return store.AuthCode{}, fmt.Errorf("sqlite: redeem code: %w", err)
	}
	return c, nil
}

// Refresh tokens.

const refreshCols = `hash, delegation_id, client_id, subject, actor, scopes, resource, subject_version,
	created_at, expires_at, used_at`

func scanRefresh(sc scanner) (store.RefreshToken, error) {
	var (
		rt            store.RefreshToken
		hash          []byte
		scopes        string
		cre, exp, use sql.NullInt64
	)
	if err := sc.Scan(&hash, &rt.DelegationID, &rt.ClientID, &rt.Subject, &rt.Actor, &scopes, &rt.Resource,
		&rt.SubjectVersion, &cre, &exp, &use); err != nil {
		return store.RefreshToken{}, dbErr(err)
	}
	rt.Hash = bytesOut(hash)
	rt.CreatedAt, rt.ExpiresAt, rt.UsedAt = timeOut(cre), timeOut(exp), timeOut(use)
	err := decodeLists(listCol{"scopes", scopes, &rt.Scopes})
	return rt, err
}

// insertRefresh inserts rt inside tx.
func insertRefresh(ctx context.Context, tx *sql.Tx, rt store.RefreshToken) error {
	_, err := tx.ExecContext(ctx, "INSERT INTO refresh_tokens ("+refreshCols+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
		bytesIn(rt.Hash), rt.DelegationID, rt.ClientID, rt.Subject, rt.Actor, listIn(rt.Scopes), rt.Resource,
		rt.SubjectVersion, timeIn(rt.CreatedAt), timeIn(rt.ExpiresAt), timeIn(rt.UsedAt))
	return dbErr(err)
}

// CreateRefresh stores rt, the first token of a family, and appends events
// in one transaction; a hash stored before is store.ErrAlreadyExists.
func (s *Store) CreateRefresh(ctx context.Context, rt store.RefreshToken, events ...store.Event) error {
	err := s.write(ctx, "create refresh token", func(tx *sql.Tx) error {
		if err := insertRefresh(ctx, tx, rt); err != nil {
			return err
		}
		return s.insertEvents(ctx, tx, events)
	})
	if err != nil {
		return fmt.Errorf("sqlite: create refresh token: %w", err)
	}
	return nil
}

// GetRefresh returns the refresh token of hash, or store.ErrNotFound.
func (s *Store) GetRefresh(ctx context.Context, hash []byte) (store.RefreshToken, error) {
	rt, err := scanRefresh(s.r.QueryRowContext(ctx, "SELECT "+refreshCols+" FROM refresh_tokens WHERE hash = ?", hash))
	if err != nil {
		return store.RefreshToken{}, fmt.Errorf("sqlite: get refresh token: %w", err)
	}
	return rt, nil
}

// RotateRefresh marks the unused token of hash used at at, stores next and
// returns the token used, in one write transaction; a used token is
// returned with store.ErrReplay and nothing is stored, an unknown one is
// store.ErrNotFound.
func (s *Store) RotateRefresh(ctx context.Context, hash []byte, at time.Time, next store.RefreshToken) (store.RefreshToken, error) {
	if at.IsZero() {
		return store.RefreshToken{}, fmt.Errorf("sqlite: rotate refresh token: %w", errZeroTime)
	}
	var rt store.RefreshToken
	err := s.write(ctx, "rotate refresh token", func(tx *sql.Tx) error {
		var err error
		rt, err = scanRefresh(tx.QueryRowContext(ctx, "SELECT "+refreshCols+" FROM refresh_tokens WHERE hash = ?", hash))
		if err != nil {
			return err
		}
		if !rt.UsedAt.IsZero() {
			return store.ErrReplay
		}
		if _, err := tx.ExecContext(ctx, "UPDATE refresh_tokens SET used_at = ? WHERE hash = ?", timeIn(at), hash); err != nil {
			return dbErr(err)
		}
		if err := insertRefresh(ctx, tx, store.NextRefresh(rt, next)); err != nil {
			return fmt.Errorf("store the next token: %w", err)
		}
		rt.UsedAt = timeOut(sql.NullInt64{Int64: at.UnixMicro(), Valid: true})
		return nil
	})
	if err != nil {
		if errors.Is(err, store.ErrReplay) {
			return rt, fmt.Errorf("sqlite: rotate refresh token: %w", err)
		}
		return store.RefreshToken{}, fmt.Errorf("sqlite: rotate refresh token: %w", err)
	}
	return rt, nil
}

// Sessions.

const sessionCols = "hash, subject, provider, csrf, created_at, seen_at, expires_at"

func scanSession(sc scanner) (store.Session, error) {
	var (
		se             store.Session
		hash           []byte
		cre, seen, exp sql.NullInt64
	)
	if err := sc.Scan(&hash, &se.Subject, &se.Provider, &se.CSRF, &cre, &seen, &exp); err != nil {
		return store.Session{}, dbErr(err)
	}
	se.Hash = bytesOut(hash)
	se.CreatedAt, se.SeenAt, se.ExpiresAt = timeOut(cre), timeOut(seen), timeOut(exp)
	return se, nil
}

// CreateSession stores se and appends events in one transaction; a hash
// stored before is store.ErrAlreadyExists.
func (s *Store) CreateSession(ctx context.Context, se store.Session, events ...store.Event) error {
	err := s.write(ctx, "create session", func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, "INSERT INTO sessions ("+sessionCols+") VALUES (?, ?, ?, ?, ?, ?, ?)",
			bytesIn(se.Hash), se.Subject, se.Provider, se.CSRF, timeIn(se.CreatedAt), timeIn(se.SeenAt),
			timeIn(se.ExpiresAt)); err != nil {
			return dbErr(err)
		}
		return s.insertEvents(ctx, tx, events)
	})
	if err != nil {
		return fmt.Errorf("sqlite: create session: %w", err)
	}
	return nil
}

// GetSession returns the session of hash, or store.ErrNotFound.
func (s *Store) GetSession(ctx context.Context, hash []byte) (store.Session, error) {
	se, err := scanSession(s.r.QueryRowContext(ctx, "SELECT "+sessionCols+" FROM sessions WHERE hash = ?", hash))
	if err != nil {
		return store.Session{}, fmt.Errorf("sqlite: get session: %w", err)
	}
	return se, nil
}

// TouchSession sets the session's SeenAt to at; store.ErrNotFound when it
// is gone.
func (s *Store) TouchSession(ctx context.Context, hash []byte, at time.Time) error {
	if at.IsZero() {
		return fmt.Errorf("sqlite: touch session: %w", errZeroTime)
	}
	err := s.write(ctx, "touch session", func(tx *sql.Tx) error {
		return affected(tx.ExecContext(ctx, "UPDATE sessions SET seen_at = ? WHERE hash = ?", timeIn(at), hash))
	})
	if err != nil {
		return fmt.Errorf("sqlite: touch session: %w", err)
	}
	return nil
}

// affected is store.ErrNotFound when the statement whose result is res
// changed no row.
func affected(res sql.Result, err error) error {
	if err != nil {
		return dbErr(err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return dbErr(err)
	}
	if n == 0 {
		return store.ErrNotFound
	}
	return nil
}

// DeleteSession removes the session of hash, if stored, and appends events
// in one transaction.
func (s *Store) DeleteSession(ctx context.Context, hash []byte, events ...store.Event) error {
	err := s.write(ctx, "delete session", func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, "DELETE FROM sessions WHERE hash = ?", hash); err != nil {
			return dbErr(err)
		}
		return s.insertEvents(ctx, tx, events)
	})
	if err != nil {
		return fmt.Errorf("sqlite: delete session: %w", err)
	}
	return nil
}

// DeleteSessionsOf removes every session of subject and appends events in
// one transaction, and returns how many it removed.
func (s *Store) DeleteSessionsOf(ctx context.Context, subject string, events ...store.Event) (int, error) {
	var n int64
	err := s.write(ctx, "delete sessions", func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, "DELETE FROM sessions WHERE subject = ?", subject)
		if err != nil {
			return dbErr(err)
		}
		if n, err = res.RowsAffected(); err != nil {
			return dbErr(err)
		}
		return s.insertEvents(ctx, tx, events)
	})
	if err != nil {
		return 0, fmt.Errorf("sqlite: delete sessions of %q: %w", subject, err)
	}
	return int(n), nil
}

// Pending steps.

const pendingCols = "kind, hash, data, created_at, expires_at"

func scanPending(sc scanner) (store.Pending, error) {
	var (
		p          store.Pending
		hash, data []byte
		cre, exp   sql.NullInt64
	)
	if err := sc.Scan(&p.Kind, &hash, &data, &cre, &exp); err != nil {
		return store.Pending{}, dbErr(err)
	}
	p.Hash, p.Data = bytesOut(hash), bytesOut(data)
	p.CreatedAt, p.ExpiresAt = timeOut(cre), timeOut(exp)
	return p, nil
}

// PutPending stores p; a (Kind, Hash) stored before is store.ErrConflict.
func (s *Store) PutPending(ctx context.Context, p store.Pending) error {
	err := s.write(ctx, "put pending", func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, "INSERT INTO pending ("+pendingCols+") VALUES (?, ?, ?, ?, ?)",
			p.Kind, bytesIn(p.Hash), bytesIn(p.Data), timeIn(p.CreatedAt), timeIn(p.ExpiresAt))
		if err = dbErr(err); errors.Is(err, store.ErrAlreadyExists) {
			return fmt.Errorf("%w: a pending %q step of that hash is stored", store.ErrConflict, p.Kind)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: put pending: %w", err)
	}
	return nil
}

// GetPending returns the pending step, or store.ErrNotFound.
func (s *Store) GetPending(ctx context.Context, kind string, hash []byte) (store.Pending, error) {
	p, err := scanPending(s.r.QueryRowContext(ctx, "SELECT "+pendingCols+" FROM pending WHERE kind = ? AND hash = ?", kind, hash))
	if err != nil {
		return store.Pending{}, fmt.Errorf("sqlite: get pending %q: %w", kind, err)
	}
	return p, nil
}

// TakePending deletes the pending step and returns it, in one statement of
// one write transaction; store.ErrNotFound when it is not (or no longer)
// stored.
func (s *Store) TakePending(ctx context.Context, kind string, hash []byte) (store.Pending, error) {
	var p store.Pending
	err := s.write(ctx, "take pending", func(tx *sql.Tx) error {
		var err error
		p, err = scanPending(tx.QueryRowContext(ctx,
			"DELETE FROM pending WHERE kind = ? AND hash = ? RETURNING "+pendingCols, kind, hash))
		return err
	})
	if err != nil {
		return store.Pending{}, fmt.Errorf("sqlite: take pending %q: %w", kind, err)
	}
	return p, nil
}
