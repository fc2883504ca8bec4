// Package registration is OAuth 2.0 Dynamic Client Registration (RFC
// 7591): the policy that says who may register a client (open,
// approved_redirects, admin_only), the checks of the metadata a client
// sends, and the client it becomes, created through internal/directory
// with its audit record. A registered client holds no delegations and no
// scopes beyond the configured ceiling, and may use only the
// authorization code and refresh token grants: a person's consent is the
// only way it acts for anyone. It knows no transport: internal/server
// reads the request, limits its rate and records its refusals.
package registration
