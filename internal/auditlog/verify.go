package auditlog

import (
	"fmt"
	"slices"

	"github.com/mandate-dev/mandate/internal/auditchain"
	"github.com/mandate-dev/mandate/internal/store"
)

// Result is what a replay of the log found.
type Result struct {
	// Records is how many records chained correctly, from the first.
	Records int64 `json:"records"`
	// Checkpoints is how many checkpoints the log was matched against.
	Checkpoints int `json:"checkpoints"`
	// Root and Head are the Merkle root and chain head after Records.
	Root auditchain.Hash `json:"root"`
	Head auditchain.Hash `json:"head"`
	// FirstBad is the seq of the first record that cannot be trusted, 0
	// when the log verifies.
	FirstBad int64 `json:"first_bad,omitempty"`
	// Problem says what is wrong, "" when nothing is.
	Problem string `json:"problem,omitempty"`
}

// OK reports whether the log verified.
func (r Result) OK() bool { return r.Problem == "" }

// Replay checks a log record by record: Add each record in seq order, then
// Finish. It holds only the chain head, the Merkle tree's edge and the
// checkpoints; a log of any size streams through it.
type Replay struct {
	checkpoints []Checkpoint // by size
	next        int          // index of the next checkpoint to meet
	lastGood    int64        // size of the last checkpoint matched
	tree        auditchain.Tree
	res         Result
}

// NewReplay starts a replay that will match the log against checkpoints
// (already opened, so their signatures hold).
func NewReplay(checkpoints []Checkpoint) *Replay {
	cs := slices.Clone(checkpoints)
	slices.SortFunc(cs, func(a, b Checkpoint) int { return int(min(max(a.Size-b.Size, -1), 1)) })
	r := &Replay{checkpoints: cs}
	r.res.Head = auditchain.Genesis
	for r.next < len(cs) && cs[r.next].Size == 0 {
		r.next++ // the empty log's checkpoint says nothing
	}
	return r
}

// Add checks the next record. It returns false once the log has failed;
// later records are not looked at.
func (r *Replay) Add(ev store.Event) bool {
	if r.res.Problem != "" {
		return false
	}
	want := r.res.Records + 1
	switch {
	case ev.Seq > want:
		return r.fail(want, fmt.Sprintf("record %d is missing (the next one is %d): deleted", want, ev.Seq))
	case ev.Seq < want:
		return r.fail(want, fmt.Sprintf("record %d is followed by record %d: records swapped, duplicated or inserted", want-1, ev.Seq))
	}
	leaf := auditchain.LeafHash(ev)
	head := auditchain.Link(r.res.Head, leaf)
	if len(ev.Hash) != len(head) || string(ev.Hash) != string(head[:]) {
		return r.fail(ev.Seq, fmt.Sprintf("record %d does not match its chain hash: edited, swapped or inserted", ev.Seq))
	}
	r.tree.Append(leaf)
	r.res.Records, r.res.Head = ev.Seq, head
	for r.next < len(r.checkpoints) && r.checkpoints[r.next].Size == ev.Seq {
		c := r.checkpoints[r.next]
		r.next++
		if c.Root != r.tree.Root() || c.Head != head {
			return r.fail(r.lastGood+1, fmt.Sprintf("the log does not match the signed checkpoint at size %d: records %d to %d were rewritten and re-chained", c.Size, r.lastGood+1, c.Size))
		}
		r.lastGood = c.Size
		r.res.Checkpoints++
	}
	return true
}

func (r *Replay) fail(seq int64, problem string) bool {
	r.res.FirstBad, r.res.Problem = seq, problem
	return false
}

// Finish returns the result once every record was added: a checkpoint
// beyond the end of the log means its tail was cut off, or an older log
// was put in its place.
func (r *Replay) Finish() Result {
	if r.res.Problem == "" && r.next < len(r.checkpoints) {
		c := r.checkpoints[len(r.checkpoints)-1]
		r.fail(r.res.Records+1, fmt.Sprintf("the log ends at record %d but a signed checkpoint says it had %d: its tail was cut off or an older log was swapped in", r.res.Records, c.Size))
	}
	r.res.Root = r.tree.Root()
	return r.res
}

// At returns the result so far, with the Merkle root and chain head after
// the records added: what a checkpoint of the log at Records must state.
func (r *Replay) At() Result {
	res := r.res
	res.Root = r.tree.Root()
	return res
}
