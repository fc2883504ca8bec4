// Package verify is what a resource server imports to accept Mandate's
// delegated access tokens: it checks a token (RFC 9068 JWT, RFC 8693 act
// chain) and tells the handler on whose behalf the request is made
// (Subject) and which agent makes it (Actor, then the prior ones in
// Chain), with what scopes, context and limits.
//
// Setup is three lines:
//
//	v, err := verify.New(ctx, verify.Config{Issuer: "https://mandate.example", Audience: "https://deploy.example", Algorithms: []string{"EdDSA"}})
//	mux.Handle("POST /deploys", v.Middleware(verify.RequireScope("deploy:create").Then(deploy)))
//	p, _ := verify.FromContext(r.Context()) // in deploy: p.PerformedBy(), p.OnBehalfOf()
//
// Verify runs every check in a fixed order and reports the most severe
// failure as a sentinel error (a bad signature is never reported as
// "expired"); the middleware maps them to RFC 6750 answers: 401
// invalid_token, 403 insufficient_scope, and 503 with Retry-After when the
// keys or the revocation state cannot be known. Each request the
// middleware sees yields one log/slog audit record with the field names of
// Mandate's own audit log; the token is never logged.
//
// Keys come from the issuer's jwks_uri (discovered from its RFC 8414
// metadata unless configured), cached, refetched on an unknown kid at most
// once per 30 s.
//
// Without a Revocation hook a token is valid until it expires. To honour
// revocations as they happen, subscribe to the issuer's revocation feed,
// which Verify then consults in memory on every token:
//
//	feed, err := verify.NewFeed(ctx, verify.FeedConfig{URL: "https://mandate.example/revocations/stream", ClientID: "deploy-api", ClientSecret: secret})
//	v, err := verify.New(ctx, verify.Config{..., Revocation: feed})
//
// The feed fails closed: until its first snapshot has arrived (Feed.Ready
// waits for it), and whenever the issuer has not been heard from for
// FeedConfig.MaxStaleness (30 s), every token is refused with
// ErrRevocationUnavailable and ErrRevocationStale, and the middleware
// answers 503 with Retry-After; it recovers by itself. Feed.WriteMetrics
// reports its staleness for monitoring.
//
// # Forwarding records to the issuer
//
// The records can also go to the issuer, which keeps them in its audit log
// beside the tokens it issued: handlers add facts with Attribute (at most
// 16 per request), and a Forwarder, set as Config.Records, sends the
// records in batches to the issuer's ingest endpoint:
//
//	fw, err := verify.NewForwarder(ctx, verify.ForwarderConfig{URL: "https://mandate.example/audit/ingest", ClientID: "deploy-api", ClientSecret: secret, Dir: "/var/lib/deploy-api/records"})
//	v, err := verify.New(ctx, verify.Config{..., Records: fw})
//	defer fw.Close(shutdownCtx) // sends what is queued, or keeps it in Dir
//
// Forwarding never holds a request: Forwarder.Record queues the record,
// and drops and counts it when MaxQueued records already wait. While the
// issuer cannot be reached or answers 5xx or 429, batches wait in Dir
// (synced files, at most MaxDiskBytes) and are sent oldest first, with
// back-off, when it answers again, by this process or the next one on the
// same Dir. A batch may be sent twice; the issuer keeps one copy of each
// record id. Records the issuer refuses (a 4xx such as 401 for bad
// credentials) are logged and dropped. Forwarder.Stats and WriteMetrics
// report what was sent, queued, buffered, dropped and rejected.
//
// The package imports nothing from Mandate's internal packages.
package verify
