package config_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/mandate-dev/mandate/internal/config"
)

// TestParseReportsEveryProblem: a file with several problems of every kind
// (unknown keys at the top and nested, values of the wrong type, keys
// given twice, validation problems such as a duplicate id) reports them all
// in one error, one a line, sorted by line, each with the file, the line
// and column, and the field.
func TestParseReportsEveryProblem(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{name: "fail/block-style", yaml: `
issuer: http://127.0.0.1:8080
listn: 127.0.0.1:8080
tokens:
  ttl: 600
  leeway: 6m
agents:
  - id: agent:a
    secret: a-secret-long-enough
    max_depth: lots
  - id: agent:a
    scope: [deploy:create]
    secret: a-secret-long-enough
users:
  - id: user:sam
    id: user:alex
`, want: []string{
			`mandate.yaml:3:1: unknown field "listn"; did you mean "listen"?`,
			`mandate.yaml:5:8: tokens.ttl: want a duration such as "10m" or "90s"`,
			`mandate.yaml:6:3: tokens.leeway: must be at most 5m0s, is 6m0s`,
			`mandate.yaml:10:16: agents[0].max_depth: want a whole number, got a string`,
			`mandate.yaml:11:5: agents[1].id: "agent:a" duplicates agents[0]`,
			`mandate.yaml:12:5: agents[1]: unknown field "scope"; did you mean "scopes"?`,
			`mandate.yaml:16:5: users[0]: key "id" already defined on line 15`,
		}},
		{name: "fail/flow-style", yaml: `
bogus: 1
delegation: {max_depth: 99}
agents: [{id: agent:a, secret: a-secret-long-enough, delegate: []}, {id: agent:a, secret: a-secret-long-enough}]
policies: [{name: p, require: 'true', if: [x]}]
`, want: []string{
			`mandate.yaml:2:1: unknown field "bogus"`,
			`mandate.yaml:3:14: delegation.max_depth: must be from 1 to 10, is 99`,
			`mandate.yaml:4:54: agents[0]: unknown field "delegate"; did you mean "delegate_to"?`,
			`mandate.yaml:4:70: agents[1].id: "agent:a" duplicates agents[0]`,
			`mandate.yaml:5:43: policies[0].if: want a string, got a sequence`,
		}},
		{name: "fail/absent-field-has-the-line-of-its-parent", yaml: `
tokens:
  max_ttl: 5m
agents:
  - id: agent:a
`, want: []string{
			`mandate.yaml:2:1: tokens.ttl: 10m0s is above tokens.max_ttl 5m0s`,
			`mandate.yaml:5:5: agents[0]: needs a credential: a secret (client_secret_basic/post), or jwks or jwks_uri (private_key_jwt)`,
		}},
		{name: "fail/set-aside-value-draws-no-more-problems", yaml: `
users:
  - 5
  - id: user:sam
agents:
  - {id: agent:a, secret: [not, a, string]}
delegations:
  - {subject: user:sam, actor: agent:a, scopes: [x], expires: tomorrow}
`, want: []string{
			`mandate.yaml:3:5: users[0]: want a mapping, got a whole number`,
			`mandate.yaml:6:27: agents[0].secret: want a string, got a sequence`,
			`mandate.yaml:8:63: delegations[0].expires: want a time such as 2027-01-01T00:00:00Z or 2027-01-01, not "tomorrow"`,
		}},
		{name: "fail/anchor-reported-once", yaml: `
agents:
  - &agent {id: agent:a, secret: a-secret-long-enough, colour: blue}
  - *agent
`, want: []string{
			`mandate.yaml:3:56: agents[0]: unknown field "colour"`,
			`mandate.yaml:4:5: agents[1].id: "agent:a" duplicates agents[0]`,
		}},
		{name: "fail/key-merged-in-twice", yaml: `
agents:
  - &agent {id: agent:a, secret: a-secret-long-enough}
  - <<: *agent
    id: agent:b
    max_depth: 20
`, want: []string{
			`mandate.yaml:4:5: agents[1].id: "agent:a" duplicates agents[0]`,
			`mandate.yaml:5:5: agents[1]: key "id" is also merged in with "<<"`,
			`mandate.yaml:6:5: agents[1].max_depth: must be from 0 (no own limit) to 10, is 20`,
		}},
		{name: "fail/repeated-top-level-key", yaml: "listen: 127.0.0.1:1\nlisten: 127.0.0.1:2\nlisen: x\n", want: []string{
			`mandate.yaml:2:1: key "listen" already defined on line 1`,
			`mandate.yaml:3:1: unknown field "lisen"; did you mean "listen"?`,
		}},
		{name: "fail/overflow", yaml: "rate_limits: {per_ip: x}\ndelegation: {max_depth: 99999999999999999999}\n", want: []string{
			`mandate.yaml:1:23: rate_limits.per_ip: want a number, got a string`,
			`mandate.yaml:2:25: delegation.max_depth: 99999999999999999999 is out of range for a whole number`,
		}},
		{name: "fail/syntax-error-stops-there", yaml: "issuer: x\nagents: [\n", want: []string{
			`mandate.yaml:2:9: sequence end token ']' not found`,
		}},
		{name: "fail/top-level-not-a-mapping", yaml: "- issuer: x\n", want: []string{
			`mandate.yaml:1:1: want a mapping, got a sequence`,
		}},
		{name: "fail/second-document", yaml: "listen: 127.0.0.1:1\nbogus: 1\n---\nlisten: 127.0.0.1:2\n", want: []string{
			`mandate.yaml:3:1: holds more than one YAML document`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.Parse([]byte(tt.yaml), "mandate.yaml")
			if err == nil {
				t.Fatalf("Parse succeeded, want %d problems", len(tt.want))
			}
			var got []string
			for _, fe := range fieldErrors(t, err) {
				got = append(got, fe.Error())
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
			if lines := strings.Split(err.Error(), "\n"); !cmp.Equal(lines, got) {
				t.Errorf("err.Error() = %q, want one problem a line", err.Error())
			}
		})
	}
}

// TestLoadNamesTheFile: problems name the file as it was given to Load.
func TestLoadNamesTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mandate.yaml")
	if err := os.WriteFile(path, []byte("tokens:\n  ttl: 1h\n  tll: 5m\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := config.Load(path)
	want := path + `:2:3: tokens.ttl: 1h0m0s is above tokens.max_ttl 15m0s` + "\n" +
		path + `:3:3: tokens: unknown field "tll"; did you mean "ttl"?`
	if err == nil || err.Error() != want {
		t.Errorf("Load: %v\nwant %s", err, want)
	}
}

// TestParseStopsAfterManyProblems: a file that is not a configuration at
// all gets a bounded report, not one decoding pass per line.
func TestParseStopsAfterManyProblems(t *testing.T) {
	var b strings.Builder
	for i := range 200 {
		b.WriteString("key" + strings.Repeat("x", i) + ": 1\n")
	}
	_, err := config.Parse([]byte(b.String()), "mandate.yaml")
	got := fieldErrors(t, err)
	if len(got) != 51 || got[49].Line != 50 || got[50].Error() != "mandate.yaml: more than 50 problems; fix these first" {
		t.Errorf("Parse reported %d problems, the last two %v; want the first 50 and a last one saying there are more", len(got), got[len(got)-2:])
	}
}

// TestDocsExampleOfProblems: the example of a report in docs/config.md is
// what Parse reports for the example file above it.
func TestDocsExampleOfProblems(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "config.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, _ := strings.Cut(string(doc), "For this file\n\n```yaml\n")
	file, rest, _ := strings.Cut(rest, "```\n")
	_, rest, _ = strings.Cut(rest, "prints\n\n```\n")
	report, _, _ := strings.Cut(rest, "```\n")
	if file == "" || report == "" {
		t.Fatal(`docs/config.md has no example file ("For this file") and report ("prints")`)
	}
	_, err = config.Parse([]byte(file), "mandate.yaml")
	if got, want := "mandate: "+fmt.Sprint(err)+"\n", report; got != want {
		t.Errorf("docs/config.md shows:\n%s\nParse reports:\n%s", want, got)
	}
}

// TestUserPasswordAndRoles: a user's password_hash must be an argon2id hash
// that sign-in can check, and each role admin or auditor; problems name
// the file, line and column, and never quote the hash.
func TestUserPasswordAndRoles(t *testing.T) {
	const hostile = "$argon2id$v=19$m=4194304,t=2,p=1$eOOowOxv/eD0ni0tNiUuvA$Qq+Jp5fjwol26Poz4nW7GYTYVRQ9aD0llx/S+qj0H4M"
	yaml := `
users:
  - id: user:sam
    password_hash: "` + config.DevPasswordHash + `"
    roles: [admin, auditor]
  - id: user:lee
    password_hash: "` + hostile + `"
    roles: [auditor, root, auditor]
  - id: user:kim
    password_hash: "$2a$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW"
`
	_, err := config.Parse([]byte(yaml), "mandate.yaml")
	if err == nil {
		t.Fatal("Parse succeeded")
	}
	var got []string
	for _, fe := range fieldErrors(t, err) {
		got = append(got, fe.Error())
	}
	want := []string{
		`mandate.yaml:7:5: users[1].password_hash: not an argon2id hash in the PHC format: m=4194304 is not within 8×p to 262144 KiB`,
		`mandate.yaml:8:22: users[1].roles[1]: "root" is not a role: want admin or auditor`,
		`mandate.yaml:8:28: users[1].roles[2]: "auditor" is listed twice`,
		`mandate.yaml:10:5: users[2].password_hash: not an argon2id hash in the PHC format: the algorithm is not argon2id`,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
	if strings.Contains(err.Error(), "Qq+Jp5") || strings.Contains(err.Error(), "R9h/c") {
		t.Errorf("a problem quotes the hash: %v", err)
	}
	c, err := config.Parse([]byte("users:\n  - id: user:sam\n    password_hash: \""+config.DevPasswordHash+"\"\n    roles: [admin]\n"), "mandate.yaml")
	if err != nil {
		t.Fatalf("Parse of a valid user: %v", err)
	}
	if u := c.Users[0]; u.PasswordHash != config.DevPasswordHash || !cmp.Equal(u.Roles, []string{"admin"}) {
		t.Errorf("user = %+v", u)
	}
}
