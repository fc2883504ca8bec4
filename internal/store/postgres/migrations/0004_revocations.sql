-- 0004_revocations: the revocation feed, the same records as the SQLite
-- backend's 0005_revocations. Each change that revokes tokens (see
-- store.Revocations) appends its entries in the same transaction.
-- revocations_head is the last seq handed out, like events_head: a
-- transaction that appends entries advances it and so holds its row lock
-- until it commits, so that seqs are handed out in commit order, without
-- gaps, by every instance on the database; it does not fall when entries
-- are collected. gen is 0 for the kinds without one; expires, NULL for
-- none, is a token entry's token expiry. tokens.gen is the Generation a
-- token was minted at (its gen claim).

CREATE TABLE revocations_head (
	id       integer PRIMARY KEY CHECK (id = 1),
	last_seq bigint NOT NULL
);
INSERT INTO revocations_head (id, last_seq) VALUES (1, 0);

CREATE TABLE revocations (
	seq     bigint PRIMARY KEY,
	kind    text NOT NULL,
	id      text NOT NULL,
	scope   text NOT NULL,
	gen     bigint NOT NULL,
	at      timestamptz NOT NULL,
	expires timestamptz
);
-- CollectRevocations drops token entries by expiry and the others by time.
CREATE INDEX revocations_expires ON revocations (expires) WHERE kind = 'token';
CREATE INDEX revocations_at ON revocations (at) WHERE kind <> 'token';

ALTER TABLE tokens ADD COLUMN gen bigint NOT NULL DEFAULT 0;
