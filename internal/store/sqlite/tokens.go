package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/mandate-dev/mandate/internal/store"
)

const tokenCols = `jti, parent_jti, grant_type, subject, client_id, chain, delegation_id, scopes, audience,
	subject_version, issued_at, expires_at, revoked, revoked_at, gen`

// tailTokenCols are the columns of a record that carries a token
// (migration 23): those it shares with the token, then the token's facts
// (tokenfacts.go).
// The identifiers and the chain are in the record's compact forms
// (eventcodec.go): scanCarried and scanGetToken read them back as text,
// the chain NULL as the performer alone.
const tailTokenCols = "jti, parent_jti, on_behalf, client_id, chain, delegation_id, scopes, audience, token, performer"

// getToken reads the token jti from the tokens table, or else from the
// record after the index head that carries it, in one statement, so that
// the indexer moving it from the one to the other between two reads cannot
// hide it. The tokens row is read first, and the records only when there is
// none: getTokenAt reads the one record with seq ?2, getToken walks the
// records after the head by seq (a few hundred while the indexer keeps up).
// ?1 is the jti as the tokens table keeps it (TEXT), ?3 as a record's
// column does (idIn): carriedArgs.
const (
	getTokenRow = "SELECT " + tokenCols + ", NULL, NULL FROM tokens WHERE jti = ?1\nUNION ALL\n" +
		"SELECT jti, parent_jti, '', on_behalf, client_id, chain, delegation_id, scopes, audience, 0, NULL, NULL, 0, NULL, 0, token, performer " +
		"FROM events WHERE "
	carriedBy = "seq > (SELECT seq FROM event_index_head WHERE id = 1) AND jti = ?3 AND token IS NOT NULL " +
		"AND NOT EXISTS (SELECT 1 FROM tokens WHERE jti = ?1)"
	getToken   = getTokenRow + carriedBy
	getTokenAt = getTokenRow + "seq = ?2 AND " + carriedBy
)

// carriedArgs are the arguments of carriedBy for jti, with seq for
// getTokenAt's ?2 (unused by the others).
func carriedArgs(jti string, seq int64) []any { return []any{jti, seq, idIn(jti)} }

// recordChain is the chain column of a record as the token's row keeps
// it: chainIn leaves NULL for the performer alone.
func recordChain(chain sql.NullString, performer string) string {
	if chain.Valid {
		return chain.String
	}
	return listIn([]string{performer})
}

// scanGetToken reads a row of getToken: a tokens row, or a record's
// columns and the token facts it carries.
func scanGetToken(sc scanner) (store.IssuedToken, error) {
	var (
		t                   store.IssuedToken
		scopes              string
		chainCol, performer sql.NullString
		iat, exp, revokedAt sql.NullInt64
		facts               []byte
	)
	err := sc.Scan(idDest{"jti", &t.JTI}, idDest{"parent_jti", &t.ParentJTI}, &t.GrantType, &t.Subject, &t.ClientID, &chainCol,
		idDest{"delegation_id", &t.DelegationID}, &scopes, &t.Audience, &t.SubjectVersion, &iat, &exp, &t.Revoked, &revokedAt, &t.Gen,
		&facts, &performer)
	if err != nil {
		return store.IssuedToken{}, dbErr(err)
	}
	chain := recordChain(chainCol, performer.String)
	if facts != nil {
		r, err := decodeFacts(facts, tokenRow{jti: t.JTI, parent: t.ParentJTI, subject: t.Subject, client: t.ClientID,
			chain: chain, delegation: t.DelegationID, scopes: scopes, audience: t.Audience})
		if err != nil {
			return store.IssuedToken{}, fmt.Errorf("token facts of the record of %q: %w", t.JTI, err)
		}
		return r.token()
	}
	t.IssuedAt, t.ExpiresAt, t.RevokedAt = timeOut(iat), timeOut(exp), timeOut(revokedAt)
	err = decodeLists(listCol{"chain", chain, &t.Chain}, listCol{"scopes", scopes, &t.Scopes})
	return t, err
}

// GetToken returns the issued token, or store.ErrNotFound: from the tokens
// table, or from the record that carries it when the indexer has not
// written its row yet.
func (s *Store) GetToken(ctx context.Context, jti string) (store.IssuedToken, error) {
	// A point read by primary key: without ctx's cancellation, which would
	// cost database/sql and the driver a goroutine each per call to watch
	// it (see Commit).
	ctx = context.WithoutCancel(ctx)
	if seq, ok := s.carried.seqOf(jti); ok {
		t, err := scanGetToken(s.stmts.getTokenAt.QueryRowContext(ctx, carriedArgs(jti, seq)...))
		if !errors.Is(err, store.ErrNotFound) {
			if err != nil {
				return store.IssuedToken{}, fmt.Errorf("sqlite: get token %q: %w", jti, err)
			}
			return t, nil
		}
		// Not where this process saw it committed: walk.
	}
	t, err := scanGetToken(s.stmts.getToken.QueryRowContext(ctx, carriedArgs(jti, 0)...))
	if err != nil {
		return store.IssuedToken{}, fmt.Errorf("sqlite: get token %q: %w", jti, err)
	}
	return t, nil
}

// writeTokenRow writes the row of the token jti that a record after the
// index head carries, if the tokens table does not hold it yet, inside
// tx; RevokeToken runs it first, so that it changes a row.
func writeTokenRow(ctx context.Context, tx *sql.Tx, jti string) error {
	r, err := scanCarried(tx.QueryRowContext(ctx, "SELECT "+tailTokenCols+" FROM events WHERE "+carriedBy, carriedArgs(jti, 0)...))
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil
	case err != nil:
		return err
	}
	return insertCarried(ctx, tx, []tokenRow{r})
}

// scanCarried reads a row of tailTokenCols: a record's columns and the
// token facts it carries, decoded.
func scanCarried(sc scanner) (tokenRow, error) {
	var (
		r                   tokenRow
		chainCol, performer sql.NullString
		facts               []byte
	)
	if err := sc.Scan(idDest{"jti", &r.jti}, idDest{"parent_jti", &r.parent}, &r.subject, &r.client, &chainCol,
		idDest{"delegation_id", &r.delegation}, &r.scopes, &r.audience, &facts, &performer); err != nil {
		return tokenRow{}, dbErr(err)
	}
	r.chain = recordChain(chainCol, performer.String)
	t, err := decodeFacts(facts, r)
	if err != nil {
		return tokenRow{}, fmt.Errorf("token facts of the record of %q: %w", r.jti, err)
	}
	return t, nil
}

// insertCarried writes the tokens rows of carried tokens, not revoked,
// unless their jti has one already (a revocation wrote it first).
func insertCarried(ctx context.Context, tx *sql.Tx, carried []tokenRow) error {
	if len(carried) == 0 {
		return nil
	}
	stmt, err := tx.PrepareContext(ctx, insertTokenRow)
	if err != nil {
		return fmt.Errorf("write the carried tokens: %w", dbErr(err))
	}
	defer stmt.Close()
	for _, t := range carried {
		if _, err := stmt.ExecContext(ctx, t.jti, t.parent, t.grantType, t.subject, t.client, t.chain, t.delegation,
			t.scopes, t.audience, t.subjectVersion, timeIn(t.issued), timeIn(t.expires), 0, nil, t.gen); err != nil {
			return fmt.Errorf("write the row of token %q: %w", t.jti, dbErr(err))
		}
	}
	return nil
}

// insertTokenRow writes a tokens row unless its jti has one: the indexer's
// and a revocation's rows of carried tokens (migration 23). Every row is in
// the sweep's expiry index (indexed = 1).
const insertTokenRow = "INSERT INTO tokens (" + tokenCols + ", indexed) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1) " +
	"ON CONFLICT (jti) DO NOTHING"

// RevokeToken marks the token revoked at at and appends the events, in one
// transaction; the first revocation also appends a token entry to the
// revocation feed (at, or the store's clock when at is zero, with the
// token's expiry). Revoking a revoked token succeeds, keeps the first
// RevokedAt, appends no entry and still appends the events; an unknown jti
// is store.ErrNotFound and appends nothing.
func (s *Store) RevokeToken(ctx context.Context, jti string, at time.Time, events ...store.Event) error {
	err := s.write(ctx, "revoke token", func(tx *sql.Tx) error {
		if err := writeTokenRow(ctx, tx, jti); err != nil {
			return err
		}
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
// their Seq in slice order. An empty batch writes nothing. A token whose
// record is in the batch travels in that record's row, and the indexer
// writes its tokens row later (carryTokens).
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
		var facts [][]byte
		if len(b.Tokens) > 0 {
			if err := s.checkNewTokens(stmtCtx, tx, b.Tokens); err != nil {
				return err
			}
			var rows []store.IssuedToken
			rows, facts = carryTokens(b)
			if err := s.insertTokens(stmtCtx, tx, rows); err != nil {
				return err
			}
		}
		return s.insertEventsCarrying(stmtCtx, tx, b.Events, facts)
	})
	if err != nil {
		return fmt.Errorf("sqlite: commit %d tokens, %d events: %w", len(b.Tokens), len(b.Events), err)
	}
	return nil
}

// carryTokens splits the batch's tokens into those written as tokens rows
// now and those that travel in the row of the first record of the batch
// that names their jti, as its token facts (tokenfacts.go): facts[i] is
// record i's, nil for none. A lone exchange then writes the log's last
// leaf and no page of tokens. A token committed revoked, one without a
// record, and every token of a bulk write (inlineIndexAt records or more,
// which indexes its records itself) are rows at once.
func carryTokens(b store.Batch) (rows []store.IssuedToken, facts [][]byte) {
	if len(b.Events) >= inlineIndexAt {
		return b.Tokens, nil
	}
	for _, t := range b.Tokens {
		i := -1
		if !t.Revoked && t.RevokedAt.IsZero() {
			for j, e := range b.Events {
				if e.JTI == t.JTI && (facts == nil || facts[j] == nil) {
					i = j
					break
				}
			}
		}
		if i < 0 {
			rows = append(rows, t)
			continue
		}
		if facts == nil {
			facts = make([][]byte, len(b.Events))
		}
		facts[i] = encodeFacts(rowOf(t), recordRow(asStored(b.Events[i])))
	}
	return rows, facts
}

// newTokens reads where the log ends (the newest record's seq and chain
// hash), the index head, and a jti of the JSON array ?1 that the tokens
// table holds.
const newTokens = `WITH e AS (SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1)
SELECT coalesce((SELECT seq FROM e), 0), (SELECT hash FROM e), coalesce((SELECT seq FROM event_index_head WHERE id = 1), 0),
	coalesce((SELECT jti FROM tokens WHERE jti IN (SELECT value FROM json_each(?1)) LIMIT 1), '')`

// carriedTokensIn finds a jti of the JSON array ?1 that a record after the
// index head carries, walking those records.
// The records' jtis are in their compact form (idIn), the array's TEXT.
func carriedTokensIn() string {
	return `SELECT jti FROM events WHERE seq > (SELECT seq FROM event_index_head WHERE id = 1)
	AND token IS NOT NULL AND ` + idTextSQL("jti") + ` IN (SELECT value FROM json_each(?1)) LIMIT 1`
}

// checkNewTokens refuses tokens whose jti exists, or that share a jti, with
// store.ErrAlreadyExists. The tokens table's key no longer sees every
// token: a carried one has no row until the indexer writes it. Whether a
// record after the index head carries one of the jtis, it asks s.carried,
// and walks those records only when s.carried does not know them all.
func (s *Store) checkNewTokens(ctx context.Context, tx *sql.Tx, tokens []store.IssuedToken) error {
	jtis := make([]string, len(tokens))
	for i, t := range tokens {
		if slices.Contains(jtis[:i], t.JTI) {
			return fmt.Errorf("token %q: twice in the batch: %w", t.JTI, store.ErrAlreadyExists)
		}
		jtis[i] = t.JTI
	}
	list := listIn(jtis)
	stmt := tx.StmtContext(ctx, s.stmts.newTokens)
	defer stmt.Close()
	var (
		newest, head int64
		newestHash   []byte
		row          string
	)
	if err := stmt.QueryRowContext(ctx, list).Scan(&newest, &newestHash, &head, &row); err != nil {
		return fmt.Errorf("look up the tokens' jtis: %w", dbErr(err))
	}
	if row != "" {
		return fmt.Errorf("token %q: %w", row, store.ErrAlreadyExists)
	}
	carried, known := s.carried.carriedAfter(head, newest, newestHash, jtis)
	if known {
		if carried {
			return fmt.Errorf("a token of the batch: %w", store.ErrAlreadyExists)
		}
		return nil
	}
	walk := tx.StmtContext(ctx, s.stmts.carriedTokensIn)
	defer walk.Close()
	var jti string
	switch err := walk.QueryRowContext(ctx, list).Scan(idDest{"jti", &jti}); {
	case errors.Is(err, sql.ErrNoRows):
		return nil
	case err != nil:
		return fmt.Errorf("look up the tokens' jtis: %w", dbErr(err))
	}
	return fmt.Errorf("token %q: %w", jti, store.ErrAlreadyExists)
}

// insertTokens writes tokens as tokens rows, each in the sweep's expiry
// index (indexed = 1).
func (s *Store) insertTokens(ctx context.Context, tx *sql.Tx, tokens []store.IssuedToken) error {
	if len(tokens) == 0 {
		return nil
	}
	stmt := tx.StmtContext(ctx, s.stmts.token)
	defer stmt.Close()
	for _, t := range tokens {
		_, err := stmt.ExecContext(ctx, t.JTI, t.ParentJTI, t.GrantType, t.Subject, t.ClientID, listIn(t.Chain),
			t.DelegationID, listIn(t.Scopes), t.Audience, t.SubjectVersion, timeIn(t.IssuedAt), timeIn(t.ExpiresAt),
			boolIn(t.Revoked), timeIn(t.RevokedAt), t.Gen)
		if err != nil {
			return fmt.Errorf("insert token %q: %w", t.JTI, dbErr(err))
		}
	}
	return nil
}
