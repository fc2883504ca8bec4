package auditlog_test

import (
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/mandate-dev/mandate/internal/auditchain"
	"github.com/mandate-dev/mandate/internal/auditlog"
	"github.com/mandate-dev/mandate/internal/store"
)

// chain numbers evs from 1 and sets their chain hashes, as the store does.
func chain(evs []store.Event) []store.Event {
	prev := auditchain.Genesis
	for i := range evs {
		evs[i].Seq = int64(i + 1)
		h := auditchain.Next(prev, evs[i])
		evs[i].Hash = h[:]
		prev = h
	}
	return evs
}

func log(n int) []store.Event {
	evs := make([]store.Event, n)
	for i := range evs {
		evs[i] = store.Event{ID: fmt.Sprintf("evt_%d", i), Time: time.UnixMicro(1795000000000000 + int64(i)),
			Action: "token.exchange", Result: "granted", Performer: "agent:infrabot", OnBehalf: "user:sam"}
	}
	return chain(evs)
}

// checkpoint signs the state of evs[:size].
func checkpoint(t *testing.T, evs []store.Event, size int, skey string) auditlog.Checkpoint {
	t.Helper()
	var tree auditchain.Tree
	for _, ev := range evs[:size] {
		tree.Append(auditchain.LeafHash(ev))
	}
	c := auditlog.Checkpoint{Origin: "https://mandate.example", Size: int64(size), Root: tree.Root()}
	copy(c.Head[:], evs[size-1].Hash)
	vkey, err := auditlog.VerifierKey(skey)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := auditlog.Sign(c, skey)
	if err != nil {
		t.Fatal(err)
	}
	got, err := auditlog.Open(msg, vkey)
	if err != nil || got != c {
		t.Fatalf("Open(Sign(c)) = %+v, %v; want %+v", got, err, c)
	}
	return c
}

func replay(evs []store.Event, cs ...auditlog.Checkpoint) auditlog.Result {
	r := auditlog.NewReplay(cs)
	for _, ev := range evs {
		if !r.Add(ev) {
			break
		}
	}
	return r.Finish()
}

func clone(evs []store.Event) []store.Event { return append([]store.Event(nil), evs...) }

// TestTampering is THREATS T67 and T68 against the replay: every kind of
// tampering is caught, and the first record that cannot be trusted is named.
func TestTampering(t *testing.T) {
	skey, err := auditlog.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	good := log(20)
	cp10, cp20 := checkpoint(t, good, 10, skey), checkpoint(t, good, 20, skey)
	const k = 7
	cases := []struct {
		name     string
		tamper   func([]store.Event) []store.Event
		firstBad int64
		problem  string
	}{
		{name: "ok/untouched", tamper: func(e []store.Event) []store.Event { return e }},
		{name: "fail/flip-a-byte", tamper: func(e []store.Event) []store.Event {
			e[k-1].Action = "token.exchangf"
			return e
		}, firstBad: k, problem: "does not match its chain hash"},
		{name: "fail/field-boundary-shift", tamper: func(e []store.Event) []store.Event {
			e[k-1].Performer, e[k-1].OnBehalf = "agent:infrabotuser", ":sam"
			return e
		}, firstBad: k, problem: "does not match its chain hash"},
		{name: "fail/delete", tamper: func(e []store.Event) []store.Event {
			return append(e[:k-1], e[k:]...)
		}, firstBad: k, problem: "missing"},
		{name: "fail/swap", tamper: func(e []store.Event) []store.Event {
			e[k-1], e[k] = e[k], e[k-1]
			return e
		}, firstBad: k, problem: "missing"},
		{name: "fail/swap-and-renumber", tamper: func(e []store.Event) []store.Event {
			e[k-1], e[k] = e[k], e[k-1]
			e[k-1].Seq, e[k].Seq = k, k+1
			return e
		}, firstBad: k, problem: "does not match its chain hash"},
		{name: "fail/insert", tamper: func(e []store.Event) []store.Event {
			forged := e[k-2]
			forged.Seq, forged.ID = k, "evt_forged"
			out := append(clone(e[:k-1]), forged)
			for _, ev := range e[k-1:] {
				ev.Seq++
				out = append(out, ev)
			}
			return out
		}, firstBad: k, problem: "does not match its chain hash"},
		{name: "fail/edit-and-relink", tamper: func(e []store.Event) []store.Event {
			e[k-1].Result = "refused"
			return chain(e)
		}, firstBad: 1, problem: "signed checkpoint at size 10"},
		{name: "fail/edit-after-first-checkpoint-and-relink", tamper: func(e []store.Event) []store.Event {
			e[14].Result = "refused"
			return chain(e)
		}, firstBad: 11, problem: "records 11 to 20"},
		{name: "fail/truncate-tail", tamper: func(e []store.Event) []store.Event { return e[:17] }, firstBad: 18, problem: "tail was cut off"},
		{name: "fail/roll-back-to-older-log", tamper: func(e []store.Event) []store.Event { return e[:10] }, firstBad: 11, problem: "older log was swapped in"},
		{name: "fail/fully-rehashed-forgery", tamper: func(e []store.Event) []store.Event {
			forged := log(20)
			forged[0].OnBehalf = "user:mallory"
			return chain(forged)
		}, firstBad: 1, problem: "signed checkpoint at size 10"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := replay(tc.tamper(clone(good)), cp10, cp20)
			if res.FirstBad != tc.firstBad || !strings.Contains(res.Problem, tc.problem) {
				t.Errorf("first bad %d (%q), want %d (%q)", res.FirstBad, res.Problem, tc.firstBad, tc.problem)
			}
			if tc.firstBad == 0 && (!res.OK() || res.Records != 20 || res.Checkpoints != 2) {
				t.Errorf("untouched log: %+v", res)
			}
		})
	}
}

// TestCheckpointNotes: a note signed with another key, or edited, is
// refused; a witness file splits back into its notes.
func TestCheckpointNotes(t *testing.T) {
	skey, _ := auditlog.NewKey()
	other, _ := auditlog.NewKey()
	vkey, _ := auditlog.VerifierKey(skey)
	c := auditlog.Checkpoint{Origin: "https://mandate.example", Size: 3}
	msg, err := auditlog.Sign(c, skey)
	if err != nil {
		t.Fatal(err)
	}
	forged, _ := auditlog.Sign(c, other)
	edited := strings.Replace(msg, "\n3\n", "\n4\n", 1)
	for name, m := range map[string]string{"other-key": forged, "edited": edited, "garbage": "x"} {
		if _, err := auditlog.Open(m, vkey); !errors.Is(err, auditlog.ErrBadCheckpoint) {
			t.Errorf("%s: Open = %v, want ErrBadCheckpoint", name, err)
		}
	}
	c2 := c
	c2.Size = 9
	msg2, _ := auditlog.Sign(c2, skey)
	// A note torn by a crash does not swallow the one written after it
	// (the checkpointer starts every note on a line of its own).
	torn := auditlog.SplitNotes("\n" + msg[:len(msg)-20] + "\n" + msg2)
	if len(torn) != 2 {
		t.Fatalf("a torn note and a whole one split into %d notes", len(torn))
	}
	if got, err := auditlog.Open(torn[1], vkey); err != nil || got.Size != 9 {
		t.Errorf("the note after a torn one: %+v, %v", got, err)
	}
	notes := auditlog.SplitNotes("junk before\n" + msg + "\n" + msg2 + "\n")
	if len(notes) != 2 {
		t.Fatalf("SplitNotes found %d notes, want 2", len(notes))
	}
	for i, want := range []int64{3, 9} {
		got, err := auditlog.Open(notes[i], vkey)
		if err != nil || got.Size != want {
			t.Errorf("note %d: %+v, %v", i, got, err)
		}
	}
	// A witness file must hold a checkpoint: an empty or wrong file where
	// one was named is not a pass.
	for _, tc := range []struct {
		name, data string
		want       int
		err        error
	}{
		{name: "fail/empty", err: auditlog.ErrNoCheckpoint},
		{name: "fail/no-note", data: "junk\n\nmore junk\n", err: auditlog.ErrNoCheckpoint},
		{name: "ok/two-notes", data: msg + msg2, want: 2},
		{name: "ok/torn-note", data: msg[:len(msg)-20], want: 1}, // Open names it
	} {
		got, err := auditlog.WitnessNotes(tc.data)
		if len(got) != tc.want || !errors.Is(err, tc.err) {
			t.Errorf("%s: WitnessNotes = %d notes, %v; want %d, %v", tc.name, len(got), err, tc.want, tc.err)
		}
	}
}

// TestVerifierKey derives the same verifier key GenerateKey gives.
func TestVerifierKey(t *testing.T) {
	for range 20 {
		skey, vkey, err := note.GenerateKey(rand.Reader, auditlog.KeyName)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := auditlog.VerifierKey(skey); err != nil || got != vkey {
			t.Fatalf("VerifierKey = %q, %v; want %q", got, err, vkey)
		}
	}
	for _, bad := range []string{"", "PRIVATE+KEY+x", "PRIVATE+KEY+x+1+AAAA", "KEY+x+1+" + strings.Repeat("A", 44)} {
		if _, err := auditlog.VerifierKey(bad); err == nil {
			t.Errorf("VerifierKey(%q) accepted", bad)
		}
	}
}
