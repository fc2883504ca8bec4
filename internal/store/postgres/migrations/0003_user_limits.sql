-- 0003_user_limits: a user's RFC 9396 authorization_details limits, JSON
-- text, NULL for none.

ALTER TABLE users ADD COLUMN limits text;
