-- 0023_tokens_from_the_log: a token committed with the record of its
-- issuance is no longer written to tokens at commit. tokens is keyed by
-- jti, and jtis grow with time: every issued token was appended at the
-- right edge of that B-tree, where SQLite balances three leaves and their
-- parent, and a lone exchange wrote 1.7 pages of tokens to the WAL besides
-- its record's leaf. Now what the record does not already say of the token
-- (its grant type, subject version, generation, issue and expiry times,
-- and any field whose value differs from the record's) travels in the
-- record's row, in the column added here, a few bytes long; the background
-- indexer writes the tokens rows of the records it indexes, in its
-- batches, and a revocation writes the one it revokes. Until then the
-- token is read from its record: a lookup reads the tokens table and the
-- records after the index head in one statement, so that every answer is
-- the same before and after the indexer's batch. The column is not a
-- field of the record: the chain hash, the export and the verification do
-- not see it. It is NULL on every record written before.
--
-- Every tokens row is now in the sweep's expiry index (indexed = 1): the
-- rows of the records the indexer had not reached yet (those after the
-- index head, found by their jti) enter it here. Adding a column changes
-- the schema only, so the migration takes no longer on a large log.

-- Migration 22 keeps a record's jti in a compact form (a BLOB of its hex
-- digits' bytes, eventcodec.go's idIn); the CASE reads it back as the text
-- the tokens table keeps (idTextSQL).
ALTER TABLE events ADD COLUMN token BLOB;
UPDATE tokens SET indexed = 1 WHERE indexed = 0 AND jti IN
	(SELECT CASE WHEN typeof(jti) <> 'blob' THEN jti WHEN substr(jti, 1, 1) = x'04' THEN CAST(substr(jti, 2, 4) AS TEXT) || lower(hex(substr(jti, 6))) ELSE lower(hex(substr(jti, 2))) END
	 FROM events WHERE seq > (SELECT seq FROM event_index_head WHERE id = 1) AND jti <> '');
