-- 0012_signin: what people's sign-in and consent keep (store.SignIn), and a
-- person's password hash, roles and provider. Codes, refresh tokens,
-- sessions and pending steps are found by the SHA-256 of a random value
-- the server handed out; each has an expiry, by which the sweep
-- (store.Sweeper) finds it through an index. A used code or refresh token
-- keeps its row (used_at set) until it expires, so that a second use is
-- recognised as a replay.

ALTER TABLE users ADD COLUMN password_hash TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN roles TEXT NOT NULL DEFAULT '[]';
ALTER TABLE users ADD COLUMN provider TEXT NOT NULL DEFAULT '';

CREATE TABLE auth_codes (
	hash          BLOB NOT NULL PRIMARY KEY,
	client_id     TEXT NOT NULL,
	subject       TEXT NOT NULL,
	actor         TEXT NOT NULL,
	redirect_uri  TEXT NOT NULL,
	challenge     TEXT NOT NULL,
	delegation_id TEXT NOT NULL,
	scopes        TEXT NOT NULL,
	resource      TEXT NOT NULL,
	created_at    INTEGER,
	expires_at    INTEGER NOT NULL,
	used_at       INTEGER
);
CREATE INDEX auth_codes_expires_at ON auth_codes (expires_at);

CREATE TABLE refresh_tokens (
	hash            BLOB NOT NULL PRIMARY KEY,
	delegation_id   TEXT NOT NULL,
	client_id       TEXT NOT NULL,
	subject         TEXT NOT NULL,
	actor           TEXT NOT NULL,
	scopes          TEXT NOT NULL,
	resource        TEXT NOT NULL,
	subject_version INTEGER NOT NULL,
	created_at      INTEGER,
	expires_at      INTEGER NOT NULL,
	used_at         INTEGER
);
CREATE INDEX refresh_tokens_expires_at ON refresh_tokens (expires_at);
CREATE INDEX refresh_tokens_delegation ON refresh_tokens (delegation_id);

CREATE TABLE sessions (
	hash       BLOB NOT NULL PRIMARY KEY,
	subject    TEXT NOT NULL,
	provider   TEXT NOT NULL,
	csrf       TEXT NOT NULL,
	created_at INTEGER,
	seen_at    INTEGER,
	expires_at INTEGER NOT NULL
);
CREATE INDEX sessions_subject ON sessions (subject);
CREATE INDEX sessions_expires_at ON sessions (expires_at);

CREATE TABLE pending (
	kind       TEXT NOT NULL,
	hash       BLOB NOT NULL,
	data       BLOB,
	created_at INTEGER,
	expires_at INTEGER NOT NULL,
	PRIMARY KEY (kind, hash)
);
CREATE INDEX pending_expires_at ON pending (expires_at);
