-- 0018_audit_compact: fewer bytes per audit record, every record reading
-- back as it was written (the records' hashes are computed in Go from the
-- store.Event, not from the row).
--
-- * events_request_id goes: event_request_ids (id PRIMARY KEY, seq), kept
--   by every append since migration 16, finds a verifier's record by its
--   id, and the ingest's lookups go through it.
-- * events_time goes: a time window is a seq bound through the time marks
--   (event_time_marks, migration 16), as on SQLite, and the records of the
--   window are read along the primary key from there.
-- * events_jti and events_parent_jti become partial, WHERE jti <> '' and
--   WHERE parent_jti <> '' (as on SQLite): a record without a jti or a
--   parent (a first exchange from an identity provider's token, a refusal)
--   has no entry to keep.
-- * events_action becomes partial: it leaves out the actions written for
--   every token request (request, token.exchange, token.issue), which a
--   query finds by walking the log backwards along the primary key (each
--   is a large share of the records); the other actions (a key created, a
--   delegation revoked, a refusal) are found through it.
-- * event_actors leaves out a record's client, which the new partial index
--   events_client (client_id, seq) finds: a token request's record names
--   one actor, its client, whose row and key cost more than an index
--   entry. The records already written keep their rows; clients_from, the
--   first seq appended after this migration, tells a query where the
--   index takes over (an actor's records are event_actors' below it and
--   either's from it on).
-- * chain and requested may be NULL: an append stores NULL for a chain
--   that is just the performer and for requested scopes that are the
--   granted ones, the usual case, and a read puts them back
--   (coalesce(chain, ARRAY[performer]), coalesce(requested, scopes)). The
--   records already written keep their arrays and read as before. An
--   instance of an older build must not run on the schema after this
--   migration: it would read those NULLs as empty lists.

DROP INDEX events_request_id;
DROP INDEX events_time;
DROP INDEX events_jti;
CREATE INDEX events_jti ON events (jti, seq) WHERE jti <> '';
DROP INDEX events_action;
CREATE INDEX events_action ON events (action, seq) WHERE action NOT IN ('request', 'token.exchange', 'token.issue');
DROP INDEX events_parent_jti;
CREATE INDEX events_parent_jti ON events (parent_jti, seq) WHERE parent_jti <> '';
CREATE INDEX events_client ON events (client_id, seq) WHERE client_id <> '';
ALTER TABLE audit_partitioning ADD COLUMN clients_from bigint NOT NULL DEFAULT 0;
UPDATE audit_partitioning SET clients_from = (SELECT last_seq + 1 FROM events_head WHERE id = 1);
ALTER TABLE events ALTER COLUMN chain DROP NOT NULL, ALTER COLUMN requested DROP NOT NULL;
