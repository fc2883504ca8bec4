package server

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/mandate-dev/mandate/internal/audit"
)

// tallyRun drives a refusalTally and checks that no refusal goes missing:
// every one is either in a record it returned or still held back.
type tallyRun struct {
	t       *testing.T
	tally   *refusalTally
	now     time.Time
	total   int
	written int
	records []tallyRecord
}

func newTallyRun(t *testing.T, maxKeys, maxRecords int) *tallyRun {
	return &tallyRun{t: t, tally: &refusalTally{window: time.Second, maxKeys: maxKeys, maxRecords: maxRecords}, now: time.Unix(1_800_000_000, 0)}
}

func (r *tallyRun) add(key string) []tallyRecord {
	r.total++
	return r.took(r.tally.add(key, audit.Event{ClientID: key}, r.now))
}

func (r *tallyRun) addUnnamed(id string) []tallyRecord {
	r.total++
	return r.took(r.tally.addUnnamed(id, audit.Event{ClientID: id}, r.now))
}

func (r *tallyRun) took(recs []tallyRecord) []tallyRecord {
	for _, rec := range recs {
		if rec.n < 1 {
			r.t.Fatalf("a record of %d refusals: %+v", rec.n, rec)
		}
		r.written += rec.n
	}
	r.records = append(r.records, recs...)
	return recs
}

// held is every count the tally holds back.
func (r *tallyRun) held() int {
	n := r.tally.sum.pending
	for _, k := range r.tally.keys {
		n += k.pending
	}
	return n
}

func (r *tallyRun) checkConserved() {
	r.t.Helper()
	if got := r.written + r.held(); got != r.total {
		r.t.Fatalf("%d refusals, %d written and %d held back: %d lost", r.total, r.written, r.held(), r.total-got)
	}
}

// TestRefusalTallyNeverLosesACount (T86): under any mix of keys, the sum,
// a full tally and a spent budget, every refusal is in a record or still
// held back, the tally holds at most maxKeys keys, and no window has more
// than maxRecords records but those written out to make room.
func TestRefusalTallyNeverLosesACount(t *testing.T) {
	for seed := range uint64(8) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 86))
			r := newTallyRun(t, 16, 4)
			for range 5000 {
				r.now = r.now.Add(time.Duration(rng.IntN(40)) * time.Millisecond)
				var recs []tallyRecord
				if rng.IntN(3) == 0 {
					recs = r.addUnnamed(fmt.Sprint("made-up-", rng.IntN(1000)))
				} else {
					recs = r.add(fmt.Sprint("client-", rng.IntN(40)))
				}
				budgeted := 0
				for _, rec := range recs {
					if rec.budgeted {
						budgeted++
					}
				}
				if budgeted > 4 || r.tally.windowN > 4 {
					t.Fatalf("%d records in the window (%d of this refusal), want at most 4", r.tally.windowN, budgeted)
				}
				if len(r.tally.keys) > 16 {
					t.Fatalf("%d keys held, want at most 16", len(r.tally.keys))
				}
				r.checkConserved()
			}
		})
	}
}

// TestRefusalTallyEvictsWithARecord: a new key that finds the tally full
// of keys holding counts writes out the one held longest before it goes.
func TestRefusalTallyEvictsWithARecord(t *testing.T) {
	r := newTallyRun(t, 2, 1)
	if recs := r.add("a"); len(recs) != 1 || recs[0].key != "a" {
		t.Fatalf("a's first refusal: %+v, want its record", recs)
	}
	if recs := r.add("b"); len(recs) != 0 {
		t.Fatalf("b's first refusal, budget spent: %+v, want none", recs)
	}
	r.now = r.now.Add(10 * time.Millisecond)
	r.add("a") // held: a's window is not over
	recs := r.add("c")
	if len(recs) != 1 || recs[0].key != "b" || recs[0].n != 1 || recs[0].budgeted || recs[0].ev.ClientID != "b" {
		t.Fatalf("c into a full tally: %+v, want b written out with its own event", recs)
	}
	if _, ok := r.tally.keys["b"]; ok || len(r.tally.keys) != 2 {
		t.Errorf("keys after the eviction: %v", r.tally.keys)
	}
	r.checkConserved()
}

// TestRefusalTallySweepsHeldCounts: a key refused twice in a second and
// never again is written out by the next refusal of any key once its
// window has passed, carrying its latest refusal's event.
func TestRefusalTallySweepsHeldCounts(t *testing.T) {
	r := newTallyRun(t, 8, 8)
	r.add("victim")
	r.now = r.now.Add(100 * time.Millisecond)
	r.tally.add("victim", audit.Event{ClientID: "victim", RequestID: "req_latest"}, r.now)
	r.total++
	r.now = r.now.Add(1100 * time.Millisecond)
	recs := r.addUnnamed("someone-else")
	var swept *tallyRecord
	for i := range recs {
		if recs[i].key == "victim" {
			swept = &recs[i]
		}
	}
	if swept == nil || swept.n != 1 || swept.ev.RequestID != "req_latest" {
		t.Fatalf("records %+v, want the victim's held refusal with its event", recs)
	}
	r.checkConserved()
}

// TestRefusalTallySumCountsDistinctIDs: the sum's record counts the
// distinct ids it stands for, up to maxSumIDs, then says "at least".
func TestRefusalTallySumCountsDistinctIDs(t *testing.T) {
	r := newTallyRun(t, 8, 8)
	r.addUnnamed("first")
	for i := range 10 {
		r.addUnnamed(fmt.Sprint("id-", i%5))
	}
	r.now = r.now.Add(1100 * time.Millisecond)
	recs := r.addUnnamed("id-0")
	if len(recs) != 1 || string(recs[0].event().Attributes) != `{"distinct_client_ids":"5","refusals":"11"}` {
		t.Fatalf("records %+v, want 11 refusals of 5 distinct ids", recs)
	}
	for i := range maxSumIDs + 10 {
		r.addUnnamed(fmt.Sprint("many-", i))
	}
	r.now = r.now.Add(1100 * time.Millisecond)
	recs = r.addUnnamed("last")
	want := fmt.Sprintf(`{"distinct_client_ids":"%d+","refusals":"%d"}`, maxSumIDs, maxSumIDs+11)
	if len(recs) != 1 || string(recs[0].event().Attributes) != want {
		t.Fatalf("records %+v, want %s", recs, want)
	}
	r.checkConserved()
}

// TestRefusalTallyUndo: records that could not be written are held back
// again, ids and all, and due at once.
func TestRefusalTallyUndo(t *testing.T) {
	r := newTallyRun(t, 2, 4)
	r.addUnnamed("x")
	r.addUnnamed("y")
	r.now = r.now.Add(1100 * time.Millisecond)
	recs := r.addUnnamed("z")
	if len(recs) != 1 || recs[0].n != 2 {
		t.Fatalf("records %+v", recs)
	}
	r.tally.undo(recs)
	r.written -= recs[0].n
	r.checkConserved()
	recs = r.addUnnamed("z")
	if len(recs) != 1 || string(recs[0].event().Attributes) != `{"distinct_client_ids":"2","refusals":"3"}` {
		t.Fatalf("after the undo: %+v, want the 2 given back (y, z) and z again: 2 ids", recs)
	}
}
