package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/mandate-dev/mandate/internal/store"

	sqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// Waiting for another process's write lock. SQLite's own busy handler
// does not notice a cancelled context, so it waits at most busyPoll per
// attempt and begin retries until lockWait has passed or the context is
// done; then the write fails with store.ErrUnavailable.
const (
	busyPoll = 100 * time.Millisecond
	lockWait = 5 * time.Second
)

// Store is the SQLite implementation of store.Store. It is safe for
// concurrent use, also by several processes on the same file. The functions
// passed to the Update methods run while the store holds its write
// connection, so they must not call the store themselves.
type Store struct {
	// w is the single write connection: in-process writers queue here
	// instead of spinning on SQLite's busy handler.
	w *sql.DB
	// r is the read pool; its connections are query_only.
	r *sql.DB
	// now is the clock nonce expiry is judged by.
	now func() time.Time
	// nonceUses counts UseNonce calls to sweep expired nonces now and then.
	nonceUses atomic.Uint64

	// stmts are the commit path's statements, prepared on w at Open.
	stmts *statements
	// ckpt is the background WAL checkpointer (walCheckpointer).
	ckpt *walCheckpointer
	// indexer keeps the audit log's query indexes (indexer.go).
	indexer *eventIndexer
	// carried is what this process knows of the tokens the records after
	// the index head carry (carried.go).
	carried carriedTokens
}

// statements are the statements of the token path, prepared once. The
// commit statements are prepared on the write connection and reused by
// every transaction (Tx.StmtContext finds them on the same connection, and
// re-prepares them if the connection was replaced); getToken is prepared on
// the read pool, where database/sql prepares it once per connection.
type statements struct {
	token, last, event *sql.Stmt
	// newTokens and carriedTokensIn look up a commit's jtis
	// (checkNewTokens).
	newTokens, carriedTokensIn *sql.Stmt
	// eventIndexed, actor, head and setHead are a bulk write's own
	// indexing (insertEvents, inlineIndexAt).
	eventIndexed, actor, head, setHead *sql.Stmt
	// mark writes a time mark (markTimes) when an append passes a
	// multiple of timeMarkEvery records.
	mark *sql.Stmt
	// getToken and getTokenAt read one token by jti (GetToken): every
	// Mandate token presented as a subject or actor token, and each of its
	// ancestors.
	getToken, getTokenAt *sql.Stmt
	// generation reads the change counter: every token signed (the
	// keyring confirms its key with it) and the cache's polls.
	generation *sql.Stmt
	// eventsAfter reads the log from a seq on; EventsAfter stops reading
	// after a page. The audit checkpointer reads the new records every
	// 250 ms, a few at a time. It has no LIMIT: a bound LIMIT makes SQLite
	// prepare the statement again on every run (it plans with the value),
	// which cost more than reading the page.
	eventsAfter *sql.Stmt
}

// all is every statement, for Close.
func (st *statements) all() []*sql.Stmt {
	return []*sql.Stmt{st.token, st.newTokens, st.carriedTokensIn, st.getTokenAt, st.last, st.event, st.eventIndexed, st.actor, st.head, st.setHead, st.mark, st.getToken, st.generation, st.eventsAfter}
}

// prepare prepares the token path's statements. It runs in Open, before any
// transaction holds the single write connection.
func (s *Store) prepare(ctx context.Context) error {
	var st statements
	for _, q := range []struct {
		dst **sql.Stmt
		db  *sql.DB
		sql string
	}{
		{&st.token, s.w, "INSERT INTO tokens (" + tokenCols + ", indexed) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1)"},
		{&st.newTokens, s.w, newTokens},
		{&st.carriedTokensIn, s.w, carriedTokensIn()},
		{&st.last, s.w, lastEvent},
		// A record is appended unindexed (indexed = 0): the background
		// indexer adds it to the query indexes (indexer.go).
		{&st.event, s.w, "INSERT INTO events (seq, hash, indexed, token, " + eventCols + ") VALUES (?, ?, 0, ?" +
			strings.Repeat(", ?", strings.Count(eventCols, ",")+1) + ")"},
		{&st.eventIndexed, s.w, "INSERT INTO events (seq, hash, indexed, token, " + eventCols + ") VALUES (?, ?, 1, ?" +
			strings.Repeat(", ?", strings.Count(eventCols, ",")+1) + ")"},
		{&st.actor, s.w, "INSERT INTO event_actors (actor, seq) VALUES (?, ?)"},
		{&st.head, s.w, "SELECT seq FROM event_index_head WHERE id = 1"},
		{&st.setHead, s.w, "UPDATE event_index_head SET seq = ? WHERE id = 1"},
		{&st.mark, s.w, markTimes},
		{&st.getToken, s.r, getToken},
		{&st.getTokenAt, s.r, getTokenAt},
		{&st.generation, s.r, "SELECT value FROM generation WHERE id = 1"},
		{&st.eventsAfter, s.r, "SELECT " + eventSelect + " FROM events WHERE seq > ? ORDER BY seq"},
	} {
		stmt, err := q.db.PrepareContext(ctx, q.sql)
		if err != nil {
			for _, p := range st.all() {
				if p != nil {
					_ = p.Close()
				}
			}
			return fmt.Errorf("prepare: %w", dbErr(err))
		}
		*q.dst = stmt
	}
	s.stmts = &st
	return nil
}

// The store of one process: it does not implement store.Listener, since no
// other instance changes it behind the cache's back.
var _ store.Store = (*Store)(nil)

// Open opens the database file at path, creating it with mode 0600 if it does
// not exist (and narrowing an existing file's mode to 0600), and applies any
// pending migrations in one transaction. It refuses to open when the file
// cannot be put in WAL mode with synchronous=FULL, since then a commit would
// not be durable when it returns. The caller must Close the store.
func Open(ctx context.Context, path string) (*Store, error) {
	if path == "" || strings.Contains(path, "?") || strings.HasPrefix(path, "file:") || path == ":memory:" {
		return nil, fmt.Errorf("sqlite: open %q: want a plain file path", path)
	}
	if err := prepareFile(path); err != nil {
		return nil, err
	}
	params := "?_pragma=busy_timeout(" + strconv.FormatInt(busyPoll.Milliseconds(), 10) + ")" +
		"&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=foreign_keys(1)"
	// The write connection leaves checkpoints to the background
	// checkpointer unless the WAL grows past writerCheckpointPages (the
	// checkpointer stopped or cannot keep up). Its statement journals (the
	// indexer's multi-row updates need one) stay in memory: past 64 KiB
	// SQLite spills them to a temporary file, pages the disk would be
	// given for nothing.
	w, err := sql.Open("sqlite", path+params+"&_txlock=immediate&_pragma=temp_store(MEMORY)"+
		"&_pragma=wal_autocheckpoint("+strconv.Itoa(writerCheckpointPages)+")")
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %q: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	r, err := sql.Open("sqlite", path+params+"&_query_only=1")
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: open %q: %w", path, err)
	}
	n := min(max(runtime.GOMAXPROCS(0), 2), 8)
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	s := &Store{w: w, r: r, now: time.Now}
	if err := s.init(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("sqlite: open %q: %w", path, err)
	}
	if err := s.prepare(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("sqlite: open %q: %w", path, err)
	}
	c, err := sql.Open("sqlite", path+params)
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("sqlite: open %q: %w", path, err)
	}
	s.ckpt = startCheckpointer(c, checkpointEvery)
	s.indexer = s.startIndexer()
	return s, nil
}

// prepareFile creates the database file with mode 0600, or narrows the mode
// of an existing one: the file holds private signing keys. SQLite gives the
// -wal and -shm files the mode of the database file.
func prepareFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("sqlite: open %q: %w", path, err)
	}
	fi, err := f.Stat()
	if err == nil && fi.Mode().Perm()&0o077 != 0 {
		err = f.Chmod(0o600)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sqlite: open %q: set mode 0600: %w", path, err)
	}
	return nil
}

// init checks durability, then migrates.
func (s *Store) init(ctx context.Context) error {
	for _, db := range []*sql.DB{s.w, s.r} {
		if err := retryBusy(ctx, func() error { return checkDurable(ctx, db) }); err != nil {
			return err
		}
	}
	return s.migrate(ctx)
}

// openBusyFor bounds how long Open retries a new connection that SQLite
// answers SQLITE_BUSY without waiting on busy_timeout: while another
// process or store turns a new file to WAL or recovers its WAL, the first
// statement of a connection (which applies the DSN's pragmas) can fail at
// once.
const openBusyFor = 5 * time.Second

// retryBusy runs fn until it returns anything but SQLITE_BUSY, for at most
// openBusyFor.
func retryBusy(ctx context.Context, fn func() error) error {
	deadline := time.Now().Add(openBusyFor)
	wait := 5 * time.Millisecond
	for {
		err := fn()
		var se *sqlite.Error
		if err == nil || !errors.As(err, &se) || se.Code()&0xff != sqlite3.SQLITE_BUSY || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		wait = min(2*wait, 100*time.Millisecond)
	}
}

// checkDurable asserts that a commit is fsynced before it returns (THREATS
// T57): WAL with synchronous FULL (2) or EXTRA (3). It looks at one
// connection; every connection is configured by the same DSN.
func checkDurable(ctx context.Context, db *sql.DB) error {
	var mode string
	if err := db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return fmt.Errorf("read journal_mode: %w", dbErr(err))
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("journal_mode is %q, want wal: refusing a store whose commits are not durable", mode)
	}
	var sync int
	if err := db.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&sync); err != nil {
		return fmt.Errorf("read synchronous: %w", dbErr(err))
	}
	if sync < 2 {
		return fmt.Errorf("synchronous is %d, want 2 (FULL) or more: refusing a store whose commits are not durable", sync)
	}
	var fk int
	if err := db.QueryRowContext(ctx, "PRAGMA foreign_keys").Scan(&fk); err != nil {
		return fmt.Errorf("read foreign_keys: %w", dbErr(err))
	}
	if fk != 1 {
		return errors.New("foreign_keys is off")
	}
	return nil
}

// migrations returns the embedded migrations in version order.
func migrations() ([]store.Migration, error) { return store.LoadMigrations(migrationFS) }

// migrate applies the pending migrations in one transaction. The write lock
// taken at BEGIN IMMEDIATE makes concurrent openers (a server and a CLI
// command) apply each migration once. A database migrated by a newer build
// is refused. The migration that adds the audit hash chain also chains the
// records written before it (chainExisting), in the same transaction.
func (s *Store) migrate(ctx context.Context) error {
	ms, err := migrations()
	if err != nil {
		return err
	}
	return s.write(ctx, "migrate", func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version    INTEGER PRIMARY KEY,
			name       TEXT NOT NULL,
			applied_at INTEGER NOT NULL)`); err != nil {
			return dbErr(err)
		}
		var current int
		if err := tx.QueryRowContext(ctx, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations").Scan(&current); err != nil {
			return dbErr(err)
		}
		if n := len(ms); n > 0 && current > ms[n-1].Version {
			return fmt.Errorf("database schema version %d is newer than this build's %d", current, ms[n-1].Version)
		}
		for _, m := range ms {
			if m.Version <= current {
				continue
			}
			if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
				return fmt.Errorf("apply %s: %w", m.Name, dbErr(err))
			}
			if m.Version == chainMigration {
				if err := chainExisting(ctx, tx); err != nil {
					return fmt.Errorf("apply %s: %w", m.Name, err)
				}
			}
			if _, err := tx.ExecContext(ctx,
				"INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
				m.Version, m.Name, s.now().UnixMicro()); err != nil {
				return fmt.Errorf("record %s: %w", m.Name, dbErr(err))
			}
		}
		return nil
	})
}

// SchemaVersion returns the highest migration applied to the database.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	if err := s.r.QueryRowContext(ctx, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations").Scan(&v); err != nil {
		return 0, fmt.Errorf("sqlite: schema version: %w", dbErr(err))
	}
	return v, nil
}

// Generation returns the change counter, which every write to users, agents,
// delegations or keys increments in the same transaction, from any process.
// The read runs without ctx's cancellation once ctx has not ended (as
// GetToken's): under a context that can end, the driver starts a goroutine
// for every statement to interrupt it, and every token signed reads the
// generation. A read in WAL mode waits for no writer; busy_timeout bounds
// what it can wait for.
func (s *Store) Generation(ctx context.Context) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("sqlite: generation: %w", err)
	}
	var g int64
	if err := s.stmts.generation.QueryRowContext(context.WithoutCancel(ctx)).Scan(&g); err != nil {
		return 0, fmt.Errorf("sqlite: generation: %w", dbErr(err))
	}
	return g, nil
}

// Ping checks that the file can be read and that the write lock can be
// taken (it is not held by a stuck process and the file is writable).
func (s *Store) Ping(ctx context.Context) error {
	var g int64
	if err := s.r.QueryRowContext(ctx, "SELECT value FROM generation WHERE id = 1").Scan(&g); err != nil {
		return fmt.Errorf("sqlite: ping: %w", dbErr(err))
	}
	// BEGIN IMMEDIATE takes the write lock, and fails on a read-only file.
	tx, err := s.begin(ctx)
	if err != nil {
		return fmt.Errorf("sqlite: ping: begin: %w", dbErr(err))
	}
	if err := tx.Rollback(); err != nil {
		return fmt.Errorf("sqlite: ping: rollback: %w", dbErr(err))
	}
	return nil
}

// Close closes both connection pools. Calls in flight may fail.
func (s *Store) Close() error {
	var cerr error
	if s.indexer != nil {
		s.indexer.stop()
	}
	if s.ckpt != nil {
		cerr = s.ckpt.stop()
	}
	if st := s.stmts; st != nil {
		for _, p := range st.all() {
			_ = p.Close()
		}
	}
	return errors.Join(cerr, s.r.Close(), s.w.Close())
}

// write runs fn in one write transaction (BEGIN IMMEDIATE), committing when
// fn returns nil and rolling back otherwise. fn's error is returned as is.
func (s *Store) write(ctx context.Context, op string, fn func(*sql.Tx) error) error {
	tx, err := s.begin(ctx)
	if err != nil {
		return fmt.Errorf("%s: begin: %w", op, dbErr(err))
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback() // the error that matters is fn's
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("%s: commit: %w", op, dbErr(err))
	}
	return nil
}

// begin starts a write transaction, which takes the write lock (BEGIN
// IMMEDIATE), waiting for another process to release it for up to lockWait
// or until ctx is done.
func (s *Store) begin(ctx context.Context) (*sql.Tx, error) {
	deadline := time.Now().Add(lockWait)
	for {
		tx, err := s.w.BeginTx(ctx, nil)
		if err == nil || !isBusy(err) || !time.Now().Before(deadline) {
			return tx, err
		}
		if cerr := ctx.Err(); cerr != nil {
			return nil, errors.Join(cerr, err)
		}
	}
}

// isBusy reports whether err is SQLITE_BUSY: another connection holds the
// lock.
func isBusy(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_BUSY
}

// bumpGeneration increments the change counter inside tx and returns its
// new value.
func bumpGeneration(ctx context.Context, tx *sql.Tx) (int64, error) {
	var g int64
	if err := tx.QueryRowContext(ctx, "UPDATE generation SET value = value + 1 WHERE id = 1 RETURNING value").Scan(&g); err != nil {
		return 0, fmt.Errorf("bump generation: %w", dbErr(err))
	}
	return g, nil
}

// dbErr classifies an error from database/sql or the driver: no rows is
// store.ErrNotFound, a unique or primary key violation is
// store.ErrAlreadyExists, another constraint violation (a bad record) stays
// as it is, and anything else means the database could not serve the call:
// store.ErrUnavailable, with the cause also kept in the chain.
func dbErr(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%w: %w", store.ErrNotFound, err)
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch code := se.Code(); {
		case code == sqlite3.SQLITE_CONSTRAINT_UNIQUE || code == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return fmt.Errorf("%w: %w", store.ErrAlreadyExists, err)
		case code&0xff == sqlite3.SQLITE_CONSTRAINT:
			return err
		}
	}
	return fmt.Errorf("%w: %w", store.ErrUnavailable, err)
}
