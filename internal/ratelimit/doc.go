// Package ratelimit bounds how often one caller may be served: a token
// bucket per key (a client_id, a remote address), from golang.org/x/time/rate,
// in a map of bounded size (THREATS T78). It is checked before any
// signature, hash or database work, so that a refusal costs next to nothing.
package ratelimit
