package config_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mandate-dev/mandate/internal/config"
)

const (
	longToken  = "0123456789abcdef0123456789abcdef"   // 32 bytes
	longSecret = "s3cr3t-s3cr3t-s3cr3t-s3cr3t-s3cr3t" // 34 bytes
)

// base is a small valid file that cases extend.
const base = `
users:
  - id: user:sam
    permissions: [deploy:create]
agents:
  - id: agent:a
    secret: a-secret-long-enough
`

func TestParse(t *testing.T) {
	type want struct{ field, problem string } // problem: a substring
	tests := []struct {
		name string
		yaml string
		want []want // empty: must load
	}{
		{name: "ok/empty-file", yaml: ``},
		{name: "ok/comments-only", yaml: "# nothing yet\n"},
		{name: "ok/base", yaml: base},
		{name: "ok/https-issuer-long-secrets", yaml: `
issuer: https://mandate.example
listen: 0.0.0.0:443
admin: {token: ` + longToken + `}
agents: [{id: agent:a, secret: ` + longSecret + `}]`},
		{name: "ok/ipv6-loopback", yaml: "issuer: http://[::1]:8080\nlisten: '[::1]:8080'\n"},
		{name: "ok/localhost", yaml: "issuer: http://localhost:9000\nlisten: localhost:9000\n"},
		{name: "ok/sqlite-store", yaml: "store: sqlite:/tmp/m.db\n"},
		{name: "ok/jwks-uri-agent", yaml: "agents: [{id: agent:k, jwks_uri: https://k.example/jwks}]\n"},
		{name: "ok/inline-jwks", yaml: `
agents:
  - id: agent:k
    jwks:
      keys:
        - {kty: OKP, crv: Ed25519, kid: k1, x: 11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo}
`},
		{name: "ok/delegation-broader-than-permissions", yaml: base + `
delegations:
  - {subject: user:sam, actor: agent:a, scopes: ['deploy:create', 'secrets:manage']}
`},
		{name: "ok/date-only-expiry", yaml: base + `
delegations: [{subject: user:sam, actor: agent:a, scopes: [x], expires: 2027-01-01}]
`},
		{name: "ok/unknown-delegate-to-is-a-warning", yaml: "agents: [{id: agent:a, secret: 12345678, delegate_to: ['agent:elsewhere']}]\n"},
		{name: "ok/policy-without-if", yaml: "policies: [{name: sam-only, require: 'subject == \"user:sam\"', description: only Sam}]\n"},

		{name: "fail/unknown-key", yaml: "issuer: http://127.0.0.1:8080\nlistn: 127.0.0.1:8080\n",
			want: []want{{"", `unknown field "listn"`}}},
		{name: "fail/unknown-nested-key", yaml: "agents: [{id: agent:a, secret: 12345678, scope: [x]}]\n",
			want: []want{{"agents[0]", `unknown field "scope"; did you mean "scopes"?`}}},
		{name: "fail/duplicate-key", yaml: "listen: 127.0.0.1:1\nlisten: 127.0.0.1:2\n",
			want: []want{{"", `"listen" already defined`}}},
		{name: "fail/two-documents", yaml: "listen: 127.0.0.1:1\n---\nlisten: 127.0.0.1:2\n",
			want: []want{{"", "more than one YAML document"}}},
		{name: "fail/empty-first-document", yaml: "---\n---\nissuer: x\n",
			want: []want{{"", "more than one YAML document"}}},
		{name: "fail/wrong-type", yaml: "users: {id: x}\n", want: []want{{"users", "want a sequence, got a mapping"}}},
		{name: "fail/duration-bare-number", yaml: "tokens: {ttl: 600}\n", want: []want{{"tokens.ttl", "want a duration"}}},
		{name: "fail/duration-garbage", yaml: "tokens: {ttl: soon}\n", want: []want{{"tokens.ttl", `not "soon"`}}},
		{name: "fail/expires-garbage", yaml: base + "delegations: [{subject: user:sam, actor: agent:a, scopes: [x], expires: tomorrow}]\n",
			want: []want{{"delegations[0].expires", "want a time"}}},

		{name: "fail/issuer-http-not-loopback", yaml: "issuer: http://mandate.example\n",
			want: []want{{"issuer", "must use https"}}},
		{name: "fail/issuer-relative", yaml: "issuer: /mandate\n", want: []want{{"issuer", "scheme"}}},
		{name: "fail/issuer-query", yaml: "issuer: https://m.example/?a=b\n", want: []want{{"issuer", "query"}}},
		{name: "fail/issuer-fragment", yaml: "issuer: https://m.example#x\n", want: []want{{"issuer", "fragment"}}},
		{name: "fail/issuer-userinfo", yaml: "issuer: https://u:p@m.example\n", want: []want{{"issuer", "user info"}}},
		{name: "fail/issuer-trailing-slash", yaml: "issuer: https://m.example/\n", want: []want{{"issuer", "slash"}}},
		{name: "fail/issuer-loopback-lookalike", yaml: "issuer: http://127.0.0.1.evil.example\n",
			want: []want{{"issuer", "must use https"}}},
		{name: "fail/listen-no-port", yaml: "listen: 127.0.0.1\n", want: []want{{"listen", "HOST:PORT"}}},
		{name: "fail/listen-bad-port", yaml: "listen: 127.0.0.1:http\n", want: []want{{"listen", "port"}}},
		{name: "ok/store-postgres", yaml: "store: postgres://mandate@db.internal:5432/mandate?sslmode=verify-full\n"},
		{name: "ok/user-limits", yaml: "users:\n  - id: user:alice\n    permissions: [expense:approve]\n    limits:\n      - type: expense_approval\n        max_amount: 1000\n        currency: USD\n"},
		{name: "fail/user-limit-without-type", yaml: "users:\n  - id: user:alice\n    limits:\n      - max_amount: 1000\n", want: []want{{"users[0].limits[0].type", "needs a type"}}},
		{name: "fail/store-schema", yaml: "store: postgres://m@db/m\nstore_schema: Mandate-1\n", want: []want{{"store_schema", "lower-case identifier"}}},
		{name: "fail/store-postgres-no-host", yaml: "store: postgres:///mandate\n", want: []want{{"store", "not a valid postgres:// URL"}}},
		{name: "fail/store-password-file-missing", yaml: "store: postgres://mandate@db/mandate\nstore_password_file: /nonexistent/pw\n",
			want: []want{{"store_password_file", ""}}},
		{name: "fail/store-unknown", yaml: "store: mysql://db\n", want: []want{{"store", "unknown store"}}},
		{name: "fail/store-sqlite-no-path", yaml: "store: 'sqlite:'\n", want: []want{{"store", "needs a file path"}}},

		{name: "fail/admin-token-short", yaml: "issuer: https://m.example\nadmin: {token: short-token}\n",
			want: []want{{"admin.token", "at least 32 bytes"}}},
		{name: "fail/admin-token-short-on-loopback", yaml: "admin: {token: short}\n",
			want: []want{{"admin.token", "at least 8 bytes"}}},
		{name: "fail/admin-token-and-file", yaml: "admin: {token: " + longToken + ", token_file: /nonexistent}\n",
			want: []want{{"admin", "not both"}}},
		{name: "fail/admin-token-file-missing", yaml: "admin: {token_file: /nonexistent/token}\n",
			want: []want{{"admin", "read token_file"}}},

		{name: "fail/ttl-above-max", yaml: "tokens: {ttl: 20m}\n", want: []want{{"tokens.ttl", "above tokens.max_ttl"}}},
		{name: "fail/max-ttl-above-24h", yaml: "tokens: {ttl: 1h, max_ttl: 25h}\n",
			want: []want{{"tokens.max_ttl", "at most 24h"}}},
		{name: "fail/negative-duration", yaml: "tokens: {ttl: -1m}\n", want: []want{{"tokens.ttl", "positive"}}},
		{name: "fail/leeway-above-5m", yaml: "tokens: {leeway: 6m}\n", want: []want{{"tokens.leeway", "at most 5m"}}},
		{name: "fail/checkpoint-every-below-1s", yaml: "audit: {checkpoint_every: 500ms}\n", want: []want{{"audit.checkpoint_every", "from 1s to 1h"}}},
		{name: "fail/checkpoint-every-above-1h", yaml: "audit: {checkpoint_every: 2h}\n", want: []want{{"audit.checkpoint_every", "from 1s to 1h"}}},
		{name: "fail/sweep-every-below-1s", yaml: "storage: {sweep_every: 500ms}\n", want: []want{{"storage.sweep_every", "from 1s to 1h"}}},
		{name: "fail/sweep-every-above-1h", yaml: "storage: {sweep_every: 2h}\n", want: []want{{"storage.sweep_every", "from 1s to 1h"}}},
		{name: "fail/sweep-batch-negative", yaml: "storage: {sweep_batch: -1}\n", want: []want{{"storage.sweep_batch", "from 1 to 10000"}}},
		{name: "fail/sweep-batch-above-most", yaml: "storage: {sweep_batch: 10001}\n", want: []want{{"storage.sweep_batch", "from 1 to 10000"}}},
		{name: "fail/audit-unknown-key", yaml: "audit: {witness: x}\n", want: []want{{"audit", `unknown field "witness"`}}},
		{name: "ok/retention-days", yaml: "audit: {retention: 90d, archive_dir: /var/lib/mandate/archive}\n"},
		{name: "ok/retention-hours", yaml: "audit: {retention: 2160h}\n"},
		{name: "fail/retention-below-1s", yaml: "audit: {retention: 500ms}\n", want: []want{{"audit.retention", "at least 1s"}}},
		{name: "fail/retention-fraction-of-days", yaml: "audit: {retention: 1.5d}\n", want: []want{{"audit.retention", "duration"}}},
		{name: "ok/rate-limits", yaml: "rate_limits: {per_client: 50, per_ip: 0.5}\n"},
		{name: "fail/rate-limit-negative", yaml: "rate_limits: {per_client: -1}\n",
			want: []want{{"rate_limits.per_client", "from 0 (no limit) to 100000"}}},
		{name: "fail/rate-limit-too-high", yaml: "rate_limits: {per_ip: 200000}\n",
			want: []want{{"rate_limits.per_ip", "from 0 (no limit) to 100000"}}},
		{name: "fail/rate-limit-nan", yaml: "rate_limits: {per_ip: .nan}\n",
			want: []want{{"rate_limits.per_ip", "from 0 (no limit)"}}},
		{name: "ok/ingest-per-reporter", yaml: "rate_limits: {ingest_per_reporter: 500}\n"},
		{name: "fail/ingest-per-reporter-negative", yaml: "rate_limits: {ingest_per_reporter: -1}\n",
			want: []want{{"rate_limits.ingest_per_reporter", "from 1 to 100000"}}},
		{name: "fail/ingest-per-reporter-too-high", yaml: "rate_limits: {ingest_per_reporter: 1e6}\n",
			want: []want{{"rate_limits.ingest_per_reporter", "from 1 to 100000"}}},
		{name: "fail/publish-delay-negative", yaml: "tokens: {key_publish_delay: -5m}\n",
			want: []want{{"tokens.key_publish_delay", "must be from 1m"}}},
		{name: "fail/publish-delay-within-refetch-cooldown", yaml: "tokens: {key_publish_delay: 30s}\n",
			want: []want{{"tokens.key_publish_delay", "must be from 1m"}}},
		{name: "fail/publish-delay-above-1d", yaml: "tokens: {key_publish_delay: 25h}\n",
			want: []want{{"tokens.key_publish_delay", "must be from 1m"}}},
		{name: "ok/publish-delay-minimum", yaml: "tokens: {key_publish_delay: 1m}\n"},
		{name: "fail/signing-alg", yaml: "tokens: {signing_alg: HS256}\n", want: []want{{"tokens.signing_alg", `"HS256"`}}},
		{name: "fail/max-depth-high", yaml: "delegation: {max_depth: 11}\n",
			want: []want{{"delegation.max_depth", "from 1 to 10"}}},
		{name: "fail/max-depth-negative", yaml: "delegation: {max_depth: -1}\n",
			want: []want{{"delegation.max_depth", "from 1 to 10"}}},

		{name: "fail/idp-http", yaml: "identity_providers: [{issuer: http://idp.example, jwks_uri: http://idp.example/jwks, audience: m}]\n",
			want: []want{{"identity_providers[0].issuer", "https"}, {"identity_providers[0].jwks_uri", "https"}}},
		{name: "fail/idp-missing-fields", yaml: "identity_providers: [{issuer: https://idp.example}]\n",
			want: []want{{"identity_providers[0].jwks_uri", "required"}, {"identity_providers[0].audience", "required"}}},
		{name: "fail/idp-duplicate", yaml: `
identity_providers:
  - {issuer: https://idp.example, jwks_uri: https://idp.example/jwks, audience: m}
  - {issuer: https://idp.example, jwks_uri: https://idp.example/jwks, audience: n}
`, want: []want{{"identity_providers[1].issuer", "duplicates identity_providers[0]"}}},
		{name: "fail/idp-alg-none-and-hmac", yaml: "identity_providers: [{issuer: https://i.example, jwks_uri: https://i.example/k, audience: m, algorithms: [none, HS256, RS256, RS256]}]\n",
			want: []want{
				{"identity_providers[0].algorithms[0]", `"none" is not an asymmetric`},
				{"identity_providers[0].algorithms[1]", `"HS256" is not an asymmetric`},
				{"identity_providers[0].algorithms[3]", "listed twice"},
			}},

		{name: "fail/empty-id", yaml: "users: [{id: ''}]\n", want: []want{{"users[0].id", "must not be empty"}}},
		{name: "fail/id-control-char", yaml: "users: [{id: \"user:\\u0007sam\"}]\n", want: []want{{"users[0].id", "control"}}},
		{name: "fail/id-too-long", yaml: "users: [{id: " + strings.Repeat("u", 257) + "}]\n",
			want: []want{{"users[0].id", "at most 256"}}},
		{name: "fail/duplicate-user", yaml: "users: [{id: user:sam}, {id: user:sam}]\n",
			want: []want{{"users[1].id", "duplicates users[0]"}}},
		{name: "fail/duplicate-agent", yaml: "agents: [{id: agent:a, secret: 12345678}, {id: agent:a, secret: 12345678}]\n",
			want: []want{{"agents[1].id", "duplicates agents[0]"}}},
		{name: "fail/user-and-agent-same-id", yaml: "users: [{id: x}]\nagents: [{id: x, secret: 12345678}]\n",
			want: []want{{"agents[0].id", "also users[0].id"}}},
		{name: "fail/scope-whitespace", yaml: "users: [{id: u, permissions: ['deploy create']}]\n",
			want: []want{{"users[0].permissions[0]", "white space"}}},
		{name: "fail/scope-empty", yaml: "users: [{id: u, permissions: ['']}]\n",
			want: []want{{"users[0].permissions[0]", "must not be empty"}}},
		{name: "fail/scope-too-long", yaml: "users: [{id: u, permissions: [" + strings.Repeat("s", 129) + "]}]\n",
			want: []want{{"users[0].permissions[0]", "at most 128"}}},
		{name: "fail/scope-duplicate", yaml: "users: [{id: u, permissions: [a, a]}]\n",
			want: []want{{"users[0].permissions[1]", "listed twice"}}},
		{name: "fail/too-many-scopes", yaml: "users: [{id: u, permissions: [" + numbered("s", 65) + "]}]\n",
			want: []want{{"users[0].permissions", "at most 64"}}},

		{name: "fail/agent-no-credential", yaml: "agents: [{id: agent:a}]\n", want: []want{{"agents[0]", "needs a credential"}}},
		{name: "fail/agent-secret-and-file", yaml: "agents: [{id: agent:a, secret: 12345678, secret_file: /x}]\n",
			want: []want{{"agents[0]", "not both"}}},
		{name: "fail/agent-secret-short", yaml: "issuer: https://m.example\nagents: [{id: agent:a, secret: infrabot-secret}]\n",
			want: []want{{"agents[0].secret", "at least 32 bytes"}}},
		{name: "fail/agent-jwks-and-uri", yaml: "agents: [{id: agent:a, jwks: {keys: []}, jwks_uri: https://a.example/jwks}]\n",
			want: []want{{"agents[0]", "jwks or jwks_uri, not both"}, {"agents[0].jwks", "no keys"}}},
		{name: "fail/agent-jwks-private", yaml: `
agents:
  - id: agent:k
    jwks: {keys: [{kty: OKP, crv: Ed25519, x: 11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo, d: nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A}]}
`, want: []want{{"agents[0].jwks", "private key"}}},
		{name: "fail/agent-jwks-symmetric", yaml: "agents: [{id: agent:k, jwks: {keys: [{kty: oct, k: c2VjcmV0}]}}]\n",
			want: []want{{"agents[0].jwks", "symmetric"}}},
		{name: "fail/agent-jwks-uri-http", yaml: "agents: [{id: agent:k, jwks_uri: http://k.example/jwks}]\n",
			want: []want{{"agents[0].jwks_uri", "https"}}},
		{name: "fail/delegate-to-self", yaml: "agents: [{id: agent:a, secret: 12345678, delegate_to: ['agent:a']}]\n",
			want: []want{{"agents[0].delegate_to[0]", "itself"}}},
		{name: "ok/agent-resources", yaml: "agents: [{id: rs:api, secret: 12345678, scopes: ['audit:report'], resources: ['https://api.example', 'rs:api-v2']}]\n"},
		{name: "fail/agent-resource-with-space", yaml: "agents: [{id: rs:api, secret: 12345678, resources: ['https://api.example x']}]\n",
			want: []want{{"agents[0].resources[0]", "white space"}}},
		{name: "fail/agent-resource-empty", yaml: "agents: [{id: rs:api, secret: 12345678, resources: ['']}]\n",
			want: []want{{"agents[0].resources[0]", "must not be empty"}}},
		{name: "fail/agent-resource-twice", yaml: "agents: [{id: rs:api, secret: 12345678, resources: [a, b, a]}]\n",
			want: []want{{"agents[0].resources[2]", "listed twice"}}},
		{name: "fail/agent-depth", yaml: "agents: [{id: agent:a, secret: 12345678, max_depth: 11}]\n",
			want: []want{{"agents[0].max_depth", "0 (no own limit) to 10"}}},

		{name: "fail/delegation-unknown-principals", yaml: base + "delegations: [{subject: user:bob, actor: agent:b, scopes: [x]}]\n",
			want: []want{{"delegations[0].subject", `"user:bob" is not a configured user`}, {"delegations[0].actor", `"agent:b" is not a configured agent`}}},
		{name: "fail/delegation-no-scopes", yaml: base + "delegations: [{subject: user:sam, actor: agent:a}]\n",
			want: []want{{"delegations[0].scopes", "at least one scope"}}},
		{name: "fail/delegation-duplicate-derived-id", yaml: base + `
delegations:
  - {subject: user:sam, actor: agent:a, scopes: [x]}
  - {subject: user:sam, actor: agent:a, scopes: [y]}
`, want: []want{{"delegations[1].id", "duplicates delegations[0]"}}},
		{name: "fail/delegation-audience-space", yaml: base + "delegations: [{subject: user:sam, actor: agent:a, scopes: [x], audiences: ['a b']}]\n",
			want: []want{{"delegations[0].audiences[0]", "white space"}}},
		{name: "fail/delegation-depth", yaml: base + "delegations: [{subject: user:sam, actor: agent:a, scopes: [x], max_depth: -1}]\n",
			want: []want{{"delegations[0].max_depth", "0 (no own limit) to 10"}}},

		{name: "fail/policy-does-not-compile", yaml: `
policies:
  - {name: p, if: 'context.environment ==', require: 'nope == 1'}
  - {name: p, require: ''}
  - {name: '', if: 'size(scopes)', require: 'true'}
`, want: []want{
			{"policies[0].if", "Syntax error"},
			{"policies[0].require", "undeclared reference to 'nope'"},
			{"policies[1].name", "duplicates policy 0"},
			{"policies[1].require", "must not be empty"},
			{"policies[2].name", "must not be empty"},
			{"policies[2].if", "must be a bool expression"},
		}},
		{name: "fail/every-problem-at-once", yaml: "issuer: ftp://x\nlisten: nope\ntokens: {ttl: 1h}\ndelegation: {max_depth: 99}\n",
			want: []want{{"issuer", "scheme"}, {"listen", "HOST:PORT"}, {"tokens.ttl", "above"}, {"delegation.max_depth", "1 to 10"}}},
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
			for i, w := range tt.want {
				if got[i].File != "mandate.yaml" || got[i].Field != w.field || !strings.Contains(got[i].Problem, w.problem) {
					t.Errorf("error %d = %q, want field %q with %q", i, got[i].Error(), w.field, w.problem)
				}
			}
		})
	}
}

func fieldErrors(t *testing.T, err error) []*config.FieldError {
	t.Helper()
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	var out []*config.FieldError
	for _, e := range errs {
		var fe *config.FieldError
		if !errors.As(e, &fe) {
			t.Fatalf("%v is not a *config.FieldError", e)
		}
		out = append(out, fe)
	}
	return out
}

func numbered(prefix string, n int) string {
	s := make([]string, n)
	for i := range s {
		s[i] = fmt.Sprintf("%s%d", prefix, i)
	}
	return strings.Join(s, ", ")
}

// TestLoadSample loads the sample file of issue 2 exactly as written.
func TestLoadSample(t *testing.T) {
	path := filepath.Join("testdata", "sample-from-issue.yaml")
	c, err := config.Load(path)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	want := &config.Config{
		Issuer:  "http://127.0.0.1:8080",
		Listen:  "127.0.0.1:8080",
		DataDir: "./mandate-data",
		Admin:   config.Admin{Token: "change-me-32-bytes-or-more"},
		Tokens: config.Tokens{
			TTL: config.Duration(10 * time.Minute), MaxTTL: config.Duration(15 * time.Minute), SigningAlg: "EdDSA",
			Leeway: config.Duration(time.Minute), KeyPublishDelay: config.Duration(5 * time.Minute),
		},
		Delegation: config.DelegationLimits{MaxDepth: 3},
		Audit:      config.Audit{CheckpointEvery: config.Duration(config.DefaultCheckpointEvery)},
		Storage:    config.Storage{SweepEvery: config.Duration(config.DefaultSweepEvery), SweepBatch: config.DefaultSweepBatch},
		SignIn: config.SignIn{SessionIdle: config.Duration(config.DefaultSessionIdle), SessionMax: config.Duration(config.DefaultSessionMax),
			AttemptsPerAccount: config.DefaultAttemptsPerAccount, AttemptsPerAddress: config.DefaultAttemptsPerAddress},
		RateLimits:   config.RateLimits{IngestPerReporter: config.DefaultIngestPerReporter},
		Registration: config.Registration{Policy: config.DefaultRegistrationPolicy, PerHour: config.DefaultRegistrationsPerHour},
		IdentityProviders: []config.IdentityProvider{{
			Issuer: "https://idp.example", JWKSURI: "https://idp.example/jwks", Audience: "mandate",
			Algorithms: []string{"RS256", "ES256", "EdDSA"},
		}},
		Users: []config.User{{ID: "user:sam", Permissions: []string{"monitoring:read", "deploy:create", "secrets:manage"}}},
		Agents: []config.Agent{{
			ID: "agent:infrabot", Secret: "infrabot-secret",
			Scopes:     []string{"monitoring:read", "deploy:comment", "deploy:create"},
			DelegateTo: []string{"agent:argocd"}, MaxDepth: 2,
		}},
		Delegations: []config.Delegation{{
			ID: config.DelegationID("user:sam", "agent:infrabot"), Subject: "user:sam", Actor: "agent:infrabot",
			Scopes:    []string{"monitoring:read", "deploy:create"},
			Audiences: []string{"https://deploy.example", "agent:argocd"},
			Expires:   time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC),
		}},
		Policies: []config.Policy{{
			Name:    "prod-deploys-only-from-ci",
			If:      `context.environment == "prod" && "deploy:create" in scopes`,
			Require: `context.trigger == "ci_pipeline"`,
		}},
		Source: path,
	}
	if diff := cmp.Diff(want, c); diff != "" {
		t.Errorf("Load (-want +got):\n%s", diff)
	}
	if got := c.Delegations[0].ID; got != "dlg_3e94891fa332e6fc" {
		t.Errorf("derived delegation id = %s, changed: stored delegations would no longer match", got)
	}
	if got := c.SQLitePath(); got != filepath.Join("mandate-data", "mandate.db") {
		t.Errorf("SQLitePath = %q", got)
	}
	var warned []string
	for _, w := range c.Warnings() {
		warned = append(warned, w.Error())
	}
	wantWarn := []string{
		path + `: agents[0].delegate_to[0]: "agent:argocd" is not an agent in this file; it must exist in the store`,
		path + ": admin.token: is a placeholder; set a random value (openssl rand -hex 32)",
	}
	if diff := cmp.Diff(wantWarn, warned); diff != "" {
		t.Errorf("Warnings (-want +got):\n%s", diff)
	}
}

func TestDefaults(t *testing.T) {
	c, err := config.Parse(nil, "empty.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := &config.Config{
		Issuer: "http://127.0.0.1:8080", Listen: "127.0.0.1:8080", DataDir: "./mandate-data",
		Tokens: config.Tokens{
			TTL: config.Duration(10 * time.Minute), MaxTTL: config.Duration(15 * time.Minute), SigningAlg: "EdDSA",
			Leeway: config.Duration(60 * time.Second), KeyPublishDelay: config.Duration(5 * time.Minute),
		},
		Delegation: config.DelegationLimits{MaxDepth: 4},
		Audit:      config.Audit{CheckpointEvery: config.Duration(config.DefaultCheckpointEvery)},
		Storage:    config.Storage{SweepEvery: config.Duration(config.DefaultSweepEvery), SweepBatch: config.DefaultSweepBatch},
		SignIn: config.SignIn{SessionIdle: config.Duration(config.DefaultSessionIdle), SessionMax: config.Duration(config.DefaultSessionMax),
			AttemptsPerAccount: config.DefaultAttemptsPerAccount, AttemptsPerAddress: config.DefaultAttemptsPerAddress},
		RateLimits:   config.RateLimits{IngestPerReporter: config.DefaultIngestPerReporter},
		Registration: config.Registration{Policy: config.DefaultRegistrationPolicy, PerHour: config.DefaultRegistrationsPerHour},
		Source:       "empty.yaml",
	}
	if diff := cmp.Diff(want, c); diff != "" {
		t.Errorf("defaults (-want +got):\n%s", diff)
	}
	if c.LoopbackOnly() != true {
		t.Error("default config is not loopback-only")
	}
	c, err = config.Parse([]byte("listen: 127.0.0.1:9000\n"), "m.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Issuer != "http://127.0.0.1:9000" {
		t.Errorf("issuer derived from listen = %q, want http://127.0.0.1:9000", c.Issuer)
	}
}

func TestDev(t *testing.T) {
	c := config.Dev(t.TempDir())
	if err := c.Validate(); err != nil {
		t.Fatalf("Dev config does not validate: %v", err)
	}
	if len(c.Warnings()) != 0 {
		t.Errorf("Dev warnings: %v", c.Warnings())
	}
	if c.Issuer != "http://127.0.0.1:8080" || c.Listen != "127.0.0.1:8080" || c.Admin != (config.Admin{}) {
		t.Errorf("Dev = issuer %q listen %q admin %v", c.Issuer, c.Listen, c.Admin)
	}
	// A three-hop chain user:sam → infrabot → argocd → cleanup_agent can only
	// carry a scope every hop holds, since a chain never widens.
	held := map[string]int{}
	count := func(scopes []string) {
		for _, s := range scopes {
			held[s]++
		}
	}
	count(c.Users[0].Permissions)
	count(c.Delegations[0].Scopes)
	for _, a := range c.Agents {
		count(a.Scopes)
	}
	if held["deploy:tag"] != 5 {
		t.Errorf("deploy:tag is held by %d of the 5 links of the dev chain", held["deploy:tag"])
	}
}

func TestResolveSecrets(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "admin-token")
	if err := os.WriteFile(tokenFile, []byte(longToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	secretFile := filepath.Join(dir, "secret")
	if err := os.WriteFile(secretFile, []byte("  "+longSecret+"\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := config.Parse([]byte(fmt.Sprintf(`
issuer: https://m.example
admin: {token_file: %q}
agents: [{id: agent:a, secret_file: %q}]
`, tokenFile, secretFile)), "m.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := c.Admin.Resolve(); err != nil || got != longToken {
		t.Errorf("Admin.Resolve = %q, %v", got, err)
	}
	if got, err := c.Agents[0].ResolveSecret(); err != nil || got != longSecret {
		t.Errorf("ResolveSecret = %q, %v", got, err)
	}
	if got, err := (config.Admin{}).Resolve(); err != nil || got != "" {
		t.Errorf("empty Admin.Resolve = %q, %v; want disabled", got, err)
	}
}

// TestSecretsNeverPrinted checks errors and fmt output for the secrets.
func TestSecretsNeverPrinted(t *testing.T) {
	const secret, token = "SUPERSECRET", "ADMINTOKEN"
	_, err := config.Parse([]byte(`
issuer: https://m.example
admin: {token: `+token+`}
agents: [{id: agent:a, secret: `+secret+`}, {id: agent:b, secret: `+secret+`, secret_file: /x}]
`), "m.yaml")
	if err == nil {
		t.Fatal("short secrets accepted")
	}
	for _, s := range []string{secret, token} {
		if strings.Contains(err.Error(), s) {
			t.Errorf("error shows a secret: %v", err)
		}
	}
	c := config.Dev(t.TempDir())
	c.Admin.Token = token
	for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
		out := fmt.Sprintf(verb, c)
		if strings.Contains(out, token) || strings.Contains(out, "infrabot-dev-secret") {
			t.Errorf("fmt %s shows a secret: %s", verb, out)
		}
	}
	// A decode error must not quote the source line either.
	_, err = config.Parse([]byte("admin: {token: "+token+", nope: 1}\n"), "m.yaml")
	if err == nil || strings.Contains(err.Error(), token) {
		t.Errorf("decode error = %v, want one without the token", err)
	}
}

func TestLoadErrors(t *testing.T) {
	if _, err := config.Load(filepath.Join(t.TempDir(), "missing.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load missing = %v, want os.ErrNotExist", err)
	}
	path := filepath.Join(t.TempDir(), "big.yaml")
	if err := os.WriteFile(path, make([]byte, config.MaxFileSize+1), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := config.Load(path); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("Load big = %v", err)
	}
}

// TestReadableSecretsQuotesPaths: a warning's chmod is a shell word the
// operator can paste, whatever the path holds, and never carries a control
// character raw.
func TestReadableSecretsQuotesPaths(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, file, want string
	}{
		{name: "ok/plain", file: "agent.secret", want: "chmod 600 " + filepath.Join(dir, "agent.secret")},
		{name: "ok/space-and-quote", file: "my secrets'", want: "chmod 600 '" + filepath.Join(dir, "my secrets") + `'\'''`},
		{name: "ok/control-character", file: "a\x1b[2Jb", want: "chmod 600 '" + filepath.Join(dir, "a") + `'$'\x1b''[2Jb'`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, tc.file)
			if err := os.WriteFile(path, []byte("a-client-secret-of-32-bytes-or-more"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, 0o644); err != nil {
				t.Fatal(err)
			}
			c := &config.Config{Source: "m.yaml", Store: "postgres://db.example/m", StorePasswordFile: path}
			got := c.ReadableSecrets()
			if len(got) != 1 || !strings.HasSuffix(got[0].Error(), tc.want) || strings.Contains(got[0].Error(), "\x1b") {
				t.Fatalf("ReadableSecrets = %q, want one ending %q", got, tc.want)
			}
		})
	}
}
