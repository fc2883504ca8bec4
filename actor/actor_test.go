package actor

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func nested(depth int) string {
	var b strings.Builder
	for i := range depth {
		b.WriteString(`{"sub":"agent:` + string(rune('a'+i%26)) + `","act":`)
	}
	b.WriteString("null")
	b.WriteString(strings.Repeat("}", depth))
	return b.String()
}

func TestParse(t *testing.T) {
	tests := []struct {
		name      string
		raw       string
		wantChain Chain
		wantErr   error
	}{
		{name: "ok/empty", raw: ``},
		{name: "ok/null", raw: `null`},
		{name: "ok/one", raw: `{"sub":"agent:infrabot"}`, wantChain: Chain{"agent:infrabot"}},
		{name: "ok/three-hop", raw: `{"sub":"agent:cleanup_agent","act":{"sub":"agent:argocd","act":{"sub":"agent:infrabot"}}}`,
			wantChain: Chain{"agent:cleanup_agent", "agent:argocd", "agent:infrabot"}},
		{name: "ok/extra-members-dropped", raw: `{"sub":"agent:a","scope":"admin","aud":"x","may_act":{"sub":"root"}}`, wantChain: Chain{"agent:a"}},
		{name: "ok/max-depth", raw: nested(MaxDepth), wantChain: nil},
		{name: "fail/depth-bomb", raw: nested(10000), wantErr: ErrTooDeep},
		{name: "fail/one-past-max", raw: nested(MaxDepth + 1), wantErr: ErrTooDeep},
		{name: "fail/missing-sub", raw: `{"act":{"sub":"a"}}`, wantErr: ErrInvalid},
		{name: "fail/sub-not-string", raw: `{"sub":42}`, wantErr: ErrInvalid},
		{name: "fail/empty-sub", raw: `{"sub":""}`, wantErr: ErrBadSubject},
		{name: "fail/control-char", raw: `{"sub":"agent:a\u0000"}`, wantErr: ErrBadSubject},
		{name: "fail/newline", raw: `{"sub":"agent:a\nuser:admin"}`, wantErr: ErrBadSubject},
		{name: "fail/too-long", raw: `{"sub":"` + strings.Repeat("a", MaxSubjectLen+1) + `"}`, wantErr: ErrBadSubject},
		{name: "fail/duplicate-sub", raw: `{"sub":"agent:a","sub":"agent:admin"}`, wantErr: ErrInvalid},
		{name: "fail/case-variant-sub", raw: `{"sub":"agent:a","SUB":"agent:admin"}`, wantErr: ErrInvalid},
		{name: "fail/only-uppercase-sub", raw: `{"SUB":"agent:admin"}`, wantErr: ErrInvalid},
		{name: "fail/array", raw: `["agent:a"]`, wantErr: ErrInvalid},
		{name: "fail/act-string", raw: `{"sub":"a","act":"b"}`, wantErr: ErrInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, err := Parse(json.RawMessage(tc.raw))
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.name == "ok/max-depth" {
				if a.Depth() != MaxDepth {
					t.Fatalf("depth = %d", a.Depth())
				}
				return
			}
			if diff := cmp.Diff(tc.wantChain, a.Chain()); diff != "" {
				t.Errorf("chain (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNewRoundTrip(t *testing.T) {
	chain := Chain{"agent:c", "agent:b", "agent:a"}
	b, err := json.Marshal(New(chain))
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"sub":"agent:c","act":{"sub":"agent:b","act":{"sub":"agent:a"}}}`; string(b) != want {
		t.Fatalf("json = %s", b)
	}
	a, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(chain, a.Chain()); diff != "" {
		t.Error(diff)
	}
	if !chain.Contains("agent:b") || chain.Contains("agent:z") || chain.Current() != "agent:c" || New(nil) != nil {
		t.Error("Chain helpers")
	}
}

// FuzzParse walks arbitrary act claims: Parse never panics, never returns a
// chain deeper than MaxDepth, and every subject it returns is valid.
func FuzzParse(f *testing.F) {
	for _, s := range []string{`{"sub":"a"}`, nested(3), nested(40), `{"sub":"a","act":{"sub":"b","act":null}}`, `{"sub":"\ud800"}`, `{"sub":"a","sub":"b"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		a, err := Parse(raw)
		if err != nil {
			return
		}
		if a.Depth() > MaxDepth {
			t.Fatalf("depth %d", a.Depth())
		}
		for _, s := range a.Chain() {
			if ValidSubject(s) != nil {
				t.Fatalf("invalid subject %q accepted", s)
			}
		}
	})
}
