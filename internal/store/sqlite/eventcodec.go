package sqlite

import (
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// How a record's row is kept small (migration 22). Three kinds of column
// are written in a shorter form than their text and read back as the same
// text, so that the record, its chain hash and every answer are what they
// were:
//
//   - identifiers (id, request_id, delegation_id, jti, parent_jti) that are
//     lowercase hex, alone or after a prefix of three lowercase letters and
//     '_' ("evt_…", "req_…", "dlg_…"), as a BLOB of their bytes (idIn): a
//     36-character record id takes 21 bytes, a 44-digit jti 23, in the row
//     and in the query index that holds it;
//   - the chain, NULL when it is the performer alone (chainIn);
//   - requested, NULL when it is the granted scopes (requestedIn).
//
// Any other value is written as before, TEXT, and read as it is: a column
// may hold both forms, and a value is always written in the one form idIn
// gives it, so that an equality (a filter, the unique index of verifiers'
// record ids) compares like with like.

// idMinHex is the fewest hex digits idIn writes as a BLOB.
const idMinHex = 8

// idIn is s as an identifier column holds it: a BLOB of a length byte (0,
// or 4 for the prefix), the prefix and the bytes the hex digits spell,
// when s is an even number of at least idMinHex lowercase hex digits,
// alone or after a prefix of three lowercase letters and '_'; otherwise s,
// TEXT. idInSQL says the same in SQL, for migration 22.
func idIn(s string) any {
	p := 0
	if len(s) >= 4 && s[3] == '_' && lowerLetters(s[:3]) {
		p = 4
	}
	h := s[p:]
	if len(h) < idMinHex || len(h)%2 != 0 || !lowerHex(h) {
		return s
	}
	b := make([]byte, 1+p+len(h)/2)
	b[0] = byte(p)
	copy(b[1:], s[:p])
	_, _ = hex.Decode(b[1+p:], []byte(h)) // lowerHex checked every digit
	return b
}

func lowerLetters(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 'a' || s[i] > 'z' {
			return false
		}
	}
	return true
}

func lowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// errBadID is a BLOB identifier whose length byte runs past its end.
var errBadID = errors.New("identifier BLOB shorter than its prefix")

// idOut is the text of a BLOB idIn wrote.
func idOut(b []byte) (string, error) {
	if len(b) == 0 || int(b[0]) > len(b)-1 {
		return "", errBadID
	}
	p := int(b[0])
	raw := b[1+p:]
	var sb strings.Builder
	sb.Grow(p + 2*len(raw))
	sb.Write(b[1 : 1+p])
	const digits = "0123456789abcdef"
	for _, c := range raw {
		sb.WriteByte(digits[c>>4])
		sb.WriteByte(digits[c&0x0f])
	}
	return sb.String(), nil
}

// idDest is a scan destination for an identifier column: TEXT as it is, a
// BLOB through idOut, NULL as "".
type idDest struct {
	col string
	dst *string
}

// Scan implements sql.Scanner.
func (d idDest) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		*d.dst = ""
	case string:
		*d.dst = v
	case []byte:
		s, err := idOut(v)
		if err != nil {
			return fmt.Errorf("decode %s: %w", d.col, err)
		}
		*d.dst = s
	default:
		return fmt.Errorf("decode %s: unexpected %T", d.col, src)
	}
	return nil
}

// idTextSQL is the text of the identifier column col in SQL, idOut for the
// two prefix lengths idIn writes: for comparing it with a column of
// another table that holds identifiers as TEXT (the tokens' jti).
func idTextSQL(col string) string {
	return "CASE WHEN typeof(" + col + ") <> 'blob' THEN " + col +
		" WHEN substr(" + col + ", 1, 1) = x'04' THEN CAST(substr(" + col + ", 2, 4) AS TEXT) || lower(hex(substr(" + col + ", 6)))" +
		" ELSE lower(hex(substr(" + col + ", 2))) END"
}

// chainIn is the chain column of a record: NULL when the chain is the
// performer alone (an agent acting for itself or for a person, the common
// case), else the list (listIn).
func chainIn(chain []string, performer string) any {
	if len(chain) == 1 && performer != "" && chain[0] == performer {
		return nil
	}
	return listIn(chain)
}

// requestedIn is the requested column: NULL when the scopes requested are
// the scopes granted, else the list.
func requestedIn(requested, scopes []string) any {
	if slices.Equal(requested, scopes) {
		return nil
	}
	return listIn(requested)
}
