// Package clean makes a caller's text safe for an audit record or a log
// line as Mandate's issuer takes it: control characters and bytes that are
// not UTF-8 escaped, and a length bound kept by cutting at a character
// boundary. It is shared by verify (records) and verify/forward (what the
// issuer says about refused records).
package clean

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Truncated ends a string String cut to its bound (verify.Truncated).
const Truncated = "…[truncated]"

// String returns s as the issuer takes a record's field: each control
// character and each byte that is not UTF-8 written \xNN, and, when that
// is over max bytes, cut at a character boundary to end with Truncated
// within max. A string that needs neither is returned as it is.
func String(s string, max int) string {
	if len(s) <= max && Plain(s) {
		return s
	}
	var b strings.Builder
	b.Grow(min(len(s), max) + len(Truncated))
	room := max - len(Truncated)
	for i := 0; i < len(s); {
		c, size := utf8.DecodeRuneInString(s[i:])
		piece := s[i : i+size]
		if c < 0x20 || c == 0x7f || c == utf8.RuneError && size == 1 {
			piece = fmt.Sprintf(`\x%02x`, s[i])
		}
		if b.Len()+len(piece) > room {
			// Does the rest fit whole?
			rest := b.Len() + len(piece) + escapedLen(s[i+size:])
			if rest <= max {
				b.WriteString(piece)
				i += size
				continue
			}
			b.WriteString(Truncated)
			return b.String()
		}
		b.WriteString(piece)
		i += size
	}
	return b.String()
}

// Plain reports whether s is UTF-8 without a control character.
func Plain(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f {
			return false
		}
	}
	return utf8.ValidString(s)
}

// escapedLen is the length of s once String has escaped it.
func escapedLen(s string) int {
	n := 0
	for i := 0; i < len(s); {
		c, size := utf8.DecodeRuneInString(s[i:])
		if c < 0x20 || c == 0x7f || c == utf8.RuneError && size == 1 {
			n += 4
		} else {
			n += size
		}
		i += size
	}
	return n
}
