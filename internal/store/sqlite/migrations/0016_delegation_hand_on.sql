-- 0016_delegation_hand_on: whom the actor may hand a delegation's tokens
-- on to, and the audiences such a later hop may reach
-- (store.Delegation.DelegateTo and HandOn), as a person approved them on
-- the consent page for a resource whose server exchanges its tokens. JSON
-- arrays, as scopes; delegations stored before have none, which changes
-- nothing for them.

ALTER TABLE delegations ADD COLUMN delegate_to TEXT NOT NULL DEFAULT '[]';
ALTER TABLE delegations ADD COLUMN hand_on TEXT NOT NULL DEFAULT '[]';
