-- 0022_compact_event_rows: a record's row and its query indexes take
-- fewer bytes (a token exchange's, with event_actors: 549 B to 400 B,
-- docs/benchmarks.md), read back as the same text, so that every record,
-- its chain hash, the export and every answer stay what they were
-- (eventcodec.go):
--
-- - the identifiers id, request_id, delegation_id, jti and parent_jti,
--   when they are lowercase hex alone or after a prefix of three lowercase
--   letters and '_' ("evt_", "req_", "dlg_"), are a BLOB: a length byte (0
--   or 4), the prefix and the bytes the hex digits spell. Any other value
--   stays TEXT. A value is always written in the one form its text gives
--   it, and filters compare in that form, so the indexes on jti,
--   parent_jti and delegation_id and the unique index of verifiers' record
--   ids answer as before, with keys half as long;
-- - chain is NULL when it is the performer alone (its actor is in
--   event_actors through the performer already);
-- - requested is NULL when it is the scopes granted.
--
-- The rows written before are rewritten in that form, so the table is
-- rebuilt as migration 21 did (a new table, the rows copied in seq order
-- with their compact forms, the old one dropped, the new one renamed, the
-- indexes, partial predicates and the trigger made again). It copies the
-- whole log once, in the migration's transaction: on a large log it takes
-- time (24 s a million records measured, about as long as migration 21:
-- some minutes at ten million; docs/deploy.md says to run mandate migrate
-- first), and the WAL and the file grow by the size of the log until the
-- next checkpoint. The expressions below are idIn's rule in SQL; a test
-- checks that a log written before reads and verifies the same after.

CREATE TABLE events_new (
	seq           INTEGER PRIMARY KEY,
	id            BLOB NOT NULL,
	time          INTEGER,
	request_id    BLOB NOT NULL,
	action        TEXT NOT NULL,
	result        TEXT NOT NULL,
	reason        TEXT NOT NULL,
	detail        TEXT NOT NULL,
	performer     TEXT NOT NULL,
	on_behalf     TEXT NOT NULL,
	chain         TEXT,
	client_id     TEXT NOT NULL,
	scopes        TEXT NOT NULL,
	requested     TEXT,
	audience      TEXT NOT NULL,
	resource      TEXT NOT NULL,
	context       TEXT,
	delegation_id BLOB NOT NULL,
	jti           BLOB NOT NULL,
	parent_jti    BLOB NOT NULL,
	hash                  BLOB,
	agent_version         TEXT NOT NULL DEFAULT '',
	authorization_details TEXT,
	operation             TEXT NOT NULL DEFAULT '',
	attributes            TEXT,
	reported_by           TEXT NOT NULL DEFAULT '',
	indexed               INTEGER NOT NULL DEFAULT 1
);
INSERT INTO events_new (seq, id, time, request_id, action, result, reason, detail, performer, on_behalf, chain,
	client_id, scopes, requested, audience, resource, context, delegation_id, jti, parent_jti, hash, agent_version,
	authorization_details, operation, attributes, reported_by, indexed)
SELECT seq,
	CASE WHEN typeof(id) = 'text' AND length(id) = length(CAST(id AS BLOB))
		AND id GLOB '[a-z][a-z][a-z]_*' AND length(id) >= 12 AND length(id) % 2 = 0
		AND substr(id, 5) NOT GLOB '*[^0-9a-f]*' THEN unhex('04' || hex(substr(id, 1, 4)) || substr(id, 5))
	WHEN typeof(id) = 'text' AND length(id) = length(CAST(id AS BLOB))
		AND length(id) >= 8 AND length(id) % 2 = 0 AND id NOT GLOB '*[^0-9a-f]*'
		THEN unhex('00' || id)
	ELSE id END,
	time,
	CASE WHEN typeof(request_id) = 'text' AND length(request_id) = length(CAST(request_id AS BLOB))
		AND request_id GLOB '[a-z][a-z][a-z]_*' AND length(request_id) >= 12 AND length(request_id) % 2 = 0
		AND substr(request_id, 5) NOT GLOB '*[^0-9a-f]*' THEN unhex('04' || hex(substr(request_id, 1, 4)) || substr(request_id, 5))
	WHEN typeof(request_id) = 'text' AND length(request_id) = length(CAST(request_id AS BLOB))
		AND length(request_id) >= 8 AND length(request_id) % 2 = 0 AND request_id NOT GLOB '*[^0-9a-f]*'
		THEN unhex('00' || request_id)
	ELSE request_id END,
	action, result, reason, detail, performer, on_behalf,
	CASE WHEN performer <> '' AND instr(CAST(performer AS BLOB), x'00') = 0 AND chain = json_array(performer) THEN NULL
		ELSE chain END,
	client_id, scopes,
	CASE WHEN requested = scopes THEN NULL ELSE requested END,
	audience, resource, context,
	CASE WHEN typeof(delegation_id) = 'text' AND length(delegation_id) = length(CAST(delegation_id AS BLOB))
		AND delegation_id GLOB '[a-z][a-z][a-z]_*' AND length(delegation_id) >= 12 AND length(delegation_id) % 2 = 0
		AND substr(delegation_id, 5) NOT GLOB '*[^0-9a-f]*' THEN unhex('04' || hex(substr(delegation_id, 1, 4)) || substr(delegation_id, 5))
	WHEN typeof(delegation_id) = 'text' AND length(delegation_id) = length(CAST(delegation_id AS BLOB))
		AND length(delegation_id) >= 8 AND length(delegation_id) % 2 = 0 AND delegation_id NOT GLOB '*[^0-9a-f]*'
		THEN unhex('00' || delegation_id)
	ELSE delegation_id END,
	CASE WHEN typeof(jti) = 'text' AND length(jti) = length(CAST(jti AS BLOB))
		AND jti GLOB '[a-z][a-z][a-z]_*' AND length(jti) >= 12 AND length(jti) % 2 = 0
		AND substr(jti, 5) NOT GLOB '*[^0-9a-f]*' THEN unhex('04' || hex(substr(jti, 1, 4)) || substr(jti, 5))
	WHEN typeof(jti) = 'text' AND length(jti) = length(CAST(jti AS BLOB))
		AND length(jti) >= 8 AND length(jti) % 2 = 0 AND jti NOT GLOB '*[^0-9a-f]*'
		THEN unhex('00' || jti)
	ELSE jti END,
	CASE WHEN typeof(parent_jti) = 'text' AND length(parent_jti) = length(CAST(parent_jti AS BLOB))
		AND parent_jti GLOB '[a-z][a-z][a-z]_*' AND length(parent_jti) >= 12 AND length(parent_jti) % 2 = 0
		AND substr(parent_jti, 5) NOT GLOB '*[^0-9a-f]*' THEN unhex('04' || hex(substr(parent_jti, 1, 4)) || substr(parent_jti, 5))
	WHEN typeof(parent_jti) = 'text' AND length(parent_jti) = length(CAST(parent_jti AS BLOB))
		AND length(parent_jti) >= 8 AND length(parent_jti) % 2 = 0 AND parent_jti NOT GLOB '*[^0-9a-f]*'
		THEN unhex('00' || parent_jti)
	ELSE parent_jti END,
	hash, agent_version, authorization_details, operation, attributes, reported_by, indexed
FROM events ORDER BY seq;
DROP TABLE events;
ALTER TABLE events_new RENAME TO events;

CREATE UNIQUE INDEX events_request_id ON events (id) WHERE action = 'request';
CREATE INDEX events_on_behalf ON events (on_behalf, seq) WHERE indexed = 1;
CREATE INDEX events_action ON events (action, seq) WHERE indexed = 1;
CREATE INDEX events_jti ON events (jti, seq) WHERE indexed = 1 AND jti <> '';
CREATE INDEX events_parent_jti ON events (parent_jti, seq) WHERE indexed = 1 AND parent_jti <> '';
CREATE INDEX events_delegation ON events (delegation_id, seq) WHERE indexed = 1 AND delegation_id <> '';
CREATE INDEX events_resource ON events (resource, seq) WHERE indexed = 1 AND resource <> '';

CREATE TRIGGER events_hash_required BEFORE INSERT ON events
WHEN NEW.hash IS NULL OR length(NEW.hash) <> 32
BEGIN
	SELECT RAISE(ABORT, 'events.hash is required: the audit log is hash-chained (schema 6)');
END;
