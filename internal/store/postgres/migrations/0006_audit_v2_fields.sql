-- 0006_audit_v2_fields: the audit record fields that auditchain encodes as
-- mandate-audit-v2 (store.Event AgentVersion, AuthorizationDetails,
-- Operation, Attributes, ReportedBy), the same columns as the SQLite
-- backend's 0007_audit_v2_fields. The strings are '' when unset and the
-- JSON values NULL, as context is. The JSON is text, not jsonb: jsonb
-- normalizes spacing, key order and duplicate keys, and the record must read
-- back byte for byte as it was hashed. Adding a column with a constant
-- default rewrites no rows. Records written before have none of the fields
-- and keep their v1 encoding, so the chain verifies across the migration,
-- and an instance of an older build still appending writes v1 records.
--
-- One index, a partial one on delegation_id (the trail of one delegation,
-- the query made when it is revoked or questioned), because each index is
-- written by every append under the events_head lock; the other new filters
-- (result, audience, resource, agent_version) walk the seq order the
-- queries use anyway.

ALTER TABLE events
	ADD COLUMN agent_version text NOT NULL DEFAULT '',
	ADD COLUMN authorization_details text,
	ADD COLUMN operation text NOT NULL DEFAULT '',
	ADD COLUMN attributes text,
	ADD COLUMN reported_by text NOT NULL DEFAULT '';

CREATE INDEX events_delegation ON events (delegation_id, seq) WHERE delegation_id <> '';

-- A verifier's record (action 'request', POST /audit/ingest) keeps the id
-- the verifier gave it, so that a batch resent after a lost answer is
-- stored once: the ingest endpoint appends, meets this index's unique
-- violation (store.ErrAlreadyExists), and skips the records already held.
-- Partial, so the server's own records (ids it makes, never resent) write
-- no more B-trees than before.
CREATE UNIQUE INDEX events_request_id ON events (id) WHERE action = 'request';
