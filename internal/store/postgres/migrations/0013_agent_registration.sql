-- 0013_agent_registration: public clients, the client_name an agent
-- registered with, and how it was registered (store.Agent.Public, Name,
-- Registration), the same columns as the SQLite backend's
-- 0015_agent_registration. Constant defaults rewrite no rows.

ALTER TABLE agents ADD COLUMN public boolean NOT NULL DEFAULT false;
ALTER TABLE agents ADD COLUMN client_name text NOT NULL DEFAULT '';
ALTER TABLE agents ADD COLUMN registration text NOT NULL DEFAULT '';
