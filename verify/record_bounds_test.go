package verify_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/mandate-dev/mandate/verify"
	"github.com/mandate-dev/mandate/verify/internal/clean"
)

// TestRecordFieldsBounded (THREATS T100): whatever a request or a handler
// puts in a record (a 100 KB path, control bytes, a NUL, bytes that are
// not UTF-8, long actions and attributes, the issuer's attribute names),
// the Record is within the issuer's bounds, escaped, and says it was cut.
func TestRecordFieldsBounded(t *testing.T) {
	f := newFixture(t)
	tok := f.token(claims())
	for _, tc := range []struct {
		name    string
		path    string
		token   string
		handler func(r *http.Request)
		check   func(t *testing.T, rec verify.Record)
	}{
		{name: "ok/100-kb-path-unauthenticated", path: "/" + strings.Repeat("a", 100_000), check: func(t *testing.T, rec verify.Record) {
			if len(rec.Resource) != 1024 || !strings.HasPrefix(rec.Resource, "/aaa") || !strings.HasSuffix(rec.Resource, verify.Truncated) {
				t.Errorf("resource of %d bytes %q…, want 1024 bytes ending %q", len(rec.Resource), rec.Resource[:min(16, len(rec.Resource))], verify.Truncated)
			}
		}},
		{name: "ok/nul-and-control-bytes", path: "/a%00b%0Ac%7Fd%1B[31m", check: func(t *testing.T, rec verify.Record) {
			if want := `/a\x00b\x0ac\x7fd\x1b[31m`; rec.Resource != want {
				t.Errorf("resource %q, want %q", rec.Resource, want)
			}
		}},
		{name: "ok/not-utf8", path: "/%FF%FEok%C3", check: func(t *testing.T, rec verify.Record) {
			if want := `/\xff\xfeok\xc3`; rec.Resource != want {
				t.Errorf("resource %q, want %q", rec.Resource, want)
			}
		}},
		{name: "ok/long-path-of-bytes-that-grow-when-escaped", path: "/" + strings.Repeat("%00", 1000), check: func(t *testing.T, rec verify.Record) {
			if len(rec.Resource) > 1024 || !strings.HasSuffix(rec.Resource, verify.Truncated) || !strings.HasPrefix(rec.Resource, `/\x00\x00`) {
				t.Errorf("resource of %d bytes, want at most 1024 ending %q", len(rec.Resource), verify.Truncated)
			}
		}},
		{name: "ok/handler-fields", token: tok, handler: func(r *http.Request) {
			verify.SetAction(r.Context(), strings.Repeat("x", 500)+"\x00", "r\nr")
			verify.Attribute(r.Context(), "note", "a\x00b\tc")
			verify.Attribute(r.Context(), "mandate.token_mismatch", "forged")
			verify.Attribute(r.Context(), "k\x01", "v")
			verify.Refused(r.Context(), strings.Repeat("why", 100))
		}, check: func(t *testing.T, rec verify.Record) {
			if len(rec.Action) != 128 || !strings.HasSuffix(rec.Action, verify.Truncated) {
				t.Errorf("action of %d bytes, want 128 ending %q", len(rec.Action), verify.Truncated)
			}
			if rec.Resource != `r\x0ar` || len(rec.Reason) != 128 {
				t.Errorf("resource %q, reason of %d bytes", rec.Resource, len(rec.Reason))
			}
			want := map[string]string{"note": `a\x00b\x09c`, `k\x01`: "v"}
			if len(rec.Attributes) != len(want) {
				t.Errorf("attributes %q, want %q", rec.Attributes, want)
			}
			for k, v := range want {
				if rec.Attributes[k] != v {
					t.Errorf("attribute %q = %q, want %q (all: %q)", k, rec.Attributes[k], v, rec.Attributes)
				}
			}
		}},
		{name: "ok/plain-fields-untouched", token: tok, handler: func(r *http.Request) {
			verify.SetAction(r.Context(), "expense:approve", "expense/EXP-1042 café")
		}, check: func(t *testing.T, rec verify.Record) {
			if rec.Action != "expense:approve" || rec.Resource != "expense/EXP-1042 café" || rec.PerformedBy != "agent:argocd" {
				t.Errorf("record %+v", rec)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sink := &recordSink{}
			v := f.verifier(t, func(c *verify.Config) { c.Records = sink })
			r := httptest.NewRequest(http.MethodGet, "http://api.example"+tc.path, nil)
			if tc.path == "" {
				r = httptest.NewRequest(http.MethodGet, "http://api.example/", nil)
			}
			if tc.token != "" {
				r.Header.Set("Authorization", "Bearer "+tc.token)
			}
			v.Middleware(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
				if tc.handler != nil {
					tc.handler(r)
				}
			})).ServeHTTP(httptest.NewRecorder(), r)
			recs := sink.all()
			if len(recs) != 1 {
				t.Fatalf("%d records, want 1", len(recs))
			}
			rec := recs[0]
			tc.check(t, rec)
			// Every string the issuer takes: UTF-8 without a control
			// character, within its bound.
			b, _ := json.Marshal(rec)
			var fields map[string]any
			_ = json.Unmarshal(b, &fields)
			bounds := map[string]int{"action": 128, "resource": 1024, "reason": 128, "performed_by": 256, "on_behalf_of": 256,
				"audience": 1024, "jti": 256, "request_id": 128}
			for name, max := range bounds {
				s, _ := fields[name].(string)
				if len(s) > max || !utf8.ValidString(s) || strings.ContainsFunc(s, func(c rune) bool { return c < 0x20 || c == 0x7f }) {
					t.Errorf("%s = %q: over %d bytes, not UTF-8 or with a control character", name, s, max)
				}
			}
		})
	}
}

// TestTruncatedIsCleans: the marker Record documents is the one its
// fields are cut with.
func TestTruncatedIsCleans(t *testing.T) {
	if verify.Truncated != clean.Truncated {
		t.Fatalf("verify.Truncated = %q, clean.Truncated = %q", verify.Truncated, clean.Truncated)
	}
}
