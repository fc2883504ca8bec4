-- 0002_not_before: the global not-before epoch (THREATS T56). Every token
-- issued before it is inactive; a restore from backup advances it to the
-- restore time. value is unix microseconds, NULL while it was never set.

CREATE TABLE not_before (
	id    INTEGER PRIMARY KEY CHECK (id = 1),
	value INTEGER
);
INSERT INTO not_before (id, value) VALUES (1, NULL);
