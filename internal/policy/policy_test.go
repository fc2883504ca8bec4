package policy_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/mandate-dev/mandate/internal/policy"
)

// sample is the policy from issue 2.
var sample = policy.Rule{
	Name:    "prod-deploys-only-from-ci",
	If:      `context.environment == "prod" && "deploy:create" in scopes`,
	Require: `context.trigger == "ci_pipeline"`,
}

func TestDecide(t *testing.T) {
	deny := func(name string) policy.Decision {
		return policy.Decision{Policy: name, Reason: "policy_denied:" + name}
	}
	allow := policy.Decision{Allow: true}
	prodDeploy := func(trigger string) policy.Input {
		return policy.Input{
			Subject: "user:sam", Actor: "agent:infrabot", Chain: []string{"agent:infrabot"},
			Scopes: []string{"deploy:create"}, Audience: "https://deploy.example", ClientID: "agent:infrabot",
			Context: map[string]any{"environment": "prod", "trigger": trigger},
		}
	}
	tests := []struct {
		name    string
		rules   []policy.Rule
		in      policy.Input
		want    policy.Decision
		wantErr string
	}{
		{name: "ok/no-rules", in: prodDeploy("manual"), want: allow},
		{name: "ok/sample-prod-from-ci", rules: []policy.Rule{sample}, in: prodDeploy("ci_pipeline"), want: allow},
		{
			name: "ok/sample-not-prod", rules: []policy.Rule{sample},
			in:   policy.Input{Scopes: []string{"deploy:create"}, Context: map[string]any{"environment": "staging", "trigger": ""}},
			want: allow,
		},
		{
			name: "ok/sample-prod-without-deploy", rules: []policy.Rule{sample},
			in:   policy.Input{Scopes: []string{"monitoring:read"}, Context: map[string]any{"environment": "prod", "trigger": ""}},
			want: allow,
		},
		{
			name:  "ok/empty-if-applies-to-all",
			rules: []policy.Rule{{Name: "sam-only", Require: `subject == "user:sam"`}},
			in:    prodDeploy(""), want: allow,
		},
		{
			name: "ok/all-variables",
			rules: []policy.Rule{{Name: "all", Require: `subject == "user:sam" && actor == "agent:infrabot" && ` +
				`chain == ["agent:infrabot"] && scopes.exists(s, s.startsWith("deploy:")) && ` +
				`audience == "https://deploy.example" && client_id == actor && size(context) == 2`}},
			in: prodDeploy("ci_pipeline"), want: allow,
		},
		{
			name:  "ok/nested-context",
			rules: []policy.Rule{{Name: "ceiling", If: `"limits" in context`, Require: `context.limits.max_amount <= 1000.0`}},
			in:    policy.Input{Context: map[string]any{"limits": map[string]any{"max_amount": 500.0}}}, want: allow,
		},
		{name: "fail/sample-prod-without-ci", rules: []policy.Rule{sample}, in: prodDeploy("manual"), want: deny(sample.Name)},
		{
			name: "fail/first-denying-rule-wins",
			rules: []policy.Rule{
				{Name: "passes", Require: "true"},
				{Name: "first", Require: "false"},
				{Name: "second", Require: "false"},
			},
			want: deny("first"),
		},
		{
			name:  "fail/depth-limit",
			rules: []policy.Rule{{Name: "short-chains", If: `"deploy:create" in scopes`, Require: "size(chain) <= 1"}},
			in:    policy.Input{Chain: []string{"agent:argocd", "agent:infrabot"}, Scopes: []string{"deploy:create"}},
			want:  deny("short-chains"),
		},
		{
			name: "fail/missing-context-key-is-error", rules: []policy.Rule{sample},
			in: policy.Input{Scopes: []string{"deploy:create"}}, wantErr: "no such key",
		},
		{
			name:  "fail/wrong-type-is-error",
			rules: []policy.Rule{{Name: "typed", Require: `context.environment.startsWith("prod")`}},
			in:    policy.Input{Context: map[string]any{"environment": 3}}, wantErr: "no such overload",
		},
		{
			name:  "fail/cost-limit",
			rules: []policy.Rule{{Name: "spin", Require: `scopes.all(a, scopes.all(b, scopes.all(c, a + b + c != "")))`}},
			in:    policy.Input{Scopes: strings.Split(strings.Repeat("s ", 200), " ")}, wantErr: "cost limit",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := policy.New(tt.rules)
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			got, err := e.Decide(context.Background(), tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Decide error = %v, want one containing %q (decision %+v)", err, tt.wantErr, got)
				}
				if got.Allow {
					t.Fatal("Decide allowed on error")
				}
				return
			}
			if err != nil {
				t.Fatalf("Decide: %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Decide (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNewErrors(t *testing.T) {
	tests := []struct {
		name  string
		rules []policy.Rule
		want  []policy.RuleError // Problem is matched as a substring
	}{
		{
			name:  "fail/empty-name",
			rules: []policy.Rule{{Require: "true"}},
			want:  []policy.RuleError{{Index: 0, Field: "name", Problem: "must not be empty"}},
		},
		{
			name:  "fail/duplicate-name",
			rules: []policy.Rule{{Name: "a", Require: "true"}, {Name: "a", Require: "true"}},
			want:  []policy.RuleError{{Index: 1, Name: "a", Field: "name", Problem: "duplicates policy 0"}},
		},
		{
			name:  "fail/empty-require",
			rules: []policy.Rule{{Name: "a", If: "true"}},
			want:  []policy.RuleError{{Index: 0, Name: "a", Field: "require", Problem: "must not be empty"}},
		},
		{
			name:  "fail/syntax",
			rules: []policy.Rule{{Name: "a", If: "context.", Require: "true"}},
			want:  []policy.RuleError{{Index: 0, Name: "a", Field: "if", Problem: "Syntax error"}},
		},
		{
			name:  "fail/undeclared",
			rules: []policy.Rule{{Name: "a", Require: `user == "sam"`}},
			want:  []policy.RuleError{{Index: 0, Name: "a", Field: "require", Problem: "undeclared reference to 'user'"}},
		},
		{
			name:  "fail/not-bool",
			rules: []policy.Rule{{Name: "a", If: "size(scopes)", Require: "context.trigger"}},
			want: []policy.RuleError{
				{Index: 0, Name: "a", Field: "if", Problem: "must be a bool expression, is int"},
				{Index: 0, Name: "a", Field: "require", Problem: "must be a bool expression, is dyn"},
			},
		},
		{
			name:  "fail/too-long",
			rules: []policy.Rule{{Name: "a", Require: strings.Repeat("true && ", 600) + "true"}},
			want:  []policy.RuleError{{Index: 0, Name: "a", Field: "require", Problem: "size exceeds limit"}},
		},
		{
			name: "fail/all-problems-at-once",
			rules: []policy.Rule{
				{Name: "ok", Require: "true"},
				{Name: "", Require: "nope"},
				{Name: "ok", If: "1", Require: ""},
			},
			want: []policy.RuleError{
				{Index: 1, Field: "name", Problem: "must not be empty"},
				{Index: 1, Field: "require", Problem: "undeclared reference"},
				{Index: 2, Name: "ok", Field: "name", Problem: "duplicates policy 0"},
				{Index: 2, Name: "ok", Field: "if", Problem: "must be a bool expression"},
				{Index: 2, Name: "ok", Field: "require", Problem: "must not be empty"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := policy.New(tt.rules)
			if err == nil {
				t.Fatalf("New = %v, want an error", e)
			}
			var got []policy.RuleError
			for _, err := range err.(interface{ Unwrap() []error }).Unwrap() {
				var re *policy.RuleError
				if !errors.As(err, &re) {
					t.Fatalf("error %v is not a *RuleError", err)
				}
				got = append(got, *re)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("New errors = %v, want %d", err, len(tt.want))
			}
			for i := range got {
				w, g := tt.want[i], got[i]
				if g.Index != w.Index || g.Name != w.Name || g.Field != w.Field || !strings.Contains(g.Problem, w.Problem) {
					t.Errorf("error %d = %+v, want %+v", i, g, w)
				}
				if strings.Contains(g.Problem, "\n") {
					t.Errorf("error %d has a line break: %q", i, g.Problem)
				}
			}
		})
	}
}

func TestNilEngineAllows(t *testing.T) {
	var e *policy.Engine
	got, err := e.Decide(context.Background(), policy.Input{})
	if err != nil || !got.Allow {
		t.Fatalf("nil Engine Decide = %+v, %v; want allow", got, err)
	}
	got, err = (&policy.Engine{}).Decide(context.Background(), policy.Input{})
	if err != nil || !got.Allow {
		t.Fatalf("zero Engine Decide = %+v, %v; want allow", got, err)
	}
}

func TestDecideCancelled(t *testing.T) {
	e, err := policy.New([]policy.Rule{sample})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	got, err := e.Decide(ctx, policy.Input{Context: map[string]any{"environment": "prod", "trigger": ""}})
	if !errors.Is(err, context.Canceled) || got.Allow {
		t.Fatalf("Decide = %+v, %v; want context.Canceled", got, err)
	}
}

func TestDecideConcurrent(t *testing.T) {
	e, err := policy.New([]policy.Rule{sample})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			trigger := "manual"
			if i%2 == 0 {
				trigger = "ci_pipeline"
			}
			for range 200 {
				got, err := e.Decide(context.Background(), policy.Input{
					Scopes:  []string{"deploy:create"},
					Context: map[string]any{"environment": "prod", "trigger": trigger},
				})
				if err != nil || got.Allow != (trigger == "ci_pipeline") {
					t.Errorf("Decide(%s) = %+v, %v", trigger, got, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func BenchmarkDecide(b *testing.B) {
	e, err := policy.New([]policy.Rule{sample})
	if err != nil {
		b.Fatal(err)
	}
	in := policy.Input{
		Subject: "user:sam", Actor: "agent:infrabot", Chain: []string{"agent:infrabot"},
		Scopes: []string{"monitoring:read", "deploy:create"}, Audience: "https://deploy.example",
		ClientID: "agent:infrabot", Context: map[string]any{"environment": "prod", "trigger": "ci_pipeline"},
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if d, err := e.Decide(ctx, in); err != nil || !d.Allow {
			b.Fatalf("Decide = %+v, %v", d, err)
		}
	}
}
