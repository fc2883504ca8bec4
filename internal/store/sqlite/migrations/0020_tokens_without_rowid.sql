-- 0020_tokens_without_rowid: the tokens table is keyed by its jti alone
-- (WITHOUT ROWID). A rowid table with a TEXT PRIMARY KEY is two B-trees,
-- the rows by rowid and the jti index; an issued token wrote a page of
-- each to the WAL. Now it writes one. Rows are live tokens only (the sweep
-- removes them after their lifetime), so the copy is short.
--
-- The sweep's index on expiry, tokens_expires_at, is kept like the audit
-- log's query indexes (migration 19): a token committed with a record that
-- names its jti is written with indexed = 0, outside the partial index,
-- and the background indexer sets indexed = 1 when it indexes that record;
-- a token committed without one is indexed at once. Sweep indexes what is
-- pending first, in its own transaction, so it finds every expired token.

CREATE TABLE tokens_new (
	jti             TEXT NOT NULL PRIMARY KEY,
	parent_jti      TEXT NOT NULL,
	grant_type      TEXT NOT NULL,
	subject         TEXT NOT NULL,
	client_id       TEXT NOT NULL,
	chain           TEXT NOT NULL,
	delegation_id   TEXT NOT NULL,
	scopes          TEXT NOT NULL,
	audience        TEXT NOT NULL,
	subject_version INTEGER NOT NULL,
	issued_at       INTEGER,
	expires_at      INTEGER,
	revoked         INTEGER NOT NULL,
	revoked_at      INTEGER,
	gen             INTEGER NOT NULL DEFAULT 0,
	indexed         INTEGER NOT NULL DEFAULT 1
) WITHOUT ROWID;
INSERT INTO tokens_new SELECT jti, parent_jti, grant_type, subject, client_id, chain, delegation_id, scopes, audience,
	subject_version, issued_at, expires_at, revoked, revoked_at, gen, 1 FROM tokens;
DROP TABLE tokens;
ALTER TABLE tokens_new RENAME TO tokens;
CREATE INDEX tokens_expires_at ON tokens (expires_at) WHERE indexed = 1;
