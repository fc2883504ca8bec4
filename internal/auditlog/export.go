package auditlog

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"unicode/utf8"

	"github.com/mandate-dev/mandate/internal/store"
)

// AppendExportLine appends ev as one line of an export (`mandate audit
// export`, GET /audit/export): the JSON encoding/json's Encoder writes for
// a store.Event, HTML escaping on, and a newline. It writes those bytes
// exactly, without reflection: an export is a contract that `mandate audit
// verify --file` reads back, and a log of millions of records is exported
// in one go. On an error (a time outside the years 0 to 9999, a JSON field
// that is not JSON) it returns b unchanged and the error, as the Encoder
// writes nothing for such a record.
func AppendExportLine(b []byte, ev store.Event) ([]byte, error) {
	start := len(b)
	b = append(b, `{"seq":`...)
	b = strconv.AppendInt(b, ev.Seq, 10)
	b = append(b, `,"id":`...)
	b = appendJSONString(b, ev.ID)
	b = append(b, `,"time":"`...)
	t, err := ev.Time.AppendText(b) // what Time.MarshalJSON writes, unquoted
	if err != nil {
		return b[:start], fmt.Errorf("export record %d: time: %w", ev.Seq, err)
	}
	b = append(t, '"')
	b = appendOptString(b, `,"request_id":`, ev.RequestID)
	b = append(b, `,"action":`...)
	b = appendJSONString(b, ev.Action)
	b = append(b, `,"result":`...)
	b = appendJSONString(b, ev.Result)
	b = appendOptString(b, `,"reason":`, ev.Reason)
	b = appendOptString(b, `,"reason_text":`, ev.Detail)
	b = appendOptString(b, `,"performed_by":`, ev.Performer)
	b = appendOptString(b, `,"on_behalf_of":`, ev.OnBehalf)
	b = appendOptList(b, `,"chain":`, ev.Chain)
	b = appendOptString(b, `,"client_id":`, ev.ClientID)
	b = appendOptList(b, `,"scopes":`, ev.Scopes)
	b = appendOptList(b, `,"requested_scopes":`, ev.Requested)
	b = appendOptString(b, `,"audience":`, ev.Audience)
	b = appendOptString(b, `,"resource":`, ev.Resource)
	if b, err = appendOptRaw(b, `,"context":`, ev.Context); err != nil {
		return b[:start], fmt.Errorf("export record %d: context: %w", ev.Seq, err)
	}
	b = appendOptString(b, `,"delegation_id":`, ev.DelegationID)
	b = appendOptString(b, `,"jti":`, ev.JTI)
	b = appendOptString(b, `,"parent_jti":`, ev.ParentJTI)
	b = appendOptString(b, `,"agent_version":`, ev.AgentVersion)
	if b, err = appendOptRaw(b, `,"authorization_details":`, ev.AuthorizationDetails); err != nil {
		return b[:start], fmt.Errorf("export record %d: authorization_details: %w", ev.Seq, err)
	}
	b = appendOptString(b, `,"operation":`, ev.Operation)
	if b, err = appendOptRaw(b, `,"attributes":`, ev.Attributes); err != nil {
		return b[:start], fmt.Errorf("export record %d: attributes: %w", ev.Seq, err)
	}
	b = appendOptString(b, `,"reported_by":`, ev.ReportedBy)
	if len(ev.Hash) > 0 {
		b = append(b, `,"hash":"`...)
		b = base64.StdEncoding.AppendEncode(b, ev.Hash)
		b = append(b, '"')
	}
	return append(b, "}\n"...), nil
}

// appendOptString appends key and s unless s is empty (omitempty).
func appendOptString(b []byte, key, s string) []byte {
	if s == "" {
		return b
	}
	return appendJSONString(append(b, key...), s)
}

// appendOptList appends key and l as a JSON array unless l is empty.
func appendOptList(b []byte, key string, l []string) []byte {
	if len(l) == 0 {
		return b
	}
	b = append(b, key...)
	for i, s := range l {
		if i == 0 {
			b = append(b, '[')
		} else {
			b = append(b, ',')
		}
		b = appendJSONString(b, s)
	}
	return append(b, ']')
}

// appendOptRaw appends key and raw unless raw is empty, as encoding/json
// writes a json.RawMessage: checked, compacted and HTML-escaped.
func appendOptRaw(b []byte, key string, raw json.RawMessage) ([]byte, error) {
	if len(raw) == 0 {
		return b, nil
	}
	b = append(b, key...)
	if plainRaw(raw) && validJSON(raw) {
		// Compact already, nothing to escape: encoding/json writes it as
		// it is.
		return append(b, raw...), nil
	}
	out, err := json.Marshal(raw)
	if err != nil {
		return b, err
	}
	return append(b, out...), nil
}

// plainRaw reports whether encoding/json writes the JSON document raw, if
// valid, byte for byte: it holds no whitespace to compact away, no HTML
// character and no lead byte of U+2028 or U+2029 (which it escapes).
func plainRaw(raw []byte) bool {
	for _, c := range raw {
		switch c {
		case ' ', '\t', '\n', '\r', '<', '>', '&', 0xe2:
			return false
		}
	}
	return true
}

// appendJSONString appends s as encoding/json writes a string with HTML
// escaping on. Printable ASCII without a quote, a backslash or an HTML
// character, and valid UTF-8 other than U+2028 and U+2029, go as they are;
// a string with anything else is written by encoding/json itself.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c < 0x20 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
				return appendMarshaled(b, s)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 || r == '\u2028' || r == '\u2029' {
			return appendMarshaled(b, s)
		}
		i += size
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// appendMarshaled appends json.Marshal(s), the encoding of a string that
// needs escaping.
func appendMarshaled(b []byte, s string) []byte {
	out, _ := json.Marshal(s) // a string always marshals
	return append(b, out...)
}

// maxPlainDepth is the deepest nesting validJSON follows; a deeper
// document goes through encoding/json, which has its own limit.
const maxPlainDepth = 64

// validJSON reports whether raw, which plainRaw passed (so it holds no
// whitespace), is one JSON value that encoding/json accepts. It may say no
// to a valid document (one nested deeper than maxPlainDepth): that one is
// then written by encoding/json. It must never say yes to one encoding/json
// refuses (FuzzAppendExportLine holds it to that).
func validJSON(raw []byte) bool {
	n, ok := scanValue(raw, 0, 0)
	return ok && n == len(raw)
}

// scanValue reads the JSON value at raw[i:] and returns the index after
// it. Strings may hold any byte from 0x20 on, as encoding/json's scanner
// accepts.
func scanValue(raw []byte, i, depth int) (int, bool) {
	if i >= len(raw) || depth > maxPlainDepth {
		return i, false
	}
	switch c := raw[i]; {
	case c == '{':
		i++
		if i < len(raw) && raw[i] == '}' {
			return i + 1, true
		}
		for {
			if i >= len(raw) || raw[i] != '"' {
				return i, false
			}
			var ok bool
			if i, ok = scanString(raw, i); !ok || i >= len(raw) || raw[i] != ':' {
				return i, false
			}
			if i, ok = scanValue(raw, i+1, depth+1); !ok || i >= len(raw) {
				return i, false
			}
			switch raw[i] {
			case ',':
				i++
			case '}':
				return i + 1, true
			default:
				return i, false
			}
		}
	case c == '[':
		i++
		if i < len(raw) && raw[i] == ']' {
			return i + 1, true
		}
		for {
			var ok bool
			if i, ok = scanValue(raw, i, depth+1); !ok || i >= len(raw) {
				return i, false
			}
			switch raw[i] {
			case ',':
				i++
			case ']':
				return i + 1, true
			default:
				return i, false
			}
		}
	case c == '"':
		return scanString(raw, i)
	case c == '-' || c >= '0' && c <= '9':
		return scanNumber(raw, i)
	case c == 't':
		return scanLiteral(raw, i, "true")
	case c == 'f':
		return scanLiteral(raw, i, "false")
	case c == 'n':
		return scanLiteral(raw, i, "null")
	}
	return i, false
}

// scanString reads the string whose opening quote is raw[i].
func scanString(raw []byte, i int) (int, bool) {
	for i++; i < len(raw); i++ {
		switch c := raw[i]; {
		case c == '"':
			return i + 1, true
		case c < 0x20:
			return i, false
		case c == '\\':
			i++
			if i >= len(raw) {
				return i, false
			}
			switch raw[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(raw) {
					return i, false
				}
				for _, h := range raw[i+1 : i+5] {
					if !isHex(h) {
						return i, false
					}
				}
				i += 4
			default:
				return i, false
			}
		}
	}
	return i, false
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// scanNumber reads the number that starts at raw[i]: -?(0|[1-9][0-9]*),
// then an optional fraction and exponent.
func scanNumber(raw []byte, i int) (int, bool) {
	if raw[i] == '-' {
		i++
	}
	switch {
	case i >= len(raw):
		return i, false
	case raw[i] == '0':
		i++
	case raw[i] >= '1' && raw[i] <= '9':
		i = digits(raw, i)
	default:
		return i, false
	}
	if i < len(raw) && raw[i] == '.' {
		j := digits(raw, i+1)
		if j == i+1 {
			return j, false
		}
		i = j
	}
	if i < len(raw) && (raw[i] == 'e' || raw[i] == 'E') {
		i++
		if i < len(raw) && (raw[i] == '+' || raw[i] == '-') {
			i++
		}
		j := digits(raw, i)
		if j == i {
			return j, false
		}
		i = j
	}
	return i, true
}

// digits returns the index after the digits at raw[i:].
func digits(raw []byte, i int) int {
	for i < len(raw) && raw[i] >= '0' && raw[i] <= '9' {
		i++
	}
	return i
}

// scanLiteral reads lit at raw[i].
func scanLiteral(raw []byte, i int, lit string) (int, bool) {
	if len(raw)-i < len(lit) || string(raw[i:i+len(lit)]) != lit {
		return i, false
	}
	return i + len(lit), true
}
