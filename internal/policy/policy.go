package policy

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/interpreter"
)

// Limits on what a rule may cost. A hostile or careless policy (a nested
// comprehension over a large list) stops at CostLimit instead of spinning.
const (
	// CostLimit is the most a single expression may cost per evaluation, in
	// CEL cost units (roughly one per operation and per list element visited).
	CostLimit = 100_000
	// MaxExpressionSize is the longest expression New accepts, in code points.
	MaxExpressionSize = 4096
	// interruptEvery is how many comprehension iterations pass between checks
	// of the context's cancellation.
	interruptEvery = 100
)

// Names of the CEL variables a rule can read.
const (
	VarSubject  = "subject"
	VarActor    = "actor"
	VarChain    = "chain"
	VarScopes   = "scopes"
	VarAudience = "audience"
	VarClientID = "client_id"
	VarContext  = "context"
)

// Rule is one policy: when If holds (an empty If holds for every request),
// Require must hold too, or the request is denied with Name.
type Rule struct {
	Name    string
	If      string
	Require string
}

// Input is what a rule sees of a request. Chain lists the actors, current
// first; Scopes is the set about to be granted; Context is the caller's
// assertion about the request (`environment`, `trigger`, ...).
type Input struct {
	Subject  string
	Actor    string
	Chain    []string
	Scopes   []string
	Audience string
	ClientID string
	Context  map[string]any
}

// Decision is the outcome of Decide. When Allow is false, Policy names the
// denying rule and Reason is a machine-readable code such as
// "policy_denied:prod-deploys-only-from-ci".
type Decision struct {
	Allow  bool
	Policy string
	Reason string
}

// ReasonDenied prefixes the Reason of a Decision that a rule denied.
const ReasonDenied = "policy_denied:"

// RuleError is one problem with one rule found by New. Field is "name", "if"
// or "require".
type RuleError struct {
	Index   int
	Name    string
	Field   string
	Problem string
}

// Error reads like `policy 0 "prod-only" require: must be a bool expression`.
func (e *RuleError) Error() string {
	return fmt.Sprintf("policy %d %q %s: %s", e.Index, e.Name, e.Field, e.Problem)
}

// Engine holds compiled rules. The zero value and a nil *Engine allow every
// request. An Engine is immutable and safe for concurrent use.
type Engine struct {
	rules []compiled
}

type compiled struct {
	name    string
	cond    cel.Program // nil: the rule applies to every request
	require cel.Program
}

// New compiles rules in order. It returns every problem at once, joined with
// errors.Join, each a *RuleError naming the rule's index, name and field:
// empty or duplicate names, an empty Require, an expression that does not
// parse, does not type-check, is not of type bool or is longer than
// MaxExpressionSize.
func New(rules []Rule) (*Engine, error) {
	env, err := newEnv()
	if err != nil {
		return nil, fmt.Errorf("policy: build CEL environment: %w", err)
	}
	var (
		errs []error
		seen = make(map[string]int, len(rules))
		e    = &Engine{rules: make([]compiled, 0, len(rules))}
	)
	for i, r := range rules {
		bad := func(field, format string, args ...any) {
			errs = append(errs, &RuleError{Index: i, Name: r.Name, Field: field, Problem: fmt.Sprintf(format, args...)})
		}
		switch first, dup := seen[r.Name]; {
		case strings.TrimSpace(r.Name) == "":
			bad("name", "must not be empty")
		case dup:
			bad("name", "duplicates policy %d", first)
		default:
			seen[r.Name] = i
		}
		c := compiled{name: r.Name}
		if strings.TrimSpace(r.If) != "" {
			prg, problem := compile(env, r.If)
			if problem != "" {
				bad("if", "%s", problem)
			}
			c.cond = prg
		}
		if strings.TrimSpace(r.Require) == "" {
			bad("require", "must not be empty")
		} else {
			prg, problem := compile(env, r.Require)
			if problem != "" {
				bad("require", "%s", problem)
			}
			c.require = prg
		}
		e.rules = append(e.rules, c)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return e, nil
}

func newEnv() (*cel.Env, error) {
	return cel.NewEnv(
		cel.Variable(VarSubject, cel.StringType),
		cel.Variable(VarActor, cel.StringType),
		cel.Variable(VarChain, cel.ListType(cel.StringType)),
		cel.Variable(VarScopes, cel.ListType(cel.StringType)),
		cel.Variable(VarAudience, cel.StringType),
		cel.Variable(VarClientID, cel.StringType),
		cel.Variable(VarContext, cel.MapType(cel.StringType, cel.DynType)),
		cel.ParserExpressionSizeLimit(MaxExpressionSize),
	)
}

// compile returns the program for expr, or a one-line description of why it
// cannot be used.
func compile(env *cel.Env, expr string) (cel.Program, string) {
	ast, iss := env.Compile(expr)
	if iss != nil && iss.Err() != nil {
		return nil, describeIssues(iss.Err())
	}
	if t := ast.OutputType(); !t.IsExactType(cel.BoolType) {
		return nil, fmt.Sprintf("must be a bool expression, is %s", t)
	}
	prg, err := env.Program(ast,
		cel.EvalOptions(cel.OptOptimize),
		cel.CostLimit(CostLimit),
		cel.InterruptCheckFrequency(interruptEvery),
	)
	if err != nil {
		return nil, describeIssues(err)
	}
	return prg, ""
}

// describeIssues turns CEL's multi-line report (message, source line, caret)
// into the messages alone: "1:5: undeclared reference to 'foo'; ...".
func describeIssues(err error) string {
	var msgs []string
	for _, line := range strings.Split(err.Error(), "\n") {
		if m, ok := strings.CutPrefix(line, "ERROR: <input>:"); ok {
			msgs = append(msgs, m)
		}
	}
	if len(msgs) == 0 {
		return err.Error()
	}
	return strings.Join(msgs, "; ")
}

// Decide evaluates the rules in order against in. It returns an allow when no
// rule denies, a deny naming the first rule whose If holds and whose Require
// does not, and an error when a rule cannot be evaluated (a missing context
// key, a wrong type, the cost limit, ctx cancelled): the caller must then
// refuse the request. A nil Engine allows everything.
func (e *Engine) Decide(ctx context.Context, in Input) (Decision, error) {
	if e == nil || len(e.rules) == 0 {
		return Decision{Allow: true}, nil
	}
	act := newActivation(in)
	for _, r := range e.rules {
		if err := ctx.Err(); err != nil {
			return Decision{}, fmt.Errorf("policy %q: %w", r.name, err)
		}
		if r.cond != nil {
			applies, err := eval(ctx, r.cond, act)
			if err != nil {
				return Decision{}, fmt.Errorf("policy %q if: %w", r.name, err)
			}
			if !applies {
				continue
			}
		}
		ok, err := eval(ctx, r.require, act)
		if err != nil {
			return Decision{}, fmt.Errorf("policy %q require: %w", r.name, err)
		}
		if !ok {
			return Decision{Policy: r.name, Reason: ReasonDenied + r.name}, nil
		}
	}
	return Decision{Allow: true}, nil
}

func eval(ctx context.Context, prg cel.Program, act interpreter.Activation) (bool, error) {
	out, _, err := prg.ContextEval(ctx, act)
	if err != nil {
		return false, fmt.Errorf("evaluate: %w", err)
	}
	b, ok := out.(types.Bool)
	if !ok {
		// Unreachable for type-checked bool expressions; fail closed anyway.
		return false, fmt.Errorf("evaluate: result is %s, not bool", out.Type())
	}
	return bool(b), nil
}

// activation resolves the rule variables from an Input without building a map
// per request.
type activation struct {
	in  Input
	ctx map[string]any
}

func newActivation(in Input) *activation {
	a := &activation{in: in, ctx: in.Context}
	if a.ctx == nil {
		// A missing key is then an evaluation error, as for any other absent key.
		a.ctx = map[string]any{}
	}
	return a
}

// ResolveName implements interpreter.Activation.
func (a *activation) ResolveName(name string) (any, bool) {
	switch name {
	case VarSubject:
		return a.in.Subject, true
	case VarActor:
		return a.in.Actor, true
	case VarChain:
		return nonNil(a.in.Chain), true
	case VarScopes:
		return nonNil(a.in.Scopes), true
	case VarAudience:
		return a.in.Audience, true
	case VarClientID:
		return a.in.ClientID, true
	case VarContext:
		return a.ctx, true
	}
	return nil, false
}

// Parent implements interpreter.Activation.
func (a *activation) Parent() interpreter.Activation { return nil }

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
