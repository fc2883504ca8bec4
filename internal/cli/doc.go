// Package cli is the mandate command: `serve` (the authorization server),
// `config` (check a file, apply it to the store), `keys` (list, rotate,
// revoke signing keys), `migrate`, `store`, `users` (set a person's local
// password, or hash one for the file), `demo` and `audit`. Main takes
// the arguments and output streams and returns the exit code, so the
// commands run in tests exactly as from a shell. The commands build the
// server through internal/app; the load tool is cmd/mandate-bench.
package cli
