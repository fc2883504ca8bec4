// Package golden compares what a test puts on the wire with a reviewed
// file under the test package's testdata/ directory, so that a change to
// Mandate's wire data shows up as a diff in review. Run a package's tests
// with -update to rewrite its files with what the code produces now:
//
//	go test ./internal/server ./verify -run Golden -update
//
// then read the diff like code. JSON is normalised first (members sorted,
// indented) and the values that differ from run to run are replaced by
// fixed placeholders (Redact), so that a file changes only when the wire
// data does. It is a test helper: only _test.go files import it.
package golden

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// update is the -update flag of every test binary that imports golden.
// It is this package's one variable: a test flag has to be registered
// before the testing package parses the command line, which is when the
// packages of the test binary are initialised.
var update = flag.Bool("update", false, "rewrite the golden files under testdata/ with what the tests produce")

// Compare fails t unless got equals the file at path (relative to the test
// package's directory, under testdata/), showing the difference. With
// -update it writes got to path instead, creating its directory. A missing
// file fails with the command that creates it.
func Compare(t testing.TB, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("%s does not exist: create it with go test -run %s -update and review it", path, t.Name())
	}
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s differs from what the code puts on the wire (-golden +got):\n%s\n"+
			"If the change is intended, rewrite the file with go test -run %s -update and review the diff.",
			path, diff, t.Name())
	}
}

// CompareJSON is Compare of v normalised by r (JSON).
func CompareJSON(t testing.TB, path string, v any, r Redact) {
	t.Helper()
	b, err := JSON(v, r)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	Compare(t, path, b)
}

// Redact says which parts of a JSON document differ from run to run and
// the fixed placeholder that stands for each. The zero Redact changes
// nothing.
type Redact struct {
	// Members names object members, at any depth, whose values become the
	// string "<name>" (a number such as iat becomes a string too): times,
	// random identifiers, hashes, public keys.
	Members []string
	// Strings maps a text that differs from run to run (a URL with a port,
	// a jti, a key id) to its placeholder. It is replaced wherever it
	// occurs in a string or a member name, longest text first, so that a
	// value found in several places is recognisably the same one.
	Strings map[string]string
}

// JSON returns v as normalised JSON: members sorted, indented by two
// spaces, no HTML escaping, a final newline, with r applied. A []byte,
// json.RawMessage or string is taken as JSON text; anything else is
// marshalled first. Numbers keep their text.
func JSON(v any, r Redact) ([]byte, error) {
	var raw []byte
	switch x := v.(type) {
	case []byte:
		raw = x
	case json.RawMessage:
		raw = x
	case string:
		raw = []byte(x)
	default:
		b, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("golden: marshal: %w", err)
		}
		raw = b
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("golden: not JSON: %w", err)
	}
	if dec.More() {
		return nil, errors.New("golden: more than one JSON value")
	}
	doc = r.apply(doc)
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil { // maps are encoded with sorted keys
		return nil, fmt.Errorf("golden: encode: %w", err)
	}
	return buf.Bytes(), nil
}

// apply returns doc with r's placeholders in place.
func (r Redact) apply(doc any) any {
	members := make(map[string]bool, len(r.Members))
	for _, m := range r.Members {
		members[m] = true
	}
	olds := make([]string, 0, len(r.Strings))
	for old := range r.Strings {
		if old != "" {
			olds = append(olds, old)
		}
	}
	// strings.Replacer tries its pairs in argument order at each position:
	// longest first, so that a URL is not taken for another it begins with.
	sort.Slice(olds, func(i, j int) bool {
		if len(olds[i]) != len(olds[j]) {
			return len(olds[i]) > len(olds[j])
		}
		return olds[i] < olds[j]
	})
	pairs := make([]string, 0, 2*len(olds))
	for _, old := range olds {
		pairs = append(pairs, old, r.Strings[old])
	}
	rep := strings.NewReplacer(pairs...)
	var walk func(v any) any
	walk = func(v any) any {
		switch x := v.(type) {
		case map[string]any:
			out := make(map[string]any, len(x))
			for k, e := range x {
				if members[k] {
					out[rep.Replace(k)] = "<" + k + ">"
					continue
				}
				out[rep.Replace(k)] = walk(e)
			}
			return out
		case []any:
			out := make([]any, len(x))
			for i, e := range x {
				out[i] = walk(e)
			}
			return out
		case string:
			return rep.Replace(x)
		default:
			return v
		}
	}
	return walk(doc)
}
