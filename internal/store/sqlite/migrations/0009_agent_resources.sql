-- 0009_agent_resources: the resource identifiers (token audiences) a client
-- serves as a resource server (store.Agent.Resources): a reporter
-- (audit:report) forwards verifiers' records for these audiences only. A
-- JSON array, as scopes; agents stored before have none, so they report
-- for their own id only until the configuration names their resources.

ALTER TABLE agents ADD COLUMN resources TEXT NOT NULL DEFAULT '[]';
