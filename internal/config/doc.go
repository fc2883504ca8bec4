// Package config owns Mandate's configuration file: the YAML format, its
// defaults, and the checks that refuse a bad file at start.
//
// Load and Parse decode strictly (an unknown or repeated key is an error),
// fill the defaults from one place (ApplyDefaults) and call Validate. They
// report every problem of a file at once, decoding and validation alike,
// sorted by line, each naming the file, the line and column, the field and
// why (decode.go traces each to its place in the YAML tree).
// The comments on the Config fields are the reference, kept in step with
// docs/config.md. Dev returns the demo configuration of `mandate serve --dev`.
//
// The package reads files (the config, token_file, secret_file,
// client_secret_file) and does no other I/O; no error it returns contains
// a secret.
package config
