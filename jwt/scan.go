package jwt

import (
	"bytes"
	"encoding/json"
)

// The readers below walk JSON that strictjson.Check has already accepted
// (one well-formed value, no duplicate or case-variant names), so they only
// find boundaries; they never decide validity. They are still bounds-safe on
// any input, so that a caller that skipped the check gets garbage, not a
// panic. None of them allocates.

// member is one name/value pair of an object. name is the raw content
// between the quotes; escaped says it holds a backslash escape.
type member struct {
	name    []byte
	value   []byte
	escaped bool
}

// is reports whether the member's decoded name is exactly name (no case
// folding). Escaped names, rare in tokens, are decoded to compare.
func (m *member) is(name string) bool {
	if !m.escaped {
		return string(m.name) == name
	}
	s, ok := m.decodedName()
	return ok && s == name
}

// decodedName returns the member's name as a Go string.
func (m *member) decodedName() (string, bool) {
	if !m.escaped {
		return string(m.name), true
	}
	quoted := make([]byte, 0, len(m.name)+2)
	quoted = append(append(append(quoted, '"'), m.name...), '"')
	return stringContent(quoted)
}

// objectIter yields the members of a JSON object in order.
type objectIter struct {
	data []byte
	i    int
	m    member
}

// newObjectIter starts on data, which must be a JSON object (leading
// whitespace allowed); ok is false otherwise.
func newObjectIter(data []byte) (objectIter, bool) {
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '{' {
		return objectIter{}, false
	}
	return objectIter{data: data, i: i + 1}, true
}

// next advances to the next member; false at the end of the object.
func (it *objectIter) next() bool {
	d := it.data
	i := skipSpace(d, it.i)
	if i < len(d) && d[i] == ',' {
		i = skipSpace(d, i+1)
	}
	if i >= len(d) || d[i] != '"' {
		it.i = len(d)
		return false
	}
	end, escaped := stringEnd(d, i)
	if end >= len(d) {
		it.i = len(d)
		return false
	}
	it.m.name, it.m.escaped = d[i+1:end], escaped
	i = skipSpace(d, end+1)
	if i < len(d) && d[i] == ':' {
		i = skipSpace(d, i+1)
	}
	vend := valueEnd(d, i)
	it.m.value = d[i:vend]
	it.i = vend
	return true
}

// arrayIter yields the elements of a JSON array in order.
type arrayIter struct {
	data  []byte
	i     int
	value []byte
}

func newArrayIter(data []byte) (arrayIter, bool) {
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '[' {
		return arrayIter{}, false
	}
	return arrayIter{data: data, i: i + 1}, true
}

func (it *arrayIter) next() bool {
	d := it.data
	i := skipSpace(d, it.i)
	if i < len(d) && d[i] == ',' {
		i = skipSpace(d, i+1)
	}
	if i >= len(d) || d[i] == ']' {
		it.i = len(d)
		return false
	}
	end := valueEnd(d, i)
	if end == i {
		it.i = len(d)
		return false
	}
	it.value = d[i:end]
	it.i = end
	return true
}

func skipSpace(d []byte, i int) int {
	if i > len(d) {
		return len(d)
	}
	for i < len(d) && (d[i] == ' ' || d[i] == '\t' || d[i] == '\n' || d[i] == '\r') {
		i++
	}
	return i
}

// stringEnd returns the index of the closing quote of the string opening at
// i (len(d) when unterminated), and whether it holds escapes.
func stringEnd(d []byte, i int) (int, bool) {
	escaped := false
	for j := i + 1; j < len(d); j++ {
		switch d[j] {
		case '\\':
			escaped = true
			j++
		case '"':
			return j, escaped
		}
	}
	return len(d), escaped
}

// valueEnd returns the index just past the value starting at i.
func valueEnd(d []byte, i int) int {
	if i >= len(d) {
		return len(d)
	}
	switch d[i] {
	case '"':
		end, _ := stringEnd(d, i)
		return min(end+1, len(d))
	case '{', '[':
		depth := 0
		for j := i; j < len(d); j++ {
			switch d[j] {
			case '"':
				j, _ = stringEnd(d, j)
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		return len(d)
	default:
		j := i
		for j < len(d) && bytes.IndexByte([]byte(",}] \t\r\n"), d[j]) < 0 {
			j++
		}
		return j
	}
}

// stringContent returns the Go string of a JSON string value, decoding
// escapes only when there are any. ok is false when raw is not a string.
func stringContent(raw []byte) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return "", false
	}
	inner := raw[1 : len(raw)-1]
	if bytes.IndexByte(inner, '\\') < 0 {
		return string(inner), true
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

// isNull reports whether raw is the JSON literal null.
func isNull(raw []byte) bool { return string(raw) == "null" }
