package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/mandate-dev/mandate/internal/store"
)

const tokenCols = `jti, parent_jti, grant_type, subject, client_id, chain, delegation_id, scopes, audience,
	subject_version, issued_at, expires_at, revoked, revoked_at, gen`

func scanToken(sc scanner) (store.IssuedToken, error) {
	var (
		t                   store.IssuedToken
		chain, scopes       string
		iat, exp, revokedAt sql.NullInt64
	)
	err := sc.Scan(&t.JTI, &t.ParentJTI, &t.GrantType, &t.Subject, &t.ClientID, &chain, &t.DelegationID,
		&scopes, &t.Audience, &t.SubjectVersion, &iat, &exp, &t.Revoked, &revokedAt, &t.Gen)
	if err != nil {
		return store.IssuedToken{}, dbErr(err)
	}
	t.IssuedAt, t.ExpiresAt, t.RevokedAt = timeOut(iat), timeOut(exp), timeOut(revokedAt)
	err = decodeLists(listCol{"chain", chain, &t.Chain}, listCol{"scopes", scopes, &t.Scopes})
	return t, err
}

// GetToken returns the issued token, or store.ErrNotFound.
func (s *Store) GetToken(ctx context.Context, jti string) (store.IssuedToken, error) {
	// A point read by primary key: without ctx's cancellation, which would
	// cost database/sql and the driver a goroutine each per call to watch
	// it (see Commit).
	t, err := scanToken(s.stmts.getToken.QueryRowContext(context.WithoutCancel(ctx), jti))
	if err != nil {
		return store.IssuedToken{}, fmt.Errorf("sqlite: get token %q: %w", jti, err)
	}
	return t, nil
}

// RevokeToken marks the token revoked at at and appends the events, in one
// transaction; the first revocation also appends a token entry to the
// revocation feed (at, or the store's clock when at is zero, with the
// token's expiry). Revoking a revoked token succeeds, keeps the first
// RevokedAt, appends no entry and still appends the events; an unknown jti
// is store.ErrNotFound and appends nothing.
func (s *Store) RevokeToken(ctx context.Context, jti string, at time.Time, events ...store.Event) error {
	err := s.write(ctx, "revoke token", func(tx *sql.Tx) error {
		var exp sql.NullInt64
		err := tx.QueryRowContext(ctx, "UPDATE tokens SET revoked = 1, revoked_at = ? WHERE jti = ? AND revoked = 0 RETURNING expires_at",
			timeIn(at), jti).Scan(&exp)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			// Revoked already, or unknown.
			var one int
			if err := tx.QueryRowContext(ctx, "SELECT 1 FROM tokens WHERE jti = ?", jti).Scan(&one); err != nil {
				return dbErr(err)
			}
		case err != nil:
			return dbErr(err)
		default:
			entryAt := at
			if entryAt.IsZero() {
				entryAt = s.now()
			}
			if err := insertRevocations(ctx, tx, []store.Revocation{store.TokenRevocation(jti, timeOut(exp), entryAt)}); err != nil {
				return err
			}
		}
		return s.insertEvents(ctx, tx, events)
	})
	if err != nil {
		return fmt.Errorf("sqlite: revoke token %q: %w", jti, err)
	}
	return nil
}

// Commit writes the batch's tokens and events in one durable transaction
// (the group commit). A jti that exists, or appears twice in the batch, is
// store.ErrAlreadyExists and nothing of the batch is written. Events get
// their Seq in slice order. An empty batch writes nothing.
func (s *Store) Commit(ctx context.Context, b store.Batch) error {
	if len(b.Tokens) == 0 && len(b.Events) == 0 {
		return nil
	}
	for _, t := range b.Tokens {
		if t.JTI == "" {
			return fmt.Errorf("sqlite: commit: token with empty jti")
		}
	}
	// The statements run without ctx's cancellation (begin still honours
	// it while it waits for the write lock, and database/sql still rolls
	// the transaction back when ctx ends). Under a context that can end, the
	// driver starts a goroutine for every statement, to interrupt it: one
	// per row of a group commit. Once the write lock is held, what is left
	// is local I/O, which an interrupt would not stop anyway (fsync).
	stmtCtx := context.WithoutCancel(ctx)
	err := s.write(ctx, "commit", func(tx *sql.Tx) error {
		if len(b.Tokens) > 0 {
			if err := s.insertTokens(stmtCtx, tx, b.Tokens, b.Events); err != nil {
				return err
			}
		}
		return s.insertEvents(stmtCtx, tx, b.Events)
	})
	if err != nil {
		return fmt.Errorf("sqlite: commit %d tokens, %d events: %w", len(b.Tokens), len(b.Events), err)
	}
	return nil
}

// insertTokens writes the batch's tokens. A token that a record of the
// batch names (its jti) is written outside the sweep's expiry index
// (indexed = 0): the indexer enters it when it indexes that record, so
// that a lone exchange does not write a page of tokens_expires_at. Any
// other token, and every token of a batch large enough to index its own
// records (inlineIndexAt), is indexed at once.
func (s *Store) insertTokens(ctx context.Context, tx *sql.Tx, tokens []store.IssuedToken, events []store.Event) error {
	stmt := tx.StmtContext(ctx, s.stmts.token)
	defer stmt.Close()
	for _, t := range tokens {
		indexed := true
		for _, e := range events {
			if len(events) >= inlineIndexAt {
				break
			}
			if e.JTI == t.JTI {
				indexed = false
				break
			}
		}
		_, err := stmt.ExecContext(ctx, t.JTI, t.ParentJTI, t.GrantType, t.Subject, t.ClientID, listIn(t.Chain),
			t.DelegationID, listIn(t.Scopes), t.Audience, t.SubjectVersion, timeIn(t.IssuedAt), timeIn(t.ExpiresAt),
			boolIn(t.Revoked), timeIn(t.RevokedAt), t.Gen, boolIn(indexed))
		if err != nil {
			return fmt.Errorf("insert token %q: %w", t.JTI, dbErr(err))
		}
	}
	return nil
}
