package auditchain

import "golang.org/x/mod/sumdb/tlog"

// Tree is the right edge of the log's Merkle tree (RFC 6962, as tlog
// computes it): the roots of its complete subtrees, largest first. It is
// enough to append leaves and to compute the root at every size, without
// the leaves themselves, so a checkpointer that persists it can resume.
// The zero Tree is the empty log.
type Tree struct {
	// N is the number of leaves.
	N int64 `json:"n"`
	// Edge holds the roots of the complete subtrees, largest first: one
	// per bit set in N.
	Edge []Hash `json:"edge"`
}

// Append adds a leaf.
func (t *Tree) Append(leaf Hash) {
	t.Edge = append(t.Edge, leaf)
	// Merge equal-sized subtrees: the number of merges is the number of
	// trailing one bits of N.
	for n := t.N; n&1 == 1; n >>= 1 {
		k := len(t.Edge)
		t.Edge = append(t.Edge[:k-2], tlog.NodeHash(t.Edge[k-2], t.Edge[k-1]))
	}
	t.N++
}

// Root returns the tree hash at size N (tlog.TreeHash); the zero hash for
// the empty log.
func (t *Tree) Root() Hash {
	if len(t.Edge) == 0 {
		return Hash{}
	}
	h := t.Edge[len(t.Edge)-1]
	for i := len(t.Edge) - 2; i >= 0; i-- {
		h = tlog.NodeHash(t.Edge[i], h)
	}
	return h
}

// Valid reports whether Edge has one hash per bit set in N.
func (t *Tree) Valid() bool {
	bits := 0
	for n := t.N; n > 0; n >>= 1 {
		bits += int(n & 1)
	}
	return t.N >= 0 && bits == len(t.Edge)
}
