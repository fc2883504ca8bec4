package auditchain_test

import (
	"bytes"
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

// TestEncodeIsInjective: records that differ only by where a boundary
// falls between fields, or by one list item moving, encode differently
// (THREATS T67, the field-boundary shift).
func TestEncodeIsInjective(t *testing.T) {
	base := event(1)
	cases := []struct {
		name string
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
	}
	want := auditchain.Encode(base)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := base
			e.Chain, e.Scopes, e.Requested = append([]string(nil), base.Chain...), append([]string(nil), base.Scopes...), nil
			tc.edit(&e)
			if bytes.Equal(auditchain.Encode(e), want) {
				t.Error("a different record encodes the same")
			}
		})
	}
	if !bytes.Equal(auditchain.Encode(base), want) {
		t.Error("Encode is not deterministic")
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
