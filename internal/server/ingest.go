package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mandate-dev/mandate/internal/audit"
	"github.com/mandate-dev/mandate/internal/auditchain"
	"github.com/mandate-dev/mandate/internal/store"
	"github.com/mandate-dev/mandate/oauth"
	"github.com/mandate-dev/mandate/verify"
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
	// ingestEarliest is the earliest time a record may have, in Unix
	// seconds: 2000-01-01T00:00:00Z. A verifier's clock is never that far
	// behind; a record kept through a long outage is not that old.
	ingestEarliest = 946684800
	// ingestAttempts bounds the commits of one batch: another commit is
	// needed only when the same records arrive twice at once (a verifier
	// resending a batch whose answer it has not seen yet).
	ingestAttempts = 3
	// maxRefusalDetail bounds the text of the record of a batch's refused
	// records.
	maxRefusalDetail = 1024
)

// Bounds of one record's fields (bytes), which verify.Record keeps to (its
// doc comment states them; verify's record_bounds tests hold it to them).
const (
	maxIngestAction   = 128
	maxIngestResource = 1024
	maxIngestReason   = 128
	maxIngestActor    = 256
	maxIngestAudience = 1024
	maxIngestJTI      = 256
	maxIngestReqID    = 128
	maxIngestItem     = 256
	maxIngestChain    = 16
	maxIngestScopes   = 64
	maxIngestAttrs    = 16
	maxIngestAttrKey  = 64
	maxIngestAttrVal  = 256
	maxIngestContext  = 2048
)

// ingestID is the form of a record id verify makes.
var ingestID = regexp.MustCompile(`^req_[0-9a-f]{32}$`)

// ingestAnswer is what POST /audit/ingest answers to a batch it read.
type ingestAnswer struct {
	// Accepted is the number of records appended to the log.
	Accepted int `json:"accepted"`
	// Duplicates is the number of records whose id the log already held
	// (or that came twice in the batch): stored once, before.
	Duplicates int `json:"duplicates"`
	// Refused are the records not stored, each with why; never null.
	Refused []ingestRefusal `json:"refused"`
}

// ingestRefusal is one record POST /audit/ingest refused.
type ingestRefusal struct {
	// Index is the record's position in the batch, from 0.
	Index int `json:"index"`
	// ID is the record's id, when it has the form of one.
	ID string `json:"id,omitempty"`
	// Status is the HTTP status the record alone would have had: 400 for a
	// record that is not well formed, 403 for one the reporter may not
	// report.
	Status int `json:"status"`
	// Error is an OAuth-style code: invalid_request or access_denied.
	Error oauth.ErrorCode `json:"error"`
	// Reason is a machine code, such as time_out_of_range.
	Reason string `json:"reason"`
	// Description is a sentence; it never repeats the record.
	Description string `json:"error_description"`
}

// recordError is why one record of a batch is refused.
type recordError struct {
	status      int
	reason      string
	description string
}

func (e *recordError) Error() string { return e.reason + ": " + e.description }

// badRecord is a record that is not well formed (400).
func badRecord(reason, format string, args ...any) *recordError {
	return &recordError{status: http.StatusBadRequest, reason: reason, description: fmt.Sprintf(format, args...)}
}

// auditIngest answers POST /audit/ingest: a verifier's per-request records
// (THREATS: verifiers report in), appended to the log as "request" records
// with reported_by set to the authenticated client, which must hold
// ScopeAuditReport. Client authentication is HTTP Basic (the body is
// JSON); each reporter is held to its rate (Config.IngestLimit: 429 with
// Retry-After beyond it). Records are the verifier's word: the server
// checks their shape, not their truth.
//
// Each record is judged alone (THREATS T99, T100): one that is not well
// formed (an unknown field, a time before 2000 or more than 5 minutes
// ahead, a NUL or another control character, a field over its bound) is
// refused (400) and named in the answer with its index, id and reason,
// and so is one for an audience the reporter does not serve (403,
// mayReport); the others are stored. A record whose jti names a token the
// server issued is stored flagged (audit.AttributeTokenMismatch) when it
// names another subject, chain, performer or audience than that token.
// Times are stored as the log keeps them (auditchain.Time). A record whose
// id the log already holds is skipped, so that a verifier may resend a
// batch whose answer it never saw; the ids are looked up once per batch,
// so a resent batch costs what a new one does. The stored records and the record of the refused ones commit
// together; 503 when the log cannot be written, and nothing is stored.
// A body that is not {"records": [...]} with 1 to 500 records is refused
// whole (400).
func (s *Server) auditIngest(w http.ResponseWriter, r *http.Request) error {
	client, err := s.authenticate(r, url.Values{})
	if err != nil {
		return err
	}
	// Before anything is recorded: a client without the scope is held to
	// the rate too, so that its refusals cannot flood the log.
	if err := s.admitReporter(r, client.ID); err != nil {
		return err
	}
	if !slices.Contains(client.Scopes, ScopeAuditReport) {
		return s.refuseRequest(r, client.ID, &oauth.Error{Code: oauth.ErrAccessDenied, Status: http.StatusForbidden,
			Reason: "audit_report_not_allowed", Description: "the client may not report audit records: it lacks the " + ScopeAuditReport + " scope"})
	}
	var body struct {
		Records []json.RawMessage `json:"records"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxIngestBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		return s.refuseRequest(r, client.ID, oauth.InvalidRequest("malformed_json", "the body is not {\"records\": [...]} as verify sends it", err))
	}
	if len(body.Records) == 0 || len(body.Records) > maxIngestRecords {
		return s.refuseRequest(r, client.ID, oauth.InvalidRequest("records_count", fmt.Sprintf("send 1 to %d records", maxIngestRecords), nil))
	}
	ans := ingestAnswer{Refused: []ingestRefusal{}}
	events := make([]store.Event, 0, len(body.Records))
	seen := make(map[string]bool, len(body.Records))
	now := s.cfg.Now()
	for i, raw := range body.Records {
		ev, id, rerr := decodeIngestRecord(raw, now)
		if rerr == nil {
			rerr = mayReport(client, ev)
		}
		if rerr != nil {
			ans.Refused = append(ans.Refused, refusalOf(i, id, rerr))
			continue
		}
		if seen[ev.ID] {
			ans.Duplicates++
			continue
		}
		seen[ev.ID] = true
		ev.ReportedBy = client.ID
		events = append(events, ev)
	}
	if err := s.flagTokenMismatches(r, events); err != nil {
		return oauth.Unavailable("store_unavailable", err)
	}
	refusal := s.refusedRecordsEvent(r, client.ID, len(body.Records), ans.Refused)
	for attempt := 1; ; attempt++ {
		var held int
		events, held, err = s.withoutHeld(r, events)
		if err != nil {
			return oauth.Unavailable("audit_unavailable", err)
		}
		ans.Duplicates += held
		all := events
		if refusal != nil {
			all = append(slices.Clip(events), *refusal)
		}
		if len(all) == 0 {
			break
		}
		err = s.cfg.Audit.RecordAll(r.Context(), all)
		if err == nil {
			break
		}
		if !errors.Is(err, store.ErrAlreadyExists) || attempt == ingestAttempts {
			return oauth.Unavailable("audit_unavailable", err)
		}
		// The same records were stored meanwhile: look again.
	}
	ans.Accepted = len(events)
	writeJSON(w, http.StatusOK, ans)
	return nil
}

// mayReport refuses (403) a record for an audience the reporter does not
// serve: a reporter reports only for its own client id and its resource
// identifiers (store.Agent.Resources, the agent's resources in the
// configuration), so that it cannot put words in another API's mouth
// (THREATS T101).
func mayReport(client store.Agent, ev store.Event) *recordError {
	if ev.Audience != "" && (ev.Audience == client.ID || slices.Contains(client.Resources, ev.Audience)) {
		return nil
	}
	return &recordError{status: http.StatusForbidden, reason: "audience_not_allowed",
		description: "the client reports only for its own id and the resources it is registered for"}
}

// flagTokenMismatches checks each record whose jti names a token the
// server issued against that token (one lookup per jti of the batch) and
// adds audit.AttributeTokenMismatch to those that differ. A jti the store
// does not know (another issuer's, or a token since collected) is not
// checked; a store that cannot be read fails the batch.
func (s *Server) flagTokenMismatches(r *http.Request, events []store.Event) error {
	tokens := map[string]*store.IssuedToken{}
	for i := range events {
		ev := &events[i]
		if ev.JTI == "" {
			continue
		}
		tok, looked := tokens[ev.JTI]
		if !looked {
			t, err := s.cfg.Store.GetToken(r.Context(), ev.JTI)
			switch {
			case err == nil:
				tok = &t
			case !errors.Is(err, store.ErrNotFound):
				return fmt.Errorf("look up token %q: %w", ev.JTI, err)
			}
			tokens[ev.JTI] = tok
		}
		if tok == nil {
			continue
		}
		if differ := tokenMismatch(*tok, *ev); differ != "" {
			attrs := map[string]string{}
			if len(ev.Attributes) > 0 {
				_ = json.Unmarshal(ev.Attributes, &attrs) // a map of strings, as event made it
			}
			attrs[audit.AttributeTokenMismatch] = differ
			ev.Attributes, _ = json.Marshal(attrs)
		}
	}
	return nil
}

// tokenMismatch names the fields of ev that differ from the token it
// names, comma-separated; "" when none does.
func tokenMismatch(tok store.IssuedToken, ev store.Event) string {
	performer := tok.Subject
	if len(tok.Chain) > 0 {
		performer = tok.Chain[0]
	}
	var differ []string
	for _, f := range []struct {
		name string
		same bool
	}{
		{"subject", ev.OnBehalf == tok.Subject},
		{"chain", slices.Equal(ev.Chain, tok.Chain) || len(ev.Chain) == 0 && len(tok.Chain) == 0},
		{"performed_by", ev.Performer == performer},
		{"audience", ev.Audience == tok.Audience},
	} {
		if !f.same {
			differ = append(differ, f.name)
		}
	}
	return strings.Join(differ, ",")
}

// withoutHeld returns events without those whose id the log already holds
// (one query for the whole batch), and how many those were.
func (s *Server) withoutHeld(r *http.Request, events []store.Event) ([]store.Event, int, error) {
	if len(events) == 0 {
		return events, 0, nil
	}
	ids := make([]string, len(events))
	for i, ev := range events {
		ids[i] = ev.ID
	}
	held, err := s.cfg.Store.QueryEvents(r.Context(), store.EventFilter{Action: audit.ActionRequest, IDs: ids, Limit: len(ids)})
	if err != nil {
		return nil, 0, fmt.Errorf("look up the batch's ids: %w", err)
	}
	if len(held) == 0 {
		return events, 0, nil
	}
	known := make(map[string]bool, len(held))
	for _, ev := range held {
		known[ev.ID] = true
	}
	out := slices.DeleteFunc(events, func(ev store.Event) bool { return known[ev.ID] })
	return out, len(ids) - len(out), nil
}

// admitReporter applies the rate of an authenticated client at
// /audit/ingest (Config.IngestLimit): beyond it the call is answered 429
// with Retry-After, recorded at most once a second per client with the
// count of its refusals.
func (s *Server) admitReporter(r *http.Request, clientID string) error {
	if l := s.cfg.IngestLimit; l == nil || l.Allow(clientID) {
		return nil
	}
	e := &oauth.Error{Code: oauth.ErrTemporarilyUnavailable, Reason: "rate_limited_reporter", Status: http.StatusTooManyRequests,
		Description: "too many batches, retry later"}
	ev := audit.Event{
		Action: audit.ActionRequest, Result: audit.ResultRefused, Reason: e.Reason, Detail: e.Description,
		RequestID: requestID(r.Context()), Resource: r.URL.Path, Performer: clientID, ClientID: clientID,
	}
	if err := s.recordTallied(r.Context(), &s.limitRefusals, s.limitRefusals.add("reporter "+clientID, ev, s.cfg.Now())); err != nil {
		return oauth.Unavailable("audit_unavailable", errors.Join(e, err))
	}
	return e
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

// refusedRecordsEvent is the record of the records of a batch that were
// refused, committed with the batch's stored ones; nil when none was. Its
// text names each (index, id, reason) up to maxRefusalDetail bytes, and
// its attributes count them.
func (s *Server) refusedRecordsEvent(r *http.Request, clientID string, total int, refused []ingestRefusal) *store.Event {
	if len(refused) == 0 {
		return nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d of %d records refused:", len(refused), total)
	for i, ref := range refused {
		item := fmt.Sprintf(" record %d", ref.Index)
		if ref.ID != "" {
			item += " (" + ref.ID + ")"
		}
		item += " " + ref.Reason + ";"
		if b.Len()+len(item) > maxRefusalDetail {
			fmt.Fprintf(&b, " and %d more", len(refused)-i)
			break
		}
		b.WriteString(item)
	}
	attrs, _ := json.Marshal(map[string]string{"refused": strconv.Itoa(len(refused)), "records": strconv.Itoa(total)})
	return &store.Event{
		Action: audit.ActionRequest, Result: audit.ResultRefused, Reason: "records_refused", Detail: strings.TrimSuffix(b.String(), ";"),
		RequestID: requestID(r.Context()), Performer: clientID, ClientID: clientID, Resource: r.URL.Path, Attributes: attrs,
	}
}

// refusalOf is the answer's entry for record i, refused with err.
func refusalOf(i int, id string, err *recordError) ingestRefusal {
	code := oauth.ErrInvalidRequest
	if err.status == http.StatusForbidden {
		code = oauth.ErrAccessDenied
	}
	if !ingestID.MatchString(id) {
		id = ""
	}
	return ingestRefusal{Index: i, ID: id, Status: err.status, Error: code, Reason: err.reason, Description: err.description}
}

// decodeIngestRecord reads one record of a batch, a verify.Record as a
// verifier encodes it (no other member), and checks it (ingestEvent). It
// returns the record's id as sent, for the answer, whatever else is wrong.
func decodeIngestRecord(raw json.RawMessage, now time.Time) (store.Event, string, *recordError) {
	var rec verify.Record
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	dec.UseNumber() // context numbers are kept as sent
	if err := dec.Decode(&rec); err != nil {
		return store.Event{}, rec.ID, badRecord("record_malformed", "the record is not an object of the fields verify sends, with their types")
	}
	ev, err := ingestEvent(rec, now)
	return ev, rec.ID, err
}

// ingestEvent checks rec's shape (bounds, time window, id, result, text
// without control characters, no attribute of the server's) and turns it
// into a "request" record, its time as the log keeps it (auditchain.Time):
// a verifier is another program, and its records are held to the bounds
// whatever it sends.
func ingestEvent(rec verify.Record, now time.Time) (store.Event, *recordError) {
	at := auditchain.Time(rec.Time)
	switch {
	case !ingestID.MatchString(rec.ID):
		return store.Event{}, badRecord("id_invalid", "id must be req_ and 32 lowercase hex digits")
	case at.Before(time.Unix(ingestEarliest, 0)) || at.After(now.Add(maxIngestAhead)):
		return store.Event{}, badRecord("time_out_of_range", "time must be from 2000-01-01T00:00:00Z to %s ahead of the server's clock", maxIngestAhead)
	case rec.Result != audit.ResultGranted && rec.Result != audit.ResultRefused && rec.Result != audit.ResultFailed:
		return store.Event{}, badRecord("result_invalid", "result must be granted, refused or failed")
	case len(rec.Chain) > maxIngestChain || len(rec.Scopes) > maxIngestScopes || len(rec.Attributes) > maxIngestAttrs:
		return store.Event{}, badRecord("too_many_items", "at most %d actors, %d scopes and %d attributes", maxIngestChain, maxIngestScopes, maxIngestAttrs)
	}
	for _, f := range []struct {
		name string
		s    string
		max  int
	}{
		{"action", rec.Action, maxIngestAction}, {"resource", rec.Resource, maxIngestResource},
		{"reason", rec.Reason, maxIngestReason}, {"performed_by", rec.PerformedBy, maxIngestActor},
		{"on_behalf_of", rec.OnBehalfOf, maxIngestActor}, {"audience", rec.Audience, maxIngestAudience},
		{"jti", rec.JTI, maxIngestJTI}, {"request_id", rec.RequestID, maxIngestReqID},
	} {
		if err := checkText(f.name, f.s, f.max); err != nil {
			return store.Event{}, err
		}
	}
	for _, l := range []struct {
		name  string
		items []string
	}{{"chain", rec.Chain}, {"scopes", rec.Scopes}} {
		for _, item := range l.items {
			if item == "" {
				return store.Event{}, badRecord("field_invalid", "%s items must not be empty", l.name)
			}
			if err := checkText(l.name, item, maxIngestItem); err != nil {
				return store.Event{}, err
			}
		}
	}
	for k, v := range rec.Attributes {
		if k == "" || len(k) > maxIngestAttrKey || len(v) > maxIngestAttrVal {
			return store.Event{}, badRecord("field_too_long", "attribute names are 1 to %d bytes, values at most %d", maxIngestAttrKey, maxIngestAttrVal)
		}
		if strings.HasPrefix(k, audit.ServerAttributePrefix) {
			return store.Event{}, badRecord("attribute_reserved", "attribute names starting with %q are the server's", audit.ServerAttributePrefix)
		}
		if err := checkText("attributes", k+v, maxIngestAttrKey+maxIngestAttrVal); err != nil {
			return store.Event{}, err
		}
	}
	ev := store.Event{
		ID: rec.ID, Time: at, Action: audit.ActionRequest, Operation: rec.Action, Resource: rec.Resource,
		Result: rec.Result, Reason: rec.Reason, Performer: rec.PerformedBy, OnBehalf: rec.OnBehalfOf,
		Chain: rec.Chain, Scopes: rec.Scopes, Audience: rec.Audience, JTI: rec.JTI, RequestID: rec.RequestID,
	}
	if len(rec.Attributes) > 0 {
		ev.Attributes, _ = json.Marshal(rec.Attributes) // a map of strings always encodes
	}
	if len(rec.Context) > 0 {
		b, err := json.Marshal(rec.Context)
		if err != nil || len(b) > maxIngestContext {
			return store.Event{}, badRecord("field_too_long", "context is at most %d bytes of JSON", maxIngestContext)
		}
		ev.Context = b
	}
	return ev, nil
}

// checkText refuses a field longer than max bytes, or holding a NUL or
// another control character (U+0000 to U+001F, U+007F): verify escapes
// them, and the log is read on terminals. JSON has made it valid UTF-8.
func checkText(name, s string, max int) *recordError {
	if len(s) > max {
		return badRecord("field_too_long", "%s is longer than %d bytes", name, max)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f {
			return badRecord("field_control_character", "%s holds a NUL or another control character", name)
		}
	}
	return nil
}
