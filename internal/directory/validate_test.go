package directory_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/mandate-dev/mandate/internal/directory"
	"github.com/mandate-dev/mandate/internal/store"
)

// problems is each problem of err as "field: problem".
func problems(err error) []string {
	var out []string
	for _, p := range directory.Problems(err) {
		out = append(out, p.Field+": "+p.Problem)
	}
	return out
}

// wantProblems checks that err holds exactly the problems whose fields
// are fields, in order, each containing its text.
func wantProblems(t *testing.T, err error, want [][2]string) {
	t.Helper()
	got := directory.Problems(err)
	if len(want) == 0 {
		if err != nil {
			t.Fatalf("err = %v, want none", err)
		}
		return
	}
	if !errors.Is(err, directory.ErrInvalid) {
		t.Errorf("err = %v, does not wrap ErrInvalid", err)
	}
	if len(got) != len(want) {
		t.Fatalf("problems = %q, want %d: %q", problems(err), len(want), want)
	}
	for i, w := range want {
		if got[i].Field != w[0] || !strings.Contains(got[i].Problem, w[1]) {
			t.Errorf("problem %d = %s: %s, want %s: …%s…", i, got[i].Field, got[i].Problem, w[0], w[1])
		}
	}
}

const publicJWKS = `{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}`

func TestValidateUser(t *testing.T) {
	for _, tc := range []struct {
		name string
		user store.User
		want [][2]string
	}{
		{name: "ok/none", user: store.User{ID: "user:sam"}},
		{name: "ok/permissions-and-limits", user: store.User{ID: "user:sam", Permissions: []string{"deploy:create"},
			Limits: json.RawMessage(`[{"type":"expense_approval","max_amount":1000.50}]`)}},
		{name: "ok/limits-empty", user: store.User{ID: "user:sam", Limits: json.RawMessage(`[]`)}},
		{name: "fail/permission-space", user: store.User{Permissions: []string{"deploy create"}},
			want: [][2]string{{"permissions[0]", "white space"}}},
		{name: "fail/permission-twice", user: store.User{Permissions: []string{"a", "a"}},
			want: [][2]string{{"permissions[1]", "listed twice"}}},
		{name: "fail/permissions-too-many", user: store.User{Permissions: numbered("p", directory.MaxListLen+1)},
			want: [][2]string{{"permissions", "at most 64"}}},
		{name: "fail/limit-without-type", user: store.User{Limits: json.RawMessage(`[{"max_amount":1}]`)},
			want: [][2]string{{"limits[0].type", "needs a type"}}},
		{name: "fail/limit-null", user: store.User{Limits: json.RawMessage(`[null]`)},
			want: [][2]string{{"limits[0].type", "needs a type"}}},
		{name: "fail/limits-too-many", user: store.User{Limits: json.RawMessage("[" + strings.Repeat(`{"type":"t"},`, 8) + `{"type":"t"}]`)},
			want: [][2]string{{"limits", "at most 8"}}},
		{name: "fail/limits-not-an-array", user: store.User{Limits: json.RawMessage(`{"type":"t"}`)},
			want: [][2]string{{"limits", "array of objects"}}},
		{name: "fail/limits-member-twice", user: store.User{Limits: json.RawMessage(`[{"type":"t","max":1,"max":2}]`)},
			want: [][2]string{{"limits", "each member once"}}},
	} {
		t.Run(tc.name, func(t *testing.T) { wantProblems(t, directory.ValidateUser(tc.user), tc.want) })
	}
}

func TestValidateAgent(t *testing.T) {
	secret := []byte{1}
	for _, tc := range []struct {
		name  string
		agent store.Agent
		want  [][2]string
	}{
		{name: "ok/secret", agent: store.Agent{ID: "agent:a", SecretHash: secret, Scopes: []string{"x"}, DelegateTo: []string{"agent:b"}, MaxDepth: 3}},
		{name: "ok/jwks", agent: store.Agent{ID: "agent:a", JWKS: json.RawMessage(publicJWKS)}},
		{name: "ok/jwks-uri-loopback-http", agent: store.Agent{ID: "agent:a", JWKSURI: "http://127.0.0.1:9/jwks"}},
		{name: "fail/no-credential", agent: store.Agent{ID: "agent:a"}, want: [][2]string{{"", "needs a credential"}}},
		{name: "ok/public", agent: store.Agent{ID: "agent:a", Public: true, Name: "Notes ✓", Registration: store.RegistrationDCR,
			RedirectURIs: []string{"http://127.0.0.1/cb"}}},
		{name: "fail/public-with-secret", agent: store.Agent{ID: "agent:a", Public: true, SecretHash: secret},
			want: [][2]string{{"", "public client"}}},
		{name: "fail/public-with-jwks-uri", agent: store.Agent{ID: "agent:a", Public: true, JWKSURI: "https://a.example/jwks"},
			want: [][2]string{{"", "public client"}}},
		{name: "fail/client-name-control", agent: store.Agent{ID: "agent:a", SecretHash: secret, Name: "a\nb"},
			want: [][2]string{{"client_name", "control"}}},
		{name: "fail/client-name-long", agent: store.Agent{ID: "agent:a", SecretHash: secret, Name: strings.Repeat("n", directory.MaxClientNameLen+1)},
			want: [][2]string{{"client_name", "at most"}}},
		{name: "fail/registration-unknown", agent: store.Agent{ID: "agent:a", SecretHash: secret, Registration: "mail"},
			want: [][2]string{{"registration", "not config"}}},
		{name: "fail/jwks-and-uri", agent: store.Agent{ID: "agent:a", JWKS: json.RawMessage(publicJWKS), JWKSURI: "https://a.example/jwks"},
			want: [][2]string{{"", "not both"}}},
		{name: "fail/jwks-empty", agent: store.Agent{ID: "agent:a", JWKS: json.RawMessage(`{"keys":[]}`)},
			want: [][2]string{{"jwks", "no keys"}}},
		{name: "fail/jwks-symmetric", agent: store.Agent{ID: "agent:a", JWKS: json.RawMessage(`{"keys":[{"kty":"oct","k":"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0"}]}`)},
			want: [][2]string{{"jwks", "symmetric"}}},
		{name: "fail/jwks-not-json", agent: store.Agent{ID: "agent:a", JWKS: json.RawMessage(`{"keys":`)},
			want: [][2]string{{"jwks", "not a valid JWK Set"}}},
		{name: "fail/jwks-uri-http", agent: store.Agent{ID: "agent:a", JWKSURI: "http://a.example/jwks"},
			want: [][2]string{{"jwks_uri", "https"}}},
		{name: "fail/jwks-uri-query", agent: store.Agent{ID: "agent:a", JWKSURI: "https://a.example/jwks?x=1"},
			want: [][2]string{{"jwks_uri", "query"}}},
		{name: "fail/scope-control", agent: store.Agent{ID: "agent:a", SecretHash: secret, Scopes: []string{"x\x00"}},
			want: [][2]string{{"scopes[0]", "control"}}},
		{name: "fail/depth", agent: store.Agent{ID: "agent:a", SecretHash: secret, MaxDepth: directory.MaxDepth + 1},
			want: [][2]string{{"max_depth", "0 (no own limit) to 10"}}},
		{name: "fail/delegate-to-itself", agent: store.Agent{ID: "agent:a", SecretHash: secret, DelegateTo: []string{"agent:a"}},
			want: [][2]string{{"delegate_to[0]", "itself"}}},
		{name: "fail/delegate-to-twice", agent: store.Agent{ID: "agent:a", SecretHash: secret, DelegateTo: []string{"agent:b", "agent:b"}},
			want: [][2]string{{"delegate_to[1]", "listed twice"}}},
		{name: "fail/every-problem-at-once", agent: store.Agent{ID: "agent:a", Scopes: []string{""}, MaxDepth: -1, DelegateTo: []string{"agent:a"}},
			want: [][2]string{{"", "needs a credential"}, {"scopes[0]", "empty"}, {"max_depth", "is -1"}, {"delegate_to[0]", "itself"}}},
	} {
		t.Run(tc.name, func(t *testing.T) { wantProblems(t, directory.ValidateAgent(tc.agent), tc.want) })
	}
}

func TestValidateDelegation(t *testing.T) {
	for _, tc := range []struct {
		name string
		d    store.Delegation
		want [][2]string
	}{
		{name: "ok/minimal", d: store.Delegation{Scopes: []string{"x"}}},
		{name: "ok/audiences", d: store.Delegation{Scopes: []string{"x"}, Audiences: []string{"https://a.example", "agent:b"}, MaxDepth: 10}},
		{name: "fail/no-scope", d: store.Delegation{}, want: [][2]string{{"scopes", "at least one scope"}}},
		{name: "fail/scope-too-long", d: store.Delegation{Scopes: []string{strings.Repeat("s", directory.MaxScopeLen+1)}},
			want: [][2]string{{"scopes[0]", "at most 128"}}},
		{name: "fail/audiences-too-many", d: store.Delegation{Scopes: []string{"x"}, Audiences: numbered("a", directory.MaxListLen+1)},
			want: [][2]string{{"audiences", "at most 64"}}},
		{name: "fail/audience-space", d: store.Delegation{Scopes: []string{"x"}, Audiences: []string{"a b"}},
			want: [][2]string{{"audiences[0]", "white space"}}},
		{name: "fail/audience-twice", d: store.Delegation{Scopes: []string{"x"}, Audiences: []string{"a", "a"}},
			want: [][2]string{{"audiences[1]", "listed twice"}}},
		{name: "fail/depth", d: store.Delegation{Scopes: []string{"x"}, MaxDepth: 11}, want: [][2]string{{"max_depth", "to 10"}}},
		{name: "ok/hand-on", d: store.Delegation{Actor: "agent:c", Scopes: []string{"x"}, Audiences: []string{"https://r.example"},
			DelegateTo: []string{"agent:s"}, HandOn: []string{"https://api.example"}}},
		{name: "fail/hand-on-without-audiences", d: store.Delegation{Scopes: []string{"x"}, HandOn: []string{"https://api.example"}},
			want: [][2]string{{"hand_on", "needs audiences"}}},
		{name: "fail/hand-on-twice", d: store.Delegation{Scopes: []string{"x"}, Audiences: []string{"a"}, HandOn: []string{"b", "b"}},
			want: [][2]string{{"hand_on[1]", "listed twice"}}},
		{name: "fail/delegate-to-self", d: store.Delegation{Actor: "agent:c", Scopes: []string{"x"}, DelegateTo: []string{"agent:c"}},
			want: [][2]string{{"delegate_to[0]", "itself"}}},
	} {
		t.Run(tc.name, func(t *testing.T) { wantProblems(t, directory.ValidateDelegation(tc.d), tc.want) })
	}
}

func TestCheckURL(t *testing.T) {
	for _, tc := range []struct {
		name, url, want string
	}{
		{name: "ok/https", url: "https://m.example/jwks"},
		{name: "ok/http-localhost", url: "http://localhost:8080"},
		{name: "fail/http-remote", url: "http://m.example", want: "must use https"},
		{name: "fail/relative", url: "/jwks", want: "scheme"},
		{name: "fail/userinfo", url: "https://u:p@m.example", want: "user info"},
		{name: "fail/fragment", url: "https://m.example/#x", want: "fragment"},
		{name: "fail/empty", url: "", want: "required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := directory.CheckURL(tc.url)
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("CheckURL(%q) = %v, want %q", tc.url, err, tc.want)
			}
		})
	}
}

func TestProblemsLooksThroughWrapping(t *testing.T) {
	err := directory.ValidateAgent(store.Agent{ID: "a", DelegateTo: []string{"a"}})
	wrapped := errors.Join(errors.New("context"), err)
	if diff := cmp.Diff(problems(err), problems(wrapped)); diff != "" {
		t.Errorf("problems through a join (-want +got):\n%s", diff)
	}
}

// numbered is n distinct names.
func numbered(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = prefix + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + string(rune('a'+i/26))
	}
	return out
}
