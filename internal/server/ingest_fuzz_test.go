package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/mandate-dev/mandate/internal/app"
	"github.com/mandate-dev/mandate/internal/auditlog"
	"github.com/mandate-dev/mandate/internal/config"
	"github.com/mandate-dev/mandate/internal/provision"
	"github.com/mandate-dev/mandate/internal/store"
	"github.com/mandate-dev/mandate/internal/store/sqlite"
)

// ingestTarget is one Mandate on SQLite that FuzzIngest writes through,
// kept for the whole fuzzing process, with the log as far as it has been
// verified: a replay that every execution extends with the records it
// appended, so that an execution costs the same on a long log.
type ingestTarget struct {
	app    *app.App
	store  store.Store
	replay *auditlog.Replay
	seq    int64 // the last record the replay has seen
	key    string
	n      int // executions, for record ids
}

// newIngestTarget builds the server on a database in dir; the caller
// closes its app.
func newIngestTarget(tb testing.TB, dir string) *ingestTarget {
	tb.Helper()
	ctx := context.Background()
	cfg, err := config.Parse([]byte(fmt.Sprintf(testConfig, "http://127.0.0.1:1", "http://127.0.0.1:2")), "fuzz.yaml")
	if err != nil {
		tb.Fatal(err)
	}
	cfg.DataDir = dir
	cfg.RateLimits.IngestPerReporter = config.MaxRate
	raw, err := sqlite.Open(ctx, filepath.Join(cfg.DataDir, "mandate.db"))
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := provision.Sync(ctx, raw, cfg, false, time.Now()); err != nil {
		tb.Fatal(err)
	}
	app, err := app.BuildWith(ctx, cfg, raw, app.Env{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		tb.Fatal(err)
	}
	x := &ingestTarget{app: app, store: raw, replay: auditlog.NewReplay(nil)}
	var keys struct {
		Key string `json:"verifier_key"`
	}
	if status, body := x.serve(http.MethodGet, "/audit/checkpoints", nil, true); status != http.StatusOK || json.Unmarshal(body, &keys) != nil {
		tb.Fatalf("GET /audit/checkpoints: %d %s", status, body)
	}
	x.key = keys.Key
	return x
}

// serve runs one request through the server's handler, with the admin
// token or as rs:reporter.
func (x *ingestTarget) serve(method, path string, body []byte, admin bool) (int, []byte) {
	req := httptest.NewRequest(method, "http://mandate.test"+path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if admin {
		req.Header.Set("Authorization", "Bearer "+adminToken)
	} else {
		req.SetBasicAuth(url.QueryEscape("rs:reporter"), url.QueryEscape("rs-reporter-secret"))
	}
	w := httptest.NewRecorder()
	x.app.Handler.ServeHTTP(w, req)
	return w.Code, w.Body.Bytes()
}

// check replays the records appended since the last check and fails
// unless the log still verifies, then signs a checkpoint and fails unless
// it states the log as replayed.
func (x *ingestTarget) check(t *testing.T) {
	t.Helper()
	err := store.EachEvent(context.Background(), x.store, x.seq, func(ev store.Event) error {
		x.replay.Add(ev)
		x.seq = ev.Seq
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	res := x.replay.Finish()
	if !res.OK() {
		t.Fatalf("audit verify: FAILED at record %d: %s", res.FirstBad, res.Problem)
	}
	status, body := x.serve(http.MethodPost, "/audit/checkpoints", nil, true)
	var c struct {
		Note string `json:"note"`
	}
	if status != http.StatusOK || json.Unmarshal(body, &c) != nil {
		t.Fatalf("POST /audit/checkpoints: %d %s", status, body)
	}
	cp, err := auditlog.Open(c.Note, x.key)
	if err != nil {
		t.Fatalf("the checkpoint does not open: %v", err)
	}
	if cp.Size != res.Records || cp.Root != res.Root || cp.Head != res.Head {
		t.Fatalf("checkpoint at size %d root %x, the log replays to size %d root %x", cp.Size, cp.Root, res.Records, res.Root)
	}
}

// FuzzIngest (THREATS T99) writes arbitrary records through POST
// /audit/ingest of a real server on SQLite: a record of verify's shape
// with fuzzed time and fields, and a record of fuzzed JSON. The batch is
// answered 200 with every record stored, a duplicate or refused; after it
// the log verifies as `mandate audit verify` replays it and a checkpoint
// of it is signed. One server serves the whole fuzzing process.
func FuzzIngest(f *testing.F) {
	for _, s := range []struct {
		time, resource, performer, action, attrKey, attrValue string
		raw                                                   []byte
	}{
		{"0001-01-01T00:00:00.0000005Z", "expense/EXP-1042", "agent:expense", "expense:approve", "amount", "487.50", nil},
		{"9999-12-31T23:59:59.999999999Z", "/", "", "GET", "", "", []byte(`{"id":"req_00000000000000000000000000000001","time":"2000-01-01T00:00:00.0000005Z","result":"granted","audience":"https://expense.example"}`)},
		{"2026-01-02T03:04:05.123456789+14:00", "a\x00b", "agent:\x7f", "x\ny", "mandate.token_mismatch", "v", []byte(`{"id":"req_00000000000000000000000000000002","time":"1999-12-31T23:59:59.9999995Z"}`)},
		{"2000-01-01T00:00:00Z", string(bytes.Repeat([]byte("r"), 1025)), "agent:é", "\u00e9\u0301", "k", "\xff\xfe", []byte(`[]`)},
		{"now", "", "", "", "k", "", []byte(`{"id":"req_00000000000000000000000000000003","time":"` + time.Now().UTC().Format(time.RFC3339Nano) + `","result":"refused","chain":["a",""],"context":{"n":1e400}}`)},
	} {
		f.Add(s.time, s.resource, s.performer, s.action, s.attrKey, s.attrValue, s.raw)
	}
	// The server is made on first use, in the process that fuzzes, and
	// kept: *F's TempDir and Cleanup cannot be called from the fuzz
	// function, so they are taken here.
	var x *ingestTarget
	dir := f.TempDir()
	f.Cleanup(func() {
		if x != nil {
			x.app.Close()
		}
	})
	f.Fuzz(func(t *testing.T, at, resource, performer, action, attrKey, attrValue string, raw []byte) {
		if x == nil {
			x = newIngestTarget(t, dir)
		}
		x.n++
		rec := ingestRecord(x.n, time.Now())
		if at != "now" {
			rec["time"] = at
		}
		rec["resource"], rec["performed_by"], rec["action"] = resource, performer, action
		rec["attributes"] = map[string]string{attrKey: attrValue}
		records := []any{rec}
		if json.Valid(raw) {
			records = append(records, json.RawMessage(raw))
		}
		body, err := json.Marshal(map[string]any{"records": records})
		if err != nil {
			t.Skip() // not a batch verify could send
		}
		status, answer := x.serve(http.MethodPost, "/audit/ingest", body, false)
		var a struct {
			Accepted, Duplicates int
			Refused              []struct {
				Index  int
				Status int
				Reason string
			}
		}
		if status != http.StatusOK || json.Unmarshal(answer, &a) != nil {
			t.Fatalf("POST /audit/ingest: %d %s", status, answer)
		}
		if n := a.Accepted + a.Duplicates + len(a.Refused); n != len(records) {
			t.Fatalf("%d records answered for, %d sent: %s", n, len(records), answer)
		}
		x.check(t)
	})
}
