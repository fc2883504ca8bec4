-- 0008_audit_archive: where the archived part of the audit log ends
-- (store.ArchivedLog), the same record as the SQLite backend's
-- 0010_audit_archive. Records 1 to size were moved to archive segments and
-- may be deleted; record size+1 links to head. One row, written only by
-- MarkArchived under an advisory lock, which only moves it forward.
--
-- event_actors loses its foreign key, as the SQLite table did in its
-- 0004_lean_writes: its rows are written with their event in one
-- transaction, and deleted by key with it (DeleteArchivedEvents). Kept, the
-- key would make every deleted event scan event_actors, which has no index
-- by seq.

CREATE TABLE audit_archived (
	id   integer PRIMARY KEY CHECK (id = 1),
	size bigint NOT NULL CHECK (size > 0),
	head bytea NOT NULL,
	tree bytea NOT NULL
);

ALTER TABLE event_actors DROP CONSTRAINT IF EXISTS event_actors_seq_fkey;
