-- 0005_revocations: the revocation feed. Each change that revokes tokens
-- (see store.Revocations) appends its entries in the same transaction.
-- revocations_head is the last seq handed out: a writer advances it in its
-- transaction, and SQLite has one writer at a time, so seqs follow commit
-- order without gaps, whichever process writes; it does not fall when
-- entries are collected. gen is 0 for the kinds without one; expires, NULL
-- for none, is a token entry's token expiry. tokens.gen is the Generation a
-- token was minted at (its gen claim).

CREATE TABLE revocations_head (
	id       INTEGER PRIMARY KEY CHECK (id = 1),
	last_seq INTEGER NOT NULL
);
INSERT INTO revocations_head (id, last_seq) VALUES (1, 0);

CREATE TABLE revocations (
	seq     INTEGER PRIMARY KEY,
	kind    TEXT NOT NULL,
	id      TEXT NOT NULL,
	scope   TEXT NOT NULL,
	gen     INTEGER NOT NULL,
	at      INTEGER NOT NULL,
	expires INTEGER
);
-- CollectRevocations drops token entries by expiry and the others by time.
CREATE INDEX revocations_expires ON revocations (expires) WHERE kind = 'token';
CREATE INDEX revocations_at ON revocations (at) WHERE kind <> 'token';

ALTER TABLE tokens ADD COLUMN gen INTEGER NOT NULL DEFAULT 0;
