package auditlog_test

import (
	"bytes"
	"encoding/json"
	"io"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/mandate-dev/mandate/internal/auditlog"
	"github.com/mandate-dev/mandate/internal/store"
)

// encoderLine is the export line of ev as encoding/json's Encoder writes
// it, which AppendExportLine must match byte for byte.
func encoderLine(ev store.Event) ([]byte, error) {
	var buf bytes.Buffer
	err := json.NewEncoder(&buf).Encode(ev)
	return buf.Bytes(), err
}

// checkLine fails t unless AppendExportLine writes what the Encoder writes
// for ev, after a prefix it must leave alone, and fails where it fails.
func checkLine(t *testing.T, ev store.Event) {
	t.Helper()
	want, wantErr := encoderLine(ev)
	prefix := []byte("prefix\n")
	got, err := auditlog.AppendExportLine(prefix, ev)
	switch {
	case (err != nil) != (wantErr != nil):
		t.Fatalf("AppendExportLine(%+v) error %v, the Encoder's %v", ev, err, wantErr)
	case !bytes.HasPrefix(got, prefix):
		t.Fatalf("AppendExportLine(%+v) changed the bytes before it: %q", ev, got)
	case err != nil && len(got) != len(prefix):
		t.Fatalf("AppendExportLine(%+v) failed but wrote %q", ev, got[len(prefix):])
	case err == nil && !bytes.Equal(got[len(prefix):], want):
		t.Fatalf("AppendExportLine(%+v)\n got %s\nwant %s", ev, got[len(prefix):], want)
	}
}

// exportStrings are strings that take every path of the escaping.
var exportStrings = []string{
	"", "agent:infrabot", "user:sam@example.com", "https://deploy.example/a?b=c", "a\"b", `back\slash`,
	"<script>&amp;</script>", "tab\there", "line\nbreak", "\x00\x01\x1f\x7f", "café", "日本語", "🙂 emoji",
	"\u2028\u2029", "bad \xff utf-8", "\xe2\x80", "truncated \xf0\x9f", "\ufffd", "/slash/",
}

// exportJSON are JSON documents (and not) that take every path of a raw
// field: compact, to compact, to escape, invalid.
var exportJSON = []string{
	"", `{"environment":"prod","trigger":"chat"}`, `{"amount":"487.50","currency":"USD"}`, `[]`, `{}`,
	`[{"type":"payment","actions":["initiate"],"limit":1.5e3}]`, `{ "spaced" : [ 1, 2 ] }`, "{\n\t\"a\": true\r\n}",
	`{"html":"<b>&</b>"}`, `{"sep":"` + "\u2028" + `"}`, `{"esc":"\u00e9\n\"\\\/"}`, `null`, `true`, `false`, `-0.5E-7`,
	`"str"`, `{`, `{"a":}`, `[1,]`, `01`, `{"a":1}x`, `{"a" 1}`, "{\"ctl\":\"\x01\"}", `{"bad":"\x"}`, `{"u":"\u12"}`,
	`{"raw":"` + "\xff" + `"}`, `[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]`,
	`1.`, `1e`, `-`, `tru`, `nul`, `[1 2]`, `{"a":1,}`, `{,}`, `[,1]`, `{"a":1}{"b":2}`,
}

// exportTimes are times that take every path of the time field.
var exportTimes = []time.Time{
	{}, time.UnixMicro(1795000000123456).UTC(), time.Unix(1795000000, 0).UTC(), time.Unix(1795000000, 123456789).UTC(),
	time.Unix(1795000000, 0).In(time.FixedZone("x", 3600)), time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
	time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
}

// randomEvent is an event whose every field is picked from the lists
// above, empty about half the time.
func randomEvent(rng *rand.Rand) store.Event {
	str := func() string {
		if rng.IntN(2) == 0 {
			return exportStrings[rng.IntN(3)] // mostly the common, plain ones
		}
		return exportStrings[rng.IntN(len(exportStrings))]
	}
	list := func() []string {
		switch n := rng.IntN(4); n {
		case 0:
			return nil
		case 1:
			return []string{}
		default:
			l := make([]string, n)
			for i := range l {
				l[i] = str()
			}
			return l
		}
	}
	raw := func() json.RawMessage {
		if rng.IntN(3) == 0 {
			return nil
		}
		if rng.IntN(2) == 0 {
			return json.RawMessage(exportJSON[rng.IntN(3)])
		}
		return json.RawMessage(exportJSON[rng.IntN(len(exportJSON))])
	}
	ev := store.Event{
		Seq: rng.Int64N(1 << 40), ID: str(), Time: exportTimes[rng.IntN(len(exportTimes))], RequestID: str(),
		Action: str(), Result: str(), Reason: str(), Detail: str(), Performer: str(), OnBehalf: str(), Chain: list(),
		ClientID: str(), Scopes: list(), Requested: list(), Audience: str(), Resource: str(), Context: raw(),
		DelegationID: str(), JTI: str(), ParentJTI: str(), AgentVersion: str(), AuthorizationDetails: raw(),
		Operation: str(), Attributes: raw(), ReportedBy: str(),
	}
	if rng.IntN(4) != 0 {
		ev.Hash = make([]byte, rng.IntN(40))
		for i := range ev.Hash {
			ev.Hash[i] = byte(rng.Uint32())
		}
	}
	return ev
}

func TestAppendExportLineMatchesEncoder(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 50_000 {
		checkLine(t, randomEvent(rng))
	}
	for _, s := range exportStrings {
		checkLine(t, store.Event{Seq: 1, ID: s, Performer: s, Chain: []string{s, s}})
	}
	for _, j := range exportJSON {
		checkLine(t, store.Event{Seq: 1, Context: json.RawMessage(j), Attributes: json.RawMessage(j)})
	}
	for _, tm := range exportTimes {
		checkLine(t, store.Event{Seq: 1, Time: tm})
	}
}

// FuzzAppendExportLine holds AppendExportLine to the Encoder's bytes for
// any string and any JSON field, valid or not.
func FuzzAppendExportLine(f *testing.F) {
	for i, s := range exportStrings {
		f.Add(s, []byte(exportJSON[i%len(exportJSON)]), int64(1795000000123456000))
	}
	for _, j := range exportJSON {
		f.Add("agent:infrabot", []byte(j), int64(0))
	}
	f.Fuzz(func(t *testing.T, s string, raw []byte, nanos int64) {
		tm := time.Unix(0, nanos).UTC()
		if nanos == 0 {
			tm = time.Time{}
		}
		checkLine(t, store.Event{Seq: nanos, ID: s, Time: tm, Performer: s, Chain: []string{s, "agent:a"}, Scopes: []string{s},
			Context: raw, AuthorizationDetails: raw, Attributes: raw, Hash: raw, ReportedBy: s})
		checkLine(t, store.Event{Seq: 2, Action: s, Context: json.RawMessage(s)})
	})
}

// BenchmarkExportLine: encoding a record like the filled log's as an
// export line, by AppendExportLine and by encoding/json's Encoder.
func BenchmarkExportLine(b *testing.B) {
	ev := store.Event{
		Seq: 1234567, ID: "evt_0123456789abcdef0123456789abcdef", Time: time.UnixMicro(1795000000123456).UTC(),
		RequestID: "req_0123456789abcdef0123456789abcdef", Action: "token.exchange", Result: "granted",
		Performer: "agent:infrabot", OnBehalf: "user:sam", Chain: []string{"agent:infrabot", "agent:planner"},
		ClientID: "agent:infrabot", Scopes: []string{"monitoring:read"}, Requested: []string{"monitoring:read", "deploy:comment"},
		Audience: "https://deploy.example", Context: json.RawMessage(`{"environment":"prod","trigger":"chat"}`),
		DelegationID: "dlg_0123456789abcdef", JTI: "0123456789abcdef0123456789abcdef", AgentVersion: "1.4.2",
		Hash: bytes.Repeat([]byte{0xab}, 32),
	}
	b.Run("append", func(b *testing.B) {
		var buf []byte
		for b.Loop() {
			buf, _ = auditlog.AppendExportLine(buf[:0], ev)
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		enc := json.NewEncoder(io.Discard)
		for b.Loop() {
			_ = enc.Encode(ev)
		}
	})
}
