package revocation_test

import (
	"errors"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mandate-dev/mandate/revocation"
)

// infraBot is Sam → InfraBot → ArgoCD, minted at generation 10 from a
// parent token jti-1.
func infraBot() revocation.Token {
	return revocation.Token{
		JTI:           "jti-2",
		ExchangedFrom: []string{"jti-1", "jti-0"},
		Subject:       "user:sam",
		Chain:         []string{"agent:argocd", "agent:infrabot"},
		ClientID:      "agent:argocd",
		DelegationID:  "dlg_1",
		Scopes:        []string{"deploy:create", "monitoring:read"},
		Gen:           10,
		IssuedAt:      1000,
		KeyID:         "k1",
	}
}

func TestCheck(t *testing.T) {
	entry := func(kind, id string, gen int64) revocation.Entry {
		return revocation.Entry{Seq: 1, Kind: kind, ID: id, Gen: gen, Until: 5000}
	}
	scope := func(sc string, gen int64) revocation.Entry {
		e := entry(revocation.KindScope, "user:sam", gen)
		e.Scope = sc
		return e
	}
	cases := []struct {
		name      string
		entries   []revocation.Entry
		notBefore int64
		want      string
	}{
		{name: "ok/empty"},
		{name: "fail/token-itself", entries: []revocation.Entry{entry(revocation.KindToken, "jti-2", 0)}, want: revocation.KindToken},
		{name: "fail/parent", entries: []revocation.Entry{entry(revocation.KindToken, "jti-1", 0)}, want: revocation.KindToken},
		{name: "fail/grandparent", entries: []revocation.Entry{entry(revocation.KindToken, "jti-0", 0)}, want: revocation.KindToken},
		{name: "ok/other-token", entries: []revocation.Entry{entry(revocation.KindToken, "jti-9", 0)}},
		{name: "fail/delegation", entries: []revocation.Entry{entry(revocation.KindDelegation, "dlg_1", 11)}, want: revocation.KindDelegation},
		{name: "ok/delegation-narrowed-before-mint", entries: []revocation.Entry{entry(revocation.KindDelegation, "dlg_1", 10)}},
		{name: "ok/other-delegation", entries: []revocation.Entry{entry(revocation.KindDelegation, "dlg_2", 11)}},
		{name: "fail/key", entries: []revocation.Entry{entry(revocation.KindKey, "k1", 0)}, want: revocation.KindKey},
		{name: "ok/other-key", entries: []revocation.Entry{entry(revocation.KindKey, "k2", 0)}},
		{name: "fail/subject-newer-gen", entries: []revocation.Entry{entry(revocation.KindSubject, "user:sam", 11)}, want: revocation.KindSubject},
		{name: "ok/subject-same-gen", entries: []revocation.Entry{entry(revocation.KindSubject, "user:sam", 10)}},
		{name: "ok/other-subject", entries: []revocation.Entry{entry(revocation.KindSubject, "user:kim", 99)}},
		{name: "fail/scope-carried", entries: []revocation.Entry{scope("monitoring:read", 11)}, want: revocation.KindScope},
		{name: "ok/scope-not-carried", entries: []revocation.Entry{scope("secrets:manage", 11)}},
		{name: "ok/scope-older-gen", entries: []revocation.Entry{scope("monitoring:read", 10)}},
		{name: "fail/agent-current", entries: []revocation.Entry{entry(revocation.KindAgent, "agent:argocd", 11)}, want: revocation.KindAgent},
		{name: "fail/agent-prior", entries: []revocation.Entry{entry(revocation.KindAgent, "agent:infrabot", 11)}, want: revocation.KindAgent},
		{name: "ok/agent-disabled-before-mint", entries: []revocation.Entry{entry(revocation.KindAgent, "agent:infrabot", 9)}},
		{name: "fail/agent-merged-keeps-higher-gen", entries: []revocation.Entry{entry(revocation.KindAgent, "agent:infrabot", 12), {Seq: 2, Kind: revocation.KindAgent, ID: "agent:infrabot", Gen: 3, Until: 9000}}, want: revocation.KindAgent},
		{name: "fail/not-before", notBefore: 1001, want: "not_before"},
		{name: "ok/not-before-at-iat", notBefore: 1000},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := revocation.NewSet()
			for i := range tc.entries {
				tc.entries[i].Seq = int64(i + 1)
			}
			if err := s.Reset(revocation.Snapshot{Stream: "s", Seq: int64(len(tc.entries)), NotBefore: tc.notBefore, Entries: tc.entries}); err != nil {
				t.Fatal(err)
			}
			tok := infraBot()
			if got := s.Check(&tok); got != tc.want {
				t.Errorf("Check = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	ok := revocation.Entry{Seq: 1, Kind: revocation.KindScope, ID: "user:sam", Scope: "s", Gen: 2, Until: 9}
	long := string(make([]byte, 513))
	cases := []struct {
		name string
		edit func(*revocation.Entry)
		ok   bool
	}{
		{name: "ok/scope", edit: func(*revocation.Entry) {}, ok: true},
		{name: "ok/token", edit: func(e *revocation.Entry) { e.Kind, e.Scope, e.Gen = revocation.KindToken, "", 0 }, ok: true},
		{name: "fail/seq-zero", edit: func(e *revocation.Entry) { e.Seq = 0 }},
		{name: "fail/id-empty", edit: func(e *revocation.Entry) { e.ID = "" }},
		{name: "fail/id-long", edit: func(e *revocation.Entry) { e.ID = long }},
		{name: "fail/scope-long", edit: func(e *revocation.Entry) { e.Scope = long }},
		{name: "fail/gen-negative", edit: func(e *revocation.Entry) { e.Gen = -1 }},
		{name: "fail/until-zero", edit: func(e *revocation.Entry) { e.Until = 0 }},
		{name: "fail/kind-unknown", edit: func(e *revocation.Entry) { e.Kind = "user" }},
		{name: "fail/scope-without-scope", edit: func(e *revocation.Entry) { e.Scope = "" }},
		{name: "fail/scope-without-gen", edit: func(e *revocation.Entry) { e.Gen = 0 }},
		{name: "fail/agent-without-gen", edit: func(e *revocation.Entry) { e.Kind, e.Scope, e.Gen = revocation.KindAgent, "", 0 }},
		{name: "fail/token-with-scope", edit: func(e *revocation.Entry) { e.Kind = revocation.KindToken }},
		{name: "fail/subject-with-scope", edit: func(e *revocation.Entry) { e.Kind = revocation.KindSubject }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := ok
			tc.edit(&e)
			err := e.Validate()
			if tc.ok != (err == nil) || (err != nil && !errors.Is(err, revocation.ErrInvalid)) {
				t.Errorf("Validate = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

func TestApplyIsAtomicAndIgnoresReplays(t *testing.T) {
	s := revocation.NewSet()
	good := revocation.Entry{Seq: 1, Kind: revocation.KindToken, ID: "jti-2", Until: 9}
	bad := revocation.Entry{Seq: 2, Kind: "nope", ID: "x", Until: 9}
	if err := s.Apply(good, bad); !errors.Is(err, revocation.ErrInvalid) {
		t.Fatalf("Apply with a bad entry = %v, want ErrInvalid", err)
	}
	if s.Len() != 0 {
		t.Fatalf("a refused Apply changed the set: %d entries", s.Len())
	}
	if err := s.Apply(good); err != nil {
		t.Fatal(err)
	}
	// A replay of seq 1 after a reconnection adds nothing.
	if err := s.Apply(revocation.Entry{Seq: 1, Kind: revocation.KindToken, ID: "jti-other", Until: 9}); err != nil {
		t.Fatal(err)
	}
	if _, seq := s.Position(); seq != 1 || s.Len() != 1 {
		t.Errorf("after replay: seq %d, %d entries; want 1, 1", seq, s.Len())
	}
	s.Advance(7)
	s.Advance(3)
	if _, seq := s.Position(); seq != 7 {
		t.Errorf("seq after heartbeats 7 then 3 = %d, want 7", seq)
	}
}

func TestResetRefusesBadSnapshot(t *testing.T) {
	s := revocation.NewSet()
	if err := s.Apply(revocation.Entry{Seq: 1, Kind: revocation.KindToken, ID: "jti-2", Until: 9}); err != nil {
		t.Fatal(err)
	}
	for name, snap := range map[string]revocation.Snapshot{
		"entry-beyond-seq": {Stream: "s", Seq: 1, Entries: []revocation.Entry{{Seq: 2, Kind: revocation.KindToken, ID: "a", Until: 9}}},
		"invalid-entry":    {Stream: "s", Seq: 3, Entries: []revocation.Entry{{Seq: 2, Kind: revocation.KindAgent, ID: "a", Until: 9}}},
	} {
		if err := s.Reset(snap); !errors.Is(err, revocation.ErrInvalid) {
			t.Errorf("%s: Reset = %v, want ErrInvalid", name, err)
		}
	}
	tok := infraBot()
	if s.Check(&tok) != revocation.KindToken {
		t.Error("a refused snapshot dropped the state held")
	}
}

func TestCollectAndEntries(t *testing.T) {
	s := revocation.NewSet()
	entries := []revocation.Entry{
		{Seq: 1, Kind: revocation.KindToken, ID: "old", Until: 100},
		{Seq: 2, Kind: revocation.KindToken, ID: "new", Until: 300},
		{Seq: 3, Kind: revocation.KindAgent, ID: "agent:a", Gen: 4, Until: 100},
		{Seq: 4, Kind: revocation.KindScope, ID: "user:sam", Scope: "x", Gen: 5, Until: 300},
		{Seq: 5, Kind: revocation.KindScope, ID: "user:sam", Scope: "x", Gen: 7, Until: 200},
		{Seq: 6, Kind: revocation.KindDelegation, ID: "dlg", Gen: 1, Until: 150},
	}
	if err := s.Apply(entries...); err != nil {
		t.Fatal(err)
	}
	if n := s.Collect(200); n != 3 {
		t.Errorf("Collect dropped %d, want 3 (old, agent:a, dlg)", n)
	}
	want := []revocation.Entry{
		{Seq: 6, Kind: revocation.KindScope, ID: "user:sam", Scope: "x", Gen: 7, Until: 300},
		{Seq: 6, Kind: revocation.KindToken, ID: "new", Until: 300},
	}
	if diff := cmp.Diff(want, s.Entries()); diff != "" {
		t.Errorf("Entries (-want +got):\n%s", diff)
	}
	// The entries round-trip: a set reset from them checks the same.
	r := revocation.NewSet()
	if err := r.Reset(revocation.Snapshot{Stream: "s", Seq: 6, Entries: s.Entries()}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(s.Entries(), r.Entries()); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
}

func TestUntilFor(t *testing.T) {
	at := time.Unix(1000, 500)
	if got := revocation.UntilFor(at, 15*time.Minute, 2*time.Minute); got != 1000+17*60+1 {
		t.Errorf("UntilFor = %d, want rounded up to %d", got, 1000+17*60+1)
	}
	if got := revocation.UntilFor(time.Unix(1000, 0), time.Minute, 0); got != 1060 {
		t.Errorf("UntilFor whole second = %d, want 1060", got)
	}
}

// fill returns a set holding n token entries and a few of every other kind,
// as a verifier does after n revocations in the last max_ttl.
func fill(tb testing.TB, n int) *revocation.Set {
	s := revocation.NewSet()
	entries := make([]revocation.Entry, 0, n+30)
	for i := range n {
		entries = append(entries, revocation.Entry{Seq: int64(i + 1), Kind: revocation.KindToken, ID: fmt.Sprintf("%022d", i), Until: 1 << 40})
	}
	for i := range 10 {
		seq := int64(n + 3*i + 1)
		entries = append(entries,
			revocation.Entry{Seq: seq, Kind: revocation.KindAgent, ID: fmt.Sprintf("agent:a%d", i), Gen: 99, Until: 1 << 40},
			revocation.Entry{Seq: seq + 1, Kind: revocation.KindSubject, ID: fmt.Sprintf("user:u%d", i), Gen: 99, Until: 1 << 40},
			revocation.Entry{Seq: seq + 2, Kind: revocation.KindScope, ID: "user:sam", Scope: fmt.Sprintf("s%d", i), Gen: 99, Until: 1 << 40})
	}
	if err := s.Apply(entries...); err != nil {
		tb.Fatal(err)
	}
	return s
}

// TestMemory100k measures the heap a verifier holds for 100,000 live
// entries (issue 5: at most 64 MiB).
func TestMemory100k(t *testing.T) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	s := fill(t, 100_000)
	runtime.GC()
	runtime.ReadMemStats(&after)
	used := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("100,000 entries: %.1f MiB of heap", float64(used)/(1<<20))
	if used > 64<<20 {
		t.Errorf("100,000 entries hold %d bytes, above 64 MiB", used)
	}
	runtime.KeepAlive(s)
}

// BenchmarkCheck100k is the lookup cost with 100,000 entries held, for a
// token that is not revoked (every map is consulted).
func BenchmarkCheck100k(b *testing.B) {
	s := fill(b, 100_000)
	tok := infraBot()
	b.ReportAllocs()
	for b.Loop() {
		if s.Check(&tok) != "" {
			b.Fatal("revoked")
		}
	}
}

// BenchmarkCheck100kParallel is the same lookup from every core at once.
func BenchmarkCheck100kParallel(b *testing.B) {
	s := fill(b, 100_000)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		tok := infraBot()
		for pb.Next() {
			if s.Check(&tok) != "" {
				b.Fatal("revoked")
			}
		}
	})
}
