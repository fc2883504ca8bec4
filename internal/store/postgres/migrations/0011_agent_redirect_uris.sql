-- 0011_agent_redirect_uris: where the authorization endpoint may send a
-- person back to an agent with a code (store.Agent.RedirectURIs), the same
-- column as the SQLite backend's 0013_agent_redirect_uris. Agents stored
-- before have none. A constant default rewrites no rows.

ALTER TABLE agents ADD COLUMN redirect_uris text[] NOT NULL DEFAULT '{}';
