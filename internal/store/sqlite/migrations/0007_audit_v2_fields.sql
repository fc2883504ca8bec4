-- 0007_audit_v2_fields: the audit record fields that auditchain encodes as
-- mandate-audit-v2 (store.Event AgentVersion, AuthorizationDetails,
-- Operation, Attributes, ReportedBy). The strings are '' when unset and the
-- JSON values NULL, as context is; the JSON is kept as TEXT, byte for byte
-- as hashed, never normalized. Records written before have none of them and
-- keep their v1 encoding, so the chain verifies across the migration, and a
-- build from before it that still writes to the file writes v1 records.
--
-- One index, a partial one on delegation_id (the trail of one delegation,
-- the query made when it is revoked or questioned), because each index is
-- one more B-tree written by every append on the hot token path; the other
-- new filters (result, audience, resource, agent_version) walk the seq
-- order the queries use anyway, as time filters have since 0004.

ALTER TABLE events ADD COLUMN agent_version TEXT NOT NULL DEFAULT '';
ALTER TABLE events ADD COLUMN authorization_details TEXT;
ALTER TABLE events ADD COLUMN operation TEXT NOT NULL DEFAULT '';
ALTER TABLE events ADD COLUMN attributes TEXT;
ALTER TABLE events ADD COLUMN reported_by TEXT NOT NULL DEFAULT '';

CREATE INDEX events_delegation ON events (delegation_id, seq) WHERE delegation_id <> '';

-- A verifier's record (action 'request', POST /audit/ingest) keeps the id
-- the verifier gave it, so that a batch resent after a lost answer is
-- stored once: the ingest endpoint appends, meets this index's unique
-- violation (store.ErrAlreadyExists), and skips the records already held.
-- Partial, so the server's own records (ids it makes, never resent) write
-- no more B-trees than before.
CREATE UNIQUE INDEX events_request_id ON events (id) WHERE action = 'request';
