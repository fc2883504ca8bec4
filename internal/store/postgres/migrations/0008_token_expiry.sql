-- 0008_token_expiry: an index on the tokens' expiry, so that the background
-- sweep (store.Sweeper) finds the expired rows of a batch without reading
-- the table; the same index as the SQLite backend's 0010_token_expiry.
-- Building it holds writes to tokens for as long as it reads the table: on
-- a large tokens table, run `mandate migrate` at a quiet time. Nonces
-- (nonces_expires) and revocation entries (their partial indexes) have one
-- already.

CREATE INDEX tokens_expires_at ON tokens (expires_at);
