-- 0014_upstream_grants: what a recheck at an identity provider redeems
-- (store.UpstreamGrants). One row per person and provider, holding the
-- provider's refresh token sealed by the server; the sweep leaves them:
-- a row ends with its person (DeleteUser) or when the provider refuses it.
-- The key that seals them is one row, created once.

CREATE TABLE upstream_grants (
	subject    TEXT NOT NULL,
	provider   TEXT NOT NULL,
	sealed     BLOB NOT NULL,
	checked_at INTEGER NOT NULL,
	created_at INTEGER,
	PRIMARY KEY (subject, provider)
);
CREATE INDEX upstream_grants_due ON upstream_grants (provider, checked_at);

CREATE TABLE upstream_grant_key (
	id         INTEGER PRIMARY KEY CHECK (id = 1),
	key        BLOB NOT NULL,
	created_at INTEGER NOT NULL
);
