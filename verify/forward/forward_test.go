package forward_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"github.com/mandate-dev/mandate/verify/internal/feedtest"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mandate-dev/mandate/verify"
	"github.com/mandate-dev/mandate/verify/forward"
)

// ingestServer is the issuer's POST /audit/ingest as the contract says:
// HTTP Basic authentication with form-urlencoded credentials (401
// invalid_client otherwise), a JSON body {"records":[…]} of records with
// an id, a time and a result (400 invalid_request otherwise), each record
// stored once by id (a resent one is ignored), and 200 once every record
// of the batch is stored.
type ingestServer struct {
	srv     *httptest.Server
	entered chan struct{} // one value per request that reached the handler

	mu     sync.Mutex
	down   string        // "503", "429" or "hangup": every request fails so, before anything is stored
	status int           // when not 0, every authenticated request is answered with it and code
	code   string        // the error code of status
	block  chan struct{} // when not nil, requests wait until it is closed
	// refuse, when set, judges each record alone as the issuer does: a
	// record it gives a reason for is not stored and is named in the 200
	// answer's refused list.
	refuse func(rec map[string]any) string
	stored []map[string]any
	ids    map[string]bool
	sizes  []int // records per request stored
	resent int   // records received whose id was stored already
	bodies []string
}

func newIngestServer(t *testing.T) *ingestServer {
	t.Helper()
	s := &ingestServer{entered: make(chan struct{}, 1000), ids: make(map[string]bool)}
	s.srv = httptest.NewServer(s)
	t.Cleanup(s.srv.Close)
	return s
}

func (s *ingestServer) url() string { return s.srv.URL + "/audit/ingest" }

func (s *ingestServer) set(edit func(s *ingestServer)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	edit(s)
}

func ingestError(w http.ResponseWriter, status int, code string) {
	w.Header().Set("Content-Type", "application/json")
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="mandate"`)
	}
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"error":%q,"error_description":"refused by the test server"}`, code)
}

func (s *ingestServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.entered <- struct{}{}
	s.mu.Lock()
	block, down, status, code := s.block, s.down, s.status, s.code
	s.mu.Unlock()
	if block != nil {
		select {
		case <-block:
		case <-r.Context().Done():
			return
		}
	}
	switch down {
	case "hangup":
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
		return
	case "503":
		ingestError(w, http.StatusServiceUnavailable, "temporarily_unavailable")
		return
	case "429":
		w.Header().Set("Retry-After", "0")
		ingestError(w, http.StatusTooManyRequests, "slow_down")
		return
	}
	if r.Method != http.MethodPost || r.URL.Path != "/audit/ingest" {
		ingestError(w, http.StatusNotFound, "not_found")
		return
	}
	id, secret, ok := r.BasicAuth()
	if ok {
		id, _ = url.QueryUnescape(id)
		secret, _ = url.QueryUnescape(secret)
	}
	if !ok || id != feedClientID || secret != feedSecret {
		ingestError(w, http.StatusUnauthorized, "invalid_client")
		return
	}
	if status != 0 {
		ingestError(w, status, code)
		return
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		ingestError(w, http.StatusBadRequest, "invalid_request")
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 4<<20))
	if err != nil {
		return
	}
	var env struct {
		Records []map[string]any `json:"records"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&env); err != nil || len(env.Records) == 0 {
		ingestError(w, http.StatusBadRequest, "invalid_request")
		return
	}
	for _, rec := range env.Records {
		id, _ := rec["id"].(string)
		tm, _ := rec["time"].(string)
		res, _ := rec["result"].(string)
		if _, err := time.Parse(time.RFC3339Nano, tm); err != nil || !recordID.MatchString(id) ||
			(res != verify.ResultGranted && res != verify.ResultRefused && res != verify.ResultFailed) {
			ingestError(w, http.StatusBadRequest, "invalid_request")
			return
		}
	}
	s.mu.Lock()
	s.bodies = append(s.bodies, string(body))
	s.sizes = append(s.sizes, len(env.Records))
	var refused []string
	for i, rec := range env.Records {
		id := rec["id"].(string)
		if s.refuse != nil {
			if reason := s.refuse(rec); reason != "" {
				refused = append(refused, fmt.Sprintf(`{"index":%d,"id":%q,"status":400,"error":"invalid_request","reason":%q,"error_description":"refused by the test server"}`, i, id, reason))
				continue
			}
		}
		if s.ids[id] {
			s.resent++
			continue
		}
		s.ids[id] = true
		s.stored = append(s.stored, rec)
	}
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"accepted":%d,"refused":[%s]}`, len(env.Records)-len(refused), strings.Join(refused, ","))
}

// storedIDs returns the ids stored, in order.
func (s *ingestServer) storedIDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, len(s.stored))
	for i, r := range s.stored {
		out[i] = r["id"].(string)
	}
	return out
}

func (s *ingestServer) requestSizes() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.sizes)
}

func (s *ingestServer) resends() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.resent
}

// testRecord is the i-th record of a test; they all encode to the same
// length.
func testRecord(i int) verify.Record {
	return verify.Record{
		ID: fmt.Sprintf("req_%032x", i), Time: epoch.UTC(), Action: "deploy:create", Resource: "service/api",
		Result: verify.ResultGranted, PerformedBy: "agent:argocd", OnBehalfOf: "user:sam", Audience: audience, JTI: "jti-1",
	}
}

// ids returns the ids of testRecord(from) to testRecord(to).
func ids(from, to int) []string {
	var out []string
	for i := from; i <= to; i++ {
		out = append(out, testRecord(i).ID)
	}
	return out
}

func recordRange(f *forward.Forwarder, from, to int) {
	for i := from; i <= to; i++ {
		f.Record(testRecord(i))
	}
}

func forwarderConfig(s *ingestServer, edit ...func(*forward.Config)) forward.Config {
	cfg := forward.Config{
		URL: s.url(), ClientID: feedClientID, ClientSecret: feedSecret, HTTPClient: s.srv.Client(),
		BatchSize: 5, FlushEvery: time.Hour,
	}
	for _, e := range edit {
		e(&cfg)
	}
	return cfg
}

// startForwarder starts a Forwarder whose back-off is 1 to 20 ms; it is
// closed when the test ends.
func startForwarder(t *testing.T, ctx context.Context, cfg forward.Config) *forward.Forwarder {
	t.Helper()
	f, err := forward.NewBackoff(ctx, cfg, time.Millisecond, 20*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close(context.Background()) })
	return f
}

// dirFiles returns the names in dir.
func dirFiles(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

// dirIDs returns the ids of the records in the files of dir, in order.
func dirIDs(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	for _, name := range dirFiles(t, dir) {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		recs, bad := forward.ReadBufferFile(data)
		if bad != 0 {
			t.Errorf("%s: %d unreadable lines", name, bad)
		}
		for _, r := range recs {
			var rec verify.Record
			if err := json.Unmarshal([]byte(r), &rec); err != nil {
				t.Fatal(err)
			}
			out = append(out, rec.ID)
		}
	}
	return out
}

func TestNewForwarderRefusesConfig(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	good := forward.Config{URL: "https://mandate.example/audit/ingest", ClientID: "rs", ClientSecret: "s3cr3t-value"}
	edit := func(e func(c *forward.Config)) forward.Config {
		c := good
		e(&c)
		return c
	}
	for _, tc := range []struct {
		name string
		cfg  forward.Config
		ok   bool
	}{
		{name: "ok/https", cfg: good, ok: true},
		{name: "ok/http-loopback", cfg: edit(func(c *forward.Config) { c.URL = "http://127.0.0.1:8080/audit/ingest" }), ok: true},
		{name: "ok/dir-created", cfg: edit(func(c *forward.Config) { c.Dir = filepath.Join(t.TempDir(), "a", "b") }), ok: true},
		{name: "fail/http-remote", cfg: edit(func(c *forward.Config) { c.URL = "http://mandate.example/audit/ingest" })},
		{name: "fail/userinfo", cfg: edit(func(c *forward.Config) { c.URL = "https://rs:s@mandate.example/audit/ingest" })},
		{name: "fail/no-url", cfg: edit(func(c *forward.Config) { c.URL = "" })},
		{name: "fail/no-secret", cfg: edit(func(c *forward.Config) { c.ClientSecret = "" })},
		{name: "fail/no-client-id", cfg: edit(func(c *forward.Config) { c.ClientID = "" })},
		{name: "fail/negative-batch", cfg: edit(func(c *forward.Config) { c.BatchSize = -1 })},
		{name: "fail/negative-disk", cfg: edit(func(c *forward.Config) { c.MaxDiskBytes = -1 })},
		{name: "fail/dir-is-a-file", cfg: edit(func(c *forward.Config) { c.Dir = file })},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := forward.New(t.Context(), tc.cfg)
			if (err == nil) != tc.ok {
				t.Fatalf("NewForwarder error = %v, want ok = %v", err, tc.ok)
			}
			if f != nil {
				if err := f.Close(t.Context()); err != nil {
					t.Errorf("Close: %v", err)
				}
			}
			if err != nil && strings.Contains(err.Error(), tc.cfg.ClientSecret) && tc.cfg.ClientSecret != "" {
				t.Errorf("error %q shows the secret", err)
			}
		})
	}
}

// TestForwarderDeliversMiddlewareRecords: the records of a Verifier reach
// the ingest endpoint with every field, and never the token.
func TestForwarderDeliversMiddlewareRecords(t *testing.T) {
	s := newIngestServer(t)
	fw := startForwarder(t, t.Context(), forwarderConfig(s, func(c *forward.Config) { c.BatchSize = 100 }))
	fx := newFixture(t)
	v := fx.verifier(t, func(c *verify.Config) { c.Records = fw })
	tok := fx.token(claims())
	h := v.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		verify.SetAction(r.Context(), "expense:approve", "expense/1")
		verify.Attribute(r.Context(), "amount", "487.50")
		verify.Refused(r.Context(), "limit_exceeded")
		w.WriteHeader(http.StatusForbidden)
	}))
	req := request(tok)
	req.Header.Set("X-Request-Id", "trace-1")
	h.ServeHTTP(httptest.NewRecorder(), req)
	h.ServeHTTP(httptest.NewRecorder(), request("garbage."+tok))
	if err := fw.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	stored, bodies := slices.Clone(s.stored), strings.Join(s.bodies, "\n")
	s.mu.Unlock()
	if len(stored) != 2 {
		t.Fatalf("stored %d records, want 2", len(stored))
	}
	for _, part := range strings.Split(tok, ".") {
		if strings.Contains(bodies, part) {
			t.Fatal("a request to the ingest endpoint holds the token")
		}
	}
	for _, r := range stored {
		if !recordID.MatchString(r["id"].(string)) || r["time"] != "2025-06-15T15:06:40Z" {
			t.Errorf("id %v, time %v", r["id"], r["time"])
		}
		delete(r, "id")
		delete(r, "time")
	}
	want := []map[string]any{
		{
			"action": "expense:approve", "resource": "expense/1", "result": "refused", "reason": "limit_exceeded",
			"performed_by": "agent:argocd", "on_behalf_of": "user:sam", "chain": []any{"agent:argocd", "agent:infrabot"},
			"scopes": []any{"deploy:create", "monitoring:read"}, "audience": audience, "jti": "jti-1", "request_id": "trace-1",
			"attributes": map[string]any{"amount": "487.50"}, "context": map[string]any{"environment": "prod", "trigger": "ci_pipeline"},
		},
		{"action": "POST", "resource": "/deploys", "result": "refused", "reason": "token_malformed", "performed_by": "", "audience": audience},
	}
	if diff := cmp.Diff(want, stored); diff != "" {
		t.Errorf("stored records (-want +got):\n%s", diff)
	}
	if st := fw.Stats(); st.Sent != 2 || st.Queued != 0 || st.Dropped != 0 {
		t.Errorf("Stats = %+v", st)
	}
}

func TestForwarderBatches(t *testing.T) {
	t.Run("ok/by-size", func(t *testing.T) {
		s := newIngestServer(t)
		f := startForwarder(t, t.Context(), forwarderConfig(s)) // BatchSize 5, FlushEvery 1 h
		recordRange(f, 1, 12)
		feedtest.Eventually(t, "two full batches", func() bool { return len(s.storedIDs()) == 10 })
		if got := f.Stats().Queued; got != 2 {
			t.Errorf("Queued = %d, want 2 (a partial batch waits for FlushEvery)", got)
		}
		if err := f.Close(t.Context()); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]int{5, 5, 2}, s.requestSizes()); diff != "" {
			t.Errorf("records per request (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(ids(1, 12), s.storedIDs()); diff != "" {
			t.Errorf("stored (-want +got):\n%s", diff)
		}
	})
	t.Run("ok/by-time", func(t *testing.T) {
		s := newIngestServer(t)
		f := startForwarder(t, t.Context(), forwarderConfig(s, func(c *forward.Config) {
			c.BatchSize, c.FlushEvery = 100, 10*time.Millisecond
		}))
		recordRange(f, 1, 3)
		feedtest.Eventually(t, "a partial batch after FlushEvery", func() bool { return f.Stats().Sent == 3 })
		if diff := cmp.Diff(ids(1, 3), s.storedIDs()); diff != "" {
			t.Errorf("stored (-want +got):\n%s", diff)
		}
		if st := f.Stats(); st.Sent != 3 || st.LastSent.IsZero() {
			t.Errorf("Stats = %+v", st)
		}
	})
}

// TestForwarderOutage: while the server is down the records go to Dir;
// when it is back every one is stored once, in order, also when another
// Forwarder takes over the Dir.
func TestForwarderOutage(t *testing.T) {
	for _, down := range []string{"503", "429", "hangup"} {
		for _, restart := range []string{"", "close", "cancel"} {
			name := "ok/" + down
			if restart != "" {
				name += "/restart-after-" + restart
			}
			t.Run(name, func(t *testing.T) {
				s := newIngestServer(t)
				s.set(func(s *ingestServer) { s.down = down })
				dir := t.TempDir()
				cfg := forwarderConfig(s, func(c *forward.Config) { c.Dir, c.FlushEvery = dir, 5*time.Millisecond })
				ctx, cancel := context.WithCancel(t.Context())
				defer cancel()
				f1 := startForwarder(t, ctx, cfg)
				recordRange(f1, 1, 12)
				feedtest.Eventually(t, "12 records in Dir", func() bool { return f1.Stats().Buffered == 12 })
				if diff := cmp.Diff(ids(1, 12), dirIDs(t, dir)); diff != "" {
					t.Errorf("records in Dir (-want +got):\n%s", diff)
				}
				for _, name := range dirFiles(t, dir) {
					if !strings.HasPrefix(name, "records-") || !strings.HasSuffix(name, ".jsonl") {
						t.Errorf("file %q in Dir", name)
					}
				}
				recordRange(f1, 13, 15)
				f := f1
				if restart != "" {
					if restart == "cancel" {
						cancel()
					}
					if err := f1.Close(t.Context()); err != nil {
						t.Fatalf("Close: %v", err)
					}
					if st := f1.Stats(); st.Buffered != 15 || st.Queued != 0 || st.Dropped != 0 || st.Sent != 0 {
						t.Fatalf("Stats after Close = %+v, want the 15 records in Dir", st)
					}
					if diff := cmp.Diff(ids(1, 15), dirIDs(t, dir)); diff != "" {
						t.Errorf("records in Dir (-want +got):\n%s", diff)
					}
					f = startForwarder(t, t.Context(), cfg)
					if st := f.Stats(); st.Buffered != 15 {
						t.Errorf("the new Forwarder sees %d records in Dir, want 15", st.Buffered)
					}
				}
				s.set(func(s *ingestServer) { s.down = "" })
				feedtest.Eventually(t, "every record stored", func() bool { return len(s.storedIDs()) == 15 })
				if diff := cmp.Diff(ids(1, 15), s.storedIDs()); diff != "" {
					t.Errorf("stored (-want +got):\n%s", diff)
				}
				// The server stores a batch before it answers: the last one
				// may be stored, and Dir empty, before its answer is counted.
				feedtest.Eventually(t, "Dir emptied and every answer counted", func() bool {
					st := f.Stats()
					return len(dirFiles(t, dir)) == 0 && st.Buffered == 0 && st.Sent == 15
				})
				// Stored once each (above); and sent once each, except that
				// a request cancelled in flight when the first Forwarder's
				// context ended may have reached the server: its answer is
				// unknown, so it is sent again, which the id makes harmless.
				if n := s.resends(); n != 0 && restart != "cancel" {
					t.Errorf("%d records sent twice", n)
				}
				if st := f.Stats(); st.Sent != 15 || st.Buffered != 0 || st.BufferedBytes != 0 || st.Dropped != 0 || st.Corrupt != 0 {
					t.Errorf("Stats = %+v", st)
				}
				recordRange(f, 16, 17)
				if err := f.Close(t.Context()); err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(ids(1, 17), s.storedIDs()); diff != "" {
					t.Errorf("stored after Close (-want +got):\n%s", diff)
				}
			})
		}
	}
}

// TestForwarderWithoutDir: the records wait in memory while the server is
// down; Close drops (and reports) what it cannot deliver.
func TestForwarderWithoutDir(t *testing.T) {
	s := newIngestServer(t)
	s.set(func(s *ingestServer) { s.down = "503" })
	f := startForwarder(t, t.Context(), forwarderConfig(s, func(c *forward.Config) { c.FlushEvery = 5 * time.Millisecond }))
	recordRange(f, 1, 12)
	<-s.entered
	<-s.entered // retried
	if st := f.Stats(); st.Queued != 12 {
		t.Errorf("Queued = %d, want 12 in memory", st.Queued)
	}
	s.set(func(s *ingestServer) { s.down = "" })
	feedtest.Eventually(t, "every record stored", func() bool { return len(s.storedIDs()) == 12 })
	if diff := cmp.Diff(ids(1, 12), s.storedIDs()); diff != "" {
		t.Errorf("stored (-want +got):\n%s", diff)
	}
	s.set(func(s *ingestServer) { s.down = "hangup" })
	for len(s.entered) > 0 {
		<-s.entered
	}
	recordRange(f, 13, 14)
	<-s.entered // a failed attempt
	err := f.Close(t.Context())
	if err == nil || !strings.Contains(err.Error(), "2 records") {
		t.Errorf("Close error = %v, want 2 records lost", err)
	}
	if st := f.Stats(); st.Dropped != 2 || st.Sent != 12 || st.Queued != 0 {
		t.Errorf("Stats = %+v", st)
	}
	f.Record(testRecord(15))
	if st := f.Stats(); st.Dropped != 3 {
		t.Errorf("a record after Close: Dropped = %d, want 3", st.Dropped)
	}
}

// TestForwarderQueueFullNeverBlocks: with the sender stuck on a server
// that does not answer, Record keeps returning, and drops and counts what
// does not fit.
func TestForwarderQueueFullNeverBlocks(t *testing.T) {
	s := newIngestServer(t)
	release := make(chan struct{})
	s.set(func(s *ingestServer) { s.block = release })
	const maxQueued = 10
	f := startForwarder(t, t.Context(), forwarderConfig(s, func(c *forward.Config) { c.MaxQueued = maxQueued }))
	recordRange(f, 1, 5) // one batch: the sender takes it and waits on the server
	<-s.entered
	returned := make(chan struct{})
	go func() {
		defer close(returned)
		recordRange(f, 6, 5+2*maxQueued)
	}()
	select {
	case <-returned:
	case <-time.After(10 * time.Second):
		t.Fatal("Record blocked with the queue full")
	}
	if st := f.Stats(); st.Queued != maxQueued || st.Dropped != maxQueued {
		t.Errorf("Stats = %+v, want %d queued and %d dropped", st, maxQueued, maxQueued)
	}
	close(release)
	if err := f.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(ids(1, 15), s.storedIDs()); diff != "" {
		t.Errorf("stored (-want +got):\n%s", diff)
	}
}

// TestForwarderMaxDiskBytes: a batch that would take Dir beyond
// MaxDiskBytes is dropped and counted; what is in Dir is delivered.
func TestForwarderMaxDiskBytes(t *testing.T) {
	line, err := json.Marshal(testRecord(1))
	if err != nil {
		t.Fatal(err)
	}
	fileSize := int64(5 * (len(line) + 1))
	s := newIngestServer(t)
	s.set(func(s *ingestServer) { s.down = "503" })
	dir := t.TempDir()
	f := startForwarder(t, t.Context(), forwarderConfig(s, func(c *forward.Config) {
		c.Dir, c.MaxDiskBytes = dir, 2*fileSize+fileSize/2
	}))
	for i, want := range []forward.Stats{
		{Buffered: 5, BufferedBytes: fileSize},
		{Buffered: 10, BufferedBytes: 2 * fileSize},
		{Buffered: 10, BufferedBytes: 2 * fileSize, Dropped: 5},
		{Buffered: 10, BufferedBytes: 2 * fileSize, Dropped: 10},
	} {
		recordRange(f, 5*i+1, 5*i+5)
		feedtest.Eventually(t, fmt.Sprintf("batch %d handled", i+1), func() bool {
			st := f.Stats()
			return st.Buffered+st.Dropped == want.Buffered+want.Dropped
		})
		if diff := cmp.Diff(want, f.Stats()); diff != "" {
			t.Errorf("after batch %d, Stats (-want +got):\n%s", i+1, diff)
		}
	}
	s.set(func(s *ingestServer) { s.down = "" })
	feedtest.Eventually(t, "the buffered records stored", func() bool { return len(s.storedIDs()) == 10 })
	if diff := cmp.Diff(ids(1, 10), s.storedIDs()); diff != "" {
		t.Errorf("stored (-want +got):\n%s", diff)
	}
}

// TestForwarderRejected: a 4xx other than 429 refuses the records: they
// are counted, logged once per kind without the secret, and dropped, not
// retried.
func TestForwarderRejected(t *testing.T) {
	for _, tc := range []struct {
		name     string
		secret   string
		status   int
		code     string
		batch    int
		requests int
	}{
		{name: "fail/401-bad-credentials", secret: "wrong s3cr:t", status: 401, code: "invalid_client", batch: 5, requests: 2},
		// 400: halves too, so that only the records refused alone are lost.
		{name: "fail/400-split-then-refused", status: 400, code: "invalid_request", batch: 5, requests: 12},
		{name: "fail/403", status: 403, code: "access_denied", batch: 5, requests: 2},
		// 413: halves until single records are refused: 5 → 9 requests, 2 → 3.
		{name: "fail/413-split-then-refused", status: 413, code: "request_too_large", batch: 5, requests: 12},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newIngestServer(t)
			if tc.secret == "" {
				s.set(func(s *ingestServer) { s.status, s.code = tc.status, tc.code })
			}
			var logs feedtest.SyncBuffer
			dir := t.TempDir()
			f := startForwarder(t, t.Context(), forwarderConfig(s, func(c *forward.Config) {
				c.Dir, c.BatchSize = dir, tc.batch
				c.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
				if tc.secret != "" {
					c.ClientSecret = tc.secret
				}
			}))
			recordRange(f, 1, 7)
			if err := f.Close(t.Context()); err != nil {
				t.Fatal(err)
			}
			if st := f.Stats(); st.Rejected != 7 || st.Sent != 0 || st.Buffered != 0 || st.Dropped != 0 {
				t.Errorf("Stats = %+v, want 7 rejected", st)
			}
			if n := len(s.entered); n != tc.requests {
				t.Errorf("%d requests, want %d (no retry of refused records)", n, tc.requests)
			}
			if files := dirFiles(t, dir); len(files) != 0 {
				t.Errorf("files in Dir: %v", files)
			}
			var errors []map[string]any
			for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
				var m map[string]any
				if err := json.Unmarshal([]byte(line), &m); err != nil {
					t.Fatalf("log line %q: %v", line, err)
				}
				if m["level"] == "ERROR" {
					errors = append(errors, m)
				}
			}
			if len(errors) != 1 || errors[0]["status"] != float64(tc.status) || errors[0]["error"] != tc.code {
				t.Errorf("error logs = %v, want one with status %d and error %q", errors, tc.status, tc.code)
			}
			if l := logs.String(); tc.secret != "" && (strings.Contains(l, tc.secret) || strings.Contains(l, base64.StdEncoding.EncodeToString([]byte(tc.secret))[:8])) {
				t.Errorf("logs show the secret: %s", l)
			}
		})
	}
}

// TestForwarderTornFile: files a crashed process left in Dir, one with a
// torn line and one never renamed, are sent; what cannot be read is
// skipped and counted.
func TestForwarderTornFile(t *testing.T) {
	line := func(i int) string { return mustJSON(testRecord(i)) + "\n" }
	dir := t.TempDir()
	write := func(name, data string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(forward.BufferFileName(1), line(1)+line(2)[:40]+"\n"+line(3))
	write(forward.BufferFileName(2), line(4)+"not json\n"+line(5))
	write(forward.BufferFileName(3)+".tmp", line(6)+line(7)[:30]) // the crash came mid-write
	write("unrelated.txt", "left alone")
	s := newIngestServer(t)
	f := startForwarder(t, t.Context(), forwarderConfig(s, func(c *forward.Config) { c.Dir = dir }))
	feedtest.Eventually(t, "the readable records stored", func() bool { return len(s.storedIDs()) == 5 })
	if diff := cmp.Diff([]string{testRecord(1).ID, testRecord(3).ID, testRecord(4).ID, testRecord(5).ID, testRecord(6).ID}, s.storedIDs()); diff != "" {
		t.Errorf("stored (-want +got):\n%s", diff)
	}
	feedtest.Eventually(t, "Dir emptied", func() bool { return len(dirFiles(t, dir)) == 1 && f.Stats().Buffered == 0 })
	if st := f.Stats(); st.Corrupt != 3 || st.Buffered != 0 || st.BufferedBytes != 0 || st.Sent != 5 {
		t.Errorf("Stats = %+v, want 3 corrupt, 5 sent", st)
	}
	// New batches are numbered after the files found.
	s.set(func(s *ingestServer) { s.down = "503" })
	recordRange(f, 8, 12)
	feedtest.Eventually(t, "a new file", func() bool { return f.Stats().Buffered == 5 })
	if got := dirFiles(t, dir); !slices.Contains(got, forward.BufferFileName(4)) {
		t.Errorf("files = %v, want %s", got, forward.BufferFileName(4))
	}
}

func TestForwarderWriteMetrics(t *testing.T) {
	s := newIngestServer(t)
	f := startForwarder(t, t.Context(), forwarderConfig(s, func(c *forward.Config) {
		c.MaxQueued, c.Now = 5, func() time.Time { return epoch }
	}))
	recordRange(f, 1, 5)
	feedtest.Eventually(t, "a batch stored", func() bool { return f.Stats().Sent == 5 })
	var b bytes.Buffer
	if err := f.WriteMetrics(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"# TYPE mandate_records_sent_total counter\nmandate_records_sent_total 5\n",
		"mandate_records_queued 0\n",
		"mandate_records_buffered 0\n",
		"mandate_records_buffered_bytes 0\n",
		"mandate_records_dropped_total 0\n",
		"mandate_records_rejected_total 0\n",
		"mandate_records_corrupt_total 0\n",
		fmt.Sprintf("mandate_records_last_sent_timestamp_seconds %d\n", epoch.Unix()),
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("metrics lack %q:\n%s", want, b.String())
		}
	}
}

func FuzzReadBufferFile(f *testing.F) {
	full := mustJSON(verify.Record{
		ID: "req_0123456789abcdef0123456789abcdef", Time: epoch.UTC(), Action: "a", Resource: "r", Result: "granted",
		Chain: []string{"x"}, Attributes: map[string]string{"k": "v"}, Context: map[string]any{"n": 1e300, "deep": []any{map[string]any{"a": nil}}},
	})
	for _, seed := range []string{
		full + "\n" + mustJSON(testRecord(2)) + "\n",
		full[:len(full)/2],
		full + "\n" + full[:10] + "\n" + full,
		"\n\n  \n",
		`{"id":"x","time":"2025-01-01T00:00:00+01:00","result":"granted","context":{"n":12345678901234567890}}`,
		`{"id":"x","time":"0000-01-01T00:00:00-01:00","result":"granted"}`,
		`{"id":"x","time":null,"result":"granted"}`,
		`null`, `[]`, `{"id":"x","id":"y","time":"2025-01-01T00:00:00Z","result":"r"}`,
		"{\"id\":\"\xff\",\"time\":\"2025-01-01T00:00:00Z\",\"result\":\"r\"}",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		recs, bad := forward.ReadBufferFile(data)
		lines := 0
		for _, l := range bytes.Split(data, []byte("\n")) {
			if len(bytes.TrimSpace(l)) > 0 {
				lines++
			}
		}
		if len(recs)+bad != lines {
			t.Fatalf("%d records and %d unreadable of %d lines", len(recs), bad, lines)
		}
		for _, r := range recs {
			if strings.Contains(r, "\n") {
				t.Fatalf("a record spans lines: %q", r)
			}
			again, bad := forward.ReadBufferFile([]byte(r + "\n"))
			if bad != 0 || len(again) != 1 || again[0] != r {
				t.Fatalf("a record read back differs: %q → %q (%d unreadable)", r, again, bad)
			}
			var rec verify.Record
			dec := json.NewDecoder(strings.NewReader(r))
			dec.UseNumber() // as the reader does: Context numbers stay exact
			if err := dec.Decode(&rec); err != nil || rec.ID == "" || rec.Result == "" || rec.Time.IsZero() {
				t.Fatalf("a record without id, time or result: %q", r)
			}
		}
	})
}
