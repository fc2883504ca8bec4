// Package server is Mandate's HTTP layer and nothing else: routes.go lists
// every endpoint with what it depends on, handlers parse and bound their
// input, call the domain packages (exchange, clientauth, tokenstate, store),
// and answer with RFC-shaped JSON. Handlers return errors; one place turns an
// error into a response, so a refusal never leaks an internal cause.
package server
