-- 0017_audit_partitions_fill: the second half of 0016, in the same
-- transaction, after the range partitions for the existing records were
-- created (partitionExisting): the records are copied in seq order, the
-- old tables dropped, and the indexes built on the filled partitions (one
-- sort each, faster than keeping them during the copy). The indexes are
-- those of the old table, less events_request_id (event_request_ids keeps
-- the ids unique; a plain partial index answers the ingest's lookups).

INSERT INTO events (seq, id, time, request_id, action, result, reason, detail, performer, on_behalf, chain,
	client_id, scopes, requested, audience, resource, context, delegation_id, jti, parent_jti, hash,
	agent_version, authorization_details, operation, attributes, reported_by)
SELECT seq, id, time, request_id, action, result, reason, detail, performer, on_behalf, chain,
	client_id, scopes, requested, audience, resource, context, delegation_id, jti, parent_jti, hash,
	agent_version, authorization_details, operation, attributes, reported_by
FROM events_unpartitioned ORDER BY seq;
INSERT INTO event_actors (actor, seq) SELECT actor, seq FROM event_actors_unpartitioned;
INSERT INTO event_request_ids (id, seq) SELECT id, seq FROM events_unpartitioned WHERE action = 'request';
DROP TABLE events_unpartitioned, event_actors_unpartitioned;

CREATE INDEX events_on_behalf ON events (on_behalf, seq);
CREATE INDEX events_action ON events (action, seq);
CREATE INDEX events_jti ON events (jti, seq);
CREATE INDEX events_parent_jti ON events (parent_jti, seq);
CREATE INDEX events_time ON events (time);
CREATE INDEX events_delegation ON events (delegation_id, seq) WHERE delegation_id <> '';
CREATE INDEX events_request_id ON events (id) WHERE action = 'request';
CREATE INDEX events_resource ON events (resource, seq) WHERE resource <> '';

-- The time marks of the records already written, one per whole block of
-- 4,096 (timeMarkEvery), the running maximum over the blocks in seq order;
-- a record without a time counts as -infinity (it is in no window).
INSERT INTO event_time_marks (max_time, seq)
SELECT coalesce(max(block_max) OVER (ORDER BY block ROWS UNBOUNDED PRECEDING), '-infinity'), block * 4096
FROM (SELECT (seq + 4095) / 4096 AS block, max(time) AS block_max FROM events GROUP BY 1) AS b
WHERE block * 4096 <= (SELECT last_seq FROM events_head WHERE id = 1);

ANALYZE events;
ANALYZE event_actors;
