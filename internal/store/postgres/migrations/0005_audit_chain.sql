-- 0005_audit_chain: the audit log's hash chain and its signed checkpoints
-- (THREATS T67, T68, T72), the same records as the SQLite backend's
-- 0006_audit_chain.
--
-- events_head.last_hash is the chain hash of record last_seq (32 zero
-- bytes, auditchain.Genesis, before the first). The transaction that
-- appends events chains them on from it under the row lock that also hands
-- out their seqs, and writes the last one's back before it commits, so the
-- chain follows commit order across every instance, without forks.
--
-- events.hash is each record's chain hash (store.Event.Hash). The records
-- written before this migration are chained in the migration's transaction,
-- in seq order from Genesis, and the column is then made NOT NULL (see
-- chainExisting): every record is chained, or the migration did not
-- happen, and an instance of an older build still running on the schema
-- fails to append events (closed) instead of breaking the chain.

ALTER TABLE events_head ADD COLUMN last_hash bytea NOT NULL
	DEFAULT '\x0000000000000000000000000000000000000000000000000000000000000000'
	CHECK (octet_length(last_hash) = 32);
ALTER TABLE events_head ALTER COLUMN last_hash DROP DEFAULT;

ALTER TABLE events ADD COLUMN hash bytea;

-- audit_checkpoints holds the signed checkpoints, apart from the events:
-- one per size, in size order, never changed. tree is the JSON of the
-- auditchain.Tree at size.
CREATE TABLE audit_checkpoints (
	size       bigint PRIMARY KEY CHECK (size > 0),
	root       bytea NOT NULL,
	head       bytea NOT NULL,
	tree       bytea,
	note       text NOT NULL,
	created_at timestamptz NOT NULL
);

-- audit_checkpoint_key is the checkpoint signing key: one row, created once.
CREATE TABLE audit_checkpoint_key (
	id         integer PRIMARY KEY CHECK (id = 1),
	key        text NOT NULL,
	created_at timestamptz NOT NULL
);
