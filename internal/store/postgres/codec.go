package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// querier is what the pool, a connection and a transaction offer for reads.
type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// listIn is l for a text[] column; nil becomes an empty array, since pgx
// sends a nil slice as NULL.
func listIn(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}

// listOut is a scanned text[]; an empty array is nil, as records are written
// with nil for "none".
func listOut(l []string) []string {
	if len(l) == 0 {
		return nil
	}
	return l
}

// timeIn is t for a timestamptz column, or NULL for the zero time. pgx sends
// microseconds, truncating the nanoseconds as the SQLite backend does.
func timeIn(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t
}

// timeOut is the inverse of timeIn, in UTC.
func timeOut(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}

// bytesIn is b, or NULL when empty.
func bytesIn(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}

// bytesOut is a scanned bytea; empty is nil.
func bytesOut(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

// textIn is b for a nullable text column holding JSON: NULL when empty.
func textIn(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return string(b)
}

// textOut is the inverse of textIn.
func textOut(s *string) []byte {
	if s == nil || *s == "" {
		return nil
	}
	return []byte(*s)
}

// timestamp is t as an element of a timestamptz[] parameter: NULL for the
// zero time, like timeIn.
func timestamp(t time.Time) pgtype.Timestamptz {
	return pgtype.Timestamptz{Time: t, Valid: !t.IsZero()}
}

// ragged packs one list per row into a single text[] parameter, with each
// row's 1-based bounds in it, so that one statement can insert many rows
// whose lists differ in length: a row's list is flat[lo:hi] in SQL (empty
// when hi < lo).
type ragged struct {
	all    []string
	lo, hi []int32
}

// add appends the next row's list.
func (r *ragged) add(l []string) {
	r.lo = append(r.lo, int32(len(r.all)+1))
	r.all = append(r.all, l...)
	r.hi = append(r.hi, int32(len(r.all)))
}

// flat is every list, one after the other; never NULL.
func (r *ragged) flat() []string {
	return listIn(r.all)
}
