// Package forward sends the audit records a resource server's Verifier
// makes (verify.Record) to the Mandate issuer, which keeps them in its
// audit log beside the tokens it issued. A Forwarder is a
// verify.RecordSink: set it as verify.Config.Records.
//
//	fw, err := forward.New(ctx, forward.Config{URL: "https://mandate.example/audit/ingest", ClientID: "deploy-api", ClientSecret: secret, Dir: "/var/lib/deploy-api/records"})
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
package forward
