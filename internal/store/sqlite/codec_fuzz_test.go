package sqlite

import (
	"bytes"
	"database/sql"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mandate-dev/mandate/internal/store"
)

// FuzzIDCodec: every identifier reads back as written, through idDest and
// through idTextSQL, and is stored in one form only (so that an equality
// compares like with like): idIn of the text read back is the value
// stored. Any BLOB scans to an identifier or an error, never a panic.
func FuzzIDCodec(f *testing.F) {
	for _, s := range compactIDs {
		f.Add(s, []byte(s))
	}
	f.Add("evt_00", []byte{4, 'e', 'v', 't', '_'})
	f.Add("ABCDEF0123", []byte{9, 'a'})
	db, err := sql.Open("sqlite", ":memory:")
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { db.Close() })
	f.Fuzz(func(t *testing.T, s string, raw []byte) {
		v := idIn(s)
		var got, inSQL string
		if err := db.QueryRow("SELECT ?1, "+idTextSQL("?1"), v).Scan(idDest{"id", &got}, &inSQL); err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		if got != s {
			t.Fatalf("idIn(%q) reads back as %q", s, got)
		}
		if b, ok := v.([]byte); ok {
			if inSQL != s {
				t.Fatalf("idIn(%q) reads back in SQL as %q", s, inSQL)
			}
			if again, ok := idIn(got).([]byte); !ok || !bytes.Equal(again, b) {
				t.Fatalf("idIn(%q) = %x, but of the text read back %v", s, b, idIn(got))
			}
		}
		var out string
		_ = idDest{"id", &out}.Scan(raw)
	})
}

// FuzzTokenFacts: for any token and any record of its jti, the facts
// encoded against the record decode with the record's columns to the
// token's row, and every shorter encoding is an error; any bytes decode to
// a row or an error, never a panic.
func FuzzTokenFacts(f *testing.F) {
	f.Add("j0", "urn:ietf:params:oauth:grant-type:token-exchange", "user:sam", "agent:a", "agent:a agent:b", "dlg_1",
		"s1", "https://api.example", int64(3), int64(1<<40), int64(1796000000000000), int64(600000000), uint8(0), []byte{1, 0, 1})
	f.Add("", "urn:example:other", "", "", "", "", "", "", int64(-1), int64(0), int64(0), int64(-5), uint8(0xff), []byte{})
	f.Fuzz(func(t *testing.T, parent, grant, subject, client, chain, deleg, scopes, aud string,
		sv, gen, iat, ttl int64, differ uint8, raw []byte) {
		words := func(s string) []string {
			if s == "" {
				return nil
			}
			return strings.Split(s, " ")
		}
		const year = 366 * 24 * time.Hour
		var issued, expires time.Time
		if iat != 0 {
			issued = time.UnixMicro(iat % (100 * year).Microseconds()).UTC()
			expires = issued.Add(time.Duration(ttl%year.Microseconds()) * time.Microsecond)
		}
		tok := store.IssuedToken{
			JTI: "j1", ParentJTI: parent, GrantType: grant, Subject: subject, ClientID: client, Chain: words(chain),
			DelegationID: deleg, Scopes: words(scopes), Audience: aud, SubjectVersion: sv, Gen: gen,
			IssuedAt: issued, ExpiresAt: expires,
		}
		// The record says what the token says, but where a bit of differ
		// is set.
		other := func(bit uint8, s string) string {
			if differ&(1<<bit) != 0 {
				return s + "x"
			}
			return s
		}
		rec := recordRow(asStored(store.Event{
			JTI: "j1", ParentJTI: other(0, parent), OnBehalf: other(1, subject), ClientID: other(2, client),
			Chain: words(other(3, chain)), DelegationID: other(4, deleg), Scopes: words(other(5, scopes)),
			Audience: other(6, aud),
		}))
		want := rowOf(tok)
		b := encodeFacts(want, rec)
		got, err := decodeFacts(b, rec)
		if err != nil {
			t.Fatalf("decode: %v", err)
		}
		if diff := cmp.Diff(want, got, cmp.AllowUnexported(tokenRow{})); diff != "" {
			t.Fatalf("decoded (-want +got):\n%s", diff)
		}
		for n := range len(b) {
			if _, err := decodeFacts(b[:n], rec); !errors.Is(err, errFacts) {
				t.Fatalf("%d of %d bytes decode: %v", n, len(b), err)
			}
		}
		_, _ = decodeFacts(raw, rec)
	})
}
