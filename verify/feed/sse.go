package feed

import (
	"bufio"
	"bytes"
	"errors"
	"io"
)

// sseEvent is one Server-Sent Event. typ is "" for the default "message"
// type; data is valid until the next call to sseReader.next.
type sseEvent struct {
	typ, id string
	data    []byte
}

// errEventTooLarge: an event's data is above the reader's bound.
var errEventTooLarge = errors.New("event data above the limit")

// sseReader parses a text/event-stream body (WHATWG HTML, "Server-sent
// events", §9.2.6) with a bound on a line and on an event's data. Lines end
// with CRLF, LF or CR; a leading BOM is dropped; lines starting with ":" are
// comments; data lines join with "\n"; an event ends at a blank line and an
// unfinished event at the end of the body is discarded. Unlike a browser,
// the id is the event's own and is not carried over to the next event: the
// feed needs the position of each revocation, not the last one seen. retry
// is ignored: the feed has its own back-off.
type sseReader struct {
	sc      *bufio.Scanner
	max     int
	started bool
	typ, id string
	data    []byte
	// cr is set when a line ended with a CR at the end of the data the
	// scanner held: a LF that follows belongs to it.
	cr bool
	// scanned is how much of the current, unterminated line has been
	// searched for an end already, so that a long line is searched once.
	scanned int
}

// maxSSEName bounds the event types and ids copied out of the stream.
const maxSSEName = 1 << 10

// maxRetainedData is the data buffer kept between events; a larger one (a
// snapshot) is released once dispatched.
const maxRetainedData = 1 << 20

// newSSEReader returns a reader of body refusing lines and event data
// above max bytes.
func newSSEReader(body io.Reader, max int) *sseReader {
	r := &sseReader{sc: bufio.NewScanner(body), max: max}
	// A line is a field name, a colon, a space and up to max bytes of value.
	r.sc.Buffer(make([]byte, 0, 4<<10), max+16)
	r.sc.Split(r.split)
	return r
}

// split is a bufio.SplitFunc for lines ended by CRLF, LF or CR.
func (r *sseReader) split(data []byte, atEOF bool) (advance int, line []byte, err error) {
	if r.cr && len(data) > 0 {
		r.cr = false
		if data[0] == '\n' {
			return 1, nil, nil
		}
	}
	from := min(r.scanned, len(data))
	end := len(data)
	if i := bytes.IndexByte(data[from:], '\n'); i >= 0 {
		end = from + i
	}
	if i := bytes.IndexByte(data[from:end], '\r'); i >= 0 {
		end = from + i
	}
	switch {
	case end < len(data) && data[end] == '\n':
		r.scanned = 0
		return end + 1, data[:end], nil
	case end < len(data): // CR
		r.scanned = 0
		if end+1 < len(data) {
			if data[end+1] == '\n' {
				return end + 2, data[:end], nil
			}
			return end + 1, data[:end], nil
		}
		// The LF of a CRLF may not have arrived yet: do not wait for it,
		// an event must be dispatched as soon as its blank line ends.
		r.cr = true
		return end + 1, data[:end], nil
	case atEOF && len(data) > 0:
		r.scanned = 0
		return len(data), data, nil
	}
	r.scanned = len(data)
	return 0, nil, nil
}

// next returns the next event; io.EOF at the end of the body,
// errEventTooLarge or bufio.ErrTooLong beyond the bounds, or the body's
// read error.
func (r *sseReader) next() (sseEvent, error) {
	if cap(r.data) > maxRetainedData {
		r.data = nil
	}
	r.data = r.data[:0]
	for r.sc.Scan() {
		line := r.sc.Bytes()
		if !r.started {
			r.started = true
			line = bytes.TrimPrefix(line, []byte("\uFEFF"))
		}
		if len(line) == 0 {
			if len(r.data) == 0 {
				r.typ, r.id = "", ""
				continue
			}
			ev := sseEvent{typ: r.typ, id: r.id, data: r.data[:len(r.data)-1]}
			r.typ, r.id = "", ""
			return ev, nil
		}
		if line[0] == ':' {
			continue
		}
		field, value := line, []byte(nil)
		if i := bytes.IndexByte(line, ':'); i >= 0 {
			field, value = line[:i], line[i+1:]
			value = bytes.TrimPrefix(value, []byte(" "))
		}
		switch string(field) {
		case "event":
			r.typ = "?" // unknown, ignored
			if len(value) <= maxSSEName {
				r.typ = eventType(value)
			}
		case "data":
			if len(r.data)+len(value)+1 > r.max {
				return sseEvent{}, errEventTooLarge
			}
			r.data = append(r.data, value...)
			r.data = append(r.data, '\n')
		case "id":
			// An id too long to be a position is kept as none, which a
			// revocation event then fails for.
			if bytes.IndexByte(value, 0) < 0 && len(value) <= maxSSEName {
				r.id = string(value)
			} else if len(value) > maxSSEName {
				r.id = ""
			}
		}
	}
	if err := r.sc.Err(); err != nil {
		return sseEvent{}, err
	}
	return sseEvent{}, io.EOF
}

// eventType returns the event type named by value, interning the feed's
// own names.
func eventType(value []byte) string {
	for _, name := range [...]string{"message", feedSnapshot, feedRevocation, feedHeartbeat} {
		if string(value) == name {
			return name
		}
	}
	return string(value)
}
