package revocation_test

import (
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/mandate-dev/mandate/revocation"
)

func TestParseEventID(t *testing.T) {
	long := strings.Repeat("s", revocation.MaxStream)
	for _, tc := range []struct {
		name   string
		id     string
		stream string
		seq    int64
		ok     bool
	}{
		{name: "ok/plain", id: "s1/42", stream: "s1", seq: 42, ok: true},
		{name: "ok/seq-zero", id: "s1/0", stream: "s1", seq: 0, ok: true},
		{name: "ok/server-stream-name", id: "s1a2b3c4d5/7", stream: "s1a2b3c4d5", seq: 7, ok: true},
		{name: "ok/stream-at-bound", id: long + "/1", stream: long, seq: 1, ok: true},
		{name: "ok/seq-max", id: "s/" + strconv.FormatInt(math.MaxInt64, 10), stream: "s", seq: math.MaxInt64, ok: true},
		{name: "fail/empty", id: ""},
		{name: "fail/no-slash", id: "garbage"},
		{name: "fail/empty-stream", id: "/1"},
		{name: "fail/empty-seq", id: "s1/"},
		{name: "fail/two-slashes", id: "a/b/1"},
		{name: "fail/stream-above-bound", id: long + "s/1"},
		{name: "fail/stream-space", id: "s 1/1"},
		{name: "fail/stream-control", id: "s\r\n1/1"},
		{name: "fail/stream-non-ascii", id: "s\u00e9/1"},
		{name: "fail/seq-negative", id: "s1/-1"},
		{name: "fail/seq-plus", id: "s1/+1"},
		{name: "fail/seq-leading-zero", id: "s1/01"},
		{name: "fail/seq-minus-zero", id: "s1/-0"},
		{name: "fail/seq-space", id: "s1/ 1"},
		{name: "fail/seq-hex", id: "s1/0x1"},
		{name: "fail/seq-overflow", id: "s1/9223372036854775808"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stream, seq, ok := revocation.ParseEventID(tc.id)
			if ok != tc.ok || stream != tc.stream || seq != tc.seq {
				t.Fatalf("ParseEventID(%q) = %q, %d, %v; want %q, %d, %v", tc.id, stream, seq, ok, tc.stream, tc.seq, tc.ok)
			}
			if ok {
				if got := revocation.EventID(stream, seq); got != tc.id {
					t.Errorf("EventID(%q, %d) = %q, want %q", stream, seq, got, tc.id)
				}
			}
		})
	}
}

// FuzzEventID: what ParseEventID takes, EventID writes back byte for byte;
// what EventID writes from a valid stream and seq, ParseEventID reads back.
func FuzzEventID(f *testing.F) {
	for _, seed := range []struct {
		id     string
		stream string
		seq    int64
	}{
		{"s1/42", "s1", 42},
		{"s0/0", "s0", 0},
		{"a/b/1", "a/b", 1},
		{"s1/+1", "s 1", -1},
		{"s1/01", "", math.MaxInt64},
	} {
		f.Add(seed.id, seed.stream, seed.seq)
	}
	f.Fuzz(func(t *testing.T, id, stream string, seq int64) {
		if s, n, ok := revocation.ParseEventID(id); ok {
			if got := revocation.EventID(s, n); got != id {
				t.Fatalf("ParseEventID(%q) = %q, %d; EventID gives %q", id, s, n, got)
			}
			if revocation.CheckStream(s) != nil || n < 0 {
				t.Fatalf("ParseEventID(%q) took stream %q, seq %d", id, s, n)
			}
		}
		s, n, ok := revocation.ParseEventID(revocation.EventID(stream, seq))
		if want := revocation.CheckStream(stream) == nil && seq >= 0; ok != want {
			t.Fatalf("EventID(%q, %d) parses: %v, want %v", stream, seq, ok, want)
		}
		if ok && (s != stream || n != seq) {
			t.Fatalf("EventID(%q, %d) parses as %q, %d", stream, seq, s, n)
		}
	})
}
