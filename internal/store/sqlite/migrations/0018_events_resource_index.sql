-- 0018_events_resource_index: who acted on a resource (forensics'
-- WhoApproved, EventFilter.Resource) is answered from an index instead of
-- walking the log. Partial, as events_delegation: only the records that
-- name a resource (verifiers' request records, and the exchanges that
-- asked for one) are entries in it; QueryEvents' resource filter states
-- the predicate.

CREATE INDEX events_resource ON events (resource, seq) WHERE resource <> '';
