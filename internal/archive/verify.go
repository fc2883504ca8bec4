package archive

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/mandate-dev/mandate/internal/auditlog"
	"github.com/mandate-dev/mandate/internal/store"
)

// Events calls fn with every record of a live log after seq after, in seq
// order.
type Events func(ctx context.Context, after int64, fn func(store.Event) error) error

// Report is what Verify found.
type Report struct {
	auditlog.Result
	// Segments is how many archive segments were read and matched their
	// checkpoints.
	Segments int `json:"segments,omitempty"`
}

// named is a segment's name and the range it carries.
type named struct {
	name        string
	first, last int64
}

// Verify checks the segments of st, in seq order, and then the live log
// after them, as one chain replayed against checkpoints (already opened)
// and each segment's own checkpoint, which must verify with vkey. It names
// the first problem: records no segment holds (a segment missing), a
// segment that overlaps the one before or holds other records than its
// name says (swapped or renamed), a record that does not chain (edited), a
// segment cut short or without its checkpoint (truncated), and a live log
// that does not go on from the last segment. An error is returned only
// when st or live cannot be read.
func Verify(ctx context.Context, st Store, vkey string, checkpoints []auditlog.Checkpoint, live Events) (Report, error) {
	segs, err := listSegments(ctx, st)
	if err != nil {
		return Report{}, err
	}
	var rep Report
	replay := auditlog.NewReplay(checkpoints)
	next := int64(1)
	for _, sg := range segs {
		var bad int64
		var problem string
		switch {
		case sg.first > next:
			bad, problem = next, fmt.Sprintf("records %d to %d are missing: no archive segment holds them (a segment was removed)", next, sg.first-1)
		case sg.first < next:
			bad, problem = sg.first, fmt.Sprintf("archive segment %s overlaps the records before it (they end at %d): swapped, copied or renamed", sg.name, next-1)
		default:
			if bad, problem, err = checkSegment(ctx, st, sg, vkey, replay); err != nil {
				return Report{}, err
			}
		}
		if problem != "" {
			rep.Result = replay.At()
			rep.FirstBad, rep.Problem = bad, problem
			return rep, nil
		}
		rep.Segments++
		next = sg.last + 1
	}
	stop := errors.New("stop")
	first := true
	err = live(ctx, next-1, func(ev store.Event) error {
		ok := replay.Add(ev)
		if !ok && first && len(segs) > 0 {
			at := replay.At()
			rep.Result = at
			rep.Problem = "the live log does not continue from the last archive segment: " + at.Problem
			return stop
		}
		first = false
		if !ok {
			return stop
		}
		return nil
	})
	if err != nil && !errors.Is(err, stop) {
		return Report{}, err
	}
	if rep.Problem != "" {
		return rep, nil
	}
	rep.Result = replay.Finish()
	return rep, nil
}

// listSegments returns the segments of st in seq order.
func listSegments(ctx context.Context, st Store) ([]named, error) {
	names, err := st.List(ctx)
	if err != nil {
		return nil, err
	}
	segs := make([]named, 0, len(names))
	for _, n := range names {
		first, last, err := ParseName(n)
		if err != nil {
			continue // List returns segment names only
		}
		segs = append(segs, named{n, first, last})
	}
	slices.SortFunc(segs, func(a, b named) int { return cmp.Or(cmp.Compare(a.first, b.first), cmp.Compare(a.last, b.last)) })
	return segs, nil
}

// checkSegment reads the segment sg, which starts where the records
// before it end, checks its checkpoint with vkey and its name, and replays
// its records. It returns the first bad record and what is wrong, or an
// empty problem; an error only when st cannot be read.
func checkSegment(ctx context.Context, st Store, sg named, vkey string, replay *auditlog.Replay) (int64, string, error) {
	data, err := st.Get(ctx, sg.name)
	if err != nil {
		return 0, "", err
	}
	s, err := Decode(data)
	switch {
	case errors.Is(err, ErrTruncated):
		return sg.first, fmt.Sprintf("archive segment %s is truncated: %v", sg.name, err), nil
	case err != nil:
		return sg.first, fmt.Sprintf("archive segment %s cannot be read: %v", sg.name, err), nil
	}
	c, err := auditlog.Open(s.Note, vkey)
	if err != nil {
		return sg.first, fmt.Sprintf("archive segment %s: its checkpoint does not verify with the key: %v", sg.name, err), nil
	}
	if c.Size != sg.last {
		return sg.first, fmt.Sprintf("archive segment %s: its checkpoint is of the log at %d records, not %d as its name says: swapped or renamed", sg.name, c.Size, sg.last), nil
	}
	if len(s.Events) == 0 || s.Events[len(s.Events)-1].Seq < sg.last {
		end := sg.first - 1
		if len(s.Events) > 0 {
			end = s.Events[len(s.Events)-1].Seq
		}
		return end + 1, fmt.Sprintf("archive segment %s is truncated: its records end at %d, its checkpoint and name say %d", sg.name, end, sg.last), nil
	}
	if got := s.Events[0].Seq; got != sg.first {
		return sg.first, fmt.Sprintf("archive segment %s holds records from %d, not %d as its name says: swapped or renamed", sg.name, got, sg.first), nil
	}
	for i, ev := range s.Events {
		if replay.Add(ev) {
			continue
		}
		at := replay.At()
		if i == 0 {
			return at.FirstBad, fmt.Sprintf("archive segment %s does not continue the chain of the records before it (swapped or replaced): %s", sg.name, at.Problem), nil
		}
		return at.FirstBad, fmt.Sprintf("archive segment %s: %s", sg.name, at.Problem), nil
	}
	at := replay.At()
	if at.Records != c.Size || at.Root != c.Root || at.Head != c.Head {
		return sg.first, fmt.Sprintf("archive segment %s does not match its signed checkpoint: its records were rewritten", sg.name), nil
	}
	return 0, "", nil
}

// ReadEvents returns the records of every segment of st whose time is not
// before since (all of them for the zero time), in seq order. It does not
// verify them: Verify does.
func ReadEvents(ctx context.Context, st Store, since time.Time) ([]store.Event, error) {
	names, err := st.List(ctx)
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	var out []store.Event
	for _, n := range names {
		data, err := st.Get(ctx, n)
		if err != nil {
			return nil, err
		}
		s, err := Decode(data)
		if err != nil {
			return nil, fmt.Errorf("archive: segment %s: %w", n, err)
		}
		for _, ev := range s.Events {
			if since.IsZero() || !ev.Time.Before(since) {
				out = append(out, ev)
			}
		}
	}
	return out, nil
}
