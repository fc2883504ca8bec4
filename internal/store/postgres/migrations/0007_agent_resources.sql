-- 0007_agent_resources: the resource identifiers (token audiences) a client
-- serves as a resource server (store.Agent.Resources), the same column as
-- the SQLite backend's 0009_agent_resources: a reporter (audit:report)
-- forwards verifiers' records for these audiences only. Agents stored
-- before have none, so they report for their own id only until the
-- configuration names their resources. A constant default rewrites no
-- rows.

ALTER TABLE agents ADD COLUMN resources text[] NOT NULL DEFAULT '{}';
