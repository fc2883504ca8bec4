package auditchain_test

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/mandate-dev/mandate/internal/auditchain"
	"github.com/mandate-dev/mandate/internal/store"
)

func event(seq int64) store.Event {
	return store.Event{
		Seq: seq, ID: fmt.Sprintf("evt_%d", seq), Time: time.UnixMicro(1795000000_000000 + seq),
		Action: "token.exchange", Result: "granted", Performer: "agent:infrabot", OnBehalf: "user:sam",
		Chain: []string{"agent:infrabot"}, ClientID: "agent:infrabot", Scopes: []string{"deploy:create"},
		Audience: "agent:argocd", Context: json.RawMessage(`{"environment":"prod"}`), JTI: "jti",
	}
}

// eventV2 is event(seq) with every field mandate-audit-v2 added set.
func eventV2(seq int64) store.Event {
	e := event(seq)
	e.AgentVersion = "1.4.2"
	e.AuthorizationDetails = json.RawMessage(`[{"type":"expense_approval","max_amount":500}]`)
	e.Operation = "expense:approve"
	e.Attributes = json.RawMessage(`{"amount":"487.50"}`)
	e.ReportedBy = "agent:gateway"
	return e
}

// TestEncodeIsInjective: records that differ only by where a boundary
// falls between fields, or by one list item moving, encode differently
// (THREATS T67, the field-boundary shift); and so do a v1 record and a v2
// record that differs from it only by one of the v2 fields set.
func TestEncodeIsInjective(t *testing.T) {
	cases := []struct {
		name string
		// base is the record edited; the zero value means event(1), a v1
		// record.
		base store.Event
		edit func(*store.Event)
	}{
		{name: "boundary-shift-between-strings", edit: func(e *store.Event) { e.Performer, e.OnBehalf = "agent:infrabotuser", ":sam" }},
		{name: "item-moved-between-lists", edit: func(e *store.Event) { e.Scopes, e.Requested = nil, []string{"deploy:create"} }},
		{name: "list-items-joined", edit: func(e *store.Event) { e.Chain = []string{"agent:infra", "bot"} }},
		{name: "empty-vs-absent-item", edit: func(e *store.Event) { e.Chain = []string{"agent:infrabot", ""} }},
		{name: "seq", edit: func(e *store.Event) { e.Seq = 2 }},
		{name: "time-one-microsecond", edit: func(e *store.Event) { e.Time = e.Time.Add(time.Microsecond) }},
		{name: "context-byte", edit: func(e *store.Event) { e.Context = json.RawMessage(`{"environment":"prot"}`) }},
		{name: "jti-to-parent", edit: func(e *store.Event) { e.JTI, e.ParentJTI = "", "jti" }},
		// v1 against v2: one new field set, even to what looks empty.
		{name: "v1-vs-v2/agent-version-set", edit: func(e *store.Event) { e.AgentVersion = "1" }},
		{name: "v1-vs-v2/empty-json-set", edit: func(e *store.Event) { e.Attributes = json.RawMessage(`{}`) }},
		{name: "v1-vs-v2/reported-by-set", edit: func(e *store.Event) { e.ReportedBy = "agent:gateway" }},
		{name: "v1-vs-v2/parent-jti-split", edit: func(e *store.Event) { e.JTI, e.AgentVersion = "jt", "i" }},
		// v2 against v2.
		{name: "v2/boundary-shift-operation-reported-by", base: eventV2(1), edit: func(e *store.Event) {
			e.Operation, e.ReportedBy = "expense:approveagent:gate", "way"
		}},
		{name: "v2/operation-moved-to-reported-by", base: eventV2(1), edit: func(e *store.Event) {
			e.Operation, e.ReportedBy = "", "expense:approveagent:gateway"
		}},
		{name: "v2/boundary-shift-parent-jti-agent-version", base: eventV2(1), edit: func(e *store.Event) {
			e.ParentJTI, e.AgentVersion = "1.4", ".2"
		}},
		{name: "v2/json-moved-between-fields", base: eventV2(1), edit: func(e *store.Event) {
			e.AuthorizationDetails, e.Attributes = e.Attributes, e.AuthorizationDetails
		}},
		{name: "v2/json-whitespace", base: eventV2(1), edit: func(e *store.Event) {
			e.Attributes = json.RawMessage(`{"amount": "487.50"}`)
		}},
		{name: "v2/one-field-emptied", base: eventV2(1), edit: func(e *store.Event) { e.AgentVersion = "" }},
		{name: "v2/agent-version-to-operation", base: eventV2(1), edit: func(e *store.Event) {
			e.AgentVersion, e.Operation = "", "1.4.2expense:approve"
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			base := tc.base
			if base.ID == "" {
				base = event(1)
			}
			want := auditchain.Encode(base)
			e := base
			e.Chain, e.Scopes, e.Requested = append([]string(nil), base.Chain...), append([]string(nil), base.Scopes...), nil
			tc.edit(&e)
			if bytes.Equal(auditchain.Encode(e), want) {
				t.Error("a different record encodes the same")
			}
			if !bytes.Equal(auditchain.Encode(base), want) {
				t.Error("Encode is not deterministic")
			}
		})
	}
}

// TestEncodeVersion: a record with none of the v2 fields is v1, one with
// any of them v2 (an empty JSON value is none), and Seq is at one offset
// in both, where the PostgreSQL backend lays it over the encoding.
func TestEncodeVersion(t *testing.T) {
	v1 := event(1)
	v1.AuthorizationDetails, v1.Attributes = json.RawMessage{}, json.RawMessage("")
	for _, tc := range []struct {
		name    string
		ev      store.Event
		version string
	}{
		{name: "ok/v1-without-new-fields", ev: v1, version: "mandate-audit-v1"},
		{name: "ok/v1-empty", ev: store.Event{}, version: "mandate-audit-v1"},
		{name: "ok/v2-every-new-field", ev: eventV2(1), version: "mandate-audit-v2"},
		{name: "ok/v2-agent-version", ev: store.Event{AgentVersion: "1"}, version: "mandate-audit-v2"},
		{name: "ok/v2-authorization-details", ev: store.Event{AuthorizationDetails: json.RawMessage(`[]`)}, version: "mandate-audit-v2"},
		{name: "ok/v2-operation", ev: store.Event{Operation: "x"}, version: "mandate-audit-v2"},
		{name: "ok/v2-attributes", ev: store.Event{Attributes: json.RawMessage(`{}`)}, version: "mandate-audit-v2"},
		{name: "ok/v2-reported-by", ev: store.Event{ReportedBy: "agent:a"}, version: "mandate-audit-v2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := auditchain.Encode(tc.ev)
			if want := append([]byte{byte(len(tc.version))}, tc.version...); !bytes.HasPrefix(b, want) {
				t.Errorf("encoding starts %q, want %q", b[:min(len(b), len(want))], want)
			}
			at := 1 + len("mandate-audit-v1")
			e := tc.ev
			e.Seq = -1
			if got := auditchain.Encode(e); !bytes.Equal(got[at:at+8], bytes.Repeat([]byte{0xff}, 8)) ||
				!bytes.Equal(got[:at], b[:at]) || !bytes.Equal(got[at+8:], b[at+8:]) {
				t.Errorf("Seq is not the 8 bytes at offset %d", at)
			}
		})
	}
	if !bytes.Equal(auditchain.Encode(v1), auditchain.Encode(event(1))) {
		t.Error("an empty JSON value encodes unlike a nil one")
	}
}

// goldenEvent has every field set. Its encodings below are pinned: a log
// written with them must verify with every later build, so a change that
// alters them is a new version, never an edit of these.
func goldenEvent() store.Event {
	return store.Event{
		Seq: 7, ID: "evt_7", Time: time.UnixMicro(1795000000_123456), RequestID: "req-1",
		Action: "token.exchange", Result: "denied", Reason: "scope_widening", Detail: "déjà",
		Performer: "agent:infrabot", OnBehalf: "user:sam", Chain: []string{"agent:infrabot", "agent:ci"},
		ClientID: "agent:infrabot", Scopes: []string{"deploy:create"}, Requested: []string{"deploy:create", ""},
		Audience: "agent:argocd", Resource: "https://deploy.example", Context: json.RawMessage(`{"environment":"prod"}`),
		DelegationID: "dlg_1", JTI: "jti-2", ParentJTI: "jti-1",
	}
}

// TestEncodeGolden pins the v1 encoding (as written before the v2 fields
// existed) and the v2 encoding, and the chain link of each from Genesis.
func TestEncodeGolden(t *testing.T) {
	v2 := goldenEvent()
	v2.AgentVersion, v2.Operation, v2.ReportedBy = "1.4.2", "expense:approve", "agent:gateway"
	v2.AuthorizationDetails = json.RawMessage(`[ {"type":"expense_approval", "max_amount":500} ]`)
	v2.Attributes = json.RawMessage(`{"amount": "487.50","note":"café ✓"}`)
	for _, tc := range []struct {
		name     string
		ev       store.Event
		encoding string
		link     string
	}{
		{
			name: "v1",
			ev:   goldenEvent(),
			encoding: "106d616e646174652d61756469742d76310000000000000007056576745f370006608b01611240057265712d310e746f6b656e2e" +
				"65786368616e67650664656e6965640e73636f70655f776964656e696e670664c3a96ac3a00e6167656e743a696e667261626f74" +
				"08757365723a73616d020e6167656e743a696e667261626f74086167656e743a63690e6167656e743a696e667261626f74010d64" +
				"65706c6f793a637265617465020d6465706c6f793a637265617465000c6167656e743a6172676f63641668747470733a2f2f6465" +
				"706c6f792e6578616d706c65167b22656e7669726f6e6d656e74223a2270726f64227d05646c675f31056a74692d32056a74692d31",
			link: "f9c625faf585aa4e1a586812c739d927d47b1af0bc330f2f8f0775076361cceb",
		},
		{
			name: "v2",
			ev:   v2,
			encoding: "106d616e646174652d61756469742d76320000000000000007056576745f370006608b01611240057265712d310e746f6b656e2e" +
				"65786368616e67650664656e6965640e73636f70655f776964656e696e670664c3a96ac3a00e6167656e743a696e667261626f74" +
				"08757365723a73616d020e6167656e743a696e667261626f74086167656e743a63690e6167656e743a696e667261626f74010d64" +
				"65706c6f793a637265617465020d6465706c6f793a637265617465000c6167656e743a6172676f63641668747470733a2f2f6465" +
				"706c6f792e6578616d706c65167b22656e7669726f6e6d656e74223a2270726f64227d05646c675f31056a74692d32056a74692d31" +
				// The v2 fields.
				"05312e342e32315b207b2274797065223a22657870656e73655f617070726f76616c222c20226d61785f616d6f756e74223a3530" +
				"307d205d0f657870656e73653a617070726f7665277b22616d6f756e74223a20223438372e3530222c226e6f7465223a22636166" +
				"c3a920e29c93227d0d6167656e743a67617465776179",
			link: "6d73e4b7866e7fc9b1d106caab96371be7c7fe1fc4c52cef84529a45c94fc6da",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := hex.EncodeToString(auditchain.Encode(tc.ev)); got != tc.encoding {
				t.Errorf("Encode = %s\nwant      %s\n(a log written before would no longer verify)", got, tc.encoding)
			}
			link := auditchain.Next(auditchain.Genesis, tc.ev)
			if got := hex.EncodeToString(link[:]); got != tc.link {
				t.Errorf("Next(Genesis) = %s, want %s", got, tc.link)
			}
		})
	}
}

func TestChainLinks(t *testing.T) {
	a, b := auditchain.Next(auditchain.Genesis, event(1)), auditchain.Next(auditchain.Genesis, event(2))
	if a == b || auditchain.Next(a, event(2)) == auditchain.Next(b, event(2)) {
		t.Error("links do not depend on the record and on the previous link")
	}
}

// TestTreeMatchesTlog: the edge-only tree has tlog's root at every size.
func TestTreeMatchesTlog(t *testing.T) {
	var stored []tlog.Hash
	reader := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			out[i] = stored[x]
		}
		return out, nil
	})
	var tree auditchain.Tree
	if tree.Root() != (auditchain.Hash{}) || !tree.Valid() {
		t.Fatal("the empty tree")
	}
	for n := int64(0); n < 300; n++ {
		data := auditchain.Encode(event(n + 1))
		hashes, err := tlog.StoredHashes(n, data, reader)
		if err != nil {
			t.Fatal(err)
		}
		stored = append(stored, hashes...)
		tree.Append(tlog.RecordHash(data))
		want, err := tlog.TreeHash(n+1, reader)
		if err != nil {
			t.Fatal(err)
		}
		if tree.Root() != want || !tree.Valid() {
			t.Fatalf("size %d: root differs from tlog's (valid %v)", n+1, tree.Valid())
		}
	}
	// It survives a JSON round trip (the checkpointer persists it).
	b, _ := json.Marshal(tree)
	var back auditchain.Tree
	if err := json.Unmarshal(b, &back); err != nil || back.Root() != tree.Root() || back.N != tree.N {
		t.Errorf("round trip: %v", err)
	}
}

// TestTime: Time keeps what both stores keep (UTC, whole microseconds), so
// that a record reads back as it was hashed (THREATS T99): a time within a
// microsecond after the zero time is the zero time, and Encode hashes a
// time as Time makes it.
func TestTime(t *testing.T) {
	zero := time.Time{}
	for _, tc := range []struct {
		name string
		in   time.Time
		want time.Time
	}{
		{name: "ok/zero", in: zero, want: zero},
		{name: "ok/half-a-microsecond-after-zero", in: zero.Add(500 * time.Nanosecond), want: zero},
		{name: "ok/one-microsecond-after-zero", in: zero.Add(time.Microsecond + 1), want: zero.Add(time.Microsecond)},
		{name: "ok/nanoseconds", in: time.Date(2026, 1, 2, 3, 4, 5, 123_456_789, time.UTC),
			want: time.Date(2026, 1, 2, 3, 4, 5, 123_456_000, time.UTC)},
		{name: "ok/before-1970-rounds-down", in: time.Date(1969, 12, 31, 23, 59, 59, 999_999_500, time.UTC),
			want: time.Date(1969, 12, 31, 23, 59, 59, 999_999_000, time.UTC)},
		{name: "ok/year-9999", in: time.Date(9999, 12, 31, 23, 59, 59, 999_999_999, time.UTC),
			want: time.Date(9999, 12, 31, 23, 59, 59, 999_999_000, time.UTC)},
		{name: "ok/zoned", in: time.Date(2026, 1, 2, 8, 34, 5, 7, time.FixedZone("IST", 5*3600+1800)),
			want: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := auditchain.Time(tc.in)
			if !got.Equal(tc.want) || got.Location() != time.UTC || got.IsZero() != tc.want.IsZero() {
				t.Fatalf("Time(%s) = %s, want %s in UTC", tc.in, got, tc.want)
			}
			if !got.IsZero() && !time.UnixMicro(got.UnixMicro()).UTC().Equal(got) {
				t.Errorf("Time(%s) = %s does not survive Unix microseconds", tc.in, got)
			}
			a, b := event(1), event(1)
			a.Time, b.Time = tc.in, got
			if !bytes.Equal(auditchain.Encode(a), auditchain.Encode(b)) {
				t.Errorf("Encode of %s differs from Encode of Time of it", tc.in)
			}
		})
	}
}
