-- 0008_partial_jti_indexes: the audit log's two jti indexes hold only the
-- records that have the value, as events_delegation has since 0007. Most
-- records of the hot token path have no parent_jti (a first exchange, from
-- an identity provider's token, and client_credentials) and every refusal
-- has no jti; an empty value was still a B-tree entry, and so one more page
-- in the WAL, for every append. QueryEvents' jti filter states both
-- predicates, so it keeps using the two indexes.

DROP INDEX events_jti;
CREATE INDEX events_jti ON events (jti, seq) WHERE jti <> '';

DROP INDEX events_parent_jti;
CREATE INDEX events_parent_jti ON events (parent_jti, seq) WHERE parent_jti <> '';
