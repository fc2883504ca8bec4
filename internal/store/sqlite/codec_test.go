package sqlite

import (
	"encoding/json"
	"slices"
	"testing"
)

// TestListInMatchesJSON checks that listIn's fast path writes what
// json.Marshal writes, for plain and escaped values alike.
func TestListInMatchesJSON(t *testing.T) {
	for _, l := range [][]string{
		{"a"}, {"agent:bench-1", "user:sam"}, {"a", "b c", ""}, {"x<y", "a&b", "c>d"},
		{"é"}, {"a\"b"}, {`a\b`}, {"\x00", "\u2028"}, {"~", " "}, {"\xff"},
	} {
		want, err := json.Marshal(l)
		if err != nil {
			t.Fatal(err)
		}
		if got := listIn(l); got != string(want) {
			t.Errorf("listIn(%q) = %s, want %s", l, got, want)
		}
	}
}

// FuzzListOut checks that listOut's fast path decodes what encoding/json
// decodes, and refuses what it refuses.
func FuzzListOut(f *testing.F) {
	for _, s := range []string{`[]`, `[""]`, `["a"]`, `["a","b"]`, `["a" ,"b"]`, `[ "a"]`, `["a\"b"]`,
		`["a","b\\"]`, `["\u0041"]`, `["a","]`, `["]`, `[""","a"]`, `null`, `["<"]`, `["x"]x"]`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := listOut("c", s)
		var want []string
		werr := json.Unmarshal([]byte(s), &want)
		if (err == nil) != (werr == nil) {
			t.Fatalf("listOut(%q) error = %v, encoding/json's = %v", s, err, werr)
		}
		if len(want) == 0 {
			want = nil
		}
		if err == nil && !slices.Equal(got, want) {
			t.Fatalf("listOut(%q) = %q, encoding/json decodes %q", s, got, want)
		}
	})
}
