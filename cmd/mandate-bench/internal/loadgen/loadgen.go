package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Config says what Run sends, how hard and for how long.
type Config struct {
	// URL is the endpoint every request is POSTed to, as
	// application/x-www-form-urlencoded. Required.
	URL string
	// Body returns the next form body worker w (0 ≤ w < Concurrency) sends.
	// Each worker calls it from its own goroutine only, so per-worker state
	// needs no lock. An error stops the run. Required.
	Body func(w int) (string, error)
	// Concurrency is the number of workers, each with at most one request in
	// flight. Default 1.
	Concurrency int
	// Duration bounds the measured window. When Requests is also set, the
	// run ends at whichever bound comes first. Default 10s when Requests and
	// Stop are not set.
	Duration time.Duration
	// Requests bounds the measured window by the number of requests sent.
	// Zero means no count bound.
	Requests int
	// Stop, when not nil, ends the warm-up or the measured window when it
	// is closed, as reaching Duration does: requests in flight are
	// answered and counted, none is started after. It is how a caller runs
	// a load in the background for as long as something else takes.
	Stop <-chan struct{}
	// Warmup is run before the measured window and left out of every
	// figure: connections are opened, caches and the server's heap fill.
	// Zero means none.
	Warmup time.Duration
	// Rate, when above 0, paces the starts of the requests of each phase
	// (the warm-up and the measured window) to Rate per second over all
	// workers, on a fixed schedule from the start of the phase: a worker
	// takes the next slot and waits for its time, and one that is late
	// sends at once, so a server that falls behind is not given rest.
	// Concurrency still bounds the requests in flight. Zero means as fast
	// as the workers go.
	Rate float64
	// PID, when not 0, is the server's process id: Run reads its CPU time and
	// memory from /proc at the start and end of the measured window.
	PID int
	// Client sends the requests; nil means NewClient(Concurrency).
	Client *http.Client
}

// Report holds the figures of one measured window.
type Report struct {
	Concurrency int `json:"concurrency"`
	// Requests is the number of requests that completed in the window,
	// whatever their outcome; OK those answered 200.
	Requests int `json:"requests"`
	OK       int `json:"ok"`
	// Errors counts requests answered other than 200 plus those that failed
	// in transport.
	Errors int `json:"errors"`
	// Statuses counts the answers by HTTP status.
	Statuses map[int]int `json:"statuses"`
	// TransportErrors counts requests that got no answer.
	TransportErrors int `json:"transport_errors"`
	// FirstError describes the first failure: an error or the start of the
	// body of the first answer that was not 200.
	FirstError string `json:"first_error,omitempty"`
	// Elapsed is the length of the measured window.
	Elapsed time.Duration `json:"elapsed_ns"`
	// Throughput is Requests per second of Elapsed.
	Throughput float64 `json:"throughput_rps"`
	// Latency is measured from before the request is written to after the
	// whole answer is read, over every request of the window.
	Latency Latency `json:"latency"`
	// Server is the server process's resource use; nil without Config.PID.
	Server *Usage `json:"server,omitempty"`
	// Load is this process's own resource use (the load generator), to tell
	// whether the load rather than the server was the limit; nil without
	// /proc.
	Load *Usage `json:"load,omitempty"`
	// Machine is the whole machine's CPU use over the window; nil without
	// /proc.
	Machine *MachineLoad `json:"machine,omitempty"`
}

// MachineLoad is the whole machine's CPU use over a window, in cores (1.0 is
// one CPU busy for the whole window). On a shared machine, Others and Steal
// say whether a run was disturbed.
type MachineLoad struct {
	// Busy is all non-idle CPU time.
	Busy float64 `json:"busy_cores"`
	// Others is Busy less the server's and the load generator's own CPU
	// time: other processes, and kernel work charged to no process.
	Others float64 `json:"others_cores"`
	// Steal is time the hypervisor gave to other virtual machines.
	Steal float64 `json:"steal_cores"`
}

// Usage is a process's resource use over the measured window.
type Usage struct {
	// CPU is user plus system time spent in the window (10 ms resolution).
	CPU time.Duration `json:"cpu_ns"`
	// CPUPerRequest is CPU divided by Report.Requests.
	CPUPerRequest time.Duration `json:"cpu_per_request_ns"`
	// Utilization is CPU divided by Report.Elapsed: 1.0 is one core busy.
	Utilization float64 `json:"utilization"`
	// RSSBefore and RSSAfter are the resident set at the start and end of
	// the window, PeakRSS its high-water mark since the process started; in
	// bytes.
	RSSBefore int64 `json:"rss_before_bytes"`
	RSSAfter  int64 `json:"rss_after_bytes"`
	PeakRSS   int64 `json:"peak_rss_bytes"`
	// IO is what the process wrote over the window; nil when its
	// /proc/PID/io could not be read.
	IO *IOUsage `json:"io,omitempty"`
}

// IOUsage is what a process wrote over the measured window, from the
// differences of its IOCounters.
type IOUsage struct {
	// WriteBytes is the bytes the process sent to the storage layer
	// (write_bytes; see IOCounters).
	WriteBytes int64 `json:"write_bytes"`
	// CancelledWriteBytes is the part of them never written because the
	// file was truncated first (cancelled_write_bytes).
	CancelledWriteBytes int64 `json:"cancelled_write_bytes"`
	// WriteBytesPerRequest is WriteBytes divided by Report.Requests.
	WriteBytesPerRequest float64 `json:"write_bytes_per_request"`
	// WriteChars is the bytes passed to write(2) (wchar), WriteCalls the
	// calls (syscw).
	WriteChars int64 `json:"write_chars"`
	WriteCalls int64 `json:"write_calls"`
}

// NewClient returns an HTTP client for n concurrent workers on loopback: one
// idle keep-alive connection per worker kept open, no proxy, no
// compression, HTTP/1.1, and a 30 s limit per request so that a run always
// ends.
func NewClient(n int) *http.Client {
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        2 * max(n, 1),
			MaxIdleConnsPerHost: max(n, 1),
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
		},
	}
}

// maxErrorBody bounds the body kept in Report.FirstError.
const maxErrorBody = 300

// Run sends the load cfg describes: the warm-up, then the measured window,
// and returns the window's figures. It ends when the window's bound is
// reached, when Body fails or when ctx is done (then with ctx's error). A
// request that is not answered 200 is counted, not returned as an error.
func Run(ctx context.Context, cfg Config) (Report, error) {
	if cfg.URL == "" || cfg.Body == nil {
		return Report{}, errors.New("loadgen: URL and Body are required")
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 1
	}
	if cfg.Requests < 0 || cfg.Duration < 0 || cfg.Warmup < 0 || cfg.Rate < 0 {
		return Report{}, errors.New("loadgen: negative bound")
	}
	if cfg.Duration == 0 && cfg.Requests == 0 && cfg.Stop == nil {
		cfg.Duration = 10 * time.Second
	}
	if cfg.Client == nil {
		client := NewClient(cfg.Concurrency)
		defer client.CloseIdleConnections()
		cfg.Client = client
	}
	if cfg.Warmup > 0 {
		if _, err := phase(ctx, cfg, cfg.Warmup, 0); err != nil {
			return Report{}, fmt.Errorf("warm-up: %w", err)
		}
	}

	var server, load [2]ProcSample
	var err error
	if cfg.PID != 0 {
		if server[0], err = ReadProc(cfg.PID); err != nil {
			return Report{}, fmt.Errorf("server usage: %w", err)
		}
	}
	// The load generator's own figures are a diagnostic: without /proc they
	// are left out rather than failing the run.
	var loadErr error
	load[0], loadErr = ReadProc(os.Getpid())
	var machine [2]CPUTimes
	var machineErr error
	machine[0], machineErr = ReadCPUTimes()
	start := time.Now()
	res, err := phase(ctx, cfg, cfg.Duration, cfg.Requests)
	elapsed := time.Since(start)
	if err != nil {
		return Report{}, err
	}
	if cfg.PID != 0 {
		if server[1], err = ReadProc(cfg.PID); err != nil {
			return Report{}, fmt.Errorf("server usage: %w", err)
		}
	}
	if loadErr == nil {
		load[1], loadErr = ReadProc(os.Getpid())
	}
	if machineErr == nil {
		machine[1], machineErr = ReadCPUTimes()
	}

	rep := res.report(cfg.Concurrency, elapsed)
	if cfg.PID != 0 {
		rep.Server = usage(server, rep.Requests, elapsed)
	}
	if loadErr == nil {
		rep.Load = usage(load, rep.Requests, elapsed)
	}
	if machineErr == nil {
		rep.Machine = machineLoad(machine, rep.Server, rep.Load, elapsed)
	}
	return rep, nil
}

func usage(s [2]ProcSample, requests int, elapsed time.Duration) *Usage {
	u := &Usage{CPU: s[1].CPU - s[0].CPU, RSSBefore: s[0].RSS, RSSAfter: s[1].RSS, PeakRSS: s[1].PeakRSS}
	if requests > 0 {
		u.CPUPerRequest = u.CPU / time.Duration(requests)
	}
	if elapsed > 0 {
		u.Utilization = u.CPU.Seconds() / elapsed.Seconds()
	}
	if a, b := s[0].IO, s[1].IO; a != nil && b != nil {
		u.IO = &IOUsage{
			WriteBytes:          b.WriteBytes - a.WriteBytes,
			CancelledWriteBytes: b.CancelledWriteBytes - a.CancelledWriteBytes,
			WriteChars:          b.WriteChars - a.WriteChars,
			WriteCalls:          b.WriteCalls - a.WriteCalls,
		}
		if requests > 0 {
			u.IO.WriteBytesPerRequest = float64(u.IO.WriteBytes) / float64(requests)
		}
	}
	return u
}

func machineLoad(m [2]CPUTimes, server, load *Usage, elapsed time.Duration) *MachineLoad {
	if elapsed <= 0 {
		return nil
	}
	cores := func(d time.Duration) float64 { return d.Seconds() / elapsed.Seconds() }
	busy := m[1].Busy - m[0].Busy
	others := busy
	for _, u := range []*Usage{server, load} {
		if u != nil {
			others -= u.CPU
		}
	}
	return &MachineLoad{Busy: cores(busy), Others: max(cores(others), 0), Steal: cores(m[1].Steal - m[0].Steal)}
}

// result is what the workers of one phase gathered.
type result struct {
	latencies  []time.Duration
	statuses   map[int]int
	transport  int
	firstError string
}

func (r *result) report(concurrency int, elapsed time.Duration) Report {
	rep := Report{
		Concurrency:     concurrency,
		Requests:        len(r.latencies),
		Statuses:        r.statuses,
		TransportErrors: r.transport,
		FirstError:      r.firstError,
		Elapsed:         elapsed,
		Latency:         Summarize(r.latencies),
	}
	rep.OK = r.statuses[http.StatusOK]
	rep.Errors = rep.Requests - rep.OK
	if elapsed > 0 {
		rep.Throughput = float64(rep.Requests) / elapsed.Seconds()
	}
	return rep
}

// worker is one worker's tally; merged after the phase.
type worker struct {
	result
	err error
}

// phase runs cfg.Concurrency workers until d has passed (d > 0), limit
// requests were started (limit > 0) or cfg.Stop is closed, whichever comes
// first.
func phase(ctx context.Context, cfg Config, d time.Duration, limit int) (*result, error) {
	var deadline time.Time
	if d > 0 {
		deadline = time.Now().Add(d)
	}
	var started atomic.Int64
	pace := newPacer(cfg.Rate)
	workers := make([]worker, cfg.Concurrency)
	var wg sync.WaitGroup
	for i := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := &workers[i]
			w.statuses = make(map[int]int)
			w.latencies = make([]time.Duration, 0, 4096)
			for ctx.Err() == nil {
				if !deadline.IsZero() && !time.Now().Before(deadline) {
					return
				}
				select {
				case <-cfg.Stop: // a nil Stop never fires
					return
				default:
				}
				if limit > 0 && started.Add(1) > int64(limit) {
					return
				}
				if !pace.wait(ctx, deadline, cfg.Stop) {
					return
				}
				body, err := cfg.Body(i)
				if err != nil {
					w.err = fmt.Errorf("worker %d: body: %w", i, err)
					return
				}
				w.one(ctx, cfg, body)
			}
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := &result{statuses: make(map[int]int)}
	for i := range workers {
		w := &workers[i]
		if w.err != nil {
			return nil, w.err
		}
		out.latencies = append(out.latencies, w.latencies...)
		for code, n := range w.statuses {
			out.statuses[code] += n
		}
		out.transport += w.transport
		if out.firstError == "" {
			out.firstError = w.firstError
		}
	}
	return out, nil
}

// one sends one request and records its outcome.
func (w *worker) one(ctx context.Context, cfg Config, body string) {
	start := time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, cfg.URL, strings.NewReader(body))
	if err != nil {
		w.fail(start, fmt.Sprintf("request: %v", err))
		return
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := cfg.Client.Do(req)
	if err != nil {
		w.fail(start, err.Error())
		return
	}
	// Read the whole answer, so the connection is reused and the latency
	// covers the body.
	var head []byte
	if resp.StatusCode != http.StatusOK && w.firstError == "" {
		head, _ = io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	}
	_, err = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		w.fail(start, fmt.Sprintf("reading the answer: %v", err))
		return
	}
	w.latencies = append(w.latencies, time.Since(start))
	w.statuses[resp.StatusCode]++
	if resp.StatusCode != http.StatusOK && w.firstError == "" {
		w.firstError = fmt.Sprintf("HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(head)))
	}
}

// fail records a request that got no (complete) answer.
func (w *worker) fail(start time.Time, msg string) {
	w.latencies = append(w.latencies, time.Since(start))
	w.transport++
	if w.firstError == "" {
		w.firstError = msg
	}
}

// pacer hands out request start times Rate per second apart, from its
// creation on; the zero rate hands them out at once.
type pacer struct {
	start time.Time
	every time.Duration
	next  atomic.Int64
}

func newPacer(rate float64) *pacer {
	p := &pacer{start: time.Now()}
	if rate > 0 {
		p.every = time.Duration(float64(time.Second) / rate)
	}
	return p
}

// wait takes the next slot and sleeps until its time. It reports false, at
// once, when the slot falls after deadline (when not zero), or when ctx
// ends or stop is closed first.
func (p *pacer) wait(ctx context.Context, deadline time.Time, stop <-chan struct{}) bool {
	if p.every == 0 {
		return true
	}
	due := p.start.Add(time.Duration(p.next.Add(1)-1) * p.every)
	if !deadline.IsZero() && !due.Before(deadline) {
		return false
	}
	d := time.Until(due)
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-stop:
		return false
	case <-t.C:
		return true
	}
}
