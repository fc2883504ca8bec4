-- 0012_upstream_grants: what a recheck at an identity provider redeems
-- (store.UpstreamGrants). One row per person and provider, holding the
-- provider's refresh token sealed by the server; the sweep leaves them:
-- a row ends with its person (DeleteUser) or when the provider refuses it.
-- The key that seals them is one row, created once.

CREATE TABLE upstream_grants (
	subject    text NOT NULL,
	provider   text NOT NULL,
	sealed     bytea NOT NULL,
	checked_at timestamptz NOT NULL,
	created_at timestamptz,
	PRIMARY KEY (subject, provider)
);
CREATE INDEX upstream_grants_due ON upstream_grants (provider, checked_at);

CREATE TABLE upstream_grant_key (
	id         integer PRIMARY KEY CHECK (id = 1),
	key        bytea NOT NULL,
	created_at timestamptz NOT NULL
);
