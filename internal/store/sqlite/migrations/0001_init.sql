-- 0001_init: the first schema. Times are unix microseconds (UTC), NULL for
-- the zero time; lists are JSON arrays in TEXT; booleans are 0/1.

CREATE TABLE generation (
	id    INTEGER PRIMARY KEY CHECK (id = 1),
	value INTEGER NOT NULL
);
INSERT INTO generation (id, value) VALUES (1, 0);

CREATE TABLE users (
	id          TEXT PRIMARY KEY,
	permissions TEXT NOT NULL,
	version     INTEGER NOT NULL,
	created_at  INTEGER,
	updated_at  INTEGER
);

CREATE TABLE agents (
	id          TEXT PRIMARY KEY,
	secret_hash BLOB,
	jwks        TEXT,
	jwks_uri    TEXT NOT NULL,
	scopes      TEXT NOT NULL,
	delegate_to TEXT NOT NULL,
	max_depth   INTEGER NOT NULL,
	disabled    INTEGER NOT NULL,
	created_at  INTEGER,
	updated_at  INTEGER
);

CREATE TABLE delegations (
	id         TEXT PRIMARY KEY,
	subject    TEXT NOT NULL,
	actor      TEXT NOT NULL,
	scopes     TEXT NOT NULL,
	audiences  TEXT NOT NULL,
	max_depth  INTEGER NOT NULL,
	expires    INTEGER,
	source     TEXT NOT NULL,
	revoked    INTEGER NOT NULL,
	revoked_at INTEGER,
	created_at INTEGER
);
CREATE INDEX delegations_subject ON delegations (subject);
CREATE INDEX delegations_actor ON delegations (actor);

CREATE TABLE tokens (
	jti             TEXT PRIMARY KEY,
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
	revoked_at      INTEGER
);

CREATE TABLE signing_keys (
	kid         TEXT PRIMARY KEY,
	alg         TEXT NOT NULL,
	private     BLOB,
	state       TEXT NOT NULL,
	activate_at INTEGER,
	retire_at   INTEGER,
	created_at  INTEGER
);

-- seq is assigned in commit order: SQLite has one writer at a time, and
-- AUTOINCREMENT never hands out a seq twice.
CREATE TABLE events (
	seq           INTEGER PRIMARY KEY AUTOINCREMENT,
	id            TEXT NOT NULL,
	time          INTEGER,
	request_id    TEXT NOT NULL,
	action        TEXT NOT NULL,
	result        TEXT NOT NULL,
	reason        TEXT NOT NULL,
	detail        TEXT NOT NULL,
	performer     TEXT NOT NULL,
	on_behalf     TEXT NOT NULL,
	chain         TEXT NOT NULL,
	client_id     TEXT NOT NULL,
	scopes        TEXT NOT NULL,
	requested     TEXT NOT NULL,
	audience      TEXT NOT NULL,
	resource      TEXT NOT NULL,
	context       TEXT,
	delegation_id TEXT NOT NULL,
	jti           TEXT NOT NULL,
	parent_jti    TEXT NOT NULL
);
CREATE INDEX events_on_behalf ON events (on_behalf, seq);
CREATE INDEX events_action ON events (action, seq);
CREATE INDEX events_jti ON events (jti, seq);
CREATE INDEX events_parent_jti ON events (parent_jti, seq);
CREATE INDEX events_time ON events (time);

-- event_actors holds every actor an event names (its chain, performer and
-- client), so that "everything agent X did" is an index lookup.
CREATE TABLE event_actors (
	actor TEXT NOT NULL,
	seq   INTEGER NOT NULL REFERENCES events (seq),
	PRIMARY KEY (actor, seq)
);

CREATE TABLE nonces (
	namespace TEXT NOT NULL,
	id        TEXT NOT NULL,
	expires   INTEGER NOT NULL,
	PRIMARY KEY (namespace, id)
);
CREATE INDEX nonces_expires ON nonces (expires);
