package strictjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Sentinel errors returned by Check, wrapped with detail.
var (
	ErrDuplicateMember = errors.New("strictjson: duplicate or case-variant member name")
	ErrTooDeep         = errors.New("strictjson: nesting too deep")
	ErrInvalid         = errors.New("strictjson: invalid JSON")
)

// DefaultMaxDepth is the nesting bound used when Check is given zero.
const DefaultMaxDepth = 32

// Check reports whether data is a single JSON value that every parser reads
// the same way. maxDepth bounds object and array nesting (zero means
// DefaultMaxDepth); the bound is checked by a byte scan before any decoding,
// so a nesting bomb costs one pass over the input. Check is safe for
// concurrent use.
func Check(data []byte, maxDepth int) error {
	if maxDepth <= 0 {
		maxDepth = DefaultMaxDepth
	}
	if !utf8.Valid(data) {
		return fmt.Errorf("%w: not UTF-8", ErrInvalid)
	}
	if err := scanDepth(data, maxDepth); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := walk(dec); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: trailing data", ErrInvalid)
	}
	return nil
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

// walk reads one value from dec, checking member names, strings and numbers.
func walk(dec *json.Decoder) error {
	tok, err := dec.Token()
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	switch v := tok.(type) {
	case json.Delim:
		switch v {
		case '{':
			seen := make(map[string]struct{})
			for dec.More() {
				nameTok, err := dec.Token()
				if err != nil {
					return fmt.Errorf("%w: %v", ErrInvalid, err)
				}
				name, ok := nameTok.(string)
				if !ok {
					return fmt.Errorf("%w: member name", ErrInvalid)
				}
				if err := checkString(name); err != nil {
					return err
				}
				folded := strings.ToLower(name)
				if _, dup := seen[folded]; dup {
					return fmt.Errorf("%w: %q", ErrDuplicateMember, truncate(name))
				}
				seen[folded] = struct{}{}
				if err := walk(dec); err != nil {
					return err
				}
			}
		case '[':
			for dec.More() {
				if err := walk(dec); err != nil {
					return err
				}
			}
		default:
			return fmt.Errorf("%w: unexpected %v", ErrInvalid, v)
		}
		if _, err := dec.Token(); err != nil { // the closing delimiter
			return fmt.Errorf("%w: %v", ErrInvalid, err)
		}
	case string:
		return checkString(v)
	case json.Number:
		f, err := strconv.ParseFloat(string(v), 64)
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return fmt.Errorf("%w: number out of range", ErrInvalid)
		}
	}
	return nil
}

// checkString refuses U+FFFD, which encoding/json substitutes for lone
// surrogates and which has no business in a claim.
func checkString(s string) error {
	if strings.ContainsRune(s, utf8.RuneError) {
		return fmt.Errorf("%w: replacement character or lone surrogate", ErrInvalid)
	}
	return nil
}

func truncate(s string) string {
	if len(s) > 32 {
		return s[:32]
	}
	return s
}
