package verify

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/mandate-dev/mandate/verify/internal/clean"
)

// Bounds of the attributes of one record (Attribute).
const (
	maxAttributes     = 16
	maxAttributeKey   = 64
	maxAttributeValue = 256
	// maxRequestID bounds the X-Request-Id copied into a record.
	maxRequestID = 128
)

// Bounds of the other fields of a Record, in bytes, as the issuer's POST
// /audit/ingest takes them: a longer field is cut (truncated) so that no
// record is refused for it, and no request can make another request's
// record be refused with its own.
const (
	maxRecordAction   = 128
	maxRecordResource = 1024
	maxRecordReason   = 128
	maxRecordActor    = 256
	maxRecordAudience = 1024
	maxRecordJTI      = 256
	maxRecordItem     = 256
	maxRecordChain    = 16
	maxRecordScopes   = 64
	maxRecordContext  = 2048
)

// Truncated ends a Record field that was cut to its bound.
const Truncated = "…[truncated]"

// serverAttributePrefix starts the names of the attributes the issuer adds
// to a record; Attribute ignores them.
const serverAttributePrefix = "mandate."

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
	// and the URL path. Every string of a Record is cleaned as the issuer
	// takes it: each control character (U+0000 to U+001F, U+007F) and
	// each byte that is not UTF-8 is written \xNN, and a field over its
	// bound (Resource and Audience 1,024 bytes, Action and Reason 128,
	// PerformedBy, OnBehalfOf, JTI and each actor and scope 256) is cut
	// at a character boundary and ends with Truncated. Chain keeps its
	// first 16 actors and Scopes its first 64 scopes, Context is left out
	// when its JSON is over 2 KiB.
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
// elsewhere queues them, as forward.Forwarder does. It must be safe for
// concurrent use and must not modify the record.
type RecordSink interface {
	Record(Record)
}

// Attribute adds a fact to the current request's record, as a key and a
// value, for example Attribute(ctx, "amount", "487.50"); the Logger record
// and the Record given to Config.Records carry it. Setting a key again
// replaces its value. Bounds: at most 16 attributes per request (more are
// ignored), keys of 1 to 64 bytes (others, and those starting with
// "mandate.", which the issuer uses, are ignored), values of at most 256
// bytes (longer ones are cut at a UTF-8 boundary). It is safe to call
// from the handler's goroutines; it does nothing outside Middleware or
// after the handler has returned.
func Attribute(ctx context.Context, key, value string) {
	st, ok := ctx.Value(stateKey{}).(*requestState)
	if !ok || key == "" || len(key) > maxAttributeKey || strings.HasPrefix(key, serverAttributePrefix) {
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
// its Principal p (nil when the token was refused), every field cleaned
// and bounded as the issuer takes it (see Record).
func (v *Verifier) newRecord(r *http.Request, p *Principal, rec auditRecord, start time.Time) Record {
	out := Record{
		ID:         newRecordID(),
		Time:       start.UTC(),
		Action:     clean.String(rec.action, maxRecordAction),
		Resource:   clean.String(rec.resource, maxRecordResource),
		Result:     rec.result,
		Reason:     clean.String(rec.reason, maxRecordReason),
		Audience:   clean.String(v.cfg.Audience, maxRecordAudience),
		RequestID:  requestID(r),
		Attributes: cleanAttributes(rec.attrs),
	}
	if p != nil {
		out.PerformedBy = clean.String(p.PerformedBy(), maxRecordActor)
		out.OnBehalfOf = clean.String(p.OnBehalfOf(), maxRecordActor)
		out.Chain = cleanList(p.Chain, maxRecordChain, false)
		out.Scopes = cleanList(p.Scopes, maxRecordScopes, true)
		out.JTI = clean.String(p.JTI, maxRecordJTI)
		out.Context = p.Context
		if len(out.Context) > 0 {
			if b, err := json.Marshal(out.Context); err != nil || len(b) > maxRecordContext {
				out.Context = nil
			}
		}
	}
	return out
}

// cleanList cleans each item of l, keeping its first max items; an empty
// item is dropped when dropEmpty, else written "-" (the issuer refuses
// empty ones). l itself is returned when it needs nothing.
func cleanList(l []string, max int, dropEmpty bool) []string {
	ok := len(l) <= max
	for _, s := range l {
		ok = ok && s != "" && len(s) <= maxRecordItem && clean.Plain(s)
	}
	if ok {
		return l
	}
	out := make([]string, 0, min(len(l), max))
	for _, s := range l {
		if len(out) == max {
			break
		}
		switch {
		case s == "" && dropEmpty:
			continue
		case s == "":
			s = "-"
		}
		out = append(out, clean.String(s, maxRecordItem))
	}
	return out
}

// cleanAttributes cleans the keys and values of attrs (Attribute has
// bounded them); attrs itself when it needs nothing.
func cleanAttributes(attrs map[string]string) map[string]string {
	ok := true
	for k, v := range attrs {
		ok = ok && clean.Plain(k) && clean.Plain(v)
	}
	if ok {
		return attrs
	}
	out := make(map[string]string, len(attrs))
	for k, v := range attrs {
		out[clean.String(k, maxAttributeKey)] = clean.String(v, maxAttributeValue)
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
