package bench

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// liveSize is one sample of a store's size while a run goes on
// (--size-every). On PostgreSQL, LiveBytes is every relation of the
// schema (tables, their partitions, indexes and TOAST), and PageSize,
// Pages, FreePages and WALBytes are 0: the space inside a relation's files
// that VACUUM has freed is counted as live, and the WAL is the cluster's.
type liveSize struct {
	// At is the time since the start of the run, warm-up included.
	At time.Duration `json:"at_ns"`
	// PageSize, Pages and FreePages are the file's page_size, page_count
	// and freelist_count; LiveBytes is (Pages - FreePages) × PageSize, the
	// bytes the tables and indexes hold.
	PageSize  int64 `json:"page_size"`
	Pages     int64 `json:"pages"`
	FreePages int64 `json:"free_pages"`
	LiveBytes int64 `json:"live_bytes"`
	// WALBytes is the size of the write-ahead log file.
	WALBytes int64 `json:"wal_bytes"`
	// Records and Tokens are the rows of the audit log and of the token
	// table.
	Records int64 `json:"records"`
	Tokens  int64 `json:"tokens"`
}

// sizeTarget is the store a run samples: the SQLite database at path, or
// the PostgreSQL schema at url; the zero value samples nothing.
type sizeTarget struct {
	path        string
	url, schema string
}

// sizeSampler samples one store's size.
type sizeSampler interface {
	// sample reads the size now; at is stored as given.
	sample(ctx context.Context, at time.Duration) (liveSize, error)
	// tables reads each table's share of the store.
	tables(ctx context.Context) (storeSize, error)
	Close() error
}

// openSizeSampler opens the store of t; the server must have created it.
func openSizeSampler(ctx context.Context, t sizeTarget) (sizeSampler, error) {
	if t.url != "" {
		return openPostgresSampler(ctx, t.url, t.schema)
	}
	return openSQLiteSampler(t.path)
}

// sqliteSampler reads the live size of the SQLite database at path, from a
// read-only connection of its own.
type sqliteSampler struct {
	path string
	db   *sql.DB
}

// openSQLiteSampler opens path read-only.
func openSQLiteSampler(path string) (*sqliteSampler, error) {
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		return nil, fmt.Errorf("opening %s to sample its size: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	return &sqliteSampler{path: path, db: db}, nil
}

func (s *sqliteSampler) Close() error { return s.db.Close() }

func (s *sqliteSampler) tables(ctx context.Context) (storeSize, error) {
	var sz storeSize
	err := sqliteSize(ctx, s.path, &sz)
	return sz, err
}

func (s *sqliteSampler) sample(ctx context.Context, at time.Duration) (liveSize, error) {
	v := liveSize{At: at}
	for _, q := range []struct {
		sql string
		dst *int64
	}{
		{"PRAGMA page_size", &v.PageSize},
		{"PRAGMA page_count", &v.Pages},
		{"PRAGMA freelist_count", &v.FreePages},
		{"SELECT count(*) FROM events", &v.Records},
		{"SELECT count(*) FROM tokens", &v.Tokens},
	} {
		if err := s.db.QueryRowContext(ctx, q.sql).Scan(q.dst); err != nil {
			return v, fmt.Errorf("sampling the size of %s (%s): %w", s.path, q.sql, err)
		}
	}
	v.LiveBytes = (v.Pages - v.FreePages) * v.PageSize
	st, err := os.Stat(s.path + "-wal")
	switch {
	case err == nil:
		v.WALBytes = st.Size()
	case !errors.Is(err, os.ErrNotExist):
		return v, fmt.Errorf("sampling the size of %s: %w", s.path, err)
	}
	return v, nil
}

// sampleSizes samples s every `every` until stop is closed, then once
// more, and returns the samples; a failed sample ends the sampling and is
// returned with those before it.
func sampleSizes(ctx context.Context, s sizeSampler, every time.Duration, stop <-chan struct{}) ([]liveSize, error) {
	start := time.Now()
	t := time.NewTicker(every)
	defer t.Stop()
	var out []liveSize
	for {
		v, err := s.sample(ctx, time.Since(start))
		if err != nil {
			return out, err
		}
		out = append(out, v)
		select {
		case <-ctx.Done():
			return out, ctx.Err()
		case <-stop:
			v, err := s.sample(ctx, time.Since(start))
			if err != nil {
				return out, err
			}
			return append(out, v), nil
		case <-t.C:
		}
	}
}

// printSizes writes the samples of each run that has them, and, when the
// rate and the retention are known, the live bytes (WAL included) per
// exchange the retention holds: live ÷ (rate × retention).
func printSizes(w io.Writer, runs []benchResult, f benchFlags) error {
	for _, r := range runs {
		if len(r.DBSize) == 0 {
			continue
		}
		fmt.Fprintf(w, "\nlive database size, %s at concurrency %d, round %d (MiB; live = pages in use; per record = (live + WAL) ÷ records):\n",
			r.Grant, r.Concurrency, r.Round)
		head := []string{"t", "pages in use", "free", "WAL", "live + WAL", "records", "tokens", "B/record"}
		retained := f.rate * f.retention.Seconds()
		if retained > 0 {
			head = append(head, "B ÷ (rate × retention)")
		}
		rows := [][]string{head}
		for _, s := range r.DBSize {
			total := s.LiveBytes + s.WALBytes
			perRecord := "-"
			if s.Records > 0 {
				perRecord = fmt.Sprintf("%.0f", float64(total)/float64(s.Records))
			}
			row := []string{s.At.Round(time.Second).String(), mibs(s.LiveBytes), mibs(s.FreePages * s.PageSize),
				mibs(s.WALBytes), mibs(total), fmt.Sprint(s.Records), fmt.Sprint(s.Tokens), perRecord}
			if retained > 0 {
				row = append(row, fmt.Sprintf("%.0f", float64(total)/retained))
			}
			rows = append(rows, row)
		}
		if err := writeTable(w, rows); err != nil {
			return err
		}
		if r.DBTables != nil {
			printSize(w, *r.DBTables, r.DBSize[len(r.DBSize)-1].Records)
		}
	}
	return nil
}

// mibs formats a byte count in MiB with one decimal.
func mibs(b int64) string { return fmt.Sprintf("%.1f", float64(b)/(1<<20)) }

// sizeRun is the sampling of one run; a nil *sizeRun samples nothing.
type sizeRun struct {
	s    sizeSampler
	stop chan struct{}
	done chan struct{}
	out  []liveSize
	err  error
}

// startSizes samples the store of t every `every` until end.
func startSizes(ctx context.Context, t sizeTarget, every time.Duration) (*sizeRun, error) {
	s, err := openSizeSampler(ctx, t)
	if err != nil {
		return nil, err
	}
	r := &sizeRun{s: s, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(r.done)
		r.out, r.err = sampleSizes(ctx, s, every, r.stop)
	}()
	return r, nil
}

// end stops the sampling and returns the samples and each table's share
// of the database at the end.
func (r *sizeRun) end(ctx context.Context) ([]liveSize, *storeSize, error) {
	if r == nil {
		return nil, nil, nil
	}
	close(r.stop)
	<-r.done
	defer r.s.Close()
	if r.err != nil {
		return r.out, nil, r.err
	}
	sz, err := r.s.tables(ctx)
	if err != nil {
		sz.Problem = err.Error()
	}
	return r.out, &sz, nil
}

// sqlitePath is the SQLite database the server of a self-contained run
// uses: --store sqlite:PATH, or the data directory's.
func sqlitePath(dir string, f benchFlags) string {
	if p, ok := strings.CutPrefix(f.store, "sqlite:"); ok {
		return p
	}
	return filepath.Join(dir, "data", "mandate.db")
}

// copyDatabase copies the SQLite database src, and its write-ahead log
// when there is one, to dst, creating dst's directory (0700).
func copyDatabase(src, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	for _, suffix := range []string{"", "-wal"} {
		in, err := os.Open(src + suffix)
		if suffix != "" && errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("copying the database: %w", err)
		}
		err = copyFile(in, dst+suffix)
		_ = in.Close()
		if err != nil {
			return fmt.Errorf("copying the database: %w", err)
		}
	}
	return nil
}

func copyFile(in *os.File, dst string) error {
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		_ = out.Close()
		return err
	}
	return out.Close()
}
