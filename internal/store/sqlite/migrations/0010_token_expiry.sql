-- 0010_token_expiry: an index on the tokens' expiry, so that the background
-- sweep (store.Sweeper) finds the expired rows of a batch without reading
-- the table. Tokens are issued in time order, so new keys land at the
-- index's end. Nonces (nonces_expires) and revocation entries (their
-- partial indexes) have one already.

CREATE INDEX tokens_expires_at ON tokens (expires_at);
