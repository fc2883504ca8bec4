package revocation

import (
	"errors"
	"strconv"
	"strings"
)

// MaxStream bounds a stream name, in bytes.
const MaxStream = 64

// EventID is the Server-Sent Events id of a position in the feed:
// "<stream>/<seq>", seq in decimal. The server sends it with each
// revocation, and a subscriber sends it back in Last-Event-ID to resume
// after it. It does not check its arguments; ParseEventID reads back
// exactly what it writes for a stream CheckStream takes and a seq of 0 or
// more.
func EventID(stream string, seq int64) string {
	return stream + "/" + strconv.FormatInt(seq, 10)
}

// ParseEventID reads an id EventID wrote: a stream name CheckStream takes,
// a "/", and a seq of 0 or more in decimal digits, without a sign or a
// leading zero. ok is false for anything else, such as an empty id or one
// of another server. A seq of 0 is a position (a snapshot of an empty
// feed), never the seq of an entry, which Entry.Validate refuses.
func ParseEventID(id string) (stream string, seq int64, ok bool) {
	stream, digits, found := strings.Cut(id, "/")
	if !found || CheckStream(stream) != nil || !canonicalDigits(digits) {
		return "", 0, false
	}
	seq, err := strconv.ParseInt(digits, 10, 64)
	if err != nil {
		return "", 0, false
	}
	return stream, seq, true
}

// CheckStream refuses a stream name that cannot be part of an event id:
// empty, above MaxStream bytes, or with a byte outside visible ASCII or a
// "/". The names are the server's; a subscriber checks the name of a
// snapshot before it holds it, as it sends the name back in a header.
func CheckStream(s string) error {
	if s == "" || len(s) > MaxStream {
		return errors.New("revocation: a stream name must be 1 to 64 bytes")
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c > 0x7e || c == '/' {
			return errors.New("revocation: a stream name must be visible ASCII without a slash")
		}
	}
	return nil
}

// canonicalDigits reports whether s is a decimal number as
// strconv.FormatInt writes one that is not negative: digits only, no
// leading zero but in "0".
func canonicalDigits(s string) bool {
	if s == "" || (len(s) > 1 && s[0] == '0') {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
