package strictjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"
)

// Sentinel errors returned by Check, wrapped with detail.
var (
	ErrDuplicateMember = errors.New("strictjson: duplicate or case-variant member name")
	ErrTooDeep         = errors.New("strictjson: nesting too deep")
	ErrInvalid         = errors.New("strictjson: invalid JSON")
)

// MemberError is the error Check returns for a member name that repeats an
// earlier one of the same object, exactly or in another case. It wraps
// ErrDuplicateMember. Name is the repeating name as sent (after JSON
// unescaping), cut to 32 bytes.
type MemberError struct {
	Name string
}

// Error implements error.
func (e *MemberError) Error() string { return fmt.Sprintf("%v: %q", ErrDuplicateMember, e.Name) }

// Unwrap returns ErrDuplicateMember.
func (e *MemberError) Unwrap() error { return ErrDuplicateMember }

// DefaultMaxDepth is the nesting bound used when Check is given zero.
const DefaultMaxDepth = 32

// smallObject is the member count up to which names are compared pairwise;
// larger objects switch to a map so that a 10⁴-member object stays linear.
const smallObject = 16

// replacementChar is U+FFFD in UTF-8.
var replacementChar = []byte("\uFFFD")

// Check reports whether data is a single JSON value that every parser reads
// the same way. maxDepth bounds object and array nesting (zero means
// DefaultMaxDepth); the bound is checked by a byte scan before any decoding,
// so a nesting bomb costs one pass over the input. Check does not allocate
// for typical token payloads and is safe for concurrent use.
func Check(data []byte, maxDepth int) error {
	if maxDepth <= 0 {
		maxDepth = DefaultMaxDepth
	}
	if !utf8.Valid(data) {
		return fmt.Errorf("%w: not UTF-8", ErrInvalid)
	}
	if bytes.Contains(data, replacementChar) {
		return fmt.Errorf("%w: replacement character", ErrInvalid)
	}
	if err := scanDepth(data, maxDepth); err != nil {
		return err
	}
	// json.Valid settles the grammar (one value, no trailing data, no BOM),
	// so the member scan below may assume well-formed input.
	if !json.Valid(data) {
		return fmt.Errorf("%w: not one well-formed JSON value", ErrInvalid)
	}
	return scanMembers(data)
}

// scanDepth counts bracket nesting outside strings without decoding.
func scanDepth(data []byte, maxDepth int) error {
	depth := 0
	inString, escaped := false, false
	for _, c := range data {
		if inString {
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '{', '[':
			depth++
			if depth > maxDepth {
				return ErrTooDeep
			}
		case '}', ']':
			depth--
		}
	}
	return nil
}

// frame is one open object or array during scanMembers.
type frame struct {
	object    bool
	expectKey bool
	first     int                 // index of its first name in names
	set       map[string]struct{} // folded names, once the object is large
}

// scanMembers walks well-formed JSON once: it checks the member names of
// every object for duplicates under case folding, decodes only strings with
// \u escapes (to catch lone surrogates), and parses only numbers that could
// overflow a float64.
func scanMembers(data []byte) error {
	var stackBuf [DefaultMaxDepth]frame
	var namesBuf [64][]byte
	stack, names := stackBuf[:0], namesBuf[:0]
	for i := 0; i < len(data); i++ {
		switch c := data[i]; {
		case c == '{' || c == '[':
			stack = append(stack, frame{object: c == '{', expectKey: c == '{', first: len(names)})
		case c == '}' || c == ']':
			names = names[:stack[len(stack)-1].first]
			stack = stack[:len(stack)-1]
		case c == ',':
			if top := &stack[len(stack)-1]; top.object {
				top.expectKey = true
			}
		case c == ':':
			stack[len(stack)-1].expectKey = false
		case c == '"':
			end, escaped := stringEnd(data, i)
			s, err := stringValue(data[i:end+1], escaped)
			if err != nil {
				return err
			}
			if n := len(stack); n > 0 && stack[n-1].object && stack[n-1].expectKey {
				if names, err = addName(&stack[n-1], names, s); err != nil {
					return err
				}
			}
			i = end
		case c == '-' || (c >= '0' && c <= '9'):
			j := i
			for j < len(data) && bytes.IndexByte([]byte("0123456789+-.eE"), data[j]) >= 0 {
				j++
			}
			if err := checkNumber(data[i:j]); err != nil {
				return err
			}
			i = j - 1
		}
	}
	return nil
}

// stringEnd returns the index of the closing quote of the string opening at
// i, and whether it holds escapes.
func stringEnd(data []byte, i int) (int, bool) {
	escaped := false
	for j := i + 1; j < len(data); j++ {
		switch data[j] {
		case '\\':
			escaped = true
			j++
		case '"':
			return j, escaped
		}
	}
	return len(data) - 1, escaped
}

// stringValue returns the string's content: the raw bytes when it has no
// escapes, else its decoding, refusing what decodes to U+FFFD.
func stringValue(quoted []byte, escaped bool) ([]byte, error) {
	if !escaped {
		return quoted[1 : len(quoted)-1], nil
	}
	var s string
	if err := json.Unmarshal(quoted, &s); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if bytes.Contains([]byte(s), replacementChar) {
		return nil, fmt.Errorf("%w: lone surrogate", ErrInvalid)
	}
	return []byte(s), nil
}

// addName records a member name of the object f, refusing a duplicate under
// case folding.
func addName(f *frame, names [][]byte, name []byte) ([][]byte, error) {
	dup := func() error { return &MemberError{Name: truncate(string(name))} }
	if f.set != nil {
		folded := string(bytes.ToLower(name))
		if _, ok := f.set[folded]; ok {
			return names, dup()
		}
		f.set[folded] = struct{}{}
		return names, nil
	}
	for _, n := range names[f.first:] {
		if bytes.EqualFold(n, name) {
			return names, dup()
		}
	}
	names = append(names, name)
	if len(names)-f.first > smallObject {
		f.set = make(map[string]struct{}, 2*smallObject)
		for _, n := range names[f.first:] {
			f.set[string(bytes.ToLower(n))] = struct{}{}
		}
		names = names[:f.first]
	}
	return names, nil
}

// checkNumber refuses numbers that do not fit a float64 (1e400, or an
// integer of hundreds of digits): parsers would read them as ±Inf or fail.
func checkNumber(num []byte) error {
	if len(num) < 300 && bytes.IndexAny(num, "eE") < 0 {
		return nil
	}
	f, err := strconv.ParseFloat(string(num), 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return fmt.Errorf("%w: number out of range", ErrInvalid)
	}
	return nil
}

func truncate(s string) string {
	if len(s) > 32 {
		return s[:32]
	}
	return s
}
