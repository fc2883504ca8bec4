package sqlite

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mandate-dev/mandate/internal/auditchain"
	"github.com/mandate-dev/mandate/internal/store"
)

// compactIDs are identifiers of every shape idIn tells apart.
var compactIDs = []string{
	"", "e1", "evt_4ff9f0f10a844cf49b7d01a62f4b1a50", "req_47ec96a2e30f72fba512313eefe31a8b", "dlg_10c45f684c30a593",
	"01a249fa34f5d057977d7640d9f15db9801a01547897", "0123abcd", "0123abc", "abcdef", "0123ABCD", "evt_0123abc",
	"evt_0123abcd", "evt_012", "Evt_0123abcd", "ev1_0123abcd", "evt_0123abcg", "abcd_0123abcd", "évt_0123abcd",
	"evt_", "dlg_0123abcd_x", "00000000", "jti-1", "0123abcd\x00", "x_0123abcd",
}

// TestIDRoundTrip: every identifier reads back as written, from Go and in
// SQL (idTextSQL), and idIn writes a BLOB only where it is shorter.
func TestIDRoundTrip(t *testing.T) {
	db, err := sql.Open("sqlite", ":memory:")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, s := range compactIDs {
		v := idIn(s)
		if b, ok := v.([]byte); ok && len(b) >= len(s) {
			t.Errorf("idIn(%q) = %d bytes, not shorter", s, len(b))
		}
		var got, inSQL string
		if err := db.QueryRow("SELECT ?1, "+idTextSQL("?1"), v).Scan(idDest{"id", &got}, &inSQL); err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		if got != s || inSQL != s {
			t.Errorf("idIn(%q) reads back as %q, in SQL %q", s, got, inSQL)
		}
	}
	if _, err := idOut([]byte{9, 'a'}); err == nil {
		t.Error("idOut accepts a BLOB shorter than its prefix")
	}
}

// oldLayoutRow is e as a build before migration 22 wrote it: every
// identifier and list as TEXT.
func oldLayoutRow(e store.Event, hash []byte, indexed bool) []any {
	list := func(l []string) string {
		if len(l) == 0 {
			return "[]"
		}
		b, _ := json.Marshal(l)
		return string(b)
	}
	return []any{e.Seq, e.ID, timeIn(e.Time), e.RequestID, e.Action, e.Result, e.Reason, e.Detail, e.Performer,
		e.OnBehalf, list(e.Chain), e.ClientID, list(e.Scopes), list(e.Requested), e.Audience, e.Resource,
		jsonIn(e.Context), e.DelegationID, e.JTI, e.ParentJTI, hash, e.AgentVersion, jsonIn(e.AuthorizationDetails),
		e.Operation, jsonIn(e.Attributes), e.ReportedBy, boolIn(indexed)}
}

// TestCompactRowsMigrated: a log written in the layout before migration 22
// (some records indexed, the newest pending) reads back the same after it,
// field for field, each record's chain hash verifies over what is read,
// every filter that takes an identifier finds what it found before, and
// the rows hold the compact forms idIn, chainIn and requestedIn write.
func TestCompactRowsMigrated(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "mandate.db")
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Exec("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)"); err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if m.Version > 21 {
			break
		}
		if _, err := raw.Exec(m.SQL); err != nil {
			t.Fatalf("apply %s: %v", m.Name, err)
		}
		if _, err := raw.Exec("INSERT INTO schema_migrations VALUES (?, ?, 0)", m.Version, m.Name); err != nil {
			t.Fatal(err)
		}
	}

	// Records of every shape, chained as the old build chained them.
	const n, indexedUpTo = 3 * 24, 50
	var (
		want []store.Event
		hash = auditchain.Genesis
	)
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 123456000, time.UTC)
	for i := 1; i <= n; i++ {
		id := compactIDs[i%len(compactIDs)]
		if id == "" || i > len(compactIDs) {
			id = fmt.Sprintf("evt_%032x", i)
		}
		e := store.Event{
			Seq: int64(i), ID: id, Time: t0.Add(time.Duration(i) * time.Second), RequestID: fmt.Sprintf("req_%032x", i),
			Action: "token.exchange", Result: "granted", Detail: "détail <&>", Performer: fmt.Sprintf("agent:%d", i%4),
			OnBehalf: "user:sam", ClientID: fmt.Sprintf("agent:%d", i%4), Scopes: []string{"read"}, Requested: []string{"read"},
			Audience: "https://api.example", DelegationID: compactIDs[(i+1)%len(compactIDs)],
			JTI: compactIDs[(i+2)%len(compactIDs)], ParentJTI: compactIDs[(i+3)%len(compactIDs)],
			Context: []byte(`{"k":1}`), AgentVersion: "v1",
		}
		switch i % 6 {
		case 0:
			e.Chain = []string{e.Performer, "agent:lead"}
		case 1:
			e.Chain = []string{e.Performer}
		case 2:
			e.Chain, e.Performer = []string{"agent:x"}, ""
		case 3:
			e.Chain = nil
		case 4:
			e.Chain = []string{"agent:<b>"}
			e.Performer = "agent:<b>"
		case 5:
			e.Chain = []string{"agent:z"}
		}
		switch i % 5 {
		case 0:
			e.Requested = []string{"read", "write"}
		case 1:
			e.Requested = nil
		case 2:
			e.Scopes, e.Requested = nil, nil
		case 3:
			e.Action, e.ID = requestAction, fmt.Sprintf("req_%032x", 1000+i)
		}
		hash = auditchain.Next(hash, e)
		e.Hash = append([]byte(nil), hash[:]...)
		if _, err := raw.Exec("INSERT INTO events (seq, "+eventColsV1+
			", hash, agent_version, authorization_details, operation, attributes, reported_by, indexed) VALUES (?"+strings.Repeat(", ?", 26)+")",
			oldLayoutRow(e, e.Hash, i <= indexedUpTo)...); err != nil {
			t.Fatalf("insert %d: %v", i, err)
		}
		if i <= indexedUpTo {
			for _, a := range eventActors(e) {
				if _, err := raw.Exec("INSERT INTO event_actors (actor, seq) VALUES (?, ?)", a, i); err != nil {
					t.Fatal(err)
				}
			}
		}
		want = append(want, e)
	}
	if _, err := raw.Exec("UPDATE event_index_head SET seq = ?", indexedUpTo); err != nil {
		t.Fatal(err)
	}

	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if v, err := s.SchemaVersion(ctx); err != nil || v < 22 {
		t.Fatalf("SchemaVersion = %d, %v; want 22 or more", v, err)
	}
	got, err := s.EventsAfter(ctx, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("records after migration 22 (-before +after):\n%s", diff)
	}
	h := auditchain.Genesis
	for _, e := range got {
		h = auditchain.Next(h, e)
		if !bytes.Equal(h[:], e.Hash) {
			t.Fatalf("record %d does not verify after migration 22", e.Seq)
		}
	}

	// Each identifier filter, for an indexed record and a pending one.
	for _, i := range []int{7, 13, 49, 50, 51, 62, n} {
		e := want[i-1]
		for _, f := range []store.EventFilter{
			{JTI: e.JTI}, {DelegationID: e.DelegationID}, {IDs: []string{e.ID}}, {IDs: []string{e.ID}, Action: e.Action},
			{Actor: e.ClientID, JTI: e.JTI},
		} {
			if (f.JTI == "" && f.DelegationID == "" && len(f.IDs) == 0) || (len(f.IDs) > 0 && f.IDs[0] == "") {
				continue
			}
			f.Limit = 1000
			evs, err := s.QueryEvents(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			found := false
			for _, g := range evs {
				found = found || g.Seq == e.Seq
			}
			if !found {
				t.Errorf("record %d: QueryEvents(%+v) does not find it", i, f)
			}
		}
	}

	// The rows' forms.
	rows, err := s.r.QueryContext(ctx, "SELECT seq, id, jti, chain IS NULL, requested IS NULL FROM events ORDER BY seq")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			seq                int
			id, jti            any
			chainNull, reqNull bool
		)
		if err := rows.Scan(&seq, &id, &jti, &chainNull, &reqNull); err != nil {
			t.Fatal(err)
		}
		e := want[seq-1]
		if !cmp.Equal(id, idIn(e.ID)) || !cmp.Equal(jti, idIn(e.JTI)) {
			t.Errorf("record %d: id %#v, jti %#v; want %#v, %#v", seq, id, jti, idIn(e.ID), idIn(e.JTI))
		}
		// The migration compares with SQLite's JSON, which escapes less
		// than encoding/json: such a chain stays as it was, which reads
		// the same.
		if wantNull := chainIn(e.Chain, e.Performer) == nil; chainNull != wantNull && plainJSON(e.Performer) {
			t.Errorf("record %d: chain NULL %v, want %v", seq, chainNull, wantNull)
		}
		if wantNull := requestedIn(e.Requested, e.Scopes) == nil; reqNull != wantNull {
			t.Errorf("record %d: requested NULL %v, want %v", seq, reqNull, wantNull)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
}
