package cli

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/mandate-dev/mandate/internal/app"
	"github.com/mandate-dev/mandate/internal/archive"
	"github.com/mandate-dev/mandate/internal/audit"
	"github.com/mandate-dev/mandate/internal/forensics"
	"github.com/mandate-dev/mandate/internal/store"
	"github.com/mandate-dev/mandate/internal/termsafe"
)

// queryFlags are the filters of `mandate audit query` and the window of the
// reports.
type queryFlags struct {
	actor, subject, action, result, audience, resource string
	delegation, agentVersion, jti, since, until        string
	limit                                              int
	lineage                                            bool
}

func (q *queryFlags) window(c *cobra.Command) {
	c.Flags().StringVar(&q.since, "since", "", "from this time (RFC 3339) or this long ago (24h)")
	c.Flags().StringVar(&q.until, "until", "", "before this time (RFC 3339) or this long ago")
}

func (q *queryFlags) add(c *cobra.Command) {
	c.Flags().StringVar(&q.actor, "actor", "", "records in which this agent appears anywhere in the chain")
	c.Flags().StringVar(&q.subject, "subject", "", "records on behalf of this person")
	c.Flags().StringVar(&q.action, "action", "", "records of this action (token.exchange, token.refused, request, ...)")
	c.Flags().StringVar(&q.result, "result", "", "granted, refused, ok or failed")
	c.Flags().StringVar(&q.audience, "audience", "", "records for this audience")
	c.Flags().StringVar(&q.resource, "resource", "", "records on this resource")
	c.Flags().StringVar(&q.delegation, "delegation", "", "records under this delegation id")
	c.Flags().StringVar(&q.agentVersion, "agent-version", "", "records of requests by this declared agent version")
	c.Flags().StringVar(&q.jti, "jti", "", "records about this token (and tokens exchanged from it)")
	c.Flags().BoolVar(&q.lineage, "lineage", false, "with --jti: also every ancestor and descendant token, oldest first")
	c.Flags().IntVar(&q.limit, "limit", 100, "at most this many records (0: all)")
	q.window(c)
}

// filter is the flags as a store filter; now anchors relative times.
func (q *queryFlags) filter(now time.Time) (store.EventFilter, error) {
	w, err := q.timeWindow(now)
	if err != nil {
		return store.EventFilter{}, err
	}
	if q.limit < 0 {
		return store.EventFilter{}, usage("--limit must not be negative")
	}
	if q.lineage && q.jti == "" {
		return store.EventFilter{}, usage("--lineage needs --jti")
	}
	return store.EventFilter{
		Actor: q.actor, Subject: q.subject, Action: q.action, Result: q.result, Audience: q.audience,
		Resource: q.resource, DelegationID: q.delegation, AgentVersion: q.agentVersion, JTI: q.jti,
		Since: w.Since, Until: w.Until, Limit: q.limit,
	}, nil
}

func (q *queryFlags) timeWindow(now time.Time) (forensics.Window, error) {
	var w forensics.Window
	var err error
	if w.Since, err = flagTime("--since", q.since, now); err != nil {
		return w, err
	}
	w.Until, err = flagTime("--until", q.until, now)
	return w, err
}

// flagTime reads RFC 3339 or a duration back from now.
func flagTime(name, v string, now time.Time) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(v); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, usage(name + " takes an RFC 3339 time or a duration such as 24h")
}

// withArchives is s, and the records of the archives in segs from since
// on when s's oldest records were archived and since reaches back before
// its live log.
func withArchives(ctx context.Context, s store.Store, segs archive.Store, since time.Time, stderr io.Writer) (forensics.Source, error) {
	mark, err := s.ArchivedLog(ctx)
	if err != nil || mark.Size == 0 {
		return s, err
	}
	if !since.IsZero() {
		first, err := s.EventsAfter(ctx, mark.Size, 1)
		if err != nil {
			return nil, err
		}
		if len(first) > 0 && !since.Before(first[0].Time) {
			return s, nil
		}
	}
	fmt.Fprintln(stderr, "reading archives: slower")
	old, err := archive.ReadEvents(ctx, segs, since)
	if err != nil {
		return nil, err
	}
	return archivedSource{live: s, old: forensics.NewMemory(old), through: mark.Size}, nil
}

// archivedSource is a live log and, before it, its archived records
// (through seq through), queried newest first as one log.
type archivedSource struct {
	live    forensics.Source
	old     *forensics.Memory
	through int64
}

// QueryEvents implements forensics.Source: the live log's matches, then
// the archives' up to the limit.
func (a archivedSource) QueryEvents(ctx context.Context, f store.EventFilter) ([]store.Event, error) {
	limit := cmp.Or(f.Limit, 100)
	var out []store.Event
	if f.BeforeSeq == 0 || f.BeforeSeq > a.through+1 {
		live, err := a.live.QueryEvents(ctx, f)
		if err != nil {
			return nil, err
		}
		for _, ev := range live {
			if ev.Seq > a.through { // a record archived but not yet deleted is read from its archive
				out = append(out, ev)
			}
		}
		if len(live) == limit {
			return out, nil
		}
	}
	f.Limit = limit - len(out)
	old, err := a.old.QueryEvents(ctx, f)
	if err != nil {
		return nil, err
	}
	return append(out, old...), nil
}

// TallyEvents implements forensics.Source: the live log and its archives
// are one log only when read record by record (forensics.TallyRecords).
func (a archivedSource) TallyEvents(ctx context.Context, f store.TallyFilter) ([]store.EventTally, error) {
	return forensics.TallyRecords(ctx, a, f)
}

func usage(msg string) error { return &exitError{code: 2, err: errors.New(msg)} }

// openQuerySource opens where f says the log is, for queries from since
// on. A store whose oldest records were archived is read with its archives
// when since reaches back before its live log (saying so on stderr).
func openQuerySource(ctx context.Context, f auditFlags, since time.Time, stderr io.Writer) (forensics.Source, func(), error) {
	if err := f.oneSource(); err != nil {
		return nil, nil, err
	}
	switch {
	case f.config != "" || f.dev:
		cfg, err := f.storeConfig()
		if err != nil {
			return nil, nil, err
		}
		s, err := app.OpenStore(ctx, cfg)
		if err != nil {
			return nil, nil, err
		}
		src, err := withArchives(ctx, s, archive.Dir{Path: cmp.Or(f.archive, cfg.ArchivePath())}, since, stderr)
		if err != nil {
			s.Close()
			return nil, nil, err
		}
		return src, func() { s.Close() }, nil
	case f.server != "":
		return &forensics.Server{URL: f.server, AdminToken: f.token()}, func() {}, nil
	}
	file, err := os.Open(f.file)
	if err != nil {
		return nil, nil, err
	}
	defer file.Close()
	var evs []store.Event
	if err := readExport(file, func(ev store.Event) error { evs = append(evs, ev); return nil }); err != nil {
		return nil, nil, err
	}
	return forensics.NewMemory(evs), func() {}, nil
}

// addQueryCmds adds query, agent, who-approved and agents to the audit
// command, and makes `mandate audit` with filters a query.
func addQueryCmds(cmd *cobra.Command, stdout io.Writer, f *auditFlags, source func(*cobra.Command), now func() time.Time) {
	withSource := func(c *cobra.Command) {
		source(c)
		c.Flags().StringVar(&f.file, "file", "", "read the log from an export (JSON lines)")
		c.Flags().BoolVar(&f.json, "json", false, "print JSON lines instead of a table")
		c.Flags().StringVar(&f.archive, "archive", "", "with --config or --dev: the directory of archive segments (default: the configuration's audit.archive_dir)")
	}
	var q queryFlags
	runQuery := func(c *cobra.Command, _ []string) error {
		filter, err := q.filter(now())
		if err != nil {
			return err
		}
		src, done, err := openQuerySource(c.Context(), *f, filter.Since, c.ErrOrStderr())
		if err != nil {
			return err
		}
		defer done()
		var evs []store.Event
		if q.lineage {
			evs, err = forensics.Lineage(c.Context(), src, q.jti)
		} else {
			err = forensics.Each(c.Context(), src, filter, func(ev store.Event) error { evs = append(evs, ev); return nil })
			slices.Reverse(evs)
		}
		if err != nil {
			return err
		}
		return printEvents(stdout, evs, f.json)
	}
	query := &cobra.Command{
		Use:   "query",
		Short: "List audit records by actor (anywhere in the chain), subject, action, result, audience, resource, delegation, jti or time",
		Long: `List audit records, oldest first, as a table (time, action, performed
by, on behalf of, delegation chain, resource, result, reported by) or as
JSON lines (--json). Times are RFC 3339 in UTC.

Filters combine: --actor matches an agent anywhere in the delegation chain, so
"everything agent:infrabot touched, for anyone" is --actor agent:infrabot.
--jti J --lineage gives every record about token J, the tokens it was exchanged
from and every token exchanged from it. The newest --limit records are shown.`,
		Args: cobra.NoArgs,
		RunE: runQuery,
	}
	withSource(query)
	q.add(query)
	// `mandate audit --actor ...` is `mandate audit query --actor ...`.
	cmd.Args, cmd.RunE = cobra.NoArgs, runQuery
	withSource(cmd)
	q.add(cmd)

	r := &reports{stdout: stdout, f: f, now: now}
	cmds := []*cobra.Command{r.agent(), r.whoApproved(), r.agents()}
	for _, c := range cmds {
		withSource(c)
		r.w.window(c)
	}
	cmd.AddCommand(query)
	cmd.AddCommand(cmds...)
}

// reports are the commands that answer a question over a time window:
// audit agent, who-approved and agents.
type reports struct {
	stdout io.Writer
	f      *auditFlags
	w      queryFlags
	now    func() time.Time
}

// run runs fn over the window and the source of the flags.
func (r *reports) run(c *cobra.Command, fn func(ctx context.Context, src forensics.Source, win forensics.Window) error) error {
	win, err := r.w.timeWindow(r.now())
	if err != nil {
		return err
	}
	src, done, err := openQuerySource(c.Context(), *r.f, win.Since, c.ErrOrStderr())
	if err != nil {
		return err
	}
	defer done()
	return fn(c.Context(), src, win)
}

func (r *reports) agent() *cobra.Command {
	return &cobra.Command{
		Use:   "agent AGENT",
		Short: "Everything an agent did and for whom, with its refusals and their reasons",
		Long: `Everything an agent did, for whom, and what was refused: the records in which it
appears anywhere in the chain (the question after "this agent is compromised").`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			return r.run(c, func(ctx context.Context, src forensics.Source, win forensics.Window) error {
				a, err := forensics.AgentActivity(ctx, src, args[0], win)
				if err != nil {
					return err
				}
				if r.f.json {
					return jsonLines(r.stdout, []forensics.Activity{a})
				}
				return printActivity(r.stdout, a)
			})
		},
	}
}

func (r *reports) whoApproved() *cobra.Command {
	var resource string
	who := &cobra.Command{
		Use:   "who-approved --resource RESOURCE",
		Short: "Who stood behind each action on a resource: the person, every agent of the chain, the delegation and the grant",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if resource == "" {
				return usage("--resource is required")
			}
			return r.run(c, func(ctx context.Context, src forensics.Source, win forensics.Window) error {
				aps, err := forensics.WhoApproved(ctx, src, resource, win)
				if err != nil {
					return err
				}
				if r.f.json {
					return jsonLines(r.stdout, aps)
				}
				return printApprovals(r.stdout, resource, aps)
			})
		},
	}
	who.Flags().StringVar(&resource, "resource", "", "the resource, as the API or the token request named it (e.g. expense/EXP-1042)")

	return who
}

func (r *reports) agents() *cobra.Command {
	return &cobra.Command{
		Use:   "agents",
		Short: "Per agent and agent version: tokens issued, refused and revoked, refusal rate, and API requests let through or refused",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return r.run(c, func(ctx context.Context, src forensics.Source, win forensics.Window) error {
				rows, err := forensics.Agents(ctx, src, win)
				if err != nil {
					return err
				}
				if r.f.json {
					return jsonLines(r.stdout, rows)
				}
				return printAgents(r.stdout, rows)
			})
		},
	}
}

// row is an event as a line of the table.
func row(ev store.Event) (action, resource, result string) {
	action, resource, result = ev.Action, ev.Resource, ev.Result
	if ev.Action == audit.ActionRequest && ev.Operation != "" {
		action = ev.Operation
	}
	if ev.Audience != "" && (ev.Action != audit.ActionRequest || resource == "") {
		resource = ev.Audience
	}
	if ev.Reason != "" && ev.Result != audit.ResultOK && ev.Result != audit.ResultGranted {
		result += " (" + ev.Reason + ")"
	}
	return action, resource, result
}

// jsonLines writes each value as a line of JSON.
func jsonLines[T any](w io.Writer, vs []T) error {
	enc := json.NewEncoder(w)
	for _, v := range vs {
		if err := enc.Encode(v); err != nil {
			return err
		}
	}
	return nil
}

// tableTime is how a table shows a record's time: RFC 3339 in UTC, with
// the zone (Z), and always three decimals so that the column keeps its
// width and records a millisecond apart read in order.
const tableTime = "2006-01-02T15:04:05.000Z07:00"

// printEvents writes events as the table or as JSON lines. The CHAIN
// column is the record's delegation chain, the performer first and then
// each agent it acts for (agent:argocd <- agent:infrabot), which is why a
// record appears in `mandate audit agent` for an agent that did not
// perform it. Every value in a table is escaped (termsafe): a caller's
// newline, tab, escape sequence or bidi control cannot start a row, shift
// a column or rewrite the terminal (THREATS T85).
func printEvents(w io.Writer, evs []store.Event, asJSON bool) error {
	if asJSON {
		return jsonLines(w, evs)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tACTION\tPERFORMED BY\tON BEHALF OF\tCHAIN\tRESOURCE\tRESULT\tREPORTED BY")
	for _, ev := range evs {
		action, resource, result := row(ev)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", ev.Time.UTC().Format(tableTime), cell(action),
			cell(ev.Performer), cell(ev.OnBehalf), cells(ev.Chain, " <- "), cell(resource), cell(result), cell(forensics.ReportedBy(ev)))
	}
	return tw.Flush()
}

// cell is a value as a table shows it: escaped, and "-" when empty.
func cell(s string) string {
	if s == "" {
		return "-"
	}
	return termsafe.String(s)
}

func printActivity(w io.Writer, a forensics.Activity) error {
	fmt.Fprintf(w, "Everything %s did (%d records)\n\n", termsafe.String(a.Agent), len(a.Events))
	if err := printEvents(w, a.Events, false); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nFor whom\n\n")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ON BEHALF OF\tTOKENS\tAPI REQUESTS\tREFUSED\tAPI REPORTED BY")
	for _, s := range a.For {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\n", cell(s.Subject), s.Tokens, s.Requests, s.Refused, cells(s.ReportedBy, ", "))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nRefusals (%d)\n\n", len(a.Refusals))
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tACTION\tON BEHALF OF\tREASON\tWHY")
	for _, ev := range a.Refusals {
		action, _, _ := row(ev)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", ev.Time.UTC().Format(tableTime), cell(action), cell(ev.OnBehalf),
			cell(ev.Reason), cell(ev.Detail))
	}
	return tw.Flush()
}

func printApprovals(w io.Writer, resource string, aps []forensics.Approval) error {
	if len(aps) == 0 {
		fmt.Fprintf(w, "no record names %s\n", termsafe.String(resource))
		return nil
	}
	for i, ap := range aps {
		ev := ap.Event
		action, _, result := row(ev)
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "%s  %s %s: %s\n", ev.Time.UTC().Format(time.RFC3339Nano), cell(action), cell(resource), cell(result))
		fmt.Fprintf(w, "  on behalf of  %s\n", cell(ev.OnBehalf))
		fmt.Fprintf(w, "  performed by  %s\n", cell(ev.Performer))
		if len(ev.Chain) > 0 {
			fmt.Fprintf(w, "  chain         %s\n", cells(ev.Chain, " <- "))
		}
		if ev.Audience != "" && ev.ReportedBy == "" {
			fmt.Fprintf(w, "  audience      %s\n", cell(ev.Audience))
		}
		if len(ev.Context) > 0 {
			fmt.Fprintf(w, "  context       %s\n", termsafe.JSON(ev.Context))
		}
		if len(ev.Attributes) > 0 {
			fmt.Fprintf(w, "  attributes    %s\n", termsafe.JSON(ev.Attributes))
		}
		if ev.ReportedBy != "" {
			fmt.Fprintf(w, "  reported by   %s (at %s)\n", cell(forensics.ReportedBy(ev)), cell(ev.Audience))
		}
		if ev.JTI != "" {
			fmt.Fprintf(w, "  token         %s\n", cell(ev.JTI))
		}
		for _, t := range ap.Authority {
			line := fmt.Sprintf("  authority     %s %s: %s for %s, scopes %s", t.Time.UTC().Format(time.RFC3339), cell(t.Action),
				cell(t.ClientID), cell(t.OnBehalf), cells(t.Scopes, " "))
			if t.DelegationID != "" {
				line += ", delegation " + cell(t.DelegationID)
			}
			if len(t.AuthorizationDetails) > 0 {
				line += ", authorization_details " + termsafe.JSON(t.AuthorizationDetails)
			}
			if len(t.Context) > 0 {
				line += ", context " + termsafe.JSON(t.Context)
			}
			fmt.Fprintln(w, line)
		}
	}
	return nil
}

// cells is a list as a table shows it: each item escaped, joined by sep,
// and "-" when empty.
func cells(l []string, sep string) string {
	if len(l) == 0 {
		return "-"
	}
	out := make([]string, len(l))
	for i, s := range l {
		out[i] = termsafe.String(s)
	}
	return strings.Join(out, sep)
}

func printAgents(w io.Writer, rows []forensics.AgentStats) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "AGENT\tVERSION\tISSUED\tREFUSED\tREVOKED\tREFUSAL RATE\tAPI OK\tAPI REFUSED\tAPI REPORTED BY")
	for _, r := range rows {
		version := r.Version
		if version == "" {
			version = "(all)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%.1f%%\t%d\t%d\t%s\n", cell(r.Agent), cell(version), r.Issued, r.Refused, r.Revoked,
			100*r.RefusalRate, r.APIGranted, r.APIRefused, cells(r.APIReportedBy, ", "))
	}
	return tw.Flush()
}
