package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/mandate-dev/mandate/internal/store"
)

const tokenCols = `jti, parent_jti, grant_type, subject, client_id, chain, delegation_id, scopes, audience,
	subject_version, issued_at, expires_at, revoked, revoked_at, gen`

func scanToken(row pgx.CollectableRow) (store.IssuedToken, error) {
	var (
		t                   store.IssuedToken
		chain, scopes       []string
		iat, exp, revokedAt *time.Time
	)
	err := row.Scan(&t.JTI, &t.ParentJTI, &t.GrantType, &t.Subject, &t.ClientID, &chain, &t.DelegationID,
		&scopes, &t.Audience, &t.SubjectVersion, &iat, &exp, &t.Revoked, &revokedAt, &t.Gen)
	if err != nil {
		return store.IssuedToken{}, err
	}
	t.Chain, t.Scopes = listOut(chain), listOut(scopes)
	t.IssuedAt, t.ExpiresAt, t.RevokedAt = timeOut(iat), timeOut(exp), timeOut(revokedAt)
	return t, nil
}

// GetToken returns the issued token, or store.ErrNotFound.
func (s *Store) GetToken(ctx context.Context, jti string) (store.IssuedToken, error) {
	return get(ctx, s, "token", "SELECT "+tokenCols+" FROM tokens WHERE jti = $1", jti, scanToken)
}

// RevokeToken marks the token revoked at at and appends the events, in one
// transaction; the first revocation also appends a token entry to the
// revocation feed (at, or the store's clock when at is zero, with the
// token's expiry). Revoking a revoked token succeeds, keeps the first
// RevokedAt, appends no entry and still appends the events; an unknown jti
// is store.ErrNotFound and appends nothing. Tokens are not counted by
// Generation.
func (s *Store) RevokeToken(ctx context.Context, jti string, at time.Time, events ...store.Event) error {
	if !storable(jti) {
		return fmt.Errorf("postgres: revoke token %q: %w", jti, notFound())
	}
	err := s.write(ctx, "revoke token", func(ctx context.Context, tx pgx.Tx) error {
		// A concurrent revocation waits here for the row lock and then
		// finds the token revoked: the first RevokedAt stays.
		var exp *time.Time
		err := tx.QueryRow(ctx, "UPDATE tokens SET revoked = true, revoked_at = $1 WHERE jti = $2 AND NOT revoked RETURNING expires_at",
			timeIn(at), jti).Scan(&exp)
		b := &pgx.Batch{}
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			// Revoked already, or unknown.
			var one int
			if err := tx.QueryRow(ctx, "SELECT 1 FROM tokens WHERE jti = $1", jti).Scan(&one); err != nil {
				return dbErr(err)
			}
		case err != nil:
			return dbErr(err)
		default:
			entryAt := at
			if entryAt.IsZero() {
				entryAt = s.now()
			}
			queueRevocations(b, []store.Revocation{store.TokenRevocation(jti, timeOut(exp), entryAt)})
		}
		s.queueEvents(b, events)
		return send(ctx, tx, b)
	})
	if err != nil {
		return fmt.Errorf("postgres: revoke token %q: %w", jti, err)
	}
	return nil
}

// Commit writes the batch's tokens and events in one durable transaction
// (the group commit), sent to the server in one round trip. A jti that
// exists, or appears twice in the batch, is store.ErrAlreadyExists and
// nothing of the batch is written. Events get their Seq in slice order. An
// empty batch writes nothing. Commit does not move Generation.
func (s *Store) Commit(ctx context.Context, b store.Batch) error {
	if len(b.Tokens) == 0 && len(b.Events) == 0 {
		return nil
	}
	for _, t := range b.Tokens {
		if t.JTI == "" {
			return fmt.Errorf("postgres: commit: token with empty jti")
		}
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	batch := &pgx.Batch{}
	queueTokens(batch, b.Tokens)
	s.queueEvents(batch, b.Events)
	if err := send(ctx, s.pool, batch); err != nil {
		return fmt.Errorf("postgres: commit %d tokens, %d events: %w", len(b.Tokens), len(b.Events), err)
	}
	return nil
}

// insertTokens inserts a list of tokens in one statement, whatever its
// length: each column is an array with one element per token, and chain and
// scopes are each one flat array ($15, $16) with every token's bounds in it.
const insertTokens = `INSERT INTO tokens (` + tokenCols + `)
SELECT u.jti, u.parent_jti, u.grant_type, u.subject, u.client_id, ($15::text[])[u.chain_lo:u.chain_hi],
	u.delegation_id, ($16::text[])[u.scopes_lo:u.scopes_hi], u.audience, u.subject_version, u.issued_at,
	u.expires_at, u.revoked, u.revoked_at, u.gen
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::bigint[],
	$9::timestamptz[], $10::timestamptz[], $11::boolean[], $12::timestamptz[], $13::int[], $14::int[],
	$17::int[], $18::int[], $19::bigint[])
	AS u(jti, parent_jti, grant_type, subject, client_id, delegation_id, audience, subject_version,
		issued_at, expires_at, revoked, revoked_at, chain_lo, chain_hi, scopes_lo, scopes_hi, gen)`

// queueTokens queues the statement that inserts tokens.
func queueTokens(b *pgx.Batch, tokens []store.IssuedToken) {
	n := len(tokens)
	if n == 0 {
		return
	}
	var (
		jti, parent, grant, subject, client, delegation, audience = make([]string, n), make([]string, n),
			make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		version, gen               = make([]int64, n), make([]int64, n)
		issued, expires, revokedAt = make([]pgtype.Timestamptz, n), make([]pgtype.Timestamptz, n), make([]pgtype.Timestamptz, n)
		revoked                    = make([]bool, n)
		chain, scopes              ragged
	)
	for i, t := range tokens {
		jti[i], parent[i], grant[i], subject[i], client[i] = t.JTI, t.ParentJTI, t.GrantType, t.Subject, t.ClientID
		delegation[i], audience[i], version[i], gen[i] = t.DelegationID, t.Audience, t.SubjectVersion, t.Gen
		issued[i], expires[i], revoked[i], revokedAt[i] = timestamp(t.IssuedAt), timestamp(t.ExpiresAt), t.Revoked, timestamp(t.RevokedAt)
		chain.add(t.Chain)
		scopes.add(t.Scopes)
	}
	b.Queue(insertTokens, jti, parent, grant, subject, client, delegation, audience, version,
		issued, expires, revoked, revokedAt, chain.lo, chain.hi, chain.flat(), scopes.flat(), scopes.lo, scopes.hi, gen)
}
