-- 0015_agent_registration: public clients (token_endpoint_auth_method
-- "none"), the client_name an agent registered with, and how it was
-- registered (store.Agent.Public, Name, Registration). Agents stored before
-- are confidential, unnamed, and of unknown registration.

ALTER TABLE agents ADD COLUMN public INTEGER NOT NULL DEFAULT 0;
ALTER TABLE agents ADD COLUMN client_name TEXT NOT NULL DEFAULT '';
ALTER TABLE agents ADD COLUMN registration TEXT NOT NULL DEFAULT '';
