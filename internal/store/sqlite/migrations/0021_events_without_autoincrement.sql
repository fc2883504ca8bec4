-- 0021_events_without_autoincrement: events.seq is an INTEGER PRIMARY KEY
-- without AUTOINCREMENT. AUTOINCREMENT kept the last seq handed out in
-- sqlite_sequence, a page of its own that every append wrote: one more
-- WAL frame (4 KiB, fsynced) for a token exchange that commits alone.
--
-- What AUTOINCREMENT protected: a seq is never handed out twice, so that
-- an append after the end of the log was cut (its newest records deleted)
-- failed instead of reusing their numbers. Only someone who can write the
-- database file can cut it, and that person can as well rewrite
-- sqlite_sequence to match the cut, so it stopped only a cut made without
-- looking. The defences against a writer of the file are elsewhere and do
-- not depend on it: every record's hash chains it to the one before; the
-- checkpointer signs the log's size, Merkle root and chain head every few
-- seconds, into a table of its own and a witness file outside the
-- database; and verification (mandate audit verify) reports a log that
-- ends before a signed checkpoint, or whose records up to one were
-- replaced (a cut tail appended over again), as it did before. The append
-- still refuses a log cut below the records the indexer has indexed (the
-- index head, event_index_head), and numbers on from the archived mark
-- (audit_archived) when it is past the newest record, so that a seq an
-- archive holds is never handed out again (insertEvents).
--
-- SQLite cannot drop AUTOINCREMENT in place: the table is rebuilt as its
-- documented procedure says (a new table, the rows copied, the old one
-- dropped, the new one renamed), with its columns, their defaults, the
-- deferred-indexing column indexed, every index (the partial ones with
-- their predicates) and the trigger that requires a chain hash. No table
-- refers to events (event_actors has had no foreign key since migration
-- 4). It copies the whole log once, in the migration's transaction: on a
-- large log it takes time, and the WAL and the file grow by the size of
-- the log until the next checkpoint.

CREATE TABLE events_new (
	seq           INTEGER PRIMARY KEY,
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
	parent_jti    TEXT NOT NULL,
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
SELECT seq, id, time, request_id, action, result, reason, detail, performer, on_behalf, chain,
	client_id, scopes, requested, audience, resource, context, delegation_id, jti, parent_jti, hash, agent_version,
	authorization_details, operation, attributes, reported_by, indexed
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
