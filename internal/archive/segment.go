package archive

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"

	"github.com/mandate-dev/mandate/internal/store"
)

// nameRE is a segment's name: its first and last seq, twelve digits each,
// so that names sort in seq order.
var nameRE = regexp.MustCompile(`^audit-([0-9]{12})-([0-9]{12})\.jsonl\.gz$`)

// Name is the name of the segment of records first to last, for example
// audit-000000000001-000000010000.jsonl.gz.
func Name(first, last int64) string {
	return fmt.Sprintf("audit-%012d-%012d.jsonl.gz", first, last)
}

// ParseName returns the first and last seq a segment's name carries, or an
// error for a name that is not a segment's.
func ParseName(name string) (first, last int64, err error) {
	m := nameRE.FindStringSubmatch(name)
	if m == nil {
		return 0, 0, fmt.Errorf("archive: %q is not a segment name", name)
	}
	first, _ = strconv.ParseInt(m[1], 10, 64)
	last, _ = strconv.ParseInt(m[2], 10, 64)
	if first < 1 || last < first {
		return 0, 0, fmt.Errorf("archive: %q names no records", name)
	}
	return first, last, nil
}

// maxLine bounds one line of a segment, as of an export.
const maxLine = 1 << 20

// ErrTruncated is wrapped by Decode's error for a segment cut short: its
// compressed stream ends early, or no checkpoint line ends it.
var ErrTruncated = errors.New("archive: segment truncated")

// Segment is a segment's content.
type Segment struct {
	// Events are its records, in the order they were written.
	Events []store.Event
	// Note is the signed checkpoint note of the log up to its last record.
	Note string
}

// line is a segment's line: a record, or the last line, the checkpoint.
type line struct {
	Checkpoint string `json:"checkpoint"`
}

// Encode returns s as a segment's bytes: gzip of a JSON line per record,
// then {"checkpoint": NOTE}.
func Encode(s Segment) ([]byte, error) {
	e := newEncoder()
	if err := e.add(s.Events); err != nil {
		return nil, err
	}
	return e.close(s.Note)
}

// encoder writes a segment's bytes a part at a time: records with add,
// then the checkpoint with close.
type encoder struct {
	buf bytes.Buffer
	zw  *gzip.Writer
	enc *json.Encoder
}

func newEncoder() *encoder {
	e := &encoder{}
	e.zw = gzip.NewWriter(&e.buf)
	e.enc = json.NewEncoder(e.zw)
	return e
}

// add writes the lines of evs.
func (e *encoder) add(evs []store.Event) error {
	for _, ev := range evs {
		if err := e.enc.Encode(ev); err != nil {
			return fmt.Errorf("archive: record %d: %w", ev.Seq, err)
		}
	}
	return nil
}

// close writes the checkpoint's line and returns the segment's bytes.
func (e *encoder) close(note string) ([]byte, error) {
	if err := e.enc.Encode(line{Checkpoint: note}); err != nil {
		return nil, fmt.Errorf("archive: checkpoint: %w", err)
	}
	if err := e.zw.Close(); err != nil {
		return nil, fmt.Errorf("archive: %w", err)
	}
	return e.buf.Bytes(), nil
}

// decodeEnds returns the first and the last record of a segment's bytes,
// decoding no other line.
func decodeEnds(data []byte) (first, last store.Event, err error) {
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return first, last, err
	}
	plain, err := io.ReadAll(zr)
	if err != nil {
		return first, last, err
	}
	lines := bytes.Split(bytes.TrimSuffix(plain, []byte("\n")), []byte("\n"))
	if len(lines) < 2 {
		return first, last, fmt.Errorf("%w: it holds no record", ErrTruncated)
	}
	if err := json.Unmarshal(lines[0], &first); err != nil {
		return first, last, err
	}
	err = json.Unmarshal(lines[len(lines)-2], &last)
	return first, last, err
}

// Decode reads a segment's bytes. A compressed stream that ends early, or
// a segment whose last line is not its checkpoint, is ErrTruncated; a line
// that is not JSON, or a record after the checkpoint, another error.
func Decode(data []byte) (Segment, error) {
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return Segment{}, fmt.Errorf("%w: %w", ErrTruncated, err)
		}
		return Segment{}, fmt.Errorf("archive: %w", err)
	}
	// Read whole first: a stream cut short yields a last line cut short,
	// which is the cut, not a bad line.
	plain, err := io.ReadAll(zr)
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return Segment{}, fmt.Errorf("%w: its compressed stream ends early", ErrTruncated)
	}
	if err != nil {
		return Segment{}, fmt.Errorf("archive: %w", err)
	}
	var s Segment
	sc := bufio.NewScanner(bytes.NewReader(plain))
	sc.Buffer(make([]byte, 64<<10), maxLine)
	for n := 1; sc.Scan(); n++ {
		b := sc.Bytes()
		if s.Note != "" {
			return Segment{}, fmt.Errorf("archive: line %d follows the checkpoint", n)
		}
		var l line
		if bytes.HasPrefix(b, []byte(`{"checkpoint":`)) {
			if err := json.Unmarshal(b, &l); err != nil || l.Checkpoint == "" {
				return Segment{}, fmt.Errorf("archive: line %d: a malformed checkpoint", n)
			}
			s.Note = l.Checkpoint
			continue
		}
		var ev store.Event
		if err := json.Unmarshal(b, &ev); err != nil {
			return Segment{}, fmt.Errorf("archive: line %d: %w", n, err)
		}
		s.Events = append(s.Events, ev)
	}
	if err := sc.Err(); err != nil {
		return Segment{}, fmt.Errorf("archive: %w", err)
	}
	if s.Note == "" {
		return Segment{}, fmt.Errorf("%w: it ends without its checkpoint", ErrTruncated)
	}
	return s, nil
}
