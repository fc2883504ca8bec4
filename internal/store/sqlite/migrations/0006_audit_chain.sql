-- 0006_audit_chain: the audit log's hash chain and its signed checkpoints
-- (THREATS T67, T68, T72).
--
-- events.hash is each record's chain hash (store.Event.Hash). The head of
-- the chain is the last record itself: an append reads the last seq
-- AUTOINCREMENT handed out (sqlite_sequence, which never falls) and that
-- record's hash, and numbers and chains its events on from them. SQLite has
-- one writer at a time, so seqs follow commit order without gaps and the
-- chain follows the seqs without forks, whichever process writes; and,
-- unlike a head row of its own, this writes no page that the append does
-- not write anyway. The PostgreSQL backend, where the head row's lock is
-- what orders writers across instances, keeps the hash in events_head.
--
-- The records written before this migration are chained by Open in the
-- migration's transaction, in seq order from Genesis (32 zero bytes): every
-- record is chained, or the migration did not happen. From then on a
-- record cannot be appended without a hash (the trigger), so a binary from
-- before this migration that still runs on the file fails to write events
-- (closed) instead of breaking the chain.

ALTER TABLE events ADD COLUMN hash BLOB;

CREATE TRIGGER events_hash_required BEFORE INSERT ON events
WHEN NEW.hash IS NULL OR length(NEW.hash) <> 32
BEGIN
	SELECT RAISE(ABORT, 'events.hash is required: the audit log is hash-chained (schema 6)');
END;

-- audit_checkpoints holds the signed checkpoints, apart from the events:
-- one per size, in size order, never changed. tree is the JSON of the
-- auditchain.Tree at size; created_at is unix microseconds.
CREATE TABLE audit_checkpoints (
	size       INTEGER PRIMARY KEY CHECK (size > 0),
	root       BLOB NOT NULL,
	head       BLOB NOT NULL,
	tree       BLOB,
	note       TEXT NOT NULL,
	created_at INTEGER NOT NULL
);

-- audit_checkpoint_key is the checkpoint signing key: one row, created once.
CREATE TABLE audit_checkpoint_key (
	id         INTEGER PRIMARY KEY CHECK (id = 1),
	key        TEXT NOT NULL,
	created_at INTEGER NOT NULL
);
