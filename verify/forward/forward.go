package forward

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mandate-dev/mandate/verify"
	"github.com/mandate-dev/mandate/verify/internal/backchannel"
	"github.com/mandate-dev/mandate/verify/internal/clean"
)

// Defaults of a Forwarder.
const (
	// DefaultMaxQueued is how many records a Forwarder holds in memory.
	DefaultMaxQueued = 10000
	// DefaultMaxDiskBytes bounds the files a Forwarder keeps in its Dir.
	DefaultMaxDiskBytes = 64 << 20
	// DefaultBatchSize is the most records sent in one request.
	DefaultBatchSize = 200
	// DefaultFlushEvery is how long a record waits for its batch to fill.
	DefaultFlushEvery = time.Second

	forwardBackoffMin = 250 * time.Millisecond
	forwardBackoffMax = 30 * time.Second
	// forwardTimeout bounds one request to the ingest endpoint, whatever
	// the HTTPClient: a server that never answers must not hold the
	// records behind it for longer.
	forwardTimeout = 30 * time.Second
	// forwardLogEvery is how often one kind of trouble is logged again
	// while it lasts.
	forwardLogEvery = 10 * time.Minute
	// maxErrorCode bounds the server's error code copied into the log.
	maxErrorCode = 64
	// maxAnswer bounds what is read of the server's 200 answer, which
	// names each refused record.
	maxAnswer = 1 << 20
	// maxErrorBody is what is read of an error answer.
	maxErrorBody = 4 << 10
)

// Config configures a Forwarder. URL, ClientID and ClientSecret
// are required.
type Config struct {
	// URL is the issuer's record ingest endpoint, such as
	// "https://mandate.example/audit/ingest". It must be https; plain http
	// is accepted for loopback hosts only (localhost, 127.0.0.0/8, ::1),
	// as the client secret travels with every request.
	URL string
	// ClientID and ClientSecret are this resource server's client
	// credentials at the issuer, sent with HTTP Basic authentication,
	// each form-urlencoded first (RFC 6749 §2.3.1). The secret is never
	// logged.
	ClientID, ClientSecret string
	// Dir, when set, is where batches the server cannot take yet are kept
	// until it can, so that they survive an outage and a restart: one file
	// per batch, named records-<20-digit sequence>.jsonl (a JSON record
	// per line), written to a temporary name, synced and renamed. Files
	// found there at start, a previous process's, are sent first. The
	// directory is created (0700) if missing; one Forwarder per Dir. When
	// empty, records wait only in memory and are lost with the process.
	Dir string
	// MaxQueued is how many records wait in memory for their batch (and,
	// without Dir, for the server); zero means DefaultMaxQueued (10000).
	// Record drops and counts a record that finds the queue full.
	MaxQueued int
	// MaxDiskBytes bounds the files in Dir; zero means DefaultMaxDiskBytes
	// (64 MiB). A batch that would go beyond it is dropped and counted.
	MaxDiskBytes int64
	// BatchSize is the most records sent in one request; zero means
	// DefaultBatchSize (200). A batch is sent as soon as BatchSize records
	// wait.
	BatchSize int
	// FlushEvery is the longest a record waits for its batch to fill; zero
	// means DefaultFlushEvery (1 s).
	FlushEvery time.Duration
	// HTTPClient makes the requests; nil means a client with dial, TLS
	// handshake and response-header timeouts of 10 s. Each request is cut
	// after 30 s in any case. Redirects are never followed.
	HTTPClient *http.Client
	// Logger receives delivery failures, refusals by the server and
	// dropped records, each kind once until it changes (and again every
	// 10 minutes while it lasts); nil means none.
	Logger *slog.Logger
	// Now is the clock of Stats.LastSent; nil means time.Now.
	Now func() time.Time
}

// Stats counts what a Forwarder did with the records it was
// given. Once it is closed, every record Record was given is counted in
// exactly one of Sent, Rejected, Dropped, Corrupt and Buffered (those of
// a previous process's files in Dir are counted too).
type Stats struct {
	// Sent is the number of records the server stored (answered 200).
	Sent int64
	// Queued is the number of records waiting in memory.
	Queued int64
	// Buffered and BufferedBytes are the records (lines) and bytes in
	// files in Dir, waiting for the server.
	Buffered, BufferedBytes int64
	// Dropped is the number of records lost on this side: the queue was
	// full, Dir was full or could not be written, or, without Dir, the
	// server could not take them when Close ran.
	Dropped int64
	// Rejected is the number of records the server refused, which are not
	// retried: those of a batch answered with a 4xx other than 429 (a
	// batch of several answered 400 or 413 is split in halves first, so
	// that only the records refused on their own are lost), and those a
	// 200 answer names as refused (the issuer judges each record alone).
	Rejected int64
	// Corrupt is the number of unreadable lines skipped in files of Dir,
	// such as a line torn by a crash.
	Corrupt int64
	// LastSent is when the server last stored a batch; zero before the
	// first.
	LastSent time.Time
}

// Forwarder sends the records a Verifier's Middleware makes to the issuer,
// in batches, in order, and survives the issuer's outages: set it as
// verify.Config.Records, which it implements (verify.RecordSink).
// Build it with New; it is safe for concurrent use.
//
// Record never blocks: it puts the record on a bounded queue, or drops and
// counts it when the queue is full. A goroutine sends a batch (POST URL,
// {"records":[…]}) when BatchSize records wait or FlushEvery passes. A 200
// answer means the server stored every record of the batch; as the server
// ignores ids it already has, a batch is sent again whenever that answer
// is not known. When the server cannot be reached, or answers 5xx or 429,
// the batch goes to a file in Dir (or, without Dir, waits in memory), and
// the Forwarder retries the oldest batch with back-off from 250 ms to
// 30 s, honouring Retry-After; later batches go to Dir behind it until the
// backlog is sent. A file is deleted only after a 200. A 200 answer may
// name records the server refused on their own (a field it does not take,
// an audience the client may not report for): only those are dropped,
// counted as Rejected and logged. A 4xx answer other than 429 means the
// server refuses those records (bad credentials, a malformed batch): they
// are logged, counted as Rejected and dropped; a 400 or 413 batch of
// several records is split in halves first, so that one bad record never
// costs the others.
type Forwarder struct {
	cfg    Config
	client *http.Client
	log    *slog.Logger
	// backoffMin and backoffMax bound the wait between attempts.
	backoffMin, backoffMax time.Duration

	// mu guards closed against Record: after Close nothing more enters
	// the queue.
	mu     sync.RWMutex
	closed bool
	queue  chan verify.Record
	kick   chan struct{} // a batch is full
	stop   chan struct{} // closed by Close
	done   chan struct{} // closed when the goroutine has returned
	once   sync.Once
	cancel context.CancelFunc
	// lost is what the goroutine could neither deliver nor buffer when it
	// stopped; Close returns it.
	lost int64

	sent, rejected, corrupt, held  atomic.Int64
	droppedQueue, droppedOther     atomic.Int64
	bufferedRecords, bufferedBytes atomic.Int64
	lastSent                       atomic.Int64 // Unix nanoseconds; 0 before the first

	// Owned by the goroutine.
	backlog  []*pendingBatch // oldest first: files in Dir, or the held batch without Dir
	nextSeq  uint64          // of the next file in Dir
	waiting  bool            // for the retry timer before the next attempt
	backoff  time.Duration
	retry    *time.Timer
	logged   map[string]time.Time // kinds of trouble logged, and when
	dropSeen int64                // droppedQueue when last logged
}

// pendingBatch is a batch waiting for the server: a file in Dir (path set),
// or, without Dir, the batch that failed (recs loaded, no path).
type pendingBatch struct {
	path   string
	size   int64 // bytes on disk
	lines  int64 // records on disk, corrupt ones included
	recs   [][]byte
	loaded bool
	sent   int // leading recs settled
}

// New checks cfg, opens Dir (creating it if missing) and takes
// the files a previous process left there, and starts sending in a
// goroutine that runs until Close or until ctx ends; when ctx ends it
// stops as Close would, without sending. It does not contact the server.
func New(ctx context.Context, cfg Config) (*Forwarder, error) {
	f, err := newForwarder(cfg)
	if err != nil {
		return nil, err
	}
	f.start(ctx)
	return f, nil
}

// newForwarder checks cfg, fills in the defaults and opens Dir; the
// Forwarder has not started.
func newForwarder(cfg Config) (*Forwarder, error) {
	errs := backchannel.Check("forward: Config", cfg.URL, cfg.ClientID, cfg.ClientSecret)
	if cfg.MaxQueued < 0 || cfg.MaxDiskBytes < 0 || cfg.BatchSize < 0 || cfg.FlushEvery < 0 {
		errs = append(errs, errors.New("forward: Config.MaxQueued, MaxDiskBytes, BatchSize and FlushEvery must not be negative"))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	cfg.MaxQueued = cmp.Or(cfg.MaxQueued, DefaultMaxQueued)
	cfg.MaxDiskBytes = cmp.Or(cfg.MaxDiskBytes, DefaultMaxDiskBytes)
	cfg.BatchSize = cmp.Or(cfg.BatchSize, DefaultBatchSize)
	cfg.FlushEvery = cmp.Or(cfg.FlushEvery, DefaultFlushEvery)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	client, log := backchannel.Client(cfg.HTTPClient, cfg.Logger)
	f := &Forwarder{
		cfg:        cfg,
		client:     client,
		log:        log,
		backoffMin: forwardBackoffMin,
		backoffMax: forwardBackoffMax,
		queue:      make(chan verify.Record, cfg.MaxQueued),
		kick:       make(chan struct{}, 1),
		stop:       make(chan struct{}),
		done:       make(chan struct{}),
		nextSeq:    1,
		logged:     make(map[string]time.Time),
	}
	if cfg.Dir != "" {
		if err := f.openDir(); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// start runs the goroutine until Close or until ctx ends.
func (f *Forwarder) start(ctx context.Context) {
	ctx, f.cancel = context.WithCancel(ctx)
	f.backoff = f.backoffMin
	f.retry = time.NewTimer(time.Hour)
	f.retry.Stop()
	go f.run(ctx)
}

// Record queues r to be sent. It never blocks: when MaxQueued records
// already wait, or after Close, r is dropped and counted in
// Stats().Dropped.
func (f *Forwarder) Record(r verify.Record) {
	f.mu.RLock()
	if f.closed {
		f.mu.RUnlock()
		f.droppedOther.Add(1)
		return
	}
	select {
	case f.queue <- r:
		full := len(f.queue) >= min(f.cfg.BatchSize, f.cfg.MaxQueued)
		f.mu.RUnlock()
		if full {
			select {
			case f.kick <- struct{}{}:
			default:
			}
		}
	default:
		f.mu.RUnlock()
		f.droppedQueue.Add(1)
	}
}

// Close stops taking records, sends those queued (to the server while it
// answers, to Dir when it does not or once ctx ends) and stops the
// goroutine; files in Dir stay for the next Forwarder on it. ctx bounds
// the sending, not the writing to Dir. Close returns an error when records
// could be neither delivered nor buffered (without Dir, or with Dir full
// or failing); they are counted in Stats().Dropped. Calling it again
// returns the same.
func (f *Forwarder) Close(ctx context.Context) error {
	f.once.Do(func() {
		f.mu.Lock()
		f.closed = true
		f.mu.Unlock()
		close(f.stop)
	})
	stop := context.AfterFunc(ctx, f.cancel)
	defer stop()
	<-f.done
	f.cancel()
	if f.lost > 0 {
		return fmt.Errorf("forward: %d records could not be delivered or buffered", f.lost)
	}
	return nil
}

// Stats returns the Forwarder's counts.
func (f *Forwarder) Stats() Stats {
	s := Stats{
		Sent:          f.sent.Load(),
		Queued:        int64(len(f.queue)) + f.held.Load(),
		Buffered:      f.bufferedRecords.Load(),
		BufferedBytes: f.bufferedBytes.Load(),
		Dropped:       f.droppedQueue.Load() + f.droppedOther.Load(),
		Rejected:      f.rejected.Load(),
		Corrupt:       f.corrupt.Load(),
	}
	if t := f.lastSent.Load(); t != 0 {
		s.LastSent = time.Unix(0, t)
	}
	return s
}

// WriteMetrics writes the Forwarder's Stats to w in the Prometheus text
// exposition format: mandate_records_sent_total,
// mandate_records_rejected_total, mandate_records_dropped_total and
// mandate_records_corrupt_total (counters), mandate_records_queued,
// mandate_records_buffered, mandate_records_buffered_bytes and
// mandate_records_last_sent_timestamp_seconds (gauges, 0 before the first
// batch is stored).
func (f *Forwarder) WriteMetrics(w io.Writer) error {
	s := f.Stats()
	var b []byte
	metric := func(name, typ, help string, value int64) {
		b = fmt.Appendf(b, "# HELP %s %s\n# TYPE %s %s\n%s %d\n", name, help, name, typ, name, value)
	}
	metric("mandate_records_sent_total", "counter", "Records the issuer stored.", s.Sent)
	metric("mandate_records_rejected_total", "counter", "Records the issuer refused (4xx), not retried.", s.Rejected)
	metric("mandate_records_dropped_total", "counter", "Records dropped here: queue or disk buffer full, or not deliverable at Close.", s.Dropped)
	metric("mandate_records_corrupt_total", "counter", "Unreadable lines skipped in the disk buffer.", s.Corrupt)
	metric("mandate_records_queued", "gauge", "Records waiting in memory.", s.Queued)
	metric("mandate_records_buffered", "gauge", "Records waiting in the disk buffer.", s.Buffered)
	metric("mandate_records_buffered_bytes", "gauge", "Bytes of the disk buffer.", s.BufferedBytes)
	var last int64
	if !s.LastSent.IsZero() {
		last = s.LastSent.Unix()
	}
	metric("mandate_records_last_sent_timestamp_seconds", "gauge", "When the issuer last stored a batch (Unix seconds).", last)
	_, err := w.Write(b)
	return err
}

// run sends batches until Close or until ctx ends.
func (f *Forwarder) run(ctx context.Context) {
	defer close(f.done)
	tick := time.NewTicker(f.cfg.FlushEvery)
	defer tick.Stop()
	// ready is closed: a select case on it is always ready.
	ready := make(chan struct{})
	close(ready)
	for {
		f.noteDrops(ctx)
		// With a backlog to send and no backoff running, send one batch of
		// it per turn, so that new records keep being batched (to Dir,
		// behind it) while a long one drains; otherwise wait.
		var sendBacklog <-chan struct{}
		if !f.waiting && len(f.backlog) > 0 {
			sendBacklog = ready
		}
		select {
		case <-ctx.Done():
			f.finish(ctx)
			return
		case <-f.stop:
			f.finish(ctx)
			return
		case <-f.kick:
			f.flush(ctx, false)
		case <-tick.C:
			f.flush(ctx, true)
		case <-f.retry.C:
			f.waiting = false
		case <-sendBacklog:
			f.sendBacklog(ctx)
			if len(f.backlog) == 0 {
				f.flush(ctx, false)
			}
		}
	}
}

// take removes the next batch from the queue: BatchSize records, or, when
// partial, what is there; nil when there is no such batch.
func (f *Forwarder) take(partial bool) []verify.Record {
	n := len(f.queue)
	if n == 0 || (!partial && n < min(f.cfg.BatchSize, f.cfg.MaxQueued)) {
		return nil
	}
	n = min(n, f.cfg.BatchSize)
	recs := make([]verify.Record, n)
	for i := range recs {
		recs[i] = <-f.queue // only this goroutine receives: n are there
	}
	return recs
}

// encode marshals recs, dropping (and counting) any that cannot be.
func (f *Forwarder) encode(ctx context.Context, recs []verify.Record) [][]byte {
	out := make([][]byte, 0, len(recs))
	for i := range recs {
		b, err := json.Marshal(&recs[i])
		if err != nil {
			f.droppedOther.Add(1)
			f.logOnce(ctx, "encode", slog.LevelError, "verify: record forwarder: a record cannot be encoded; dropping it", slog.String("error", err.Error()))
			continue
		}
		out = append(out, b)
	}
	return out
}

// flush sends the full batches of the queue, and the last partial one
// too when partial: straight to the server when nothing waits before
// them, else behind the backlog in Dir. Without Dir, nothing is taken
// while a batch waits for the server: the queue holds the rest.
func (f *Forwarder) flush(ctx context.Context, partial bool) {
	for {
		if f.cfg.Dir == "" && len(f.backlog) > 0 {
			return
		}
		recs := f.take(partial)
		if recs == nil {
			return
		}
		batch := f.encode(ctx, recs)
		if len(batch) == 0 {
			continue
		}
		if f.waiting || len(f.backlog) > 0 {
			f.writeBatch(ctx, batch)
			continue
		}
		n, again, wait := f.deliver(ctx, batch)
		if again {
			f.keep(ctx, batch[n:])
			f.retryAfter(wait)
		}
	}
}

// keep puts a batch the server could not take behind the backlog: in Dir,
// or in memory without Dir.
func (f *Forwarder) keep(ctx context.Context, batch [][]byte) {
	if f.cfg.Dir != "" {
		f.writeBatch(ctx, batch)
		return
	}
	f.backlog = append(f.backlog, &pendingBatch{recs: batch, loaded: true})
	f.held.Add(int64(len(batch)))
}

// sendBacklog sends the next BatchSize records of the oldest waiting
// batch, and forgets (deletes) the batch once all are settled.
func (f *Forwarder) sendBacklog(ctx context.Context) {
	p := f.backlog[0]
	if !p.loaded && !f.load(ctx, p) {
		return
	}
	if p.sent < len(p.recs) {
		chunk := p.recs[p.sent:min(p.sent+f.cfg.BatchSize, len(p.recs))]
		n, again, wait := f.deliver(ctx, chunk)
		p.sent += n
		if p.path == "" {
			f.held.Add(-int64(n))
		}
		if again {
			f.retryAfter(wait)
			return
		}
		if p.sent < len(p.recs) {
			return
		}
	}
	f.forget(ctx, p)
}

// retryAfter waits before the next attempt: the back-off with equal
// jitter (so that a fleet of resource servers does not retry in step), or
// the server's Retry-After when longer, up to backoffMax.
func (f *Forwarder) retryAfter(hint time.Duration) {
	wait := f.backoff/2 + rand.N(f.backoff/2+1)
	f.backoff = min(2*f.backoff, f.backoffMax)
	wait = min(max(wait, hint), f.backoffMax)
	f.waiting = true
	f.retry.Reset(wait)
}

// deliver sends batch and returns how many of its leading records are
// settled (stored, or refused by the server), and whether the rest must
// be sent again, after at least wait.
func (f *Forwarder) deliver(ctx context.Context, batch [][]byte) (settled int, again bool, wait time.Duration) {
	status, code, refused, wait, err := f.post(ctx, batch)
	switch {
	case err != nil:
		if ctx.Err() == nil {
			f.logOnce(ctx, "unreachable", slog.LevelWarn, "verify: record forwarder: the server cannot be reached; keeping the records",
				slog.String("error", err.Error()), slog.Int64("buffered", f.bufferedRecords.Load()))
		}
		return 0, true, 0
	case status == http.StatusOK:
		if len(refused) > 0 {
			f.rejected.Add(int64(len(refused)))
			for _, r := range refused {
				f.logOnce(ctx, "refused "+r.Reason, slog.LevelError, "verify: record forwarder: the server refuses a record; dropping it",
					slog.String("reason", r.Reason), slog.String("error", r.Description), slog.String("id", r.ID),
					slog.Int("refused", len(refused)))
			}
		}
		f.sent.Add(int64(len(batch) - len(refused)))
		f.lastSent.Store(f.cfg.Now().UnixNano())
		f.backoff = f.backoffMin
		_, unreachable := f.logged["unreachable"]
		if _, unavailable := f.logged["unavailable"]; unreachable || unavailable {
			f.log.LogAttrs(ctx, slog.LevelInfo, "verify: record forwarder: the server takes records again",
				slog.Int64("buffered", f.bufferedRecords.Load()))
		}
		delete(f.logged, "unreachable")
		delete(f.logged, "unavailable")
		return len(batch), false, 0
	case (status == http.StatusRequestEntityTooLarge || status == http.StatusBadRequest) && len(batch) > 1:
		// Too large, or a record the server refuses (an issuer that
		// refuses a batch for one record): halves, until the records it
		// refuses are alone.
		half := len(batch) / 2
		n, again, wait := f.deliver(ctx, batch[:half])
		if again {
			return n, again, wait
		}
		n, again, wait = f.deliver(ctx, batch[half:])
		return half + n, again, wait
	case status == http.StatusTooManyRequests || status >= 500:
		f.logOnce(ctx, "unavailable", slog.LevelWarn, "verify: record forwarder: the server cannot take records now; keeping them",
			slog.Int("status", status), slog.String("error", code), slog.Int64("buffered", f.bufferedRecords.Load()))
		return 0, true, wait
	case status >= 400:
		f.rejected.Add(int64(len(batch)))
		f.logOnce(ctx, "rejected "+strconv.Itoa(status)+" "+code, slog.LevelError, "verify: record forwarder: the server refuses records; dropping them",
			slog.Int("status", status), slog.String("error", code), slog.Int("records", len(batch)))
		return len(batch), false, 0
	default:
		// A redirect or another 2xx: nothing says the records are stored.
		f.logOnce(ctx, "status "+strconv.Itoa(status), slog.LevelError, "verify: record forwarder: unexpected answer; keeping the records",
			slog.Int("status", status))
		return 0, true, 0
	}
}

// refusedRecord is a record a 200 answer of the issuer names as refused.
type refusedRecord struct {
	Index       int    `json:"index"`
	ID          string `json:"id"`
	Reason      string `json:"reason"`
	Description string `json:"error_description"`
}

// post sends batch as {"records":[…]} and returns the status; for a 200,
// the records the answer names as refused (each once, with an index in
// the batch; their texts cleaned for the log); for an error answer the
// server's error code and Retry-After.
func (f *Forwarder) post(ctx context.Context, batch [][]byte) (status int, code string, refused []refusedRecord, retryAfter time.Duration, err error) {
	n := len(`{"records":[]}`) + len(batch)
	for _, r := range batch {
		n += len(r)
	}
	body := make([]byte, 0, n)
	body = append(body, `{"records":[`...)
	for i, r := range batch {
		if i > 0 {
			body = append(body, ',')
		}
		body = append(body, r...)
	}
	body = append(body, "]}"...)
	ctx, cancel := context.WithTimeout(ctx, forwardTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return 0, "", nil, 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.SetBasicAuth(url.QueryEscape(f.cfg.ClientID), url.QueryEscape(f.cfg.ClientSecret))
	resp, err := f.client.Do(req)
	if err != nil {
		return 0, "", nil, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
		return resp.StatusCode, "", refusedRecords(data, len(batch)), 0, nil
	}
	data, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	return resp.StatusCode, errorCode(data), nil, parseRetryAfter(resp.Header.Get("Retry-After")), nil
}

// refusedRecords reads the refused records of a 200 answer to a batch of
// n: each index once, within the batch; nothing from an answer it cannot
// read (an issuer that names none stored them all).
func refusedRecords(answer []byte, n int) []refusedRecord {
	var a struct {
		Refused []refusedRecord `json:"refused"`
	}
	if json.Unmarshal(answer, &a) != nil {
		return nil
	}
	seen := make(map[int]bool, len(a.Refused))
	out := a.Refused[:0]
	for _, r := range a.Refused {
		if r.Index < 0 || r.Index >= n || seen[r.Index] {
			continue
		}
		seen[r.Index] = true
		r.ID, r.Reason, r.Description = clean.String(r.ID, 64), clean.String(r.Reason, maxErrorCode), clean.String(r.Description, 256)
		out = append(out, r)
	}
	return out
}

// errorCode returns the error member of an OAuth-style error body when it
// is a short code of the RFC 6749 §5.2 characters, and "" otherwise: it
// goes to the log.
func errorCode(body []byte) string {
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(body, &e) != nil || len(e.Error) > maxErrorCode {
		return ""
	}
	for i := 0; i < len(e.Error); i++ {
		if c := e.Error[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			return ""
		}
	}
	return e.Error
}

// parseRetryAfter reads a Retry-After of delay-seconds (RFC 9110 §10.2.3);
// 0 for anything else.
func parseRetryAfter(v string) time.Duration {
	s, err := strconv.Atoi(v)
	if err != nil || s < 0 {
		return 0
	}
	return time.Duration(min(s, 3600)) * time.Second
}

// logOnce logs a kind of trouble once, and again after forwardLogEvery
// while it lasts.
func (f *Forwarder) logOnce(ctx context.Context, kind string, level slog.Level, msg string, attrs ...slog.Attr) {
	now := f.cfg.Now()
	if at, ok := f.logged[kind]; ok && now.Sub(at) < forwardLogEvery {
		return
	}
	if len(f.logged) >= 64 { // kinds named by the server: keep the map small
		clear(f.logged)
	}
	f.logged[kind] = now
	f.log.LogAttrs(ctx, level, msg, attrs...)
}

// noteDrops logs records Record dropped on a full queue since last logged.
func (f *Forwarder) noteDrops(ctx context.Context) {
	n := f.droppedQueue.Load()
	if n == f.dropSeen {
		return
	}
	now := f.cfg.Now()
	if at, ok := f.logged["queue full"]; ok && now.Sub(at) < forwardLogEvery {
		return
	}
	f.logged["queue full"] = now
	f.log.LogAttrs(ctx, slog.LevelWarn, "verify: record forwarder: queue full; dropping records",
		slog.Int64("dropped", n-f.dropSeen), slog.Int("max_queued", f.cfg.MaxQueued))
	f.dropSeen = n
}

// finish sends what is queued, once, to the server while it answers and
// ctx lasts, and to Dir otherwise; without Dir, what the server does not
// take is lost and counted.
func (f *Forwarder) finish(ctx context.Context) {
	f.mu.Lock()
	f.closed = true
	f.mu.Unlock()
	f.retry.Stop()
	down := f.waiting
	if f.cfg.Dir == "" && len(f.backlog) > 0 {
		// The held batch: one last attempt, as it is lost otherwise.
		p := f.backlog[0]
		if ctx.Err() == nil {
			n, again, _ := f.deliver(ctx, p.recs[p.sent:])
			p.sent += n
			down = again
		}
		f.lose(ctx, len(p.recs)-p.sent)
		f.held.Store(0)
		f.backlog = nil
	}
	for {
		recs := f.take(true)
		if recs == nil {
			return
		}
		batch := f.encode(ctx, recs)
		if !down && ctx.Err() == nil && (f.cfg.Dir == "" || len(f.backlog) == 0) {
			n, again, _ := f.deliver(ctx, batch)
			batch, down = batch[n:], again
		}
		if len(batch) == 0 {
			continue
		}
		if f.cfg.Dir == "" {
			f.lose(ctx, len(batch))
			continue
		}
		if !f.writeBatch(ctx, batch) {
			f.lost += int64(len(batch))
		}
	}
}

// lose counts n records dropped at Close for want of Dir.
func (f *Forwarder) lose(ctx context.Context, n int) {
	if n == 0 {
		return
	}
	f.lost += int64(n)
	f.droppedOther.Add(int64(n))
	f.log.LogAttrs(ctx, slog.LevelError, "verify: record forwarder: closing without the server and without Dir; dropping records",
		slog.Int("records", n))
}
