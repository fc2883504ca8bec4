package exchange

import (
	"encoding/json"
	"testing"

	"github.com/mandate-dev/mandate/oauth"
)

func TestGrantDetails(t *testing.T) {
	limits := mustDetails(t, `[{"type":"expense_approval","max_amount":1000,"currency":"USD","actions":["approve","read"]}]`)
	tests := []struct {
		name     string
		request  string
		want     string
		wantCode oauth.ErrorCode
	}{
		{name: "ok/within-limit", request: `[{"type":"expense_approval","max_amount":487.50,"currency":"USD"}]`,
			want: `[{"actions":["approve","read"],"currency":"USD","max_amount":487.50,"type":"expense_approval"}]`},
		{name: "ok/clamped-to-limit", request: `[{"type":"expense_approval","max_amount":5000,"currency":"USD"}]`,
			want: `[{"actions":["approve","read"],"currency":"USD","max_amount":1000,"type":"expense_approval"}]`},
		{name: "ok/list-subset", request: `[{"type":"expense_approval","actions":["approve"]}]`,
			want: `[{"actions":["approve"],"currency":"USD","max_amount":1000,"type":"expense_approval"}]`},
		// THREATS T82: what the request leaves out is copied from the
		// limit; a wider list is intersected, never granted as asked.
		{name: "ok/currency-copied-from-limit", request: `[{"type":"expense_approval","max_amount":1000}]`,
			want: `[{"actions":["approve","read"],"currency":"USD","max_amount":1000,"type":"expense_approval"}]`},
		{name: "ok/type-only-gets-the-whole-limit", request: `[{"type":"expense_approval"}]`,
			want: `[{"actions":["approve","read"],"currency":"USD","max_amount":1000,"type":"expense_approval"}]`},
		{name: "ok/list-intersected", request: `[{"type":"expense_approval","actions":["delete","approve","approve"]}]`,
			want: `[{"actions":["approve"],"currency":"USD","max_amount":1000,"type":"expense_approval"}]`},
		{name: "fail/list-disjoint", request: `[{"type":"expense_approval","actions":["delete"]}]`, wantCode: ErrInvalidAuthorizationDetails},
		{name: "fail/list-for-scalar", request: `[{"type":"expense_approval","currency":["USD"]}]`, wantCode: ErrInvalidAuthorizationDetails},
		{name: "fail/scalar-for-list", request: `[{"type":"expense_approval","actions":"approve"}]`, wantCode: ErrInvalidAuthorizationDetails},
		{name: "fail/number-for-string", request: `[{"type":"expense_approval","currency":1}]`, wantCode: ErrInvalidAuthorizationDetails},
		{name: "fail/max-not-a-number", request: `[{"type":"expense_approval","max_amount":"5"}]`, wantCode: ErrInvalidAuthorizationDetails},
		{name: "fail/other-currency", request: `[{"type":"expense_approval","max_amount":10,"currency":"EUR"}]`, wantCode: ErrInvalidAuthorizationDetails},
		{name: "fail/unknown-type", request: `[{"type":"payment_initiation","max_amount":10}]`, wantCode: ErrInvalidAuthorizationDetails},
		{name: "fail/field-not-held", request: `[{"type":"expense_approval","creditor":"ACME"}]`, wantCode: ErrInvalidAuthorizationDetails},
		{name: "fail/negative-max", request: `[{"type":"expense_approval","max_amount":-1}]`, wantCode: ErrInvalidAuthorizationDetails},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := grantDetails(mustDetails(t, tc.request), limits, "the person holds")
			if tc.wantCode != "" {
				if err == nil || oauth.As(err).Code != tc.wantCode {
					t.Fatalf("err = %v, want %s", err, tc.wantCode)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			b, _ := json.Marshal(got)
			if string(b) != tc.want {
				t.Errorf("granted %s, want %s", b, tc.want)
			}
		})
	}
}

func TestParseDetails(t *testing.T) {
	for name, in := range map[string]string{
		"fail/not-array":     `{"type":"x"}`,
		"fail/empty":         `[]`,
		"fail/no-type":       `[{"max_amount":1}]`,
		"fail/duplicate-key": `[{"type":"a","type":"b"}]`,
		"fail/too-many":      `[{"type":"a"},{"type":"a"},{"type":"a"},{"type":"a"},{"type":"a"},{"type":"a"},{"type":"a"},{"type":"a"},{"type":"a"}]`,
	} {
		if _, err := ParseDetails(in); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := ParseDetails(`[{"type":"expense_approval","max_amount":1000}]`); err != nil {
		t.Errorf("ok: %v", err)
	}
}

func mustDetails(t *testing.T, s string) []Detail {
	t.Helper()
	d, err := ParseDetails(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}
