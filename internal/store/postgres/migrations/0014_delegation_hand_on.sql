-- 0014_delegation_hand_on: whom the actor may hand a delegation's tokens
-- on to, and the audiences such a later hop may reach
-- (store.Delegation.DelegateTo and HandOn), the same columns as the SQLite
-- backend's 0016_delegation_hand_on. Delegations stored before have none.
-- A constant default rewrites no rows.

ALTER TABLE delegations ADD COLUMN delegate_to text[] NOT NULL DEFAULT '{}';
ALTER TABLE delegations ADD COLUMN hand_on text[] NOT NULL DEFAULT '{}';
