package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"regexp"
	"slices"
	"time"

	"github.com/mandate-dev/mandate/cmd/mandate-bench/internal/loadgen"
	"github.com/mandate-dev/mandate/internal/audit"
	"github.com/mandate-dev/mandate/internal/auditlog"
	"github.com/mandate-dev/mandate/internal/forensics"
	"github.com/mandate-dev/mandate/internal/store"
)

// questionPlan says how the forensic questions are asked.
type questionPlan struct {
	// Runs is the most times each question is asked; Budget the most time
	// spent on one (at least three runs are made whatever it takes).
	Runs   int
	Budget time.Duration
	// People and Agents are the cast of the fill (fillPlan).
	People, Agents int
	Seed           uint64
	// Only, when set, asks only the questions and passes whose names it
	// matches.
	Only *regexp.Regexp
}

// asks says whether the plan asks the question or pass named name.
func (p questionPlan) asks(name string) bool {
	return p.Only == nil || p.Only.MatchString(name)
}

// questionResult is the timing of one question.
type questionResult struct {
	Name   string        `json:"name"`
	Runs   int           `json:"runs"`
	P50    time.Duration `json:"p50_ns"`
	P99    time.Duration `json:"p99_ns"`
	Target time.Duration `json:"target_ns,omitempty"`
	// Met is whether P99 is within Target; nil without a target.
	Met *bool `json:"met,omitempty"`
	// Found is how many records (or rows of a report) a run returned, on
	// average.
	Found float64 `json:"found"`
}

// passResult is the throughput of one read of the whole log.
type passResult struct {
	Name    string        `json:"name"`
	Records int64         `json:"records"`
	Elapsed time.Duration `json:"elapsed_ns"`
	PerSec  float64       `json:"records_per_second"`
	Target  float64       `json:"target_records_per_second"`
	Met     bool          `json:"met"`
	// CPU is this process's CPU time (user and system, all threads, in
	// 10 ms ticks) over the pass: on a shared machine a steadier figure
	// than the rate. Zero where /proc cannot be read.
	CPU time.Duration `json:"cpu_ns"`
}

// questionsReport is what `mandate-bench questions` measured.
type questionsReport struct {
	Records   int64            `json:"records"`
	Newest    time.Time        `json:"newest"`
	Questions []questionResult `json:"questions"`
	Passes    []passResult     `json:"passes"`
	Size      storeSize        `json:"size"`
}

// The targets the questions are held to (docs/benchmarks.md).
const (
	targetFirstPage  = 50 * time.Millisecond
	targetLineage    = 20 * time.Millisecond
	targetRefusals   = time.Second
	targetThroughput = 200_000
)

// question is one forensic question: ask runs it once, the i-th time, and
// returns how many records it found.
type question struct {
	name   string
	target time.Duration
	ask    func(ctx context.Context, i int) (int, error)
}

// samples are the tokens and resources the questions ask about, read
// from the log at random places.
type samples struct {
	jtis      []string
	resources []string
}

// sampleLog picks up to n tokens deep in a chain (an exchange with a
// parent, the longest chain of a page) and n resources of verifiers'
// records, from pages read at random seqs below last.
func sampleLog(ctx context.Context, src forensics.Source, rng *rand.Rand, last int64, n int) (samples, error) {
	var s samples
	for try := 0; try < 10*n && (len(s.jtis) < n || len(s.resources) < n); try++ {
		before := 2 + rng.Int64N(last)
		if len(s.jtis) < n {
			evs, err := src.QueryEvents(ctx, store.EventFilter{Action: audit.ActionTokenExchange, BeforeSeq: before, Limit: 50})
			if err != nil {
				return s, err
			}
			best := -1
			for i, ev := range evs {
				if ev.ParentJTI != "" && (best < 0 || len(ev.Chain) > len(evs[best].Chain)) {
					best = i
				}
			}
			if best >= 0 {
				s.jtis = append(s.jtis, evs[best].JTI)
			}
		}
		if len(s.resources) < n {
			evs, err := src.QueryEvents(ctx, store.EventFilter{Action: audit.ActionRequest, BeforeSeq: before, Limit: 1})
			if err != nil {
				return s, err
			}
			if len(evs) == 1 && evs[0].Resource != "" {
				s.resources = append(s.resources, evs[0].Resource)
			}
		}
	}
	if len(s.jtis) == 0 || len(s.resources) == 0 {
		return s, errors.New("the log holds no exchanged token or no verifier's record: fill it first (mandate-bench fill)")
	}
	return s, nil
}

// askQuestions times the forensic questions against the log of s, and
// the two reads of the whole log (export and verify).
func askQuestions(ctx context.Context, s store.Store, p questionPlan) (questionsReport, error) {
	var rep questionsReport
	newest, err := s.QueryEvents(ctx, store.EventFilter{Limit: 1})
	if err != nil {
		return rep, err
	}
	if len(newest) == 0 {
		return rep, errors.New("the audit log is empty: fill it first (mandate-bench fill)")
	}
	rep.Records, rep.Newest = newest[0].Seq, newest[0].Time
	// The questions' "now" is the newest record's time, so that a log
	// filled days ago still has a last 24 hours and a last 7 days.
	now := rep.Newest.Add(time.Microsecond)
	rng := rand.New(rand.NewPCG(p.Seed, 0x7175657374))
	smp, err := sampleLog(ctx, s, rng, rep.Records, 20)
	if err != nil {
		return rep, err
	}
	people := make([]string, 20)
	for i := range people {
		people[i] = person(rng.IntN(p.People))
	}
	firstPage := func(f store.EventFilter) (int, error) {
		f.Limit = 100
		n := 0
		err := forensics.Each(ctx, s, f, func(store.Event) error { n++; return nil })
		return n, err
	}
	qs := []question{
		{name: "agent, first page of 100 (busiest agent)", target: targetFirstPage, ask: func(ctx context.Context, _ int) (int, error) {
			return firstPage(store.EventFilter{Actor: agent(0)})
		}},
		{name: "agent, first page of 100 (a quiet agent)", target: targetFirstPage, ask: func(ctx context.Context, _ int) (int, error) {
			return firstPage(store.EventFilter{Actor: agent(p.Agents - 1)})
		}},
		{name: "person, last 7 days, first page of 100", target: targetFirstPage, ask: func(ctx context.Context, i int) (int, error) {
			return firstPage(store.EventFilter{Subject: people[i%len(people)], Since: now.Add(-7 * 24 * time.Hour)})
		}},
		{name: "token lineage", target: targetLineage, ask: func(ctx context.Context, i int) (int, error) {
			evs, err := forensics.Lineage(ctx, s, smp.jtis[i%len(smp.jtis)])
			return len(evs), err
		}},
		{name: "who approved (one resource, whole log)", ask: func(ctx context.Context, i int) (int, error) {
			aps, err := forensics.WhoApproved(ctx, s, smp.resources[i%len(smp.resources)], forensics.Window{})
			return len(aps), err
		}},
		{name: "who approved (one resource, last 7 days)", ask: func(ctx context.Context, i int) (int, error) {
			aps, err := forensics.WhoApproved(ctx, s, smp.resources[i%len(smp.resources)], forensics.Window{Since: now.Add(-7 * 24 * time.Hour)})
			return len(aps), err
		}},
		{name: "refusal rates per agent and version, 24 h", target: targetRefusals, ask: func(ctx context.Context, _ int) (int, error) {
			rows, err := forensics.Agents(ctx, s, forensics.Window{Since: now.Add(-24 * time.Hour), Until: now})
			return len(rows), err
		}},
		{name: "agent activity, 24 h (busiest agent)", ask: func(ctx context.Context, _ int) (int, error) {
			a, err := forensics.AgentActivity(ctx, s, agent(0), forensics.Window{Since: now.Add(-24 * time.Hour), Until: now})
			return len(a.Events), err
		}},
	}
	for _, q := range qs {
		if !p.asks(q.name) {
			continue
		}
		r, err := timeQuestion(ctx, q, p)
		if err != nil {
			return rep, fmt.Errorf("%s: %w", q.name, err)
		}
		rep.Questions = append(rep.Questions, r)
	}
	for _, pass := range []struct {
		name string
		run  func(ctx context.Context) (int64, error)
	}{{"export (store.EachEvent, JSON lines)", func(ctx context.Context) (int64, error) { return exportPass(ctx, s) }},
		{"audit verify (auditlog.Replay)", func(ctx context.Context) (int64, error) { return verifyPass(ctx, s) }}} {
		if !p.asks(pass.name) {
			continue
		}
		cpu0, cpuErr := loadgen.ReadProc(os.Getpid())
		start := time.Now()
		n, err := pass.run(ctx)
		if err != nil {
			return rep, fmt.Errorf("%s: %w", pass.name, err)
		}
		el := time.Since(start)
		r := passResult{Name: pass.name, Records: n, Elapsed: el, PerSec: float64(n) / el.Seconds(), Target: targetThroughput}
		r.Met = r.PerSec >= r.Target
		if cpu1, err := loadgen.ReadProc(os.Getpid()); cpuErr == nil && err == nil {
			r.CPU = cpu1.CPU - cpu0.CPU
		}
		rep.Passes = append(rep.Passes, r)
	}
	return rep, nil
}

// timeQuestion asks q up to p.Runs times, stopping after p.Budget once it
// has asked three times, and returns its p50 and p99.
func timeQuestion(ctx context.Context, q question, p questionPlan) (questionResult, error) {
	r := questionResult{Name: q.name, Target: q.target}
	var (
		took  []time.Duration
		found int
	)
	start := time.Now()
	for i := 0; i < max(p.Runs, 1) && (i < 3 || time.Since(start) < p.Budget); i++ {
		t0 := time.Now()
		n, err := q.ask(ctx, i)
		if err != nil {
			return r, err
		}
		took = append(took, time.Since(t0))
		found += n
	}
	slices.Sort(took)
	r.Runs = len(took)
	r.Found = float64(found) / float64(r.Runs)
	r.P50, r.P99 = percentile(took, 50), percentile(took, 99)
	if q.target > 0 {
		met := r.P99 <= q.target
		r.Met = &met
	}
	return r, nil
}

// percentile is the nearest-rank p-th percentile of sorted.
func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := (p*len(sorted) + 99) / 100
	return sorted[min(max(i, 1), len(sorted))-1]
}

// exportPass writes the whole log as `mandate audit export` does (JSON
// lines, auditlog.AppendExportLine), to nowhere, and returns the records
// written.
func exportPass(ctx context.Context, s store.EventReader) (int64, error) {
	var (
		n    int64
		line []byte
	)
	err := store.EachEvent(ctx, s, 0, func(ev store.Event) error {
		var err error
		line, err = auditlog.AppendExportLine(line[:0], ev)
		n++
		return err
	})
	return n, err
}

// verifyPass replays the whole log as `mandate audit verify` does (the
// filled log has no checkpoints) and fails unless it verifies.
func verifyPass(ctx context.Context, s store.EventReader) (int64, error) {
	replay := auditlog.NewReplay(nil)
	stop := errors.New("stop")
	err := store.EachEvent(ctx, s, 0, func(ev store.Event) error {
		if !replay.Add(ev) {
			return stop
		}
		return nil
	})
	if err != nil && !errors.Is(err, stop) {
		return 0, err
	}
	res := replay.Finish()
	if !res.OK() {
		return res.Records, fmt.Errorf("the log does not verify: %s", res.Problem)
	}
	return res.Records, nil
}

// printQuestions writes rep as tables.
func printQuestions(w io.Writer, rep questionsReport) {
	fmt.Fprintf(w, "log: %d records, newest %s\n\n", rep.Records, rep.Newest.Format(time.RFC3339))
	fmt.Fprintf(w, "%-46s %5s %10s %10s %8s %s\n", "question", "runs", "p50", "p99", "target", "")
	for _, q := range rep.Questions {
		target, verdict := "-", ""
		if q.Met != nil {
			target, verdict = ms(q.Target), "not met"
			if *q.Met {
				verdict = "met"
			}
		}
		fmt.Fprintf(w, "%-46s %5d %10s %10s %8s %s (found %.1f)\n", q.Name, q.Runs, ms(q.P50), ms(q.P99), target, verdict, q.Found)
	}
	fmt.Fprintln(w)
	for _, p := range rep.Passes {
		verdict := "not met"
		if p.Met {
			verdict = "met"
		}
		fmt.Fprintf(w, "%-46s %d records in %s: %.0f records/s (target %.0f: %s)", p.Name, p.Records,
			p.Elapsed.Round(time.Millisecond), p.PerSec, p.Target, verdict)
		if p.CPU > 0 && p.Records > 0 {
			fmt.Fprintf(w, "; CPU %s, %.1f µs/record", p.CPU.Round(10*time.Millisecond),
				float64(p.CPU.Microseconds())/float64(p.Records))
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w)
	printSize(w, rep.Size, rep.Records)
}
