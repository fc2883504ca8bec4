// Package feed is the client of a Mandate issuer's revocation feed: a Feed
// subscribes to the issuer's revocation stream (Server-Sent Events), holds
// the revocations in memory and answers verify.Revocation (and
// verify.KeyRevocation) from that state alone, so that a Verifier honours
// a revocation within a second without a request per token:
//
//	f, err := feed.New(ctx, feed.Config{URL: "https://mandate.example/revocations/stream", ClientID: "deploy-api", ClientSecret: secret})
//	v, err := verify.New(ctx, verify.Config{..., Revocation: f})
//
// The feed fails closed: until its first snapshot has arrived (Feed.Ready
// waits for it), and whenever the issuer has not been heard from for
// Config.MaxStaleness (30 s), Revoked fails with ErrStale, the Verifier
// refuses every token with verify.ErrRevocationUnavailable, and the
// middleware answers 503 with Retry-After; it recovers by itself.
// Feed.WriteMetrics reports its staleness for monitoring.
package feed
