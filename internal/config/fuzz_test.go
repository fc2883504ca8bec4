package config_test

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/mandate-dev/mandate/internal/config"
)

// FuzzParse checks that no input makes Parse panic, that what it accepts
// validates again unchanged, and that what it refuses comes as problems,
// each a *config.FieldError naming the file and a line in it (or none
// known), sorted by line.
func FuzzParse(f *testing.F) {
	sample, err := os.ReadFile("testdata/sample-from-issue.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(sample)
	f.Add([]byte(base))
	f.Add([]byte("tokens: {ttl: 10m, max_ttl: 5m}\n"))
	f.Add([]byte("---\n---\n"))
	f.Add([]byte("agents: [{id: a, jwks: {keys: [{kty: EC}]}}]\n"))
	f.Add([]byte("delegations: [{expires: 2027-01-01}]\n"))
	f.Add([]byte("listn: x\ntokens:\n  ttl: 600\n  ttl: 5m\nagents:\n  - {id: a, scope: [x], max_depth: x}\n  - {id: a}\n"))
	f.Add([]byte("agents:\n  - &a {id: agent:a, secret: 12345678, bogus: 1}\n  - <<: *a\n    id: agent:b\n  - *a\n"))
	f.Add([]byte("users: [5, {id: [x]}]\ndelegations: [{expires: {a: 1}}, {expires: *x}]\n"))
	f.Add([]byte(loginFile))
	f.Add([]byte("identity_providers: [{issuer: https://i.example, login: {user_id: '{a}{', roles: [{when: {claim: g}, grant: [root]}]}}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := config.Parse(data, "fuzz.yaml")
		if err == nil {
			if err := c.Validate(); err != nil {
				t.Fatalf("accepted config fails Validate: %v", err)
			}
			return
		}
		checkProblems(t, data, err)
	})
}

// checkProblems checks that err, from Parse of data, joins
// *config.FieldError values naming fuzz.yaml, each on a line of data with
// a column, or on none (line 0), sorted by line and column, except a last
// one saying there were too many.
func checkProblems(t *testing.T, data []byte, err error) {
	t.Helper()
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	if len(errs) == 0 {
		t.Fatalf("Parse returned an error joining nothing: %v", err)
	}
	lines := 1 + bytes.Count(data, []byte("\n")) + bytes.Count(data, []byte("\r"))
	var prev *config.FieldError
	for i, e := range errs {
		var fe *config.FieldError
		if !errors.As(e, &fe) {
			t.Fatalf("problem %d, %v, is a %T, not a *config.FieldError", i, e, e)
		}
		switch {
		case fe.File != "fuzz.yaml":
			t.Fatalf("problem %q names file %q, not fuzz.yaml", fe, fe.File)
		case fe.Line < 0 || fe.Line > lines:
			t.Fatalf("problem %q is on line %d of a file of %d lines", fe, fe.Line, lines)
		case fe.Line > 0 && fe.Column < 1:
			t.Fatalf("problem %q is on line %d, column %d", fe, fe.Line, fe.Column)
		case fe.Line == 0 && fe.Column != 0:
			t.Fatalf("problem %q has a column and no line", fe)
		}
		last := i == len(errs)-1 && fe.Line == 0 && strings.Contains(fe.Problem, "problems; fix these first")
		if prev != nil && !last && (fe.Line < prev.Line || fe.Line == prev.Line && fe.Column < prev.Column) {
			t.Fatalf("problem %q comes after %q: not sorted by line", fe, prev)
		}
		prev = fe
	}
}
