package server

import (
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/mandate-dev/mandate/internal/store"
	"github.com/mandate-dev/mandate/oauth"
)

func TestDecodeForm(t *testing.T) {
	tests := []struct {
		name     string
		body     string
		wantCode oauth.ErrorCode
	}{
		{name: "ok/plain", body: "grant_type=client_credentials&scope=a+b"},
		{name: "ok/repeated-audience", body: "audience=a&audience=b&resource=https%3A%2F%2Fx"},
		{name: "ok/empty-value-is-absent", body: "scope=&scope=a"},
		{name: "fail/duplicate-grant-type", body: "grant_type=a&grant_type=b", wantCode: oauth.ErrInvalidRequest},
		{name: "fail/duplicate-subject-token", body: "subject_token=a&subject_token=b", wantCode: oauth.ErrInvalidRequest},
		{name: "fail/too-many", body: strings.Repeat("a=1&", 101), wantCode: oauth.ErrInvalidRequest},
		{name: "fail/semicolon", body: "a=1;b=2", wantCode: oauth.ErrInvalidRequest},
		{name: "fail/bad-escape", body: "a=%zz", wantCode: oauth.ErrInvalidRequest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeForm(tc.body)
			if tc.wantCode == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || oauth.As(err).Code != tc.wantCode {
				t.Fatalf("err = %v, want %s", err, tc.wantCode)
			}
			if strings.Contains(oauth.As(err).Description, "zz") {
				t.Error("the description reflects input")
			}
		})
	}
}

func TestParseScope(t *testing.T) {
	tests := []struct {
		in      string
		want    []string
		wantErr bool
	}{
		{in: "a b", want: []string{"a", "b"}},
		{in: "a a b", want: []string{"a", "b"}},
		{in: "a  b", wantErr: true},
		{in: "a\tb", wantErr: true},
		{in: "mail.read\u00a0", wantErr: true},
		{in: "m\u0430il.read", wantErr: true},
		{in: manyScopes(65), wantErr: true},
		{in: manyScopes(64), want: strings.Split(manyScopes(64), " ")},
		{in: strings.Repeat("x", 3000), wantErr: true},
	}
	for _, tc := range tests {
		got, err := ParseScope(tc.in)
		if (err != nil) != tc.wantErr {
			t.Errorf("ParseScope(%.20q) err = %v", tc.in, err)
		}
		if err == nil && strings.Join(got, " ") != strings.Join(tc.want, " ") {
			t.Errorf("ParseScope(%q) = %v", tc.in, got)
		}
	}
}

func manyScopes(n int) string {
	s := make([]string, n)
	for i := range s {
		s[i] = fmt.Sprintf("s%d", i)
	}
	return strings.Join(s, " ")
}

// FuzzTokenRequest runs the whole token-request parser: form, scopes,
// audiences and context. It never panics, and whatever it accepts is
// within the limits.
func FuzzTokenRequest(f *testing.F) {
	f.Add("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange&subject_token=a.b.c&subject_token_type=x&scope=a+b&audience=x&context=%7B%22environment%22%3A%22prod%22%7D")
	f.Add("scope=a&scope=b")
	f.Add("context=%5B%5D&resource=a&resource=b&resource=c&resource=d&resource=e")
	f.Add("context=" + url.QueryEscape(`{"environment":1}`))
	f.Fuzz(func(t *testing.T, body string) {
		form, err := DecodeForm(body)
		if err != nil {
			return
		}
		req, err := tokenRequest(form, store.Agent{ID: "agent:x"}, "req")
		if err != nil {
			if oauth.As(err).Code == oauth.ErrServerError {
				t.Fatalf("parser error became a server error: %v", err)
			}
			return
		}
		if len(req.Scopes) > maxScopes || len(req.Audiences)+len(req.Resources) > maxAudiences || len(req.SubjectToken) > maxTokenBytes {
			t.Fatalf("limits exceeded: %+v", req)
		}
		if v, ok := req.Context["environment"]; ok {
			if _, isString := v.(string); !isString {
				t.Fatalf("non-string environment accepted")
			}
		}
	})
}
