package archive

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/mandate-dev/mandate/internal/auditchain"
	"github.com/mandate-dev/mandate/internal/auditlog"
	"github.com/mandate-dev/mandate/internal/store"
)

// Source is what an Archiver reads and changes in the store.
type Source interface {
	store.AuditArchive
	store.EventReader
	store.CheckpointReader
	LatestCheckpoint(ctx context.Context) (store.Checkpoint, error)
	CheckpointKey(ctx context.Context, create func() (string, error)) (string, error)
}

// Defaults of Archiver.
const (
	// DefaultSegmentSize is how many records a segment holds at most.
	DefaultSegmentSize = 10000
	// DefaultDeleteBatch is how many records one delete transaction
	// removes, so that a pass never holds the write lock for long.
	DefaultDeleteBatch = 500
	// DefaultLeaseTTL is how long the archive lease lasts unless renewed:
	// a pass renews it after every step and rest, each far shorter, and an
	// archiver that stopped without releasing it (killed) is replaced this
	// long after its last renewal.
	DefaultLeaseTTL = 15 * time.Second
)

// ErrBusy is the error of a pass that finds another archiver holding the
// store's archive lease, or that lost it (it ran past the lease's expiry
// and another archiver took it): it archives nothing more, and the other
// goes on.
var ErrBusy = errors.New("archive: another archiver holds the archive lease")

// Stage names the points of a pass Pause is called at.
const (
	// StageWritten is after a segment was written, read back and checked,
	// before its records are marked archived.
	StageWritten = "written"
	// StageMarked is after the records were marked archived, before they
	// are deleted.
	StageMarked = "marked"
)

// Archiver moves the audit records older than Retention out of the store
// into segments, oldest first. Its order of operations makes a pass safe
// to stop anywhere (a crash, SIGKILL) and to run again: write the segment
// (whole or not at all), read it back and check it, mark its records
// archived in the store (which checks the last one's chain hash), then
// delete them in batches. A pass first finishes deleting what is marked,
// and reuses a segment already written for the next records after
// checking it, so no record is lost and none is left in both places.
//
// One archiver at a time runs a pass per store, however many instances
// share the store and the archive: a pass takes the store's archive lease
// first (store.AuditArchive's LeaseArchive) and returns ErrBusy when
// another holds it; it renews the lease after every step and right before
// it writes a segment, stops with ErrBusy if it lost it, and releases it
// at its end. Dir refuses a segment that overlaps one stored, should a
// pass stall past its lease while writing. Passes of one Archiver run one
// after the other: a Pass called during another waits for it.
type Archiver struct {
	Store   Source
	Archive Store
	// Origin names the log in the segments' checkpoints (the issuer).
	Origin string
	// Retention is how old a record must be to be archived; zero or less
	// archives nothing.
	Retention time.Duration
	// SegmentSize is how many records a segment holds at most; default
	// DefaultSegmentSize.
	SegmentSize int
	// DeleteBatch is how many records a delete transaction removes;
	// default DefaultDeleteBatch.
	DeleteBatch int
	// DeleteHold, when set, sizes the delete transactions to hold the
	// write lock for about this long: the batch after one that took
	// longer is half as large, after one that took under half of it
	// twice, from 16 records up to DeleteBatch. Zero keeps every batch
	// at DeleteBatch.
	DeleteHold time.Duration
	Now        func() time.Time
	Logger     *slog.Logger
	// Pause, when set, is called at each Stage of a pass; tests use it to
	// stop a process there.
	Pause func(ctx context.Context, stage string)
	// Rest, when set, is called after the records of each segment are
	// read, after the segment is written, after it is read back and
	// checked, and after each batch of deletes, with how long that step took, and the pass
	// goes on when it returns; its error (the context's) stops the pass.
	// A segment of more than one page (store.EachEventPage) also rests
	// between its pages as it is read and as it is written.
	// The server paces its passes with it, so that a long pass leaves the
	// write lock and the CPU to requests. Nil goes on at once.
	Rest func(ctx context.Context, took time.Duration) error
	// Holder names this archiver in the store's archive lease; empty, a
	// random name chosen at its first pass.
	Holder string
	// LeaseTTL is how long the lease lasts unless renewed; default
	// DefaultLeaseTTL.
	LeaseTTL time.Duration

	// running is held for the whole of a pass.
	running    sync.Mutex
	holderOnce sync.Once
	holder     string
	// renewed is when the lease was last taken or renewed (the local
	// monotonic clock).
	renewed time.Time
}

// PassResult says what a pass did.
type PassResult struct {
	// Segments are the names of the segments written or reused.
	Segments []string
	// Archived is the seq of the last archived record after the pass.
	Archived int64
	// Deleted is how many records the pass deleted from the store.
	Deleted int
}

// mark is the archived prefix: its size, chain head and Merkle tree.
type mark struct {
	size int64
	head auditchain.Hash
	tree auditchain.Tree
}

func (m mark) stored() (store.ArchivedLog, error) {
	tree, err := json.Marshal(m.tree)
	if err != nil {
		return store.ArchivedLog{}, fmt.Errorf("archive: %w", err)
	}
	return store.ArchivedLog{Size: m.size, Head: m.head[:], Tree: tree}, nil
}

func markOf(a store.ArchivedLog) (mark, error) {
	m := mark{size: a.Size}
	if a.Size == 0 {
		return m, nil
	}
	if err := json.Unmarshal(a.Tree, &m.tree); err != nil || !m.tree.Valid() || m.tree.N != a.Size || len(a.Head) != len(m.head) {
		return mark{}, fmt.Errorf("archive: the archived mark at %d holds no valid tree or head", a.Size)
	}
	copy(m.head[:], a.Head)
	return m, nil
}

// Pass archives every record older than the retention, but the newest
// record and those not yet covered by a stored checkpoint, in segments of
// at most SegmentSize, oldest first.
func (a *Archiver) Pass(ctx context.Context) (res PassResult, err error) {
	a.running.Lock()
	defer a.running.Unlock()
	if err := a.takeLease(ctx); err != nil {
		return res, err
	}
	defer func() {
		// Released also when ctx ended, so that the next instance need
		// not wait for the lease to expire.
		if rerr := a.Store.ReleaseArchive(context.WithoutCancel(ctx), a.holderName()); rerr != nil && err == nil {
			err = fmt.Errorf("archive: %w", rerr)
		}
	}()
	stored, err := a.Store.ArchivedLog(ctx)
	if err != nil {
		return res, fmt.Errorf("archive: %w", err)
	}
	m, err := markOf(stored)
	if err != nil {
		return res, err
	}
	res.Archived = m.size
	// A pass stopped after the mark and before every delete is finished.
	if m.size > 0 {
		n, err := a.deleteThrough(ctx, m.size)
		res.Deleted += n
		if err != nil {
			return res, err
		}
	}
	if a.Retention <= 0 {
		return res, nil
	}
	// The cutoff is the pass's: a paced pass that rests between segments
	// must not chase records that age while it runs, one small segment
	// after another; the next pass takes them.
	now := time.Now
	if a.Now != nil {
		now = a.Now
	}
	cutoff := now().Add(-a.Retention)
	for ctx.Err() == nil {
		start := time.Now()
		evs, err := a.candidates(ctx, m.size, cutoff)
		if err != nil || len(evs) == 0 {
			return res, err
		}
		if err := a.rest(ctx, start); err != nil {
			return res, err
		}
		start = time.Now()
		name, next, err := a.segment(ctx, m, evs)
		if err != nil {
			return res, err
		}
		if err := a.rest(ctx, start); err != nil {
			return res, err
		}
		a.pause(ctx, StageWritten)
		from := m.size
		st, err := next.stored()
		if err != nil {
			return res, err
		}
		if err := a.Store.MarkArchived(ctx, from, st); err != nil {
			return res, fmt.Errorf("archive: mark %s archived: %w", name, err)
		}
		res.Segments, res.Archived, m = append(res.Segments, name), next.size, next
		a.pause(ctx, StageMarked)
		n, err := a.deleteThrough(ctx, m.size)
		res.Deleted += n
		if err != nil {
			return res, err
		}
		if a.Logger != nil {
			a.Logger.Info("audit records archived", slog.String("segment", name), slog.Int64("through", m.size), slog.Int("deleted", n))
		}
	}
	return res, ctx.Err()
}

// rest calls Rest, if set, with the time since start, then renews the
// lease if it is due.
func (a *Archiver) rest(ctx context.Context, start time.Time) error {
	if a.Rest != nil {
		if err := a.Rest(ctx, time.Since(start)); err != nil {
			return err
		}
	}
	return a.keepLease(ctx)
}

// holderName is Holder, or a random name chosen once.
func (a *Archiver) holderName() string {
	a.holderOnce.Do(func() {
		a.holder = a.Holder
		if a.holder == "" {
			a.holder = "archiver-" + rand.Text()
		}
	})
	return a.holder
}

func (a *Archiver) leaseTTL() time.Duration { return cmp.Or(a.LeaseTTL, DefaultLeaseTTL) }

// takeLease takes the store's archive lease for the pass, or returns
// ErrBusy.
func (a *Archiver) takeLease(ctx context.Context) error {
	ok, err := a.Store.LeaseArchive(ctx, a.holderName(), a.leaseTTL())
	if err != nil {
		return fmt.Errorf("archive: %w", err)
	}
	if !ok {
		return ErrBusy
	}
	a.renewed = time.Now()
	return nil
}

// keepLease renews the lease when a quarter of its time has passed since
// it was last taken or renewed, so that it always has three quarters left
// when a segment is written; it returns ErrBusy when the lease was lost.
func (a *Archiver) keepLease(ctx context.Context) error {
	if time.Since(a.renewed) < a.leaseTTL()/4 {
		return nil
	}
	ok, err := a.Store.RenewArchive(ctx, a.holderName(), a.leaseTTL())
	if err != nil {
		return fmt.Errorf("archive: %w", err)
	}
	if !ok {
		return fmt.Errorf("%w: the lease expired and was taken over", ErrBusy)
	}
	a.renewed = time.Now()
	return nil
}

func (a *Archiver) pause(ctx context.Context, stage string) {
	if a.Pause != nil {
		a.Pause(ctx, stage)
	}
}

// candidates returns the records after seq after that the next segment
// takes: older than cutoff, covered by the latest checkpoint, and not the
// newest record of the log; at most SegmentSize.
func (a *Archiver) candidates(ctx context.Context, after int64, cutoff time.Time) ([]store.Event, error) {
	latest, err := a.Store.LatestCheckpoint(ctx)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("archive: %w", err)
	}
	size := cmp.Or(a.SegmentSize, DefaultSegmentSize)
	var out []store.Event
	for len(out) < size {
		start := time.Now()
		// The last record of each page is held back until a later page
		// shows that it is not the newest of the log.
		page, err := a.Store.EventsAfter(ctx, after, min(size-len(out)+1, store.EachEventPage))
		if err != nil {
			return nil, fmt.Errorf("archive: %w", err)
		}
		if len(page) < 2 {
			return out, nil
		}
		for _, ev := range page[:len(page)-1] {
			if ev.Seq > latest.Size || !ev.Time.Before(cutoff) {
				return out, nil
			}
			out = append(out, ev)
			after = ev.Seq
		}
		if len(out) < size {
			// A rest between pages: a segment's read is not one burst.
			if err := a.rest(ctx, start); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// segment writes the segment of evs, which follow m, or reuses the one a
// stopped pass wrote for the records after m, and returns its name and
// the mark at its end once it is read back and checked.
func (a *Archiver) segment(ctx context.Context, m mark, evs []store.Event) (string, mark, error) {
	start := time.Now()
	skey, err := a.Store.CheckpointKey(ctx, auditlog.NewKey)
	if err != nil {
		return "", mark{}, fmt.Errorf("archive: checkpoint key: %w", err)
	}
	vkey, err := auditlog.VerifierKey(skey)
	if err != nil {
		return "", mark{}, err
	}
	names, err := a.Archive.List(ctx)
	if err != nil {
		return "", mark{}, err
	}
	for _, n := range names {
		if first, _, err := ParseName(n); err == nil && first == m.size+1 {
			// Written by a pass that stopped before its mark: checked,
			// then marked (which checks its end against the store).
			next, err := a.check(ctx, n, m, vkey)
			return n, next, err
		}
	}
	next, err := a.chain(ctx, m, evs)
	if err != nil {
		return "", mark{}, err
	}
	msg, err := auditlog.Sign(auditlog.Checkpoint{Origin: a.Origin, Size: next.size, Root: next.tree.Root(), Head: next.head}, skey)
	if err != nil {
		return "", mark{}, err
	}
	// Encoded a page at a time, with a rest between pages.
	enc := newEncoder()
	for i := 0; i < len(evs); i += store.EachEventPage {
		if i > 0 {
			if err := a.rest(ctx, start); err != nil {
				return "", mark{}, err
			}
			start = time.Now()
		}
		if err := enc.add(evs[i:min(i+store.EachEventPage, len(evs))]); err != nil {
			return "", mark{}, err
		}
	}
	data, err := enc.close(msg)
	if err != nil {
		return "", mark{}, err
	}
	name := Name(m.size+1, next.size)
	if err := a.keepLease(ctx); err != nil {
		return "", mark{}, err
	}
	if err := a.Archive.Put(ctx, name, data); err != nil {
		return "", mark{}, err
	}
	if err := a.rest(ctx, start); err != nil {
		return "", mark{}, err
	}
	if err := a.readBack(ctx, name, data, evs, msg, vkey); err != nil {
		return "", mark{}, err
	}
	return name, next, nil
}

// readBack checks the segment name just written: it reads back exactly
// data, the encoding of evs (already chained and matched to the stored
// checkpoints) and the note msg, which verifies with vkey; its first and
// last records decode to their own leaf hashes, which catches an encoding
// that loses a field without decoding every record again (as check does
// for a segment a stopped pass left, whose records are not at hand).
func (a *Archiver) readBack(ctx context.Context, name string, data []byte, evs []store.Event, msg, vkey string) error {
	back, err := a.Archive.Get(ctx, name)
	if err != nil {
		return err
	}
	if !bytes.Equal(back, data) {
		return fmt.Errorf("archive: segment %s reads back other bytes than were written", name)
	}
	if _, err := auditlog.Open(msg, vkey); err != nil {
		return fmt.Errorf("archive: segment %s: %w", name, err)
	}
	first, last, err := decodeEnds(back)
	if err != nil {
		return fmt.Errorf("archive: segment %s: %w", name, err)
	}
	if auditchain.LeafHash(first) != auditchain.LeafHash(evs[0]) || auditchain.LeafHash(last) != auditchain.LeafHash(evs[len(evs)-1]) {
		return fmt.Errorf("archive: segment %s: its records do not decode to what was written", name)
	}
	return nil
}

// chain checks that evs chain on from m and match every stored checkpoint
// within them, and returns the mark at their end.
func (a *Archiver) chain(ctx context.Context, m mark, evs []store.Event) (mark, error) {
	last := evs[len(evs)-1].Seq
	cps, err := a.Store.Checkpoints(ctx, m.size, store.MaxPageLimit)
	if err != nil {
		return mark{}, fmt.Errorf("archive: %w", err)
	}
	m.tree.Edge = append([]auditchain.Hash(nil), m.tree.Edge...)
	for _, ev := range evs {
		leaf := auditchain.LeafHash(ev)
		next := auditchain.Link(m.head, leaf)
		if ev.Seq != m.size+1 || string(ev.Hash) != string(next[:]) {
			return mark{}, fmt.Errorf("archive: the log does not chain at record %d: not archived", m.size+1)
		}
		m.tree.Append(leaf)
		m.head, m.size = next, ev.Seq
		for len(cps) > 0 && cps[0].Size <= m.size && cps[0].Size <= last {
			root := m.tree.Root()
			if cps[0].Size == m.size && (string(cps[0].Root) != string(root[:]) || string(cps[0].Head) != string(next[:])) {
				return mark{}, fmt.Errorf("archive: the log does not match the stored checkpoint at %d: not archived", m.size)
			}
			cps = cps[1:]
		}
	}
	return m, nil
}

// check reads the segment name back and checks it: its records chain on
// from m, its checkpoint verifies with vkey and states their end. It
// returns the mark at its end.
func (a *Archiver) check(ctx context.Context, name string, m mark, vkey string) (mark, error) {
	first, last, err := ParseName(name)
	if err != nil {
		return mark{}, err
	}
	data, err := a.Archive.Get(ctx, name)
	if err != nil {
		return mark{}, err
	}
	s, err := Decode(data)
	if err != nil {
		return mark{}, fmt.Errorf("archive: segment %s: %w", name, err)
	}
	c, err := auditlog.Open(s.Note, vkey)
	if err != nil {
		return mark{}, fmt.Errorf("archive: segment %s: %w", name, err)
	}
	if len(s.Events) == 0 || s.Events[0].Seq != first || first != m.size+1 {
		return mark{}, fmt.Errorf("archive: segment %s does not start at record %d", name, m.size+1)
	}
	next, err := a.chain(ctx, m, s.Events)
	if err != nil {
		return mark{}, fmt.Errorf("archive: segment %s: %w", name, err)
	}
	if next.size != last || c.Size != last || c.Root != next.tree.Root() || c.Head != next.head {
		return mark{}, fmt.Errorf("archive: segment %s does not match its checkpoint or its name", name)
	}
	return next, nil
}

// deleteThrough deletes the archived records through seq through, in
// batches, and returns how many it deleted.
func (a *Archiver) deleteThrough(ctx context.Context, through int64) (int, error) {
	total := 0
	most := cmp.Or(a.DeleteBatch, DefaultDeleteBatch)
	batch := most
	if a.DeleteHold > 0 {
		batch = min(most, minDeleteBatch)
	}
	for {
		start := time.Now()
		n, err := a.Store.DeleteArchivedEvents(ctx, through, batch)
		total += n
		if err != nil {
			return total, fmt.Errorf("archive: %w", err)
		}
		if n == 0 {
			return total, nil
		}
		if a.DeleteHold > 0 {
			switch took := time.Since(start); {
			case took > a.DeleteHold:
				batch = max(batch/2, min(most, minDeleteBatch))
			case took < a.DeleteHold/2:
				batch = min(batch*2, most)
			}
		}
		if err := a.rest(ctx, start); err != nil {
			return total, err
		}
	}
}

// minDeleteBatch is the smallest delete batch DeleteHold sizes.
const minDeleteBatch = 16
