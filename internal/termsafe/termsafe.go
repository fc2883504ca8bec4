package termsafe

import (
	"bytes"
	"encoding/json"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"
)

const hexDigits = "0123456789abcdef"

// String returns s with every rune a terminal could act on, or that would
// not show, written as an escape:
//
//   - a backslash is doubled (\\), so that an escape can only come from here;
//   - line feed, carriage return and tab are \n, \r and \t;
//   - the other C0 controls and DEL are \xHH (ESC is \x1b);
//   - a byte that is not UTF-8 is \xHH too, with HH from 80 to ff, which no
//     rune escaped above has;
//   - any other rune that is not graphic (C1 controls, the bidirectional
//     controls U+202A-U+202E, U+2066-U+2069, U+200E, U+200F and U+061C,
//     zero-width and other format characters, U+2028 and U+2029, private
//     use and unassigned code points) is \uHHHH, or \UHHHHHHHH above
//     U+FFFF.
//
// Letters, marks, digits, punctuation, symbols and spaces pass unchanged,
// so ordinary text reads as it was. The escaping is unambiguous: distinct
// inputs give distinct outputs, and the input can be read back from the
// output. String returns s itself when nothing needs escaping.
func String(s string) string {
	i := 0
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		if needsEscape(r, size) {
			break
		}
		i += size
	}
	if i == len(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	b.WriteString(s[:i])
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		if !needsEscape(r, size) {
			b.WriteString(s[i : i+size])
		} else if size == 1 && r == utf8.RuneError {
			writeHex(&b, `\x`, uint32(s[i]), 2)
		} else {
			writeEscape(&b, r)
		}
		i += size
	}
	return b.String()
}

// needsEscape says whether the rune r, size bytes of UTF-8, is escaped.
func needsEscape(r rune, size int) bool {
	switch {
	case r == utf8.RuneError && size == 1:
		return true // invalid UTF-8
	case r < utf8.RuneSelf:
		return r < 0x20 || r == 0x7f || r == '\\'
	}
	return !unicode.IsGraphic(r)
}

// writeEscape writes the escape of a valid rune that needs one.
func writeEscape(b *strings.Builder, r rune) {
	switch {
	case r == '\\':
		b.WriteString(`\\`)
	case r == '\n':
		b.WriteString(`\n`)
	case r == '\r':
		b.WriteString(`\r`)
	case r == '\t':
		b.WriteString(`\t`)
	case r < utf8.RuneSelf:
		writeHex(b, `\x`, uint32(r), 2)
	case r <= 0xffff:
		writeHex(b, `\u`, uint32(r), 4)
	default:
		writeHex(b, `\U`, uint32(r), 8)
	}
}

func writeHex(b *strings.Builder, prefix string, v uint32, digits int) {
	b.WriteString(prefix)
	for shift := 4 * (digits - 1); shift >= 0; shift -= 4 {
		b.WriteByte(hexDigits[(v>>shift)&0xf])
	}
}

// JSON returns a JSON document (an audit record's context or attributes,
// say) fit to show: compacted, with every rune String would escape
// written as a JSON \u escape inside its string, so that the text shown
// is still JSON and decodes to exactly the value stored. A document that
// is not valid JSON in UTF-8 is shown as String shows text.
func JSON(doc []byte) string {
	var compact bytes.Buffer
	if !utf8.Valid(doc) || json.Compact(&compact, doc) != nil {
		return String(string(doc))
	}
	return escapeJSONText(compact.String())
}

// escapeJSONText returns compact valid JSON (whose raw runes other than
// structure can only be inside strings) with every rune String would
// escape written as a JSON \u escape. JSON's own escapes, backslash
// included, are kept: they are already unambiguous.
func escapeJSONText(s string) string {
	var b strings.Builder
	started := false
	for i, r := range s {
		if r == '\\' || !needsEscape(r, utf8.RuneLen(r)) {
			if started {
				b.WriteRune(r)
			}
			continue
		}
		if !started {
			started = true
			b.Grow(len(s) + 16)
			b.WriteString(s[:i])
		}
		writeJSONEscape(&b, r)
	}
	if !started {
		return s
	}
	return b.String()
}

// writeJSONEscape writes r as JSON's \uHHHH, a surrogate pair above U+FFFF.
func writeJSONEscape(b *strings.Builder, r rune) {
	if r > 0xffff {
		r1, r2 := utf16Surrogates(r)
		writeHex(b, `\u`, uint32(r1), 4)
		writeHex(b, `\u`, uint32(r2), 4)
		return
	}
	writeHex(b, `\u`, uint32(r), 4)
}

func utf16Surrogates(r rune) (rune, rune) {
	r -= 0x10000
	return 0xd800 + (r>>10)&0x3ff, 0xdc00 + r&0x3ff
}

// NewJSONLogWriter returns a writer for slog.NewJSONHandler that passes
// each record on to w with every rune String would escape, and which the
// JSON handler leaves raw (DEL, C1 controls, bidirectional and other
// format characters), written as a JSON \u escape. The handler itself
// escapes line breaks and the other C0 controls and replaces invalid
// UTF-8, so every record stays one line of valid JSON whose values decode
// exactly as logged, and none of it acts on a terminal that shows the
// log. A Write is passed on whole, in one Write to w; it is as safe for
// concurrent use as w (the handler serializes its writes).
func NewJSONLogWriter(w io.Writer) io.Writer { return jsonLogWriter{w: w} }

type jsonLogWriter struct{ w io.Writer }

func (j jsonLogWriter) Write(p []byte) (int, error) {
	clean := true
	for i := 0; i < len(p) && clean; {
		r, size := utf8.DecodeRune(p[i:])
		clean = r == '\n' || r == '\\' || !needsEscape(r, size)
		i += size
	}
	if clean {
		return j.w.Write(p)
	}
	var b strings.Builder
	b.Grow(len(p) + 16)
	for i := 0; i < len(p); {
		r, size := utf8.DecodeRune(p[i:])
		switch {
		case r == '\n' || r == '\\' || !needsEscape(r, size):
			b.Write(p[i : i+size])
		case r == utf8.RuneError && size == 1:
			// Not from the JSON handler, which writes only UTF-8: shown
			// as the handler shows invalid UTF-8.
			b.WriteString(`\ufffd`)
		default:
			writeJSONEscape(&b, r)
		}
		i += size
	}
	if _, err := io.WriteString(j.w, b.String()); err != nil {
		return 0, err
	}
	return len(p), nil
}
