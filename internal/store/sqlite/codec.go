package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// querier is what both the pools and a transaction offer for reads.
type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// scanner is a *sql.Row or *sql.Rows.
type scanner interface {
	Scan(dest ...any) error
}

// listIn encodes a list as a JSON array; empty and nil are both "[]".
func listIn(l []string) string {
	if len(l) == 0 {
		return "[]"
	}
	// The common case, printable ASCII that encoding/json leaves as it is,
	// is built in one allocation; anything else goes through json.Marshal.
	n := 1 + len(l) // the brackets and the commas
	for _, s := range l {
		if !plainJSON(s) {
			b, _ := json.Marshal(l) // a []string always marshals
			return string(b)
		}
		n += len(s) + 2
	}
	var sb strings.Builder
	sb.Grow(n)
	for i, s := range l {
		if i == 0 {
			sb.WriteByte('[')
		} else {
			sb.WriteByte(',')
		}
		sb.WriteByte('"')
		sb.WriteString(s)
		sb.WriteByte('"')
	}
	sb.WriteByte(']')
	return sb.String()
}

// plainJSON reports whether json.Marshal writes s as itself in quotes:
// printable ASCII without a quote, a backslash or one of the HTML
// characters it escapes.
func plainJSON(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20 || c > 0x7e, c == '"', c == '\\', c == '<', c == '>', c == '&':
			return false
		}
	}
	return true
}

// listOut decodes a JSON array; an empty array is nil, as records are
// written with nil for "none".
func listOut(col, s string) ([]string, error) {
	// The common case, what listIn's fast path writes, is split without
	// encoding/json; anything else (escapes, spaces) goes through it.
	if s == "[]" {
		return nil, nil
	}
	if len(s) >= 4 && strings.HasPrefix(s, `["`) && strings.HasSuffix(s, `"]`) {
		l := strings.Split(s[2:len(s)-2], `","`)
		plain := true
		for _, v := range l {
			plain = plain && plainJSON(v)
		}
		if plain {
			return l, nil
		}
	}
	var l []string
	if err := json.Unmarshal([]byte(s), &l); err != nil {
		return nil, fmt.Errorf("decode %s: %w", col, err)
	}
	if len(l) == 0 {
		return nil, nil
	}
	return l, nil
}

// listCol is a scanned JSON array column and where its decoded value goes.
type listCol struct {
	name string
	src  string
	dst  *[]string
}

// decodeLists decodes each column into its destination.
func decodeLists(cols ...listCol) error {
	for _, c := range cols {
		l, err := listOut(c.name, c.src)
		if err != nil {
			return err
		}
		*c.dst = l
	}
	return nil
}

// timeIn is t as unix microseconds, or NULL for the zero time.
func timeIn(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMicro()
}

// timeOut is the inverse of timeIn, in UTC.
func timeOut(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return time.UnixMicro(n.Int64).UTC()
}

// bytesIn is b, or NULL when empty.
func bytesIn(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}

// bytesOut copies a scanned blob; empty is nil.
func bytesOut(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return append([]byte(nil), b...)
}

// boolIn is 1 or 0.
func boolIn(b bool) int {
	if b {
		return 1
	}
	return 0
}

// jsonIn stores a JSON document as TEXT, NULL when empty.
func jsonIn(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return string(b)
}

// jsonOut is the inverse of jsonIn: nil for NULL or empty.
func jsonOut(s sql.NullString) []byte {
	if !s.Valid || s.String == "" {
		return nil
	}
	return []byte(s.String)
}
