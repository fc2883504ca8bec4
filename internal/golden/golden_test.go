package golden_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/mandate-dev/mandate/internal/golden"
)

func TestJSON(t *testing.T) {
	cases := []struct {
		name string
		in   any
		r    golden.Redact
		want string
	}{
		{name: "ok/sorted-indented-numbers-kept", in: `{"b":1.50,"a":[{"y":true,"x":null}]}`,
			want: "{\n  \"a\": [\n    {\n      \"x\": null,\n      \"y\": true\n    }\n  ],\n  \"b\": 1.50\n}\n"},
		{name: "ok/value-marshalled-no-html-escaping", in: map[string]string{"q": "a<b&c"},
			want: "{\n  \"q\": \"a<b&c\"\n}\n"},
		{name: "ok/members-at-any-depth", in: `{"iat":17,"act":{"iat":"x","sub":"a"}}`, r: golden.Redact{Members: []string{"iat"}},
			want: "{\n  \"act\": {\n    \"iat\": \"<iat>\",\n    \"sub\": \"a\"\n  },\n  \"iat\": \"<iat>\"\n}\n"},
		{name: "ok/longest-string-first-in-keys-and-values", in: `{"http://h:1234/x":"http://h:12345/y http://h:1234"}`,
			r:    golden.Redact{Strings: map[string]string{"http://h:1234": "<a>", "http://h:12345": "<b>"}},
			want: "{\n  \"<a>/x\": \"<b>/y <a>\"\n}\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := golden.JSON(tc.in, tc.r)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, string(got)); diff != "" {
				t.Errorf("JSON (-want +got):\n%s", diff)
			}
		})
	}
	for _, bad := range []string{"", "{", `{} {}`} {
		if _, err := golden.JSON(bad, golden.Redact{}); err == nil {
			t.Errorf("JSON(%q) accepted", bad)
		}
	}
}
