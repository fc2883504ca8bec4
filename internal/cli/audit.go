package cli

import (
	"bufio"
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/mandate-dev/mandate/internal/app"
	"github.com/mandate-dev/mandate/internal/archive"
	"github.com/mandate-dev/mandate/internal/auditlog"
	"github.com/mandate-dev/mandate/internal/config"
	"github.com/mandate-dev/mandate/internal/store"
	"github.com/mandate-dev/mandate/internal/termsafe"
)

// maxExportLine bounds one record of an exported log.
const maxExportLine = 1 << 20

// auditFlags say where the log is: a configuration or `serve --dev`'s data
// directory (the store itself), a running server, or an exported file.
type auditFlags struct {
	config, server, adminToken, file string
	dev                              bool
	dataDir                          string
	witness, checkpoints, key        string
	json                             bool
	// archive is the directory of archive segments, "" for the
	// configuration's (audit.archive_dir) with --config or --dev and none
	// otherwise.
	archive string
}

func newAuditCmd(stdout io.Writer) *cobra.Command {
	cmd := &cobra.Command{Use: "audit", Short: "Query, verify and export the tamper-evident audit log (mandate audit --actor ... is audit query)"}
	var f auditFlags
	source := func(c *cobra.Command) {
		c.Flags().StringVar(&f.config, "config", "", "read the log from the store of this configuration file")
		c.Flags().BoolVar(&f.dev, "dev", false, "read the log from the store of `mandate serve --dev` (run where it ran)")
		c.Flags().StringVar(&f.dataDir, "data-dir", "", "with --dev: the data directory `serve --dev --data-dir` was given (default ./mandate-dev)")
		c.Flags().StringVar(&f.server, "server", "", "read the log from this running server (its issuer URL)")
		c.Flags().StringVar(&f.adminToken, "admin-token", "", "the server's admin token (default: $MANDATE_ADMIN_TOKEN)")
	}
	verify, export := newAuditVerifyCmd(stdout, &f), newAuditExportCmd(stdout, &f)
	source(verify)
	source(export)
	cmd.AddCommand(verify, export)
	addQueryCmds(cmd, stdout, &f, source, time.Now)
	return cmd
}

// newAuditVerifyCmd is `mandate audit verify`; its source flags are added
// by the caller.
func newAuditVerifyCmd(stdout io.Writer, f *auditFlags) *cobra.Command {
	verify := &cobra.Command{
		Use:   "verify",
		Short: "Check that every record chains to the one before and that the log matches every signed checkpoint",
		Long: `Check the audit log: every record must chain to the one before it (an edited,
deleted, swapped or inserted record is named), and the log must match every signed
checkpoint (a cut-off tail, an older log swapped in, or a re-hashed forgery is caught).
Records moved out by audit.retention are read from the archive segments (--archive,
by default the configuration's audit.archive_dir) and checked with the live log as
one chain: a segment missing, swapped, edited or truncated is named.

The log comes from --config (the store), --dev (the store of mandate serve --dev),
--server (a running server) or --file (an export). Checkpoints come from the same place and from --witness (the witness file,
kept outside the database; one that holds no checkpoint fails) or --checkpoints (a
saved GET /audit/checkpoints answer).
Pin the checkpoint key with --key: a key read from the log's own store or server only
proves that whoever controls them signed. Exit status 1 when the log fails.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			res, err := verifyLog(cmd.Context(), *f)
			if err != nil {
				return err
			}
			if f.json {
				if err := json.NewEncoder(stdout).Encode(res); err != nil {
					return err
				}
			} else if res.OK() && res.Segments > 0 {
				fmt.Fprintf(stdout, "audit log OK: %d records (%d archive segments, then the live log), %d signed checkpoints matched, root %s\n",
					res.Records, res.Segments, res.Checkpoints, base64.StdEncoding.EncodeToString(res.Root[:]))
			} else if res.OK() {
				fmt.Fprintf(stdout, "audit log OK: %d records, %d signed checkpoints matched, root %s\n",
					res.Records, res.Checkpoints, base64.StdEncoding.EncodeToString(res.Root[:]))
			} else if res.FirstBad > 0 {
				fmt.Fprintf(stdout, "audit log FAILED at record %d: %s\n", res.FirstBad, termsafe.String(res.Problem))
			} else {
				fmt.Fprintf(stdout, "audit log FAILED: %s\n", termsafe.String(res.Problem))
			}
			if !res.OK() {
				return &exitError{code: 1, err: fmt.Errorf("audit log does not verify (first bad record %d)", res.FirstBad)}
			}
			return nil
		},
	}
	verify.Flags().StringVar(&f.file, "file", "", "read the log from an export (JSON lines)")
	verify.Flags().StringVar(&f.witness, "witness", "", "a witness file of signed checkpoints")
	verify.Flags().StringVar(&f.checkpoints, "checkpoints", "", "a saved GET /audit/checkpoints answer")
	verify.Flags().StringVar(&f.key, "key", "", "the checkpoint verifier key to trust (from GET /audit/checkpoints, kept apart)")
	verify.Flags().BoolVar(&f.json, "json", false, "print the result as JSON")
	verify.Flags().StringVar(&f.archive, "archive", "", "the directory of archive segments (default: the configuration's audit.archive_dir)")

	return verify
}

// newAuditExportCmd is `mandate audit export`; its source flags are added
// by the caller.
func newAuditExportCmd(stdout io.Writer, f *auditFlags) *cobra.Command {
	var (
		out    string
		follow bool
		every  time.Duration
	)
	export := &cobra.Command{
		Use:   "export",
		Short: "Write the audit log as JSON lines, oldest first, each record with its chain hash",
		Long: `Write the audit log as JSON lines, oldest first, each record with its seq and chain
hash, which "mandate audit verify --file" checks offline. With --follow it keeps
running and writes each new record as it is appended (for a SIEM), until stopped.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			w := stdout
			if out != "" && out != "-" {
				file, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
				if err != nil {
					return err
				}
				defer file.Close()
				w = file
			}
			if follow && every <= 0 {
				return usage("--every must be positive")
			}
			src, err := openAuditSource(cmd.Context(), *f)
			if err != nil {
				return err
			}
			defer src.close()
			return exportLog(cmd.Context(), w, src, follow, every)
		},
	}
	export.Flags().StringVar(&out, "out", "", "the file to write (default standard output)")
	export.Flags().BoolVar(&follow, "follow", false, "keep running and write new records as they are appended (for a SIEM)")
	export.Flags().DurationVar(&every, "every", time.Second, "with --follow: how often to look for new records")
	return export
}

// exportLog writes the log as JSON lines; with follow, it then looks for
// new records every every until ctx ends, resuming after the last seq it
// wrote.
func exportLog(ctx context.Context, w io.Writer, src *auditSource, follow bool, every time.Duration) error {
	// Lines are buffered, and flushed after every read of the log: a
	// write per record cost a system call each.
	bw := bufio.NewWriterSize(w, 64<<10)
	var (
		last int64
		line []byte
	)
	write := func(ev store.Event) error {
		var err error
		if line, err = auditlog.AppendExportLine(line[:0], ev); err != nil {
			return err
		}
		last = ev.Seq
		_, err = bw.Write(line)
		return err
	}
	events := func(after int64) error {
		err := src.events(ctx, after, write)
		if ferr := bw.Flush(); err == nil {
			err = ferr
		}
		return err
	}
	if err := events(0); err != nil || !follow {
		return err
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if err := events(last); err != nil && ctx.Err() == nil {
			return err
		}
	}
}

// checkpointsAnswer is what GET /audit/checkpoints answers, as read by
// --server and --checkpoints.
type checkpointsAnswer struct {
	Key         string `json:"verifier_key"`
	Checkpoints []struct {
		Note string `json:"note"`
	} `json:"checkpoints"`
}

// auditSource reads a log and its checkpoints.
type auditSource struct {
	// events calls fn with every record after seq after, in seq order.
	events func(ctx context.Context, after int64, fn func(store.Event) error) error
	// notes are the checkpoint notes the source holds; key the verifier
	// key it names ("" when it names none).
	notes []string
	key   string
	close func()
	// archived is the seq of the last record the store says it archived;
	// archiveDir the configuration's archive directory (store sources).
	archived   int64
	archiveDir string
}

// openAuditSource opens where f says the log is.
func openAuditSource(ctx context.Context, f auditFlags) (*auditSource, error) {
	if err := f.oneSource(); err != nil {
		return nil, err
	}
	switch {
	case f.config != "" || f.dev:
		cfg, err := f.storeConfig()
		if err != nil {
			return nil, err
		}
		return storeSource(ctx, cfg)
	case f.server != "":
		return serverSource(ctx, f)
	}
	return fileSource(f.file)
}

// storeSource reads the log and its checkpoints from the store of cfg,
// and the checkpoints of its witness file.
func storeSource(ctx context.Context, cfg *config.Config) (*auditSource, error) {
	s, err := app.OpenStore(ctx, cfg)
	if err != nil {
		return nil, err
	}
	src := &auditSource{close: func() { s.Close() }, archiveDir: cfg.ArchivePath()}
	mark, err := s.ArchivedLog(ctx)
	if err != nil {
		s.Close()
		return nil, err
	}
	src.archived = mark.Size
	src.events = func(ctx context.Context, after int64, fn func(store.Event) error) error {
		return store.EachEvent(ctx, s, after, fn)
	}
	cs, err := store.AllCheckpoints(ctx, s)
	if err != nil {
		s.Close()
		return nil, err
	}
	for _, c := range cs {
		src.notes = append(src.notes, c.Note)
	}
	if len(src.notes) > 0 {
		skey, err := s.CheckpointKey(ctx, func() (string, error) { return "", errors.New("no checkpoint key") })
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("checkpoint key: %w", err)
		}
		if src.key, err = auditlog.VerifierKey(skey); err != nil {
			s.Close()
			return nil, err
		}
	}
	if w := cfg.WitnessPath(); w != "" {
		if b, err := os.ReadFile(w); err == nil {
			src.notes = append(src.notes, auditlog.SplitNotes(string(b))...)
		}
	}
	return src, nil
}

// oneSource checks that the flags name exactly one place to read the log.
func (f auditFlags) oneSource() error {
	set := 0
	for _, v := range []string{f.config, f.server, f.file} {
		if v != "" {
			set++
		}
	}
	if f.dev {
		set++
	}
	if set != 1 {
		return usage("give exactly one of --config, --dev, --server and --file")
	}
	if f.dataDir != "" && !f.dev {
		return usage("--data-dir goes with --dev")
	}
	return nil
}

// storeConfig is the configuration of the store the flags name: --config's
// file, or the dev cast in --dev's data directory.
func (f auditFlags) storeConfig() (*config.Config, error) {
	if f.dev {
		return openDevConfig(f.dataDir)
	}
	return config.Load(f.config)
}

// token is the admin token for --server: --admin-token or
// $MANDATE_ADMIN_TOKEN.
func (f auditFlags) token() string {
	if f.adminToken != "" {
		return f.adminToken
	}
	return os.Getenv("MANDATE_ADMIN_TOKEN")
}

func serverSource(ctx context.Context, f auditFlags) (*auditSource, error) {
	token := f.token()
	base := strings.TrimRight(f.server, "/")
	get := func(ctx context.Context, path string) (*http.Response, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode != http.StatusOK {
			resp.Body.Close()
			return nil, fmt.Errorf("GET %s: %s", path, resp.Status)
		}
		return resp, nil
	}
	resp, err := get(ctx, "/audit/checkpoints")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var body checkpointsAnswer
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&body); err != nil {
		return nil, fmt.Errorf("GET /audit/checkpoints: %w", err)
	}
	src := &auditSource{key: body.Key, close: func() {}}
	for _, c := range body.Checkpoints {
		src.notes = append(src.notes, c.Note)
	}
	src.events = func(ctx context.Context, after int64, fn func(store.Event) error) error {
		resp, err := get(ctx, "/audit/export?after="+strconv.FormatInt(after, 10))
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		return readExport(resp.Body, fn)
	}
	return src, nil
}

func fileSource(path string) (*auditSource, error) {
	src := &auditSource{close: func() {}}
	src.events = func(_ context.Context, after int64, fn func(store.Event) error) error {
		file, err := os.Open(path)
		if err != nil {
			return err
		}
		defer file.Close()
		return readExport(file, func(ev store.Event) error {
			if ev.Seq <= after {
				return nil
			}
			return fn(ev)
		})
	}
	return src, nil
}

// readExport reads JSON lines of records.
func readExport(r io.Reader, fn func(store.Event) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxExportLine)
	for line := 1; sc.Scan(); line++ {
		if len(strings.TrimSpace(sc.Text())) == 0 {
			continue
		}
		var ev store.Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			return fmt.Errorf("export line %d: %w", line, err)
		}
		if err := fn(ev); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	return nil
}

// gatherNotes is the checkpoint notes of src and of the files the flags
// name (--witness, --checkpoints), and the key a checkpoints file gives
// when src has none; a problem names a witness file that holds none.
func gatherNotes(f auditFlags, src *auditSource) (notes []string, problem string, err error) {
	notes = src.notes
	for _, path := range []string{f.witness, f.checkpoints} {
		if path == "" {
			continue
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, "", err
		}
		if path == f.checkpoints {
			var saved checkpointsAnswer
			if err := json.Unmarshal(b, &saved); err != nil {
				return nil, "", fmt.Errorf("--checkpoints: %w", err)
			}
			for _, c := range saved.Checkpoints {
				notes = append(notes, c.Note)
			}
			if src.key == "" {
				src.key = saved.Key
			}
			continue
		}
		witnessed, err := auditlog.WitnessNotes(string(b))
		if err != nil {
			return nil, fmt.Sprintf("the witness file %s holds no checkpoint: it is empty, cut short or not a witness file", path), nil
		}
		notes = append(notes, witnessed...)
	}
	return notes, "", nil
}

// verifyLog replays the log against every checkpoint the flags name, after
// the archive segments when there are any (--archive, or the
// configuration's archive directory).
func verifyLog(ctx context.Context, f auditFlags) (archive.Report, error) {
	fail := func(problem string) (archive.Report, error) {
		return archive.Report{Result: auditlog.Result{Problem: problem}}, nil
	}
	src, err := openAuditSource(ctx, f)
	if err != nil {
		return archive.Report{}, err
	}
	defer src.close()
	notes, problem, err := gatherNotes(f, src)
	if err != nil || problem != "" {
		return archive.Report{Result: auditlog.Result{Problem: problem}}, err
	}
	key := f.key
	if key == "" {
		key = src.key
	}
	if key == "" && len(notes) > 0 {
		return archive.Report{}, &exitError{code: 2, err: errors.New("checkpoints need a verifier key: give --key")}
	}
	if f.key != "" && src.key != "" && src.key != f.key {
		return fail("the checkpoint key of the log's source is not the pinned one: its checkpoints were signed by someone else")
	}
	var checkpoints []auditlog.Checkpoint
	for i, n := range notes {
		c, err := auditlog.Open(n, key)
		if err != nil {
			return fail(fmt.Sprintf("checkpoint %d is malformed or does not verify with the key (a torn last note in a witness file means the machine stopped while writing it): %v", i+1, err))
		}
		checkpoints = append(checkpoints, c)
	}
	dir := cmp.Or(f.archive, src.archiveDir)
	if dir != "" {
		segs := archive.Dir{Path: dir}
		names, err := segs.List(ctx)
		if err != nil {
			return archive.Report{}, err
		}
		if len(names) == 0 && src.archived > 0 {
			return archive.Report{Result: auditlog.Result{FirstBad: 1, Problem: fmt.Sprintf(
				"records 1 to %d were archived and %s holds no archive segment: give the archive directory with --archive", src.archived, dir)}}, nil
		}
		if len(names) > 0 {
			if key == "" {
				return archive.Report{}, &exitError{code: 2, err: errors.New("archive segments need a verifier key: give --key")}
			}
			return archive.Verify(ctx, segs, key, checkpoints, src.events)
		}
	}
	replay := auditlog.NewReplay(checkpoints)
	stop := errors.New("stop")
	err = src.events(ctx, 0, func(ev store.Event) error {
		if !replay.Add(ev) {
			return stop
		}
		return nil
	})
	if err != nil && !errors.Is(err, stop) {
		return archive.Report{}, err
	}
	return archive.Report{Result: replay.Finish()}, nil
}
