package sqlite

import (
	"encoding/json"
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
