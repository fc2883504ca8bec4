-- 0004_lean_writes: fewer B-tree pages per issued token, the hot write of
-- the token endpoint. event_actors becomes a WITHOUT ROWID table (one
-- B-tree instead of a table and its primary-key index) and drops its
-- foreign key (rows are only ever written with their event, in
-- the same transaction), and events loses its time index (time filters
-- walk the seq order the queries use anyway).

CREATE TABLE event_actors_new (
	actor TEXT NOT NULL,
	seq   INTEGER NOT NULL,
	PRIMARY KEY (actor, seq)
) WITHOUT ROWID;
INSERT INTO event_actors_new SELECT actor, seq FROM event_actors;
DROP TABLE event_actors;
ALTER TABLE event_actors_new RENAME TO event_actors;

DROP INDEX events_time;
