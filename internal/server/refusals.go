package server

import (
	"context"
	"encoding/json"
	"hash/maphash"
	"strconv"
	"sync"
	"time"

	"github.com/mandate-dev/mandate/internal/audit"
)

// maxSumIDs bounds the distinct ids a tally's sum tells apart between two
// of its records; past it the record says "at least" (a "+" after the
// number).
const maxSumIDs = 4096

// refusalTally bounds the records of a refusal anyone can provoke for
// nothing, such as a wrong admin bearer token or client secret, so that a
// flood cannot fill the disk under a log that fails closed (THREATS T77),
// and without letting a flood hide the refusals that matter (T86).
//
// Refusals are counted under a key (add: a registered client's id, an
// endpoint, a rate-limited caller) or in the sum (addUnnamed: a client id
// the store does not hold). The first refusal of a key in each window is
// recorded, before its answer, with the number of that key's refusals
// since its previous record (itself included); the others of the window
// are only counted, into the key's next record. The sum is recorded the
// same way, once a window, with its count and the number of distinct ids
// in it, so that made-up client ids cost one record a second whatever
// their number; a record of more than one of them names none.
//
// At most maxRecords records are due per window, whatever the keys. When
// a window ends, the next refusal also writes out, within that budget, the
// counts the keys held back in earlier windows (sweep), so a count held
// back is written by the first refusal of any key after its window, even
// if its own key is never refused again. At most maxKeys keys are held: a
// new key that finds the tally full of keys with counts held back writes
// out the one held longest and takes its place (evict), so no key's count
// is dropped unrecorded and memory stays bounded. Only the counts held
// back when the process stops go unrecorded.
//
// Records the tally makes due for other keys than the refusal's own carry
// the event of their key's latest refusal.
type refusalTally struct {
	window     time.Duration
	maxKeys    int // 1 when zero
	maxRecords int // per window; 1 when zero

	mu      sync.Mutex
	keys    map[string]*tallyKey
	sum     tallyKey
	sumIDs  idSet
	windowN int       // records due in the current window
	windowT time.Time // when the current window ends
}

// tallyKey is one key's count.
type tallyKey struct {
	next    time.Time   // when the key's next record is due
	pending int         // refusals since the key's last record
	last    audit.Event // the record of the key's latest refusal
}

// idSet counts distinct ids up to maxSumIDs, by a keyed hash so that no
// id is kept.
type idSet struct {
	seed   maphash.Seed
	seeded bool
	seen   map[uint64]struct{}
	full   bool // more than maxSumIDs were seen
}

func (s *idSet) add(id string) {
	if !s.seeded {
		s.seed, s.seeded = maphash.MakeSeed(), true
	}
	h := maphash.String(s.seed, id)
	if _, ok := s.seen[h]; ok {
		return
	}
	if len(s.seen) >= maxSumIDs {
		s.full = true
		return
	}
	if s.seen == nil {
		s.seen = make(map[uint64]struct{})
	}
	s.seen[h] = struct{}{}
}

// take returns the set's ids and whether it was full, and empties it.
func (s *idSet) take() (seen map[uint64]struct{}, full bool) {
	seen, full = s.seen, s.full
	s.seen, s.full = nil, false
	return seen, full
}

// give puts back ids taken from the set.
func (s *idSet) give(seen map[uint64]struct{}, full bool) {
	s.full = s.full || full
	for h := range seen {
		if len(s.seen) >= maxSumIDs {
			s.full = true
			return
		}
		if s.seen == nil {
			s.seen = make(map[uint64]struct{})
		}
		s.seen[h] = struct{}{}
	}
}

// tallyRecord is a record a tally has made due: n refusals under key, or
// in the sum with ids distinct ids among them.
type tallyRecord struct {
	key     string
	sum     bool
	n       int
	ids     map[uint64]struct{} // the sum's distinct ids, by hash
	idsFull bool
	// budgeted is whether the record took one of the window's maxRecords
	// (an evicted key's does not: it must be written).
	budgeted bool
	ev       audit.Event
}

// event is the audit record of r. A record of the sum that stands for
// more than one refusal names no client (nor agent version): it is about
// many ids, and `mandate audit agents`, which adds up refusals per
// client_id, must not charge them to one.
func (r tallyRecord) event() audit.Event {
	ev := r.ev
	if !r.sum || r.n == 1 {
		ev.Attributes = refusalsAttr(r.n)
		return ev
	}
	ev.ClientID, ev.AgentVersion = "", ""
	ids := strconv.Itoa(len(r.ids))
	if r.idsFull {
		ids += "+"
	}
	ev.Attributes = json.RawMessage(`{"distinct_client_ids":"` + ids + `","refusals":"` + strconv.Itoa(r.n) + `"}`)
	return ev
}

// refusalsAttr is the attributes of a record that stands for n refusals.
func refusalsAttr(n int) json.RawMessage {
	return json.RawMessage(`{"refusals":"` + strconv.Itoa(n) + `"}`)
}

// add counts a refusal under key at now, ev being its record, and returns
// the records now due: the refusal's own when it is the key's first of the
// window, an evicted key's, and the counts swept when a window began.
func (t *refusalTally) add(key string, ev audit.Event, now time.Time) []tallyRecord {
	t.mu.Lock()
	defer t.mu.Unlock()
	began := t.roll(now)
	var out []tallyRecord
	k := t.keys[key]
	if k == nil {
		if len(t.keys) >= max(t.maxKeys, 1) {
			t.prune(now)
		}
		if len(t.keys) >= max(t.maxKeys, 1) {
			if rec, ok := t.evict(); ok {
				out = append(out, rec)
			}
		}
		k = &tallyKey{}
		t.keys[key] = k
	}
	k.pending++
	k.last = ev
	if rec, ok := t.due(key, k, now); ok {
		rec.ev = ev
		out = append(out, rec)
	}
	if began {
		out = t.sweep(now, out)
	}
	return out
}

// addUnnamed counts a refusal in the sum at now, id being the name it gave
// (counted among the distinct ones, not kept) and ev its record, and
// returns the records now due, as add.
func (t *refusalTally) addUnnamed(id string, ev audit.Event, now time.Time) []tallyRecord {
	t.mu.Lock()
	defer t.mu.Unlock()
	began := t.roll(now)
	var out []tallyRecord
	t.sum.pending++
	t.sum.last = ev
	t.sumIDs.add(id)
	if rec, ok := t.dueSum(now); ok {
		rec.ev = ev
		out = append(out, rec)
	}
	if began {
		out = t.sweep(now, out)
	}
	return out
}

// roll starts a new window when the current one has ended, and says so.
func (t *refusalTally) roll(now time.Time) bool {
	if t.keys == nil {
		t.keys = make(map[string]*tallyKey)
	}
	if now.Before(t.windowT) {
		return false
	}
	t.windowN, t.windowT = 0, now.Add(t.window)
	return true
}

// due takes k's record when it is due at now and the window's budget
// allows it.
func (t *refusalTally) due(key string, k *tallyKey, now time.Time) (tallyRecord, bool) {
	if k.pending == 0 || now.Before(k.next) || t.windowN >= max(t.maxRecords, 1) {
		return tallyRecord{}, false
	}
	rec := tallyRecord{key: key, n: k.pending, budgeted: true, ev: k.last}
	k.pending, k.next = 0, now.Add(t.window)
	t.windowN++
	return rec, true
}

// dueSum is due for the sum.
func (t *refusalTally) dueSum(now time.Time) (tallyRecord, bool) {
	rec, ok := t.due("", &t.sum, now)
	if ok {
		rec.sum = true
		rec.ids, rec.idsFull = t.sumIDs.take()
	}
	return rec, ok
}

// sweep appends to out the records of the counts held back in earlier
// windows, as the budget allows, and drops the keys with nothing held
// back whose window has passed.
func (t *refusalTally) sweep(now time.Time, out []tallyRecord) []tallyRecord {
	if rec, ok := t.dueSum(now); ok {
		out = append(out, rec)
	}
	for key, k := range t.keys {
		if rec, ok := t.due(key, k, now); ok {
			out = append(out, rec)
		}
	}
	t.prune(now)
	return out
}

// prune drops the keys with nothing held back whose window has passed.
func (t *refusalTally) prune(now time.Time) {
	for key, k := range t.keys {
		if k.pending == 0 && !now.Before(k.next) {
			delete(t.keys, key)
		}
	}
}

// evict drops a key to make room for a new one: one with nothing held
// back if there is one (its record was written), else the one whose record
// is due soonest (held back longest), whose count is written out before it
// goes, whatever the budget. ok is false when the dropped key had nothing
// to write.
func (t *refusalTally) evict() (rec tallyRecord, ok bool) {
	var victim string
	var vk *tallyKey
	for key, k := range t.keys {
		if k.pending == 0 {
			delete(t.keys, key)
			return tallyRecord{}, false
		}
		if vk == nil || k.next.Before(vk.next) {
			victim, vk = key, k
		}
	}
	delete(t.keys, victim)
	return tallyRecord{key: victim, n: vk.pending, ev: vk.last}, true
}

// undo gives back records that could not be written: their refusals are
// held back again and due at the next refusal, so that a failing audit log
// loses no count. An evicted key comes back, one over maxKeys until the
// next new key evicts again.
func (t *refusalTally) undo(recs []tallyRecord) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, rec := range recs {
		var k *tallyKey
		switch {
		case rec.sum:
			k = &t.sum
			t.sumIDs.give(rec.ids, rec.idsFull)
		default:
			if k = t.keys[rec.key]; k == nil {
				k = &tallyKey{last: rec.ev}
				t.keys[rec.key] = k
			}
		}
		k.pending += rec.n
		k.next = time.Time{}
		if rec.budgeted {
			t.windowN = max(t.windowN-1, 0)
		}
	}
}

// recordTallied writes the records t made due, in order. When one cannot be
// written it and the ones after it are given back to t and the error is
// returned: the refusal is then answered 503, as every refusal whose
// record is lost.
func (s *Server) recordTallied(ctx context.Context, t *refusalTally, recs []tallyRecord) error {
	for i, rec := range recs {
		if err := s.cfg.Audit.Record(ctx, rec.event()); err != nil {
			t.undo(recs[i:])
			return err
		}
	}
	return nil
}
