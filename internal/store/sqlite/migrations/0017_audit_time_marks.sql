-- 0017_audit_time_marks: a seq bound for the audit log's time windows,
-- which have had no index since 0004. A mark (max_time, seq) states that
-- no record up to seq has a time after max_time: the running maximum of
-- the times, so it holds whatever order the times were written in (a
-- verifier's record carries the verifier's clock). The append writes one
-- mark each time the log passes a multiple of 1024 records
-- (timeMarkEvery); QueryEvents reads every record after the last mark
-- whose max_time is before EventFilter.Since, and none before it. The
-- marks of the records already written are made here, one per whole
-- block of 1024, the running maximum taken over the blocks in seq order;
-- a record without a time counts as 0 (it is in no window).

CREATE TABLE event_time_marks (
	max_time INTEGER NOT NULL,
	seq      INTEGER NOT NULL,
	PRIMARY KEY (max_time, seq)
) WITHOUT ROWID;

INSERT INTO event_time_marks (max_time, seq)
SELECT coalesce(max(block_max) OVER (ORDER BY block ROWS UNBOUNDED PRECEDING), 0), block * 1024
FROM (SELECT (seq + 1023) / 1024 AS block, max(time) AS block_max FROM events GROUP BY 1)
WHERE block * 1024 <= (SELECT coalesce(max(seq), 0) FROM sqlite_sequence WHERE name = 'events');
