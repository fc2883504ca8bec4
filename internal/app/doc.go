// Package app is Mandate's composition root: it turns a validated
// config.Config into live objects (the store and its cache, the signing
// keyring, the grants, the audit recorder, the revocation feed, the HTTP
// handler) and runs the background loops that keep them current and that
// sweep expired rows out of the store (storage.sweep_every). Build opens
// the store the configuration names; BuildWith takes one already open, which
// is how tests wire a server over a fault-injecting store.
//
// `mandate serve`, `mandate demo` and every test that needs a whole server
// build it here, so none of them imports the command line.
package app
