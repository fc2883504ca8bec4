package verify

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"time"
	"unicode/utf8"
)

// Bounds of the attributes of one record (Attribute).
const (
	maxAttributes     = 16
	maxAttributeKey   = 64
	maxAttributeValue = 256
	// maxRequestID bounds the X-Request-Id copied into a record.
	maxRequestID = 128
)

// Record is the audit record of one request Middleware saw, as it goes to
// Config.Records: the same facts as the Logger record, with an id the
// issuer deduplicates on. It never holds the token. Its slices and maps
// may be shared with the request's Principal: treat them as read-only.
type Record struct {
	// ID is "req_" and 32 lowercase hex digits from crypto/rand, made once
	// per request; a record sent twice is stored once.
	ID string `json:"id"`
	// Time is when Middleware received the request (Config.Now), in UTC.
	Time time.Time `json:"time"`
	// Action and Resource are what SetAction named; by default the method
	// and the URL path.
	Action   string `json:"action"`
	Resource string `json:"resource"`
	// Result is ResultGranted, ResultRefused or ResultFailed; Reason is
	// the machine-readable reason of a refusal or failure, such as
	// "token_expired" or the one passed to Refused.
	Result string `json:"result"`
	Reason string `json:"reason,omitempty"`
	// PerformedBy, OnBehalfOf, Chain, Scopes and JTI are the verified
	// token's (Principal.PerformedBy, OnBehalfOf, Chain, Scopes, JTI);
	// empty when the token was refused.
	PerformedBy string   `json:"performed_by"`
	OnBehalfOf  string   `json:"on_behalf_of,omitempty"`
	Chain       []string `json:"chain,omitempty"`
	Scopes      []string `json:"scopes,omitempty"`
	// Audience is the Verifier's Config.Audience.
	Audience string `json:"audience,omitempty"`
	JTI      string `json:"jti,omitempty"`
	// RequestID is the request's X-Request-Id header when it is 1 to 128
	// printable ASCII characters, and empty otherwise.
	RequestID string `json:"request_id,omitempty"`
	// Attributes are the facts the handler added with Attribute.
	Attributes map[string]string `json:"attributes,omitempty"`
	// Context is the verified token's context claim.
	Context map[string]any `json:"context,omitempty"`
}

// RecordSink receives the record of every request Middleware sees
// (Config.Records), refused ones included, after the handler returns.
// Record runs on the request's goroutine before the response completes,
// so it must return at once and never block: a sink that sends records
// elsewhere queues them, as Forwarder does. It must be safe for concurrent
// use and must not modify the record.
type RecordSink interface {
	Record(Record)
}

// Attribute adds a fact to the current request's record, as a key and a
// value, for example Attribute(ctx, "amount", "487.50"); the Logger record
// and the Record given to Config.Records carry it. Setting a key again
// replaces its value. Bounds: at most 16 attributes per request (more are
// ignored), keys of 1 to 64 bytes (others are ignored), values of at most
// 256 bytes (longer ones are cut at a UTF-8 boundary). It is safe to call
// from the handler's goroutines; it does nothing outside Middleware or
// after the handler has returned.
func Attribute(ctx context.Context, key, value string) {
	st, ok := ctx.Value(stateKey{}).(*requestState)
	if !ok || key == "" || len(key) > maxAttributeKey {
		return
	}
	value = truncateUTF8(value, maxAttributeValue)
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.done {
		return
	}
	if _, set := st.record.attrs[key]; !set && len(st.record.attrs) >= maxAttributes {
		return
	}
	if st.record.attrs == nil {
		st.record.attrs = make(map[string]string, 4)
	}
	st.record.attrs[key] = value
}

// truncateUTF8 cuts s to at most n bytes without splitting a rune.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// newRecord builds the Record of a request from its audit record rec and
// its Principal p (nil when the token was refused).
func (v *Verifier) newRecord(r *http.Request, p *Principal, rec auditRecord, start time.Time) Record {
	out := Record{
		ID:         newRecordID(),
		Time:       start.UTC(),
		Action:     rec.action,
		Resource:   rec.resource,
		Result:     rec.result,
		Reason:     rec.reason,
		Audience:   v.cfg.Audience,
		RequestID:  requestID(r),
		Attributes: rec.attrs,
	}
	if p != nil {
		out.PerformedBy = p.PerformedBy()
		out.OnBehalfOf = p.OnBehalfOf()
		out.Chain = p.Chain
		out.Scopes = p.Scopes
		out.JTI = p.JTI
		out.Context = p.Context
	}
	return out
}

// newRecordID returns "req_" and 128 random bits in lowercase hex.
func newRecordID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (it crashes the program instead)
	var out [4 + 2*len(b)]byte
	copy(out[:], "req_")
	hex.Encode(out[4:], b[:])
	return string(out[:])
}

// requestID returns the request's X-Request-Id when it is 1 to 128
// printable ASCII characters, and "" otherwise: the value is the client's,
// and reaches the issuer's audit log.
func requestID(r *http.Request) string {
	id := r.Header.Get("X-Request-Id")
	if len(id) > maxRequestID {
		return ""
	}
	for i := 0; i < len(id); i++ {
		if id[i] < 0x20 || id[i] > 0x7e {
			return ""
		}
	}
	return id
}
