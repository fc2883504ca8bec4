package bench

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/spf13/cobra"

	"github.com/mandate-dev/mandate/internal/app"
	"github.com/mandate-dev/mandate/internal/cli"
	"github.com/mandate-dev/mandate/internal/config"
	"github.com/mandate-dev/mandate/internal/store"
)

// defaultSchema is the PostgreSQL store's schema when the configuration
// names none (postgres.DefaultSchema; the test keeps them equal).
const defaultSchema = "mandate"

// storeFlags name the store that fill and questions work on.
type storeFlags struct {
	config, store, schema string
}

func (sf *storeFlags) add(c *cobra.Command) {
	c.Flags().StringVar(&sf.config, "config", "", "the store of this mandate configuration file")
	c.Flags().StringVar(&sf.store, "store", "", "or this store: sqlite:PATH or a postgres:// URL")
	c.Flags().StringVar(&sf.schema, "store-schema", "", "with a postgres:// --store: the schema (default "+defaultSchema+")")
}

// load is the configuration the flags name: the file's, or one that holds
// only the store.
func (sf storeFlags) load() (*config.Config, error) {
	switch {
	case (sf.config == "") == (sf.store == ""):
		return nil, cli.ExitCode(2, errors.New("give --config FILE or --store sqlite:PATH|postgres://URL"))
	case sf.config != "":
		return config.Load(sf.config)
	}
	cfg := &config.Config{Store: sf.store, StoreSchema: sf.schema}
	if !cfg.IsPostgres() && !strings.HasPrefix(sf.store, "sqlite:") {
		cfg.Store = "sqlite:" + sf.store
	}
	cfg.ApplyDefaults()
	return cfg, nil
}

// open loads the configuration the flags name and opens its store; the
// caller closes it.
func (sf storeFlags) open(ctx context.Context) (*config.Config, store.Store, error) {
	cfg, err := sf.load()
	if err != nil {
		return nil, nil, err
	}
	s, err := app.OpenStore(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	return cfg, s, nil
}

// newFillCmd is `mandate-bench fill`.
func newFillCmd(stdout io.Writer) *cobra.Command {
	var (
		sf      storeFlags
		p       = fillPlan{People: 10_000, Agents: 200, Span: 90 * 24 * time.Hour, Batch: 1000, Seed: 1}
		jsonOut bool
	)
	cmd := &cobra.Command{
		Use:   "fill",
		Short: "Write N audit records and their token rows into an empty store, at full speed",
		Long: `Write --records audit records, and the token rows of the tokens they
issue, into the empty audit log of a store, through the store's Commit (the
method the server's audit recorder uses), --batch records per transaction, so
that the store numbers and chains them as it does the server's records.

The mix: --people people and --agents agents (each declaring one to four
versions, the first agents busiest); about 44 % granted token exchanges with
jti and parent_jti, from the person's own token or handing a live token on to
a chain of two or three agents; 40 % verifiers' request records (reported_by
rs:expense, resources expense/EXP-N); 10 % refusals with reasons; 4 % people's
own tokens; about 2 % revocations. Record times are spread evenly over the
--days before now. It prints the records written per second.

Then "mandate-bench questions" with the same store times the forensic
questions against it. See docs/benchmarks.md, "The audit log at scale".`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if p.Records <= 0 || p.People <= 0 || p.Agents < 3 || p.Batch <= 0 || p.Span <= 0 {
				return cli.ExitCode(2, errors.New("--records, --people, --batch and --days must be positive, --agents at least 3"))
			}
			cfg, err := sf.load()
			if err != nil {
				return err
			}
			p.End = time.Now()
			return runFill(cmd.Context(), cfg, p, stdout, cmd.ErrOrStderr(), jsonOut)
		},
	}
	sf.add(cmd)
	fl := cmd.Flags()
	fl.Int64Var(&p.Records, "records", 0, "how many audit records to write (required)")
	fl.IntVar(&p.People, "people", p.People, "how many people the records are on behalf of")
	fl.IntVar(&p.Agents, "agents", p.Agents, "how many agents act")
	fl.DurationVar(&p.Span, "span", p.Span, "how far back the first record lies")
	fl.IntVar(&p.Batch, "batch", p.Batch, "records per commit")
	fl.Uint64Var(&p.Seed, "seed", p.Seed, "the seed of the mix")
	fl.BoolVar(&jsonOut, "json", false, "print the result as JSON")
	return cmd
}

func runFill(ctx context.Context, cfg *config.Config, p fillPlan, stdout, stderr io.Writer, jsonOut bool) error {
	s, err := app.OpenStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer s.Close()
	evs, err := s.QueryEvents(ctx, store.EventFilter{Limit: 1})
	if err != nil {
		return err
	}
	if len(evs) > 0 {
		return fmt.Errorf("the audit log holds %d records already: fill an empty store, so that the records' times follow their order", evs[0].Seq)
	}
	res, err := fill(ctx, s, p, stderr)
	if err != nil {
		return err
	}
	size := measureSize(ctx, cfg)
	if jsonOut {
		return json.NewEncoder(stdout).Encode(struct {
			fillResult
			Size storeSize `json:"size"`
		}{res, size})
	}
	fmt.Fprintf(stdout, "wrote %d records and %d token rows in %s: %.0f records/s\n", res.Records, res.Tokens,
		res.Elapsed.Round(time.Millisecond), res.PerSec)
	printSize(stdout, size, res.Records)
	return nil
}

// newQuestionsCmd is `mandate-bench questions`.
func newQuestionsCmd(stdout io.Writer) *cobra.Command {
	var (
		sf      storeFlags
		p       = questionPlan{Runs: 100, Budget: 30 * time.Second, People: 10_000, Agents: 200, Seed: 1}
		jsonOut bool
		only    string
		profile string
	)
	cmd := &cobra.Command{
		Use:   "questions",
		Short: "Time the forensic questions against a filled audit log",
		Long: `Time the forensic questions against the audit log of a store (one that
"mandate-bench fill" filled), each asked up to --runs times (at least three,
and no longer than --budget once three are done), and print p50 and p99
against their targets:

  - an agent's first page of 100 records, newest first, over all people (the
    busiest agent and a quiet one: mandate audit --actor AGENT);
  - a person's last 7 days, first page of 100 (mandate audit --subject);
  - a token's lineage (forensics.Lineage) for tokens deep in a chain;
  - who stood behind an action on a resource (forensics.WhoApproved);
  - refusal rates per agent and version over 24 hours (forensics.Agents);
  - an agent's activity over 24 hours (forensics.AgentActivity);

then the records per second of an export (JSON lines) and of "audit
verify" (auditlog.Replay) over the whole log, with this process's CPU time
per record, and the store's size on disk. --only REGEXP asks only the
questions and passes whose names match (for example --only 'refusal|export').
"Now" is the newest record's time. See docs/benchmarks.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if only != "" {
				re, err := regexp.Compile(only)
				if err != nil {
					return fmt.Errorf("--only: %w", err)
				}
				p.Only = re
			}
			cfg, s, err := sf.open(cmd.Context())
			if err != nil {
				return err
			}
			defer s.Close()
			if profile != "" {
				stop, err := startCPUProfile(profile)
				if err != nil {
					return err
				}
				defer stop()
			}
			rep, err := askQuestions(cmd.Context(), s, p)
			if err != nil {
				return err
			}
			rep.Size = measureSize(cmd.Context(), cfg)
			if jsonOut {
				return json.NewEncoder(stdout).Encode(rep)
			}
			printQuestions(stdout, rep)
			return nil
		},
	}
	sf.add(cmd)
	fl := cmd.Flags()
	fl.IntVar(&p.Runs, "runs", p.Runs, "the most times each question is asked")
	fl.DurationVar(&p.Budget, "budget", p.Budget, "the most time spent on one question, once it was asked three times")
	fl.IntVar(&p.People, "people", p.People, "the --people of the fill")
	fl.IntVar(&p.Agents, "agents", p.Agents, "the --agents of the fill")
	fl.Uint64Var(&p.Seed, "seed", p.Seed, "the seed that picks the people, tokens and resources asked about")
	fl.BoolVar(&jsonOut, "json", false, "print the result as JSON")
	fl.StringVar(&only, "only", "", "ask only the questions and passes whose names match this regular expression")
	fl.StringVar(&profile, "cpuprofile", "", "write a CPU profile of the questions and passes to this file (for go tool pprof)")
	return cmd
}

// startCPUProfile profiles this process's CPU into the file path until
// the returned function is called.
func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

// storeSize is a store's size on disk.
type storeSize struct {
	// Bytes is the whole store: the SQLite file and its WAL, or every
	// table of the PostgreSQL schema with its indexes and TOAST.
	Bytes int64 `json:"bytes"`
	// Tables is the size of each table with its indexes, largest first,
	// when the backend says.
	Tables []tableSize `json:"tables,omitempty"`
	// Indexes is the size of each index, largest first, when the backend
	// says (a PostgreSQL schema sampled with --size-every).
	Indexes []tableSize `json:"indexes,omitempty"`
	// Problem says why a figure is missing.
	Problem string `json:"problem,omitempty"`
}

// tableSize is one table's share of a store.
type tableSize struct {
	Name  string `json:"name"`
	Bytes int64  `json:"bytes"`
}

// measureSize measures the store of cfg on disk; what it cannot measure
// it names in Problem.
func measureSize(ctx context.Context, cfg *config.Config) storeSize {
	var (
		sz  storeSize
		err error
	)
	if cfg.IsPostgres() {
		err = postgresSize(ctx, cfg, &sz)
	} else {
		err = sqliteSize(ctx, cfg.SQLitePath(), &sz)
	}
	if err != nil {
		sz.Problem = err.Error()
	}
	return sz
}

// sqliteSize adds the file and its WAL, and each table with its indexes
// from the dbstat table when the build has it.
func sqliteSize(ctx context.Context, path string, sz *storeSize) error {
	for _, p := range []string{path, path + "-wal"} {
		st, err := os.Stat(p)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		if err == nil {
			sz.Bytes += st.Size()
		}
	}
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		return err
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, `SELECT coalesce(m.tbl_name, d.name), sum(d.pgsize) FROM dbstat d
		LEFT JOIN sqlite_schema m ON m.name = d.name GROUP BY 1 ORDER BY 2 DESC`)
	if err != nil {
		return fmt.Errorf("sizes per table: %w", err)
	}
	return scanSizes(rows, sz)
}

// postgresSize adds every table of the store's schema, with its indexes
// and TOAST.
func postgresSize(ctx context.Context, cfg *config.Config, sz *storeSize) error {
	conn, err := pgx.Connect(ctx, cfg.Store)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	schema := cfg.StoreSchema
	if schema == "" {
		schema = defaultSchema
	}
	rows, err := conn.Query(ctx, `SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c
		JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relkind = 'r' ORDER BY 2 DESC`, schema)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var t tableSize
		if err := rows.Scan(&t.Name, &t.Bytes); err != nil {
			return err
		}
		sz.Tables = append(sz.Tables, t)
		sz.Bytes += t.Bytes
	}
	return rows.Err()
}

func scanSizes(rows *sql.Rows, sz *storeSize) error {
	defer rows.Close()
	for rows.Next() {
		var t tableSize
		if err := rows.Scan(&t.Name, &t.Bytes); err != nil {
			return err
		}
		sz.Tables = append(sz.Tables, t)
	}
	return rows.Err()
}

// printSize writes sz, per record of a log of records.
func printSize(w io.Writer, sz storeSize, records int64) {
	per := func(b int64) string {
		if records == 0 {
			return "-"
		}
		return fmt.Sprintf("%.0f B/record", float64(b)/float64(records))
	}
	fmt.Fprintf(w, "size on disk: %.1f MB (%s)\n", float64(sz.Bytes)/1e6, per(sz.Bytes))
	for i, t := range sz.Tables {
		if i == 6 {
			break
		}
		fmt.Fprintf(w, "  %-16s %10.1f MB (%s)\n", t.Name, float64(t.Bytes)/1e6, per(t.Bytes))
	}
	if len(sz.Indexes) > 0 {
		fmt.Fprintln(w, "of which indexes (the largest):")
	}
	for i, t := range sz.Indexes {
		if i == 16 {
			break
		}
		fmt.Fprintf(w, "  %-24s %10.1f MB (%s)\n", t.Name, float64(t.Bytes)/1e6, per(t.Bytes))
	}
	if sz.Problem != "" {
		fmt.Fprintf(w, "  (%s)\n", sz.Problem)
	}
}
