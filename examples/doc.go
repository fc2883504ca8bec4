// Package examples holds small real services protected by the verify
// package, the ones `mandate demo` runs: deployapi (deploy:create; prod
// only from the CI pipeline), monitoringapi (monitoring:read) and
// expenseapi (expense approvals within the person's limit). Each is a few
// lines of verify setup around an ordinary handler, and serves its RFC 9728
// protected-resource metadata at /.well-known/oauth-protected-resource,
// where its 401 answers point (WWW-Authenticate resource_metadata).
package examples
