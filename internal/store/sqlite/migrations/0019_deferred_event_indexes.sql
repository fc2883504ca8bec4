-- 0019_deferred_event_indexes: the audit log's query indexes are kept by a
-- background indexer instead of by every append. A record is appended with
-- indexed = 0, which none of the partial indexes below holds, so that an
-- exchange that commits alone writes the table's last leaf and not six
-- more B-tree pages (the indexes, event_actors) to the WAL. The indexer
-- then, in batches, sets indexed = 1 on the records after the head in
-- event_index_head, adds their event_actors rows and moves the head, in one
-- transaction. A record at or below the head is indexed; QueryEvents reads
-- the indexed part through the indexes and the records after the head (a
-- few hundred at most while the indexer keeps up) by seq, in one
-- statement, so that an answer sees every committed record. The indexes
-- are derived data: the records are the log.
--
-- events_resource (migration 18) becomes one of them: who acted on a
-- resource reads the indexed records through it and the tail by seq, as
-- the other filters do, and an append writes no entry of it.
--
-- Every record written before this migration is indexed (the column's
-- default), and the head starts at the last of them. Rebuilding the six
-- indexes takes time on a large log, once.

ALTER TABLE events ADD COLUMN indexed INTEGER NOT NULL DEFAULT 1;

CREATE TABLE event_index_head (
	id  INTEGER PRIMARY KEY CHECK (id = 1),
	seq INTEGER NOT NULL
);
INSERT INTO event_index_head (id, seq) VALUES (1, (SELECT coalesce(max(seq), 0) FROM events));

DROP INDEX events_on_behalf;
CREATE INDEX events_on_behalf ON events (on_behalf, seq) WHERE indexed = 1;

DROP INDEX events_action;
CREATE INDEX events_action ON events (action, seq) WHERE indexed = 1;

DROP INDEX events_jti;
CREATE INDEX events_jti ON events (jti, seq) WHERE indexed = 1 AND jti <> '';

DROP INDEX events_parent_jti;
CREATE INDEX events_parent_jti ON events (parent_jti, seq) WHERE indexed = 1 AND parent_jti <> '';

DROP INDEX events_delegation;
CREATE INDEX events_delegation ON events (delegation_id, seq) WHERE indexed = 1 AND delegation_id <> '';

DROP INDEX events_resource;
CREATE INDEX events_resource ON events (resource, seq) WHERE indexed = 1 AND resource <> '';
