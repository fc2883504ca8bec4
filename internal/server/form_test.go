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

// decodeFormReference is DecodeForm as it was written first, on
// url.ParseQuery; TestDecodeFormMatchesReference holds the two together.
func decodeFormReference(body string) (url.Values, error) {
	if strings.Count(body, "&")+1 > maxFormParams {
		return nil, oauth.InvalidRequest("too_many_parameters", "too many parameters", nil)
	}
	if strings.Contains(body, ";") {
		return nil, oauth.InvalidRequest("malformed_body", "the request body is malformed", nil)
	}
	raw, err := url.ParseQuery(body)
	if err != nil {
		return nil, oauth.InvalidRequest("malformed_body", "the request body is malformed", err)
	}
	form := make(url.Values, len(raw))
	for k, vs := range raw {
		var kept []string
		for _, v := range vs {
			if v != "" {
				kept = append(kept, v)
			}
		}
		if len(kept) == 0 {
			continue
		}
		if len(kept) > 1 && !multiValued[k] {
			return nil, oauth.InvalidRequest("duplicate_parameter", "a parameter is repeated: "+safeName(k), nil)
		}
		form[k] = kept
	}
	return form, nil
}

func TestDecodeFormMatchesReference(t *testing.T) {
	for _, body := range []string{
		"", "&", "&&a=1&&", "=", "=x", "a", "a=", "a=&a=", "a=1&a=", "a=&a=1", "a=1&b=2&a=3",
		"audience=a&audience=&audience=b&resource=r&resource=s", "scope=a+b%20c&grant_type=x",
		"a=%zz", "a=1&b=%zz&a=2", "a=1&a=2&b=%zz", "%zz=1", "a%3Db=c%26d", "a=1;b=2",
		"grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange&subject_token=eyJ.eyJ.sig&audience=https%3A%2F%2Fdeploy.example",
		strings.Repeat("a=1&", 99) + "a=1", strings.Repeat("audience=1&", 100),
	} {
		got, gotErr := DecodeForm(body)
		want, wantErr := decodeFormReference(body)
		if (gotErr == nil) != (wantErr == nil) ||
			gotErr != nil && oauth.As(gotErr).Reason != oauth.As(wantErr).Reason {
			t.Errorf("DecodeForm(%q) error %v, want %v", body, gotErr, wantErr)
			continue
		}
		if gotErr == nil && fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("DecodeForm(%q) = %v, want %v", body, got, want)
		}
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
