package server

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mandate-dev/mandate/oauth"
)

// TestDecodeJSONNested: the exact-name rule holds inside nested objects
// too (a map of structs, as an RFC 8936 poll's setErrs), and a body that
// is not an object is refused.
func TestDecodeJSONNested(t *testing.T) {
	tests := []struct {
		name       string
		body       string
		wantReason string
	}{
		{name: "ok/nested", body: `{"ack":["s0-1"],"setErrs":{"s0-2":{"err":"x","description":"y"}}}`},
		{name: "ok/leading-space", body: " \n{\"returnImmediately\":true}"},
		{name: "fail/nested-case-variant", body: `{"setErrs":{"s0-2":{"Err":"x"}}}`, wantReason: "json_member_unknown"},
		{name: "fail/nested-unknown", body: `{"setErrs":{"s0-2":{"code":"x"}}}`, wantReason: "json_member_unknown"},
		{name: "fail/nested-duplicate", body: `{"setErrs":{"s0-2":{"err":"x","ERR":"y"}}}`, wantReason: "json_member_duplicate"},
		{name: "fail/top-case-variant", body: `{"maxevents":1}`, wantReason: "json_member_unknown"},
		{name: "fail/null", body: `null`, wantReason: "malformed_json"},
		{name: "fail/array", body: `[]`, wantReason: "malformed_json"},
		{name: "fail/empty", body: ``, wantReason: "malformed_json"},
		{name: "fail/trailing", body: `{} {}`, wantReason: "malformed_json"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(tc.body))
			var v pollRequest
			err := decodeJSON(httptest.NewRecorder(), r, &v)
			if tc.wantReason == "" {
				if err != nil {
					t.Fatalf("error = %v", err)
				}
				return
			}
			if e := oauth.As(err); e.Reason != tc.wantReason || e.HTTPStatus() != http.StatusBadRequest {
				t.Fatalf("error = %v, want 400 (%s)", err, tc.wantReason)
			}
		})
	}
}
