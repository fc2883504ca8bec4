package postgres_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mandate-dev/mandate/internal/auditchain"
	"github.com/mandate-dev/mandate/internal/store"
	"github.com/mandate-dev/mandate/internal/store/postgres"
	"github.com/mandate-dev/mandate/internal/store/storetest"
)

// TestChainMatchesAuditchain: the chain the server computes in appendEvents
// is auditchain.Next over the records as the caller gave them, numbered in
// commit order, for batches of several sizes and records of every shape,
// mandate-audit-v1 and v2 (the v2 fields, with JSON that jsonb would
// normalize, read back byte for byte); events_head keeps the last hash.
func TestChainMatchesAuditchain(t *testing.T) {
	schema := newSchema(t)
	s := openStore(t, config(t, schema))
	ctx := t.Context()
	var given []store.Event
	for _, size := range []int{1, 3, 37, 1, 200} {
		batch := make([]store.Event, size)
		for i := range batch {
			n := len(given) + i
			batch[i] = store.Event{
				ID: fmt.Sprintf("e%d", n), Time: time.Unix(1795000000, int64(n)*1001).In(time.FixedZone("Z", 3600)),
				RequestID: strings.Repeat("r", n%7), Action: "token.exchange", Result: "ok", Reason: "r",
				Detail: strings.Repeat("déjà ", n%300), Performer: "agent:a", OnBehalf: "user:ü",
				Chain: []string{"agent:a", "agent:b"}[:n%3], ClientID: "agent:a",
				Scopes: []string{"s1", "", "s3"}[:n%4], Audience: "aud", Resource: "res",
				Context: []byte(`{"n":` + strconv.Itoa(n) + `}`), DelegationID: "d", JTI: "jti-" + strconv.Itoa(n),
				ParentJTI: "p",
			}
			if n%5 == 0 {
				batch[i].Time, batch[i].Context = time.Time{}, nil
			}
			switch n % 3 {
			case 1: // every v2 field
				batch[i].AgentVersion, batch[i].Operation, batch[i].ReportedBy = "1.4."+strconv.Itoa(n), "expense:approve", "agent:gw"
				batch[i].AuthorizationDetails = []byte("[ {\"type\" : \"x\",\n\t\"é\":\"🚀\"} ]")
				batch[i].Attributes = []byte(`{"b":1 , "a":"ü", "a":` + strconv.Itoa(n) + `}`)
			case 2: // one v2 field
				batch[i].ReportedBy = "agent:gw"
			}
		}
		if err := s.Commit(ctx, store.Batch{Events: batch}); err != nil {
			t.Fatalf("Commit of %d: %v", size, err)
		}
		given = append(given, batch...)
	}
	stored := storetest.VerifyChain(t, s)
	if len(stored) != len(given) {
		t.Fatalf("%d records, want %d", len(stored), len(given))
	}
	for i, e := range given {
		if g := stored[i]; !bytes.Equal(g.Attributes, e.Attributes) || !bytes.Equal(g.AuthorizationDetails, e.AuthorizationDetails) ||
			g.AgentVersion != e.AgentVersion || g.Operation != e.Operation || g.ReportedBy != e.ReportedBy {
			t.Fatalf("record %d reads back other v2 fields than were given", i+1)
		}
	}
	prev := auditchain.Genesis
	for i, e := range given {
		e.Seq = int64(i + 1)
		prev = auditchain.Next(prev, e)
		if !bytes.Equal(stored[i].Hash, prev[:]) {
			t.Fatalf("record %d: stored hash %x, auditchain.Next of the record given %x", i+1, stored[i].Hash, prev[:])
		}
	}
	var seq int64
	var last []byte
	if err := rawConn(t, schema).QueryRow(ctx, "SELECT last_seq, last_hash FROM events_head").Scan(&seq, &last); err != nil {
		t.Fatal(err)
	}
	if seq != int64(len(given)) || !bytes.Equal(last, prev[:]) {
		t.Errorf("events_head = (%d, %x), want (%d, %x)", seq, last, len(given), prev[:])
	}
}

// applyUpTo makes schema as a build with migrations up to and including
// version did, from the migration files.
func applyUpTo(t *testing.T, conn *pgx.Conn, schema string, version int) {
	t.Helper()
	ctx := t.Context()
	files, err := filepath.Glob("migrations/*.sql")
	if err != nil || len(files) == 0 {
		t.Fatalf("migrations: %v, %d files", err, len(files))
	}
	sort.Strings(files)
	for _, q := range []string{
		"CREATE SCHEMA " + schema,
		"CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL)",
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range files {
		v, err := strconv.Atoi(strings.SplitN(filepath.Base(f), "_", 2)[0])
		if err != nil {
			t.Fatal(err)
		}
		if v > version {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Exec(ctx, string(b)); err != nil {
			t.Fatalf("apply %s: %v", f, err)
		}
		if _, err := conn.Exec(ctx, "INSERT INTO schema_migrations VALUES ($1, $2, now())", v, filepath.Base(f)); err != nil {
			t.Fatal(err)
		}
	}
}

// oldAppend is how a build from before the hash chain appended an event.
const oldAppend = `WITH h AS (UPDATE events_head SET last_seq = last_seq + 1 WHERE id = 1 RETURNING last_seq)
INSERT INTO events (seq, id, time, request_id, action, result, reason, detail, performer, on_behalf, chain,
	client_id, scopes, requested, audience, resource, context, delegation_id, jti, parent_jti)
SELECT h.last_seq, $1, $2, '', 'token.issue', 'ok', '', '', 'agent:a', 'user:sam', '{agent:a}', 'agent:a', '{s}', '{}',
	'aud', '', $3, '', $4, '' FROM h`

// TestChainExistingRecords: records written by a build from before the
// hash chain are chained, in seq order, when a build with it migrates the
// schema; the chain then carries on; and an append without a hash (an
// instance of the old build still running) is refused and changes nothing.
func TestChainExistingRecords(t *testing.T) {
	schema := newSchema(t)
	conn := rawConn(t, schema)
	ctx := t.Context()
	applyUpTo(t, conn, schema, 4)
	const old = 2500 // more than one page of chainExisting
	for i := range old {
		if _, err := conn.Exec(ctx, oldAppend, "old-"+strconv.Itoa(i), time.UnixMicro(1795000000000000+int64(i)),
			`{"i":`+strconv.Itoa(i)+`}`, "jti-"+strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
	}

	cfg := config(t, schema)
	if err := postgres.Migrate(ctx, cfg); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	s := openStore(t, cfg)
	if got := storetest.VerifyChain(t, s); len(got) != old || got[old-1].ID != "old-"+strconv.Itoa(old-1) {
		t.Fatalf("%d records chained, want the %d old ones", len(got), old)
	}
	if err := s.Commit(ctx, store.Batch{Events: []store.Event{{ID: "new", Action: "token.issue"}}}); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	if got := storetest.VerifyChain(t, s); len(got) != old+1 || got[old].ID != "new" {
		t.Errorf("%d records after a new one, want %d", len(got), old+1)
	}
	if _, err := conn.Exec(ctx, oldAppend, "unchained", time.Now(), nil, "j"); err == nil || !strings.Contains(err.Error(), "hash") {
		t.Errorf("an append without a hash: err = %v, want a refusal", err)
	}
	if err := s.Commit(ctx, store.Batch{Events: []store.Event{{ID: "newer", Action: "token.issue"}}}); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	if got := storetest.VerifyChain(t, s); len(got) != old+2 {
		t.Errorf("%d records after the refused append, want %d", len(got), old+2)
	}
}
