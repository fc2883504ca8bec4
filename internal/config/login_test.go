package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mandate-dev/mandate/internal/config"
)

// loginFile is a valid identity provider with a login section; cases
// replace its lines.
const loginFile = `
identity_providers:
  - issuer: https://login.example.com
    login:
      name: Example SSO
      client_id: mandate
      scopes: [openid, profile, email, groups]
      user_id: "user:{preferred_username}"
      permissions:
        - when: {claim: groups, contains: sre}
          grant: [deploy:create, monitoring:read]
      roles:
        - when: {claim: groups, contains: mandate-admins}
          grant: [admin]
`

func TestParseLogin(t *testing.T) {
	type want struct{ field, problem string } // problem: a substring
	replace := func(old, new string) string {
		if !strings.Contains(loginFile, old) {
			panic("no " + old)
		}
		return strings.Replace(loginFile, old, new, 1)
	}
	tooMany := "      permissions:\n" + strings.Repeat("        - {when: {claim: groups, contains: x}, grant: [a]}\n", 65)
	tests := []struct {
		name string
		yaml string
		want []want // unordered; empty: must load
	}{
		{name: "ok/login-only-provider", yaml: loginFile},
		{name: "ok/login-and-subject-tokens", yaml: replace("    login:\n", "    jwks_uri: https://login.example.com/keys\n    audience: mandate\n    login:\n")},
		{name: "ok/loopback-http-issuer", yaml: replace("https://login.example.com", "http://127.0.0.1:9999")},
		{name: "ok/equals", yaml: replace("{claim: groups, contains: sre}", "{claim: department, equals: sre}")},
		{name: "ok/recheck-every", yaml: replace("      client_id: mandate\n", "      client_id: mandate\n      recheck_every: 1h\n")},
		{name: "fail/recheck-every-too-short", yaml: replace("      client_id: mandate\n", "      client_id: mandate\n      recheck_every: 30s\n"),
			want: []want{{"identity_providers[0].login.recheck_every", "at least 1m"}}},
		{name: "fail/recheck-every-negative", yaml: replace("      client_id: mandate\n", "      client_id: mandate\n      recheck_every: -1h\n"),
			want: []want{{"identity_providers[0].login.recheck_every", "at least 1m"}}},
		{name: "fail/http-issuer", yaml: replace("https://login.example.com", "http://login.example.com"),
			want: []want{{"identity_providers[0].issuer", "https"}}},
		{name: "fail/half-a-subject-token-provider", yaml: replace("    login:\n", "    audience: mandate\n    login:\n"),
			want: []want{{"identity_providers[0].jwks_uri", "required"}}},
		{name: "fail/missing-fields", yaml: "identity_providers:\n  - issuer: https://login.example.com\n    login: {scopes: [profile]}\n",
			want: []want{
				{"identity_providers[0].login.name", "required"},
				{"identity_providers[0].login.client_id", "required"},
				{"identity_providers[0].login.scopes", "must hold openid"},
				{"identity_providers[0].login.user_id", "required"},
			}},
		{name: "fail/template-no-claim", yaml: replace(`"user:{preferred_username}"`, `"user:sam"`),
			want: []want{{"identity_providers[0].login.user_id", "names no claim"}}},
		{name: "fail/template-not-a-claim", yaml: replace(`"user:{preferred_username}"`, `"user:{preferred username}"`),
			want: []want{{"identity_providers[0].login.user_id", "not a claim name"}}},
		{name: "fail/template-unclosed", yaml: replace(`"user:{preferred_username}"`, `"user:{sub"`),
			want: []want{{"identity_providers[0].login.user_id", "without its '}'"}}},
		{name: "fail/template-space", yaml: replace(`"user:{preferred_username}"`, `"user: {sub}"`),
			want: []want{{"identity_providers[0].login.user_id", "white space"}}},
		{name: "fail/unknown-role", yaml: replace("grant: [admin]", "grant: [root, admin, admin]"),
			want: []want{
				{"identity_providers[0].login.roles[0].grant[0]", `"root" is not a role`},
				{"identity_providers[0].login.roles[0].grant[2]", "listed twice"},
			}},
		{name: "fail/bad-permission", yaml: replace("grant: [deploy:create, monitoring:read]", "grant: ['deploy create']"),
			want: []want{{"identity_providers[0].login.permissions[0].grant[0]", "white space"}}},
		{name: "fail/empty-grant", yaml: replace("grant: [deploy:create, monitoring:read]", "grant: []"),
			want: []want{{"identity_providers[0].login.permissions[0].grant", "at least one"}}},
		{name: "fail/when-both", yaml: replace("{claim: groups, contains: sre}", "{claim: groups, contains: sre, equals: sre}"),
			want: []want{{"identity_providers[0].login.permissions[0].when", "one of equals and contains"}}},
		{name: "fail/when-no-claim", yaml: replace("{claim: groups, contains: sre}", "{contains: sre}"),
			want: []want{{"identity_providers[0].login.permissions[0].when.claim", "required"}}},
		{name: "fail/too-many-rules", yaml: strings.Replace(replace("      roles:\n        - when: {claim: groups, contains: mandate-admins}\n          grant: [admin]\n", ""),
			"      permissions:\n        - when: {claim: groups, contains: sre}\n          grant: [deploy:create, monitoring:read]\n", tooMany, 1),
			want: []want{{"identity_providers[0].login.permissions", "at most 64"}}},
		{name: "fail/unknown-key", yaml: replace("      client_id: mandate\n", "      client_id: mandate\n      client_secret: hunter2\n"),
			want: []want{{"identity_providers[0].login", `unknown field "client_secret"`}}},
		{name: "fail/secret-file-missing", yaml: replace("      client_id: mandate\n", "      client_id: mandate\n      client_secret_file: /nonexistent/sso-secret\n"),
			want: []want{{"identity_providers[0].login.client_secret_file", "read client_secret_file"}}},
		{name: "fail/duplicate-name", yaml: loginFile + `  - issuer: https://other.example.com
    login: {name: Example SSO, client_id: mandate, user_id: "other:{sub}"}
`, want: []want{{"identity_providers[1].login.name", "also the name of identity_providers[0]"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := config.Parse([]byte(tt.yaml), "mandate.yaml")
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Parse = %+v, want errors %v", c, tt.want)
			}
			got := fieldErrors(t, err)
			if len(got) != len(tt.want) {
				t.Fatalf("Parse errors:\n%v\nwant %d: %v", err, len(tt.want), tt.want)
			}
			for _, w := range tt.want {
				found := false
				for _, g := range got {
					found = found || (g.Field == w.field && strings.Contains(g.Problem, w.problem) && g.Line > 0)
				}
				if !found {
					t.Errorf("errors:\n%v\nwant field %q with %q, on its line", err, w.field, w.problem)
				}
			}
		})
	}
}

// TestLoginDefaults: scopes default to [openid, profile, email]; the
// client secret is read from its file, which SecretFiles lists.
func TestLoginDefaults(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "sso-secret")
	if err := os.WriteFile(secret, []byte("  the-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	yaml := "identity_providers:\n  - issuer: https://login.example.com\n    login: {name: SSO, client_id: mandate, client_secret_file: " + secret + ", user_id: 'user:{sub}'}\n"
	c, err := config.Parse([]byte(yaml), "mandate.yaml")
	if err != nil {
		t.Fatal(err)
	}
	l := c.IdentityProviders[0].Login
	if diff := cmp.Diff([]string{"openid", "profile", "email"}, l.Scopes); diff != "" {
		t.Errorf("scopes (-want +got):\n%s", diff)
	}
	if got, err := l.ResolveClientSecret(); err != nil || got != "the-secret" {
		t.Errorf("ResolveClientSecret = %q, %v", got, err)
	}
	var listed bool
	for _, f := range c.SecretFiles() {
		listed = listed || (f.Path == secret && f.Field == "identity_providers[0].login.client_secret_file")
	}
	if !listed {
		t.Errorf("SecretFiles = %+v, lacks %s", c.SecretFiles(), secret)
	}
}

// TestLoginWarnings: two logins whose ids start alike draw a warning.
func TestLoginWarnings(t *testing.T) {
	c, err := config.Parse([]byte(loginFile+`  - issuer: https://other.example.com
    login: {name: Other, client_id: mandate, user_id: "user:{sub}"}
  - issuer: https://third.example.com
    login: {name: Third, client_id: mandate, user_id: "third:{sub}"}
`), "mandate.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, w := range c.Warnings() {
		got = append(got, w.Error())
	}
	want := []string{`mandate.yaml: identity_providers[1].login.user_id: makes ids as identity_providers[0] does ("user:" before the first claim): either provider can sign in as the other's people; start each template with its own text, such as "acme:"`}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Warnings (-want +got):\n%s", diff)
	}
}

func TestParseUserIDTemplate(t *testing.T) {
	got, err := config.ParseUserIDTemplate("user:{preferred_username}@{tenant.id}")
	if err != nil {
		t.Fatal(err)
	}
	want := []config.TemplatePart{{Text: "user:"}, {Claim: "preferred_username"}, {Text: "@"}, {Claim: "tenant.id"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("parts (-want +got):\n%s", diff)
	}
	for _, bad := range []string{"", "user", "user:{}", "user:}", "{a}{", "user:{a b}", "u\x00:{a}"} {
		if _, err := config.ParseUserIDTemplate(bad); err == nil {
			t.Errorf("ParseUserIDTemplate(%q) = nil error", bad)
		}
	}
}

func TestClaimMatch(t *testing.T) {
	claims := map[string]any{"groups": []any{"sre", 7}, "dept": "ops", "one": "sre", "n": 3.0}
	tests := []struct {
		name string
		m    config.ClaimMatch
		want bool
	}{
		{name: "ok/list-contains", m: config.ClaimMatch{Claim: "groups", Contains: "sre"}, want: true},
		{name: "ok/string-as-one-item-list", m: config.ClaimMatch{Claim: "one", Contains: "sre"}, want: true},
		{name: "ok/equals", m: config.ClaimMatch{Claim: "dept", Equals: "ops"}, want: true},
		{name: "fail/list-lacks", m: config.ClaimMatch{Claim: "groups", Contains: "dev"}},
		{name: "fail/equals-a-list", m: config.ClaimMatch{Claim: "groups", Equals: "sre"}},
		{name: "fail/absent", m: config.ClaimMatch{Claim: "nope", Contains: "sre"}},
		{name: "fail/number", m: config.ClaimMatch{Claim: "n", Equals: "3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.m.Matches(claims); got != tt.want {
				t.Errorf("Matches = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestRequestedScopes(t *testing.T) {
	for _, tt := range []struct {
		name  string
		login config.Login
		want  []string
	}{
		{name: "ok/default", want: []string{"openid", "profile", "email"}},
		{name: "ok/recheck-adds-offline-access", login: config.Login{RecheckEvery: config.Duration(time.Hour)},
			want: []string{"openid", "profile", "email", "offline_access"}},
		{name: "ok/listed-once", login: config.Login{Scopes: []string{"openid", "offline_access"}, RecheckEvery: config.Duration(time.Hour)},
			want: []string{"openid", "offline_access"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, tt.login.RequestedScopes()); diff != "" {
				t.Errorf("RequestedScopes (-want +got):\n%s", diff)
			}
		})
	}
}
