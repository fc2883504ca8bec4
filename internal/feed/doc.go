// Package feed is the server side of the revocation feed: a Hub follows the
// store's revocation entries (polling its head every PollInterval and on
// every local write), holds what is in force as a revocation.Set for the
// server's own checks, and serves subscribers a snapshot and the entries
// that follow it. It knows nothing of HTTP; internal/server streams it.
package feed
