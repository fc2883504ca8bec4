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
// revocations as they happen, set Config.Revocation to a feed.Feed
// (package verify/feed), which follows the issuer's revocation feed and
// answers in memory; it fails closed when the feed is stale (503 with
// Retry-After).
//
// Handlers add facts to the request's record with Attribute (at most 16
// per request). To keep the records in the issuer's audit log, set
// Config.Records to a forward.Forwarder (package verify/forward), which
// sends them in batches and keeps them on disk while the issuer is away.
//
// The package imports nothing from Mandate's internal packages and
// touches no file system.
package verify
