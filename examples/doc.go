// Package examples holds small real services protected by the verify
// package, the ones `mandate demo` runs: deployapi (deploy:create; prod
// only from the CI pipeline), monitoringapi (monitoring:read) and
// expenseapi (expense approvals within the person's limit). Each is a few
// lines of verify setup around an ordinary handler.
package examples
