-- 0013_agent_redirect_uris: where the authorization endpoint may send a
-- person back to an agent with a code (store.Agent.RedirectURIs). A JSON
-- array, as scopes; agents stored before have none, so they cannot ask
-- people for consent until the configuration or the admin API names them.

ALTER TABLE agents ADD COLUMN redirect_uris TEXT NOT NULL DEFAULT '[]';
