package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"runtime"
	"sync"

	"github.com/mandate-dev/mandate/internal/store"
)

// Reading the log forward in parts: one query on one connection reads
// about 250,000 records a second here, most of it spent in the driver,
// column by column, on one core. A page of an export or a verification
// (store.EachEvent, EachEventPage records) is read in up to maxReadParts
// parts at once instead, each a query of its own on its own connection
// of the reader pool, so that a long read uses every core it is given.
const (
	// minReadPart is the fewest records a part reads: below that a
	// query's own cost and a goroutine outweigh the gain.
	minReadPart = 250
	// maxReadParts is the most parts one page is read in.
	maxReadParts = 4
)

// eventsAfter is EventsAfter with limit clamped: a page of at least two
// parts' worth, and at most EachEventPage (the size EachEvent reads, for
// which out is allocated whole), is read in parts (readParts), a smaller
// or larger one in one query.
func (s *Store) eventsAfter(ctx context.Context, afterSeq int64, limit int) ([]store.Event, error) {
	parts := min(runtime.GOMAXPROCS(0), maxReadParts, limit/minReadPart)
	if parts < 2 || limit > store.EachEventPage {
		return s.appendAfter(ctx, make([]store.Event, 0, min(limit, store.EachEventPage)), afterSeq, limit)
	}
	return s.readParts(ctx, afterSeq, limit, parts)
}

// readParts reads the page of limit records after afterSeq in parts
// queries at once. Seqs run from 1 without gaps, so part i starts after
// afterSeq + i*size; the parts are joined only where the part before is
// full and ends at that seq. Where it does not (the live log starts
// after an archived part, or a row is missing), the rest of the page is
// read again in one query from where the part ended, so that the page is
// exactly what one query would have read. A part that is short ends the
// page: the log ends there.
func (s *Store) readParts(ctx context.Context, afterSeq int64, limit, parts int) ([]store.Event, error) {
	size := limit / parts
	bounds := func(i int) (lo, hi int) {
		if i == parts-1 {
			return i * size, limit
		}
		return i * size, (i + 1) * size
	}
	out := make([]store.Event, limit)
	type part struct {
		evs []store.Event
		err error
	}
	res := make([]part, parts)
	var wg sync.WaitGroup
	for i := 1; i < parts; i++ {
		wg.Go(func() {
			lo, hi := bounds(i)
			res[i].evs, res[i].err = s.appendAfter(ctx, out[lo:lo:hi], afterSeq+int64(lo), hi-lo)
		})
	}
	_, hi := bounds(0)
	res[0].evs, res[0].err = s.appendAfter(ctx, out[0:0:hi], afterSeq, hi)
	wg.Wait()
	n := 0 // out[:n] is the page so far; every part before res[i] was full
	for i, p := range res {
		if p.err != nil {
			return nil, p.err
		}
		_, hi := bounds(i)
		n += len(p.evs)
		switch {
		case n < hi:
			return out[:n:n], nil
		case i == parts-1:
			return out, nil
		case out[n-1].Seq != afterSeq+int64(hi):
			rest, err := s.appendAfter(ctx, out[n:n:limit], out[n-1].Seq, limit-n)
			if err != nil {
				return nil, err
			}
			return out[:n+len(rest)], nil
		}
	}
	return out, nil
}

// appendAfter appends to dst up to n records after afterSeq, read in one
// query, and returns the records it appended (dst[len(dst):]).
func (s *Store) appendAfter(ctx context.Context, dst []store.Event, afterSeq int64, n int) ([]store.Event, error) {
	rows, err := s.stmts.eventsAfter.QueryContext(ctx, afterSeq)
	return appendEvents(dst, rows, err, n)
}

// appendEvents appends to dst the rows of a query of eventSelect (rows,
// err), at most n of them, and returns what it appended.
func appendEvents(dst []store.Event, rows *sql.Rows, err error, n int) ([]store.Event, error) {
	if err != nil {
		return nil, fmt.Errorf("sqlite: list events: %w", dbErr(err))
	}
	defer rows.Close()
	start := len(dst)
	r := newEventRow(true)
	for len(dst)-start != n && rows.Next() {
		dst = append(dst, store.Event{})
		if err := r.scanInto(rows, &dst[len(dst)-1]); err != nil {
			return nil, fmt.Errorf("sqlite: list events: %w", err)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list events: %w", dbErr(err))
	}
	return dst[start:], nil
}
