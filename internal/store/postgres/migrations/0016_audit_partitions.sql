-- 0016_audit_partitions: the audit log (events, event_actors) becomes a
-- table partitioned by RANGE (seq), so that retention drops whole
-- partitions once they are archived (no dead rows, no VACUUM FULL) and a
-- query with a seq bound reads only the partitions it names.
--
-- The plan, and why:
--
-- * The key is seq, not time. seq is the chain's order, handed out in
--   append order under the events_head lock; a record's time is the
--   writer's (a verifier reports its own clock), so a record can arrive
--   with a time older than records already archived. Partitioned by time,
--   it would land in a partition already archived and dropped. By seq,
--   partitions fill one after the other and retention drops those wholly
--   at or below the archived size.
-- * Partition k holds seq k*size to (k+1)*size - 1; size is
--   audit_partitioning.size, 1,048,576 records, fixed when the schema is
--   laid out (every instance reads it from here). Partitions are named
--   events_p<k> and event_actors_p<k>.
-- * Every unique key of a partitioned table must contain seq. events (seq)
--   and event_actors (actor, seq) do. The unique index on a verifier's
--   record id (events_request_id) cannot: the ids are kept apart in
--   event_request_ids (id PRIMARY KEY), written by the same statement that
--   appends the records, so a resent batch still meets a unique violation
--   (store.ErrAlreadyExists). Its rows go with their records when retention
--   deletes them.
-- * Partitions are made ahead by the writer, never by a commit: after an
--   append passes a multiple of the time-mark spacing, a short transaction
--   of its own, under an advisory lock shared by every instance, creates the
--   partition after the head's if it is missing (create table, attach). A
--   DEFAULT partition catches a record that outruns it (a role without the
--   right to create tables, say): the append never fails for want of a
--   partition, and the next partition made moves those records out of it
--   before it is attached. Retention deletes the default's archived rows
--   one by one.
-- * Time windows: event_time_marks (max_time, seq), one row every 4,096
--   records, the running maximum of the times up to seq, as the SQLite
--   store's marks: EventFilter.Since becomes a seq bound (every record at or
--   below the last mark before Since is older than Since, whatever the order
--   of the times), which prunes the older partitions at execution.
-- * The rows are moved here, in the migration's one transaction (0017 builds
--   the indexes after the copy); the old tables are dropped.

ALTER TABLE events RENAME TO events_unpartitioned;
ALTER TABLE events_unpartitioned RENAME CONSTRAINT events_pkey TO events_unpartitioned_pkey;
DROP INDEX events_on_behalf, events_action, events_jti, events_parent_jti, events_time, events_delegation,
	events_request_id, events_resource;
ALTER TABLE event_actors RENAME TO event_actors_unpartitioned;
ALTER TABLE event_actors_unpartitioned RENAME CONSTRAINT event_actors_pkey TO event_actors_unpartitioned_pkey;

CREATE TABLE events (
	seq                   bigint NOT NULL,
	id                    text NOT NULL,
	time                  timestamptz,
	request_id            text NOT NULL,
	action                text NOT NULL,
	result                text NOT NULL,
	reason                text NOT NULL,
	detail                text NOT NULL,
	performer             text NOT NULL,
	on_behalf             text NOT NULL,
	chain                 text[] NOT NULL,
	client_id             text NOT NULL,
	scopes                text[] NOT NULL,
	requested             text[] NOT NULL,
	audience              text NOT NULL,
	resource              text NOT NULL,
	context               text,
	delegation_id         text NOT NULL,
	jti                   text NOT NULL,
	parent_jti            text NOT NULL,
	hash                  bytea NOT NULL,
	agent_version         text NOT NULL DEFAULT '',
	authorization_details text,
	operation             text NOT NULL DEFAULT '',
	attributes            text,
	reported_by           text NOT NULL DEFAULT '',
	PRIMARY KEY (seq)
) PARTITION BY RANGE (seq);
CREATE TABLE events_default PARTITION OF events DEFAULT;

CREATE TABLE event_actors (
	actor text NOT NULL,
	seq   bigint NOT NULL,
	PRIMARY KEY (actor, seq)
) PARTITION BY RANGE (seq);
CREATE TABLE event_actors_default PARTITION OF event_actors DEFAULT;

CREATE TABLE event_request_ids (
	id  text PRIMARY KEY,
	seq bigint NOT NULL
);
CREATE INDEX event_request_ids_seq ON event_request_ids (seq);

CREATE TABLE event_time_marks (
	max_time timestamptz NOT NULL,
	seq      bigint NOT NULL,
	PRIMARY KEY (max_time, seq)
);

CREATE TABLE audit_partitioning (
	id   integer PRIMARY KEY CHECK (id = 1),
	size bigint NOT NULL CHECK (size > 0)
);
