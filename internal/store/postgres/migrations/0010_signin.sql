-- 0010_signin: what people's sign-in and consent keep (store.SignIn), and a
-- person's password hash, roles and provider; the same records as the
-- SQLite backend's 0012_signin. Codes, refresh tokens, sessions and
-- pending steps are found by the SHA-256 of a random value the server
-- handed out; each has an expiry, by which the sweep (store.Sweeper) finds
-- it through an index. A used code or refresh token keeps its row (used_at
-- set) until it expires, so that a second use is recognised as a replay.
-- The tables are new and the columns have constant defaults, so the
-- migration rewrites no table.

ALTER TABLE users ADD COLUMN password_hash text NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN roles text[] NOT NULL DEFAULT '{}';
ALTER TABLE users ADD COLUMN provider text NOT NULL DEFAULT '';

CREATE TABLE auth_codes (
	hash          bytea PRIMARY KEY,
	client_id     text NOT NULL,
	subject       text NOT NULL,
	actor         text NOT NULL,
	redirect_uri  text NOT NULL,
	challenge     text NOT NULL,
	delegation_id text NOT NULL,
	scopes        text[] NOT NULL,
	resource      text NOT NULL,
	created_at    timestamptz,
	expires_at    timestamptz NOT NULL,
	used_at       timestamptz
);
CREATE INDEX auth_codes_expires_at ON auth_codes (expires_at);

CREATE TABLE refresh_tokens (
	hash            bytea PRIMARY KEY,
	delegation_id   text NOT NULL,
	client_id       text NOT NULL,
	subject         text NOT NULL,
	actor           text NOT NULL,
	scopes          text[] NOT NULL,
	resource        text NOT NULL,
	subject_version bigint NOT NULL,
	created_at      timestamptz,
	expires_at      timestamptz NOT NULL,
	used_at         timestamptz
);
CREATE INDEX refresh_tokens_expires_at ON refresh_tokens (expires_at);
CREATE INDEX refresh_tokens_delegation ON refresh_tokens (delegation_id);

CREATE TABLE sessions (
	hash       bytea PRIMARY KEY,
	subject    text COLLATE "C" NOT NULL,
	provider   text NOT NULL,
	csrf       text NOT NULL,
	created_at timestamptz,
	seen_at    timestamptz,
	expires_at timestamptz NOT NULL
);
CREATE INDEX sessions_subject ON sessions (subject);
CREATE INDEX sessions_expires_at ON sessions (expires_at);

CREATE TABLE pending (
	kind       text COLLATE "C" NOT NULL,
	hash       bytea NOT NULL,
	data       bytea,
	created_at timestamptz,
	expires_at timestamptz NOT NULL,
	PRIMARY KEY (kind, hash)
);
CREATE INDEX pending_expires_at ON pending (expires_at);
