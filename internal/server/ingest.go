package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"time"

	"github.com/mandate-dev/mandate/internal/audit"
	"github.com/mandate-dev/mandate/internal/store"
	"github.com/mandate-dev/mandate/oauth"
)

// ScopeAuditReport is the scope a client must hold (in its agent record's
// scopes) to forward verifiers' records to POST /audit/ingest.
const ScopeAuditReport = "audit:report"

// Limits of POST /audit/ingest.
const (
	maxIngestBody    = 1 << 20
	maxIngestRecords = 500
	// maxIngestAhead is how far in the future a record's time may be (the
	// verifier's clock ahead of the server's).
	maxIngestAhead = 5 * time.Minute
)

// ingestRecord is one verifier record, as verify.Record sends it.
type ingestRecord struct {
	ID          string            `json:"id"`
	Time        time.Time         `json:"time"`
	Action      string            `json:"action"`
	Resource    string            `json:"resource"`
	Result      string            `json:"result"`
	Reason      string            `json:"reason"`
	PerformedBy string            `json:"performed_by"`
	OnBehalfOf  string            `json:"on_behalf_of"`
	Chain       []string          `json:"chain"`
	Scopes      []string          `json:"scopes"`
	Audience    string            `json:"audience"`
	JTI         string            `json:"jti"`
	RequestID   string            `json:"request_id"`
	Attributes  map[string]string `json:"attributes"`
	Context     map[string]any    `json:"context"`
}

// ingestID is the form of a record id verify makes.
var ingestID = regexp.MustCompile(`^req_[0-9a-f]{32}$`)

// ingestAnswer is what POST /audit/ingest answers.
type ingestAnswer struct {
	Accepted   int `json:"accepted"`
	Duplicates int `json:"duplicates"`
}

// auditIngest answers POST /audit/ingest: a verifier's per-request records
// (THREATS: verifiers report in), appended to the log as "request" records
// with reported_by set to the authenticated client, which must hold
// ScopeAuditReport. Client authentication is HTTP Basic (the body is
// JSON). Records are the verifier's word: the server checks their shape,
// not their truth. A record whose id the log already holds is skipped, so
// that a verifier may resend a batch whose answer it never saw. Either the
// whole batch is appended (200) or nothing is (400 for a bad record, 503
// when the log cannot be written).
func (s *Server) auditIngest(w http.ResponseWriter, r *http.Request) error {
	client, err := s.authenticate(r, url.Values{})
	if err != nil {
		return err
	}
	if !slices.Contains(client.Scopes, ScopeAuditReport) {
		return s.refuseRequest(r, client.ID, &oauth.Error{Code: oauth.ErrAccessDenied, Status: http.StatusForbidden,
			Reason: "audit_report_not_allowed", Description: "the client may not report audit records: it lacks the " + ScopeAuditReport + " scope"})
	}
	var body struct {
		Records []ingestRecord `json:"records"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxIngestBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		return s.refuseRequest(r, client.ID, oauth.InvalidRequest("malformed_json", "the body is not {\"records\": [...]} as verify sends it", err))
	}
	if len(body.Records) == 0 || len(body.Records) > maxIngestRecords {
		return s.refuseRequest(r, client.ID, oauth.InvalidRequest("records_count", fmt.Sprintf("send 1 to %d records", maxIngestRecords), nil))
	}
	events := make([]store.Event, 0, len(body.Records))
	now := s.cfg.Now()
	for i, rec := range body.Records {
		ev, err := rec.event(now)
		if err != nil {
			return s.refuseRequest(r, client.ID, oauth.InvalidRequest("record_invalid", fmt.Sprintf("record %d: %v", i, err), nil))
		}
		ev.ReportedBy = client.ID
		events = append(events, ev)
	}
	ans := ingestAnswer{Accepted: len(events)}
	err = s.cfg.Audit.RecordAll(r.Context(), events)
	if errors.Is(err, store.ErrAlreadyExists) {
		// A resent batch: append the records the log lacks, one by one.
		ans = ingestAnswer{}
		for _, ev := range events {
			switch err = s.cfg.Audit.Record(r.Context(), ev); {
			case err == nil:
				ans.Accepted++
			case errors.Is(err, store.ErrAlreadyExists):
				ans.Duplicates++
				err = nil
			}
			if err != nil {
				break
			}
		}
	}
	if err != nil {
		return oauth.Unavailable("audit_unavailable", err)
	}
	writeJSON(w, http.StatusOK, ans)
	return nil
}

// refuseRequest records the refusal of an authenticated client's call to
// the ingest or the revocation feed (a "request" record naming the path)
// and returns e; a record that cannot be written answers 503.
func (s *Server) refuseRequest(r *http.Request, clientID string, e *oauth.Error) error {
	ev := audit.Event{
		Action: audit.ActionRequest, Result: audit.ResultRefused, Reason: e.Reason, Detail: e.Description,
		RequestID: requestID(r.Context()), Performer: clientID, ClientID: clientID, Resource: r.URL.Path,
	}
	if rerr := s.cfg.Audit.Record(r.Context(), ev); rerr != nil {
		return oauth.Unavailable("audit_unavailable", errors.Join(e, rerr))
	}
	return e
}

// event checks rec's shape and turns it into a "request" record.
func (rec ingestRecord) event(now time.Time) (store.Event, error) {
	switch {
	case !ingestID.MatchString(rec.ID):
		return store.Event{}, errors.New("id must be req_ and 32 lowercase hex digits")
	case rec.Time.IsZero() || rec.Time.After(now.Add(maxIngestAhead)):
		return store.Event{}, errors.New("time is missing or in the future")
	case rec.Result != audit.ResultGranted && rec.Result != audit.ResultRefused && rec.Result != audit.ResultFailed:
		return store.Event{}, errors.New("result must be granted, refused or failed")
	case len(rec.Chain) > 16 || len(rec.Scopes) > 64 || len(rec.Attributes) > 16:
		return store.Event{}, errors.New("at most 16 actors, 64 scopes and 16 attributes")
	}
	for name, v := range map[string]struct {
		s   string
		max int
	}{
		"action": {rec.Action, 128}, "resource": {rec.Resource, 1024}, "reason": {rec.Reason, 128},
		"performed_by": {rec.PerformedBy, 256}, "on_behalf_of": {rec.OnBehalfOf, 256}, "audience": {rec.Audience, 1024},
		"jti": {rec.JTI, 256}, "request_id": {rec.RequestID, 128},
	} {
		if len(v.s) > v.max {
			return store.Event{}, fmt.Errorf("%s is longer than %d bytes", name, v.max)
		}
	}
	for _, l := range [][]string{rec.Chain, rec.Scopes} {
		for _, item := range l {
			if item == "" || len(item) > 256 {
				return store.Event{}, errors.New("chain and scope items are 1 to 256 bytes")
			}
		}
	}
	ev := store.Event{
		ID: rec.ID, Time: rec.Time.UTC(), Action: audit.ActionRequest, Operation: rec.Action, Resource: rec.Resource,
		Result: rec.Result, Reason: rec.Reason, Performer: rec.PerformedBy, OnBehalf: rec.OnBehalfOf,
		Chain: rec.Chain, Scopes: rec.Scopes, Audience: rec.Audience, JTI: rec.JTI, RequestID: rec.RequestID,
	}
	for k, v := range rec.Attributes {
		if k == "" || len(k) > 64 || len(v) > 256 {
			return store.Event{}, errors.New("attribute names are 1 to 64 bytes, values at most 256")
		}
	}
	if len(rec.Attributes) > 0 {
		ev.Attributes, _ = json.Marshal(rec.Attributes) // a map of strings always encodes
	}
	if len(rec.Context) > 0 {
		b, err := json.Marshal(rec.Context)
		if err != nil || len(b) > 2048 {
			return store.Event{}, errors.New("context is at most 2 KiB of JSON")
		}
		ev.Context = b
	}
	return ev, nil
}
