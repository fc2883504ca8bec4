-- 0001_init: the first schema, the same records as the SQLite backend's
-- 0001_init. Times are timestamptz (PostgreSQL keeps microseconds), NULL for
-- the zero time; lists are text[]; keys are COLLATE "C" so that lists sort
-- bytewise, as SQLite's BINARY collation does, whatever the database's locale.
-- The tables are created in the schema the store was opened with (the
-- migration runs with search_path set to it).

CREATE TABLE generation (
	id    integer PRIMARY KEY CHECK (id = 1),
	value bigint NOT NULL
);
INSERT INTO generation (id, value) VALUES (1, 0);

-- events_head is the last audit seq handed out. A transaction that appends
-- events updates it just before it commits and so holds its row lock until
-- the commit: seqs are handed out in commit order, without gaps, by every
-- instance on the database (one total order, no forks).
CREATE TABLE events_head (
	id       integer PRIMARY KEY CHECK (id = 1),
	last_seq bigint NOT NULL
);
INSERT INTO events_head (id, last_seq) VALUES (1, 0);

CREATE TABLE users (
	id          text COLLATE "C" PRIMARY KEY,
	permissions text[] NOT NULL,
	version     bigint NOT NULL,
	created_at  timestamptz,
	updated_at  timestamptz
);

CREATE TABLE agents (
	id          text COLLATE "C" PRIMARY KEY,
	secret_hash bytea,
	jwks        text,
	jwks_uri    text NOT NULL,
	scopes      text[] NOT NULL,
	delegate_to text[] NOT NULL,
	max_depth   bigint NOT NULL,
	disabled    boolean NOT NULL,
	created_at  timestamptz,
	updated_at  timestamptz
);

CREATE TABLE delegations (
	id         text COLLATE "C" PRIMARY KEY,
	subject    text NOT NULL,
	actor      text NOT NULL,
	scopes     text[] NOT NULL,
	audiences  text[] NOT NULL,
	max_depth  bigint NOT NULL,
	expires    timestamptz,
	source     text NOT NULL,
	revoked    boolean NOT NULL,
	revoked_at timestamptz,
	created_at timestamptz
);
CREATE INDEX delegations_subject ON delegations (subject);
CREATE INDEX delegations_actor ON delegations (actor);

CREATE TABLE tokens (
	jti             text COLLATE "C" PRIMARY KEY,
	parent_jti      text NOT NULL,
	grant_type      text NOT NULL,
	subject         text NOT NULL,
	client_id       text NOT NULL,
	chain           text[] NOT NULL,
	delegation_id   text NOT NULL,
	scopes          text[] NOT NULL,
	audience        text NOT NULL,
	subject_version bigint NOT NULL,
	issued_at       timestamptz,
	expires_at      timestamptz,
	revoked         boolean NOT NULL,
	revoked_at      timestamptz
);

CREATE TABLE signing_keys (
	kid         text COLLATE "C" PRIMARY KEY,
	alg         text NOT NULL,
	private     bytea,
	state       text NOT NULL,
	activate_at timestamptz,
	retire_at   timestamptz,
	created_at  timestamptz
);

CREATE TABLE events (
	seq           bigint PRIMARY KEY,
	id            text NOT NULL,
	time          timestamptz,
	request_id    text NOT NULL,
	action        text NOT NULL,
	result        text NOT NULL,
	reason        text NOT NULL,
	detail        text NOT NULL,
	performer     text NOT NULL,
	on_behalf     text NOT NULL,
	chain         text[] NOT NULL,
	client_id     text NOT NULL,
	scopes        text[] NOT NULL,
	requested     text[] NOT NULL,
	audience      text NOT NULL,
	resource      text NOT NULL,
	context       text,
	delegation_id text NOT NULL,
	jti           text NOT NULL,
	parent_jti    text NOT NULL
);
CREATE INDEX events_on_behalf ON events (on_behalf, seq);
CREATE INDEX events_action ON events (action, seq);
CREATE INDEX events_jti ON events (jti, seq);
CREATE INDEX events_parent_jti ON events (parent_jti, seq);
CREATE INDEX events_time ON events (time);

-- event_actors holds every actor an event names (its chain, performer and
-- client), so that "everything agent X did" is an index lookup.
CREATE TABLE event_actors (
	actor text NOT NULL,
	seq   bigint NOT NULL REFERENCES events (seq),
	PRIMARY KEY (actor, seq)
);

CREATE TABLE nonces (
	namespace text COLLATE "C" NOT NULL,
	id        text COLLATE "C" NOT NULL,
	expires   timestamptz NOT NULL,
	PRIMARY KEY (namespace, id)
);
CREATE INDEX nonces_expires ON nonces (expires);
