// Package directory is the domain core for people (users), agents,
// delegations and revocations: the one place that decides what such a
// record may be (ValidateUser, ValidateAgent, ValidateDelegation) and the
// one place that writes one, each write with its audit record in the same
// transaction and the Performer who took it. The admin API, provisioning
// from the configuration file and the CLI call it, and later the sign-in
// and consent pages; it has no net/http and answers with domain errors
// (ErrNotFound, ErrInvalid with the field, ErrConflict).
//
// The arrows: internal/config, the file format, imports directory for its
// limits and rules, never the other way round, so that the rules are the
// domain's and the file is one of several ways to state records.
package directory
