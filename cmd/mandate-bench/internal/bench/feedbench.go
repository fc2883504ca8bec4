package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/mandate-dev/mandate/cmd/mandate-bench/internal/loadgen"
	"github.com/mandate-dev/mandate/verify"
	"github.com/mandate-dev/mandate/verify/feed"
)

// The setting of `mandate-bench --feed`.
const (
	// feedLoadConcurrency is the exchange load's default concurrency.
	feedLoadConcurrency = 4
	// feedVerifiers is how many verifiers follow the feed.
	feedVerifiers = 3
	// feedTimeout is how long a verifier may go on accepting a revoked
	// token before the trial counts as failed; also how long a trial waits
	// for a token all the verifiers accept.
	feedTimeout = 5 * time.Second
	// feedPoll is the interval between two Verify calls of one verifier.
	feedPoll = time.Millisecond
	// feedTarget is issue 5's bound on the p99 propagation time.
	feedTarget = time.Second
	// feedScope is the permission the scope trials take from the person
	// and give back; the load never asks for it.
	feedScope = "logs:read"
	// feedResourceClient is the resource server the verifiers subscribe
	// to the revocation stream as: a client with no scopes.
	feedResourceClient = "agent:bench-verifier"
)

// Kinds of revocation the trials make (the admin API's terms).
const (
	feedKindJTI     = "jti"
	feedKindSubject = "subject"
	feedKindAgent   = "agent"
	feedKindScope   = "scope"
)

// feedKinds lists the kinds in the order the output reports them.
var feedKinds = []string{feedKindJTI, feedKindSubject, feedKindAgent, feedKindScope}

// feedKind is the kind of revocation trial i makes: five trials in eight
// revoke the token by its jti, the other three revoke the person, the
// agent, and one permission of the person (feed entries subject, agent
// and scope, each hitting the token through its generation).
func feedKind(i int) string {
	switch i % 8 {
	case 5:
		return feedKindSubject
	case 6:
		return feedKindAgent
	case 7:
		return feedKindScope
	}
	return feedKindJTI
}

// feedVia is the instance trial i revokes through, of n: they alternate,
// shifted every eight trials so that each kind goes through each instance.
func feedVia(i, n int) int { return (i + i/8) % n }

// feedFollows is the instance verifier v follows, of n: spread round-robin,
// so that with two instances every revocation crosses instances for at
// least one verifier.
func feedFollows(v, n int) int { return v % n }

// feedTrial is one trial's outcome.
type feedTrial struct {
	Kind string `json:"kind"`
	// Via is the index of the instance the revocation went through.
	Via int `json:"via"`
	// Refused holds, per verifier, the time from the revoking response to
	// its first refusal (ErrRevoked); -1 when it still accepted the token
	// after feedTimeout.
	Refused []time.Duration `json:"refused_ns"`
	// Failure says why a verifier did not refuse; empty when all did.
	Failure string `json:"failure,omitempty"`
}

// last returns when the last verifier refused; false when one did not.
func (t feedTrial) last() (time.Duration, bool) {
	var m time.Duration
	for _, d := range t.Refused {
		if d < 0 {
			return 0, false
		}
		m = max(m, d)
	}
	return m, len(t.Refused) > 0
}

// feedFigure is the summary of one set of propagation times.
type feedFigure struct {
	Label   string          `json:"label"`
	Samples int             `json:"samples"`
	Latency loadgen.Latency `json:"latency"`
}

// feedVerifierInfo says which instance a verifier follows.
type feedVerifierInfo struct {
	Name    string `json:"name"`
	Follows string `json:"follows"`
}

// feedOutput is what `mandate-bench --feed N` reports; --json prints it.
type feedOutput struct {
	Machine    loadgen.Machine    `json:"machine"`
	Store      string             `json:"store"`
	Instances  []string           `json:"instances"`
	Verifiers  []feedVerifierInfo `json:"verifiers"`
	SigningAlg string             `json:"signing_alg"`
	Trials     int                `json:"trials"`
	Failures   int                `json:"failures"`
	// Kinds counts the trials by kind of revocation.
	Kinds map[string]int `json:"kinds"`
	// Figures are the propagation times: first the time to the last of
	// the verifiers' refusals over the trials that did not fail, then per
	// verifier, per relation between the revoking and the followed
	// instance, and per kind.
	Figures      []feedFigure  `json:"figures"`
	Target       time.Duration `json:"target_p99_ns"`
	Met          bool          `json:"met"`
	FirstFailure string        `json:"first_failure,omitempty"`
	// Load is the exchange load that ran during the trials.
	Load loadgen.Report `json:"load"`
}

// tally fills in the counts, the figures and the verdict from trials made
// on instances instances.
func (out *feedOutput) tally(trials []feedTrial, instances int) {
	for _, t := range trials {
		out.Kinds[t.Kind]++
		if t.Failure != "" {
			out.Failures++
			if out.FirstFailure == "" {
				out.FirstFailure = t.Failure
			}
		}
	}
	out.Figures = summarizeFeed(trials, out.Verifiers, instances)
	out.Met = out.Failures == 0 && out.Figures[0].Samples > 0 && out.Figures[0].Latency.P99 <= feedTarget
}

// summarizeFeed computes the figures of trials made with verifiers; with
// more than one instance it adds the same-instance and cross-instance
// figures (a verifier following the instance the revocation went through,
// or another).
func summarizeFeed(trials []feedTrial, verifiers []feedVerifierInfo, instances int) []feedFigure {
	var lastAll []time.Duration
	perVerifier := make([][]time.Duration, len(verifiers))
	var same, cross []time.Duration
	byKind := map[string][]time.Duration{}
	for _, t := range trials {
		if d, ok := t.last(); ok {
			lastAll = append(lastAll, d)
			byKind[t.Kind] = append(byKind[t.Kind], d)
		}
		for v, d := range t.Refused {
			if d < 0 || v >= len(verifiers) {
				continue
			}
			perVerifier[v] = append(perVerifier[v], d)
			if feedFollows(v, instances) == t.Via {
				same = append(same, d)
			} else {
				cross = append(cross, d)
			}
		}
	}
	fig := func(label string, xs []time.Duration) feedFigure {
		return feedFigure{Label: label, Samples: len(xs), Latency: loadgen.Summarize(xs)}
	}
	out := []feedFigure{fig(fmt.Sprintf("last of %d verifiers", len(verifiers)), lastAll)}
	for v, info := range verifiers {
		out = append(out, fig(fmt.Sprintf("%s (follows %s)", info.Name, info.Follows), perVerifier[v]))
	}
	if instances > 1 {
		out = append(out, fig("verifier on the revoking instance", same), fig("verifier on the other instance", cross))
	}
	for _, k := range feedKinds {
		if xs := byKind[k]; len(xs) > 0 {
			out = append(out, fig("kind "+k+", last verifier", xs))
		}
	}
	return out
}

// instanceName names instance i: A, B, …
func instanceName(i int) string { return string(rune('A' + i)) }

// runFeedBench starts the server (two instances on a PostgreSQL store),
// subscribes feedVerifiers verifiers to its revocation stream, runs an
// exchange load in the background, and makes f.feed revocation trials
// (issue 5: p99 ≤ 1 s from the revoking response to the last verifier's
// refusal). A trial in which a verifier did not refuse within feedTimeout,
// or a p99 above the target, fails the command.
func runFeedBench(ctx context.Context, dir string, env benchEnv, idp *loadgen.IdP, f benchFlags, stdout, stderr io.Writer) (err error) {
	out := feedOutput{Machine: loadgen.DescribeMachine(), Store: "sqlite", SigningAlg: f.signingAlg,
		Trials: f.feed, Kinds: map[string]int{}, Target: feedTarget}
	a, err := startBenchServer(ctx, dir, env.issuer, f)
	if err != nil {
		return err
	}
	defer func() { _ = a.Stop(10 * time.Second) }()
	bases := []string{env.issuer}
	servers := []*loadgen.Process{a}
	if strings.HasPrefix(f.store, "postgres") {
		out.Store = "postgresql"
		b, issuerB, err := startSecondInstance(ctx, dir, env, f)
		if err != nil {
			return err
		}
		defer func() { _ = b.Stop(10 * time.Second) }()
		bases, servers = append(bases, issuerB), append(servers, b)
	}
	out.Instances = bases
	logTails := func() {
		if ctx.Err() != nil {
			return
		}
		for i, s := range servers {
			if tail := s.LogTail(2000); tail != "" {
				fmt.Fprintf(stderr, "bench: the log of instance %s ends with:\n%s\n", instanceName(i), tail)
			}
		}
	}

	// The feeds follow the stream until vctx ends.
	vctx, cancel := context.WithCancel(ctx)
	defer cancel()
	r := &feedRunner{client: &http.Client{Timeout: feedTimeout}, bases: bases, admin: env.admin,
		actor: env.agents[0], idp: idp}
	if r.verifiers, err = startVerifiers(vctx, env, f, bases, stderr); err != nil {
		logTails()
		return err
	}
	for _, v := range r.verifiers {
		out.Verifiers = append(out.Verifiers, feedVerifierInfo{Name: v.name, Follows: instanceName(v.follows)})
	}

	loadAgents := env.agents[1:]
	if f.sharedAgent {
		loadAgents = loadAgents[:1]
	}
	stopLoad, err := backgroundLoad(ctx, f, bases[0], a.PID(), loadAgents, idp)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "bench: exchange load at concurrency %d, %d trials of revocation propagation ...\n", f.concurrency[0], f.feed)
	trials, err := r.runTrials(ctx, f.feed, f.warmup, stderr)
	load, loadErr := stopLoad()
	if err != nil {
		logTails()
		return err
	}
	if loadErr != nil {
		return fmt.Errorf("the exchange load: %w", loadErr)
	}
	out.Load = load

	out.tally(trials, len(bases))
	if err := printFeed(stdout, f, out); err != nil {
		return err
	}
	switch {
	case out.Failures > 0:
		return fmt.Errorf("%d of %d trials failed: a verifier still accepted the revoked token after %v; first: %s",
			out.Failures, out.Trials, feedTimeout, out.FirstFailure)
	case !out.Met:
		return fmt.Errorf("p99 propagation %s exceeds %v", out.Figures[0].Latency.P99, feedTarget)
	}
	return nil
}

// backgroundLoad starts an exchange load on base (the server's pid for its
// CPU figures) at f.concurrency[0], after f.warmup; stop ends it and
// returns its figures.
func backgroundLoad(ctx context.Context, f benchFlags, base string, pid int, agents []loadgen.Agent, idp *loadgen.IdP) (stop func() (loadgen.Report, error), err error) {
	body, err := loadgen.Exchange{Agents: agents, IdP: idp, Subject: benchSubject,
		Audience: f.audience, Scope: f.scope}.Bodies(f.concurrency[0])
	if err != nil {
		return nil, err
	}
	halt := make(chan struct{})
	type outcome struct {
		rep loadgen.Report
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		rep, err := loadgen.Run(ctx, loadgen.Config{URL: base + "/token", Body: body,
			Concurrency: f.concurrency[0], Warmup: f.warmup, PID: pid, Stop: halt})
		done <- outcome{rep, err}
	}()
	return func() (loadgen.Report, error) {
		close(halt)
		o := <-done
		return o.rep, o.err
	}, nil
}

// feedVerifier is one resource server: a Verifier whose Revocation is its
// own Feed.
type feedVerifier struct {
	name    string
	follows int // the index of the instance whose stream it follows
	v       *verify.Verifier
	feed    *feed.Feed
}

// startVerifiers builds feedVerifiers verifiers of the bench tokens, each
// with its own Feed on the stream of an instance (feedFollows), and waits
// until every Feed has its first snapshot. The Feeds run until ctx ends.
func startVerifiers(ctx context.Context, env benchEnv, f benchFlags, bases []string, stderr io.Writer) ([]feedVerifier, error) {
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	var vs []feedVerifier
	for i := range feedVerifiers {
		follows := feedFollows(i, len(bases))
		name := fmt.Sprintf("verifier %d", i+1)
		sub, err := feed.New(ctx, feed.Config{
			URL:      bases[follows] + "/revocations/stream",
			ClientID: env.resource.ID, ClientSecret: env.resource.Secret,
			Logger: log.With(slog.String("verifier", name)),
		})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		// Every token is exchanged on the first instance; the keys are in
		// the store the instances share.
		v, err := verify.New(ctx, verify.Config{Issuer: bases[0], Audience: f.audience,
			Algorithms: []string{f.signingAlg}, Revocation: sub})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		vs = append(vs, feedVerifier{name: name, follows: follows, v: v, feed: sub})
	}
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for _, v := range vs {
		if err := v.feed.Ready(rctx); err != nil {
			return nil, fmt.Errorf("%s: %w", v.name, err)
		}
	}
	return vs, nil
}

// feedRunner makes the trials.
type feedRunner struct {
	client    *http.Client
	bases     []string // the instances; tokens are exchanged on the first
	admin     string
	actor     loadgen.Agent
	idp       *loadgen.IdP
	verifiers []feedVerifier
}

// runTrials waits warmup (the load's) and makes n trials. A trial whose
// revocation a verifier misses is recorded, not returned: the error is for
// a trial that could not be made.
func (r *feedRunner) runTrials(ctx context.Context, n int, warmup time.Duration, stderr io.Writer) ([]feedTrial, error) {
	if err := sleepCtx(ctx, warmup); err != nil {
		return nil, err
	}
	trials := make([]feedTrial, 0, n)
	for i := range n {
		t, err := r.trial(ctx, feedKind(i), feedVia(i, len(r.bases)))
		if err != nil {
			return nil, fmt.Errorf("trial %d (%s): %w", i, feedKind(i), err)
		}
		if t.Failure != "" {
			fmt.Fprintf(stderr, "bench: trial %d (%s through %s) failed: %s\n", i, t.Kind, instanceName(t.Via), t.Failure)
		}
		trials = append(trials, t)
	}
	return trials, nil
}

// trial gets a fresh token every verifier accepts, revokes it by kind
// through instance via, times each verifier's first refusal from the
// moment the revoking response arrives, and then gives back what was
// taken (the agent, the permission) so that the next trial starts alike.
func (r *feedRunner) trial(ctx context.Context, kind string, via int) (feedTrial, error) {
	p, tok, err := r.freshToken(ctx)
	if err != nil {
		return feedTrial{}, err
	}
	base := r.bases[via]
	perms := func(with bool) any {
		ps := []string{"monitoring:read", "deploy:create"}
		if with {
			ps = append(ps, feedScope)
		}
		return map[string]any{"permissions": ps}
	}
	usersPath := base + "/admin/users/" + url.PathEscape(benchSubject) + "/permissions"
	switch kind {
	case feedKindJTI:
		err = adminCall(ctx, r.client, http.MethodPost, base+"/admin/revoke", r.admin, map[string]string{"jti": p.JTI})
	case feedKindSubject:
		err = adminCall(ctx, r.client, http.MethodPost, base+"/admin/revoke", r.admin, map[string]string{"subject": benchSubject})
	case feedKindAgent:
		err = adminCall(ctx, r.client, http.MethodPost, base+"/admin/revoke", r.admin, map[string]string{"agent": r.actor.ID})
	case feedKindScope:
		err = adminCall(ctx, r.client, http.MethodPut, usersPath, r.admin, perms(false))
	default:
		err = fmt.Errorf("unknown kind %q", kind)
	}
	if err != nil {
		return feedTrial{}, err
	}
	t0 := time.Now()
	t := feedTrial{Kind: kind, Via: via}
	t.Refused, t.Failure = r.waitRefused(ctx, tok, t0)
	if ctx.Err() != nil {
		return feedTrial{}, ctx.Err()
	}
	switch kind {
	case feedKindAgent:
		err = adminCall(ctx, r.client, http.MethodPost, base+"/admin/agents/"+url.PathEscape(r.actor.ID)+"/enable", r.admin, nil)
	case feedKindScope:
		err = adminCall(ctx, r.client, http.MethodPut, usersPath, r.admin, perms(true))
	}
	if err != nil {
		return feedTrial{}, fmt.Errorf("giving back what the trial took: %w", err)
	}
	return t, nil
}

// freshToken exchanges a new token on the first instance until every
// verifier accepts one, for at most feedTimeout: after the previous trial
// gave the agent or the permission back through another instance, the
// first may need a moment to see it, and a token it minted before then
// carries a generation the feed has revoked.
func (r *feedRunner) freshToken(ctx context.Context) (*verify.Principal, string, error) {
	deadline := time.Now().Add(feedTimeout)
	for {
		p, tok, err := r.tryToken(ctx)
		if err == nil {
			return p, tok, nil
		}
		if ctx.Err() != nil {
			return nil, "", ctx.Err()
		}
		if time.Now().After(deadline) {
			return nil, "", fmt.Errorf("no token that every verifier accepts within %v: %w", feedTimeout, err)
		}
		if err := sleepCtx(ctx, 5*time.Millisecond); err != nil {
			return nil, "", err
		}
	}
}

func (r *feedRunner) tryToken(ctx context.Context) (*verify.Principal, string, error) {
	tok, err := exchangeAt(ctx, r.client, r.bases[0], r.actor, r.idp, benchAudience, benchScope+" "+feedScope)
	if err != nil {
		return nil, "", err
	}
	var p *verify.Principal
	for _, v := range r.verifiers {
		if p, err = v.v.Verify(ctx, tok); err != nil {
			return nil, "", fmt.Errorf("%s: %w", v.name, err)
		}
	}
	return p, tok, nil
}

// waitRefused polls every verifier's Verify of tok every feedPoll, each in
// its own goroutine, until it fails with ErrRevoked or feedTimeout has
// passed since t0. It returns each verifier's time to its refusal (-1 for
// none) and, when one did not refuse, why.
func (r *feedRunner) waitRefused(ctx context.Context, tok string, t0 time.Time) ([]time.Duration, string) {
	refused := make([]time.Duration, len(r.verifiers))
	last := make([]error, len(r.verifiers))
	var wg sync.WaitGroup
	for i, v := range r.verifiers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			refused[i] = -1
			for ctx.Err() == nil {
				_, err := v.v.Verify(ctx, tok)
				if errors.Is(err, verify.ErrRevoked) {
					refused[i] = time.Since(t0)
					return
				}
				last[i] = err
				if time.Since(t0) > feedTimeout {
					return
				}
				time.Sleep(feedPoll)
			}
		}()
	}
	wg.Wait()
	var why []string
	for i, d := range refused {
		if d < 0 {
			v := r.verifiers[i]
			why = append(why, fmt.Sprintf("%s (follows %s, seq %d, staleness %v) last answered %v",
				v.name, instanceName(v.follows), v.feed.Seq(), v.feed.Staleness().Round(time.Millisecond), last[i]))
		}
	}
	return refused, strings.Join(why, "; ")
}

// printFeed writes the report, or JSON with --json.
func printFeed(w io.Writer, f benchFlags, out feedOutput) error {
	if f.jsonOut {
		return writeJSON(w, out)
	}
	printMachine(w, out.Machine)
	if len(out.Instances) > 1 {
		fmt.Fprintf(w, "server: %d mandate serve instances (A, B) on one PostgreSQL database, unpinned; tokens exchanged on A\n", len(out.Instances))
	} else {
		fmt.Fprintf(w, "server: mandate serve on %s, unpinned\n", out.Store)
	}
	var follows []string
	for _, v := range out.Verifiers {
		follows = append(follows, v.Name+" → "+v.Follows)
	}
	fmt.Fprintf(w, "verifiers: %d verify.Verifiers, each with its own feed.Feed on the SSE stream over loopback (%s)\n",
		len(out.Verifiers), strings.Join(follows, ", "))
	var kinds []string
	for _, k := range feedKinds {
		if n := out.Kinds[k]; n > 0 {
			kinds = append(kinds, fmt.Sprintf("%s %d", k, n))
		}
	}
	via := ""
	if len(out.Instances) > 1 {
		via = ", through A and B in turn"
	}
	fmt.Fprintf(w, "revocations: %s%s; time from the revoking response to a verifier's first ErrRevoked, Verify polled every %v\n",
		strings.Join(kinds, ", "), via, feedPoll)
	l := out.Load
	srv := ""
	if s := l.Server; s != nil {
		srv = fmt.Sprintf(", instance A CPU %.0f%%", 100*s.Utilization)
	}
	fmt.Fprintf(w, "exchange load during the trials: concurrency %d, %d requests, %d errors, %.0f req/s, p50 %s, p99 %s%s\n",
		l.Concurrency, l.Requests, l.Errors, l.Throughput, ms(l.Latency.P50), ms(l.Latency.P99), srv)
	if l.Errors > 0 {
		fmt.Fprintf(w, "  first load error: %s\n", l.FirstError)
	}
	fmt.Fprintln(w)
	rows := [][]string{{"propagation", "samples", "p50", "p90", "p99", "max"}}
	for _, fg := range out.Figures {
		q := fg.Latency
		rows = append(rows, []string{fg.Label, fmt.Sprint(fg.Samples), ms(q.P50), ms(q.P90), ms(q.P99), ms(q.Max)})
	}
	if err := writeTable(w, rows); err != nil {
		return err
	}
	q := out.Figures[0].Latency
	verdict := "met"
	if !out.Met {
		verdict = "NOT met"
	}
	fmt.Fprintf(w, "\ntrials %d  failures %d  p50 %s  p90 %s  p99 %s  max %s  (last of %d verifiers; target: p99 ≤ %v, no failures: %s)\n",
		out.Trials, out.Failures, ms(q.P50), ms(q.P90), ms(q.P99), ms(q.Max), len(out.Verifiers), out.Target, verdict)
	return nil
}
