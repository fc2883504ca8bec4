package sqlite

import (
	"bytes"
	"sync"
)

// carriedTokens is what this process knows of the tokens that the records
// after the index head carry (migration 23), so that a commit and a lookup
// need not walk those records (a few hundred; a walk cost as much as the
// pages the carrying saves). It is a hint, never the answer: the database
// is, and whatever this process did not see (another process's appends, a
// transaction rolled back after it appended) sends the caller back to the
// walk.
//
//   - at maps a jti to the seq of the record that carries it, for the
//     records this process appended. A lookup reads that one record by its
//     seq, in the statement that reads the tokens row; when it finds
//     nothing there, it walks the records after the head.
//   - Every record in (from, to] was appended by this process, and at has
//     each token they carry; toHash is record to's chain hash. When the
//     log ends at record to with that hash and the head is at from or
//     past it, at knows every token the records after the head carry, and
//     a commit checks its jtis against at instead of walking them. The
//     chain hash names the record and every record before it, so a log
//     that another process appended to, or that a rolled-back transaction
//     left shorter, never matches.
type carriedTokens struct {
	mu       sync.Mutex
	at       map[string]int64
	from, to int64
	toHash   []byte
	// pruned is the index head at the last pruning of at.
	pruned int64
}

// carriedPrune is the size of at past which a commit drops the entries of
// the records at or below the index head; past carriedMax (an indexer
// that does not keep up) appended forgets them all, and commits walk the
// records until the head passes what it forgot.
const (
	carriedPrune = 4 * indexBatch
	carriedMax   = 64 * indexBatch
)

// appended notes the records (prev, last] that this process has just
// appended inside a write transaction: prevHash is record prev's chain
// hash (what the first of them chained on), lastHash record last's, and
// carried the jtis of the tokens they carry by seq. Called before the
// transaction commits: should it roll back, the log no longer ends at
// last with lastHash, and complete reports false.
func (c *carriedTokens) appended(prev int64, prevHash []byte, last int64, lastHash []byte, carried map[int64]string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if prev < c.to {
		// Records this process noted after prev are gone (rolled back,
		// or cut): so are the tokens they carried.
		for jti, seq := range c.at {
			if seq > prev {
				delete(c.at, jti)
			}
		}
	}
	if prev != c.to || !bytes.Equal(prevHash, c.toHash) {
		c.from = prev
	}
	c.to, c.toHash = last, lastHash
	if len(c.at) > carriedMax {
		c.at, c.from = nil, last
	}
	if len(carried) > 0 && c.at == nil {
		c.at = make(map[string]int64)
	}
	for seq, jti := range carried {
		c.at[jti] = seq
	}
}

// seqOf returns the seq of the record that carries jti, as far as this
// process knows.
func (c *carriedTokens) seqOf(jti string) (int64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	seq, ok := c.at[jti]
	return seq, ok
}

// carriedAfter reports, for a log that ends at record newest with chain
// hash newestHash and whose index head is head, whether at knows every
// token the records after the head carry (known) and, if so, whether one
// of them has one of the jtis (carried).
func (c *carriedTokens) carriedAfter(head, newest int64, newestHash []byte, jtis []string) (carried, known bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.at) > carriedPrune && head > c.pruned {
		for jti, seq := range c.at {
			if seq <= head {
				delete(c.at, jti)
			}
		}
		c.pruned = head
	}
	if head < c.from || newest != c.to || !bytes.Equal(newestHash, c.toHash) {
		return false, false
	}
	for _, jti := range jtis {
		if seq, ok := c.at[jti]; ok && seq > head {
			return true, true
		}
	}
	return false, true
}
