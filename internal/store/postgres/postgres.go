package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mandate-dev/mandate/internal/store"
)

// Defaults for the Config fields left zero.
const (
	// DefaultSchema is the schema that holds Mandate's tables.
	DefaultSchema = "mandate"
	// DefaultCallTimeout bounds a call whose context has no earlier deadline.
	DefaultCallTimeout = 10 * time.Second
	// MigrateTimeout bounds the migrations Open applies when the caller's
	// context has no earlier deadline.
	MigrateTimeout = time.Minute
	// DefaultConnectTimeout bounds a connection attempt when the URL has no
	// connect_timeout.
	DefaultConnectTimeout = 5 * time.Second
	// DefaultPingTimeout bounds the ping with which the pool checks a
	// connection that was idle for a second or more before handing it out,
	// when the URL has no pool_ping_timeout: a connection that died during
	// an outage is then replaced instead of holding the call to its deadline.
	DefaultPingTimeout = time.Second
)

// ErrNotDurable means the server acknowledges a commit before it is on disk
// (synchronous_commit=off or fsync=off), so a crash of the database could
// lose tokens, revocations and audit records that Mandate already answered
// for. Open refuses such a server unless Config.AllowAsyncCommit is set.
var ErrNotDurable = errors.New("postgres: commits are not durable")

// schemaName is what Config.Schema accepts: a plain lower-case identifier,
// short enough that its notification channel (schema + "_changes") fits
// PostgreSQL's 63-byte names.
var schemaName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,54}$`)

// Config says how to reach the database. Only URL is required.
type Config struct {
	// URL is the connection string, a postgres:// URL or a libpq key=value
	// string, with pgx's extensions: pool_max_conns and the other pool_*
	// parameters size and tune the pool (pool_ping_timeout defaults to
	// DefaultPingTimeout), and any parameter pgx does not know is sent to the
	// server as a run-time setting. The standard PG* environment
	// variables fill what the URL leaves out; in particular PGPASSWORD (and
	// then ~/.pgpass or passfile=) supply the password when the URL has none.
	// A connect_timeout absent from both is DefaultConnectTimeout.
	URL string
	// PasswordFile, when set, names a file that holds the password: its
	// content less trailing line breaks. It takes precedence over a password
	// in URL, PGPASSWORD and ~/.pgpass, so that a secret mounted as a file
	// never has to appear in a URL. An empty file is refused.
	PasswordFile string
	// Schema is the schema that holds the tables, created by the first
	// migration if missing; default DefaultSchema. It is set as the
	// search_path of every connection, replacing one given in URL. It must be
	// lower-case letters, digits and '_', at most 55 bytes. Several Mandate
	// deployments (or tests) can share a database in separate schemas.
	Schema string
	// AllowAsyncCommit lets Open use a server whose commits are not durable
	// when they return (synchronous_commit=off or fsync=off). The default,
	// false, refuses such a server with ErrNotDurable: at Open, and on every
	// new connection, so that an ALTER ROLE … SET synchronous_commit=off made
	// later is refused too. synchronous_commit=local, remote_write, on and
	// remote_apply are all durable on the primary and accepted.
	AllowAsyncCommit bool
	// SkipMigrations makes Open check that the schema is at this build's
	// version instead of migrating it, for operators who run `mandate migrate`
	// themselves (with a role that may run DDL) before they start the servers.
	SkipMigrations bool
	// CallTimeout bounds every call of the store whose context has no earlier
	// deadline, Open with its migrations, and Listen's setup; default
	// DefaultCallTimeout. Listen itself runs until its context ends, and
	// Migrate is not bounded by it. A migration longer than this needs
	// `mandate migrate` (or a longer CallTimeout).
	CallTimeout time.Duration

	// partitionSize is the audit log's partition size in a schema laid
	// out by Open or Migrate; 0 is DefaultPartitionSize. markEvery is the
	// time marks' spacing; 0 is timeMarkEvery. The tests set small ones,
	// and some turn off the upkeep after appends (noUpkeep) to run it
	// themselves.
	partitionSize, markEvery int64
	noUpkeep                 bool
}

// partitions is the partition size of a schema laid out with c.
func (c Config) partitions() int64 {
	if c.partitionSize > 0 {
		return c.partitionSize
	}
	return DefaultPartitionSize
}

// schema returns the configured schema or the default, checked.
func (c Config) schema() (string, error) {
	s := c.Schema
	if s == "" {
		s = DefaultSchema
	}
	if !schemaName.MatchString(s) {
		return "", fmt.Errorf("schema %q: want lower-case letters, digits and '_', starting with a letter or '_', at most 55 bytes", s)
	}
	return s, nil
}

// connConfig parses the URL and applies the password file, the schema and
// the default connect timeout.
func (c Config) connConfig() (*pgxpool.Config, string, error) {
	if c.URL == "" {
		return nil, "", errors.New("no URL")
	}
	schema, err := c.schema()
	if err != nil {
		return nil, "", err
	}
	pc, err := pgxpool.ParseConfig(c.URL)
	if err != nil {
		// pgx's message, and the url package's under it, may quote the
		// password: say only that the URL is malformed.
		return nil, "", errors.New("cannot parse the URL (its error is not shown: it may quote the password)")
	}
	if c.PasswordFile != "" {
		b, err := os.ReadFile(c.PasswordFile)
		if err != nil {
			return nil, "", fmt.Errorf("read password file: %w", err)
		}
		pw := strings.TrimRight(string(b), "\r\n")
		if pw == "" {
			return nil, "", fmt.Errorf("password file %q is empty", c.PasswordFile)
		}
		pc.ConnConfig.Password = pw
	}
	if pc.ConnConfig.ConnectTimeout == 0 {
		pc.ConnConfig.ConnectTimeout = DefaultConnectTimeout
	}
	if pc.PingTimeout == 0 {
		pc.PingTimeout = DefaultPingTimeout
	}
	pc.ConnConfig.RuntimeParams["search_path"] = pgx.Identifier{schema}.Sanitize()
	return pc, schema, nil
}

// Store is the PostgreSQL implementation of store.Store. It is safe for
// concurrent use, also by several processes on the same schema: each write is
// one transaction, the Update methods lock the row they read (SELECT … FOR
// UPDATE) until they commit, and the functions passed to them run while the
// row is locked, so they must be quick and must not call the store.
type Store struct {
	pool *pgxpool.Pool
	// listenConfig is the configuration of Listen's dedicated connections.
	listenConfig *pgx.ConnConfig
	// channel is the NOTIFY channel of the schema: schema + "_changes".
	channel string
	// timeout bounds each call; see Config.CallTimeout.
	timeout time.Duration
	// checkDurable is whether Ping refuses a server that does not commit
	// durably (Config.AllowAsyncCommit not set).
	checkDurable bool
	// now is the clock nonce expiry is judged by.
	now func() time.Time
	// nonceUses counts UseNonce calls to sweep expired nonces now and then.
	nonceUses atomic.Uint64
	// part makes the audit log's partitions ahead of its head; set by Open.
	part *partitioner
}

var (
	_ store.Store    = (*Store)(nil)
	_ store.Listener = (*Store)(nil) // several instances share one database
)

// Open connects to the database, checks that commits are durable (see
// Config.AllowAsyncCommit) and applies the pending migrations under an
// advisory lock, so that several instances starting at once are safe (or,
// with Config.SkipMigrations, checks the schema version). A database migrated
// by a newer build is refused. Failing to reach the server, within ctx (and
// at most MigrateTimeout), is an error wrapping store.ErrUnavailable; a server that
// does not commit durably, ErrNotDurable. The caller must Close the store.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	pc, schema, err := cfg.connConfig()
	if err != nil {
		return nil, fmt.Errorf("postgres: open: %w", err)
	}
	if !cfg.AllowAsyncCommit {
		pc.AfterConnect = checkDurable
	}
	timeout := cfg.CallTimeout
	if timeout <= 0 {
		timeout = DefaultCallTimeout
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("postgres: open: %w", dbErr(err))
	}
	s := &Store{
		pool:         pool,
		listenConfig: pc.ConnConfig.Copy(),
		channel:      schema + "_changes",
		timeout:      timeout,
		checkDurable: !cfg.AllowAsyncCommit,
		now:          time.Now,
	}
	if err := s.init(ctx, schema, cfg.SkipMigrations, cfg.partitions()); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: open %s on %s: %w", schema, describe(pc.ConnConfig), err)
	}
	if err := s.startPartitioner(ctx, cmp.Or(cfg.markEvery, timeMarkEvery), !cfg.noUpkeep); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: open %s on %s: %w", schema, describe(pc.ConnConfig), err)
	}
	return s, nil
}

// init migrates the schema, or with skip only checks its version. Taking
// the first connection also runs the durability check.
func (s *Store) init(ctx context.Context, schema string, skip bool, partitionSize int64) error {
	// Migrations may outlast one call's timeout; the caller's ctx bounds
	// them, or else MigrateTimeout.
	ctx, cancel := context.WithTimeout(ctx, max(s.timeout, MigrateTimeout))
	defer cancel()
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("connect: %w", dbErr(err))
	}
	defer conn.Release()
	if skip {
		return checkVersion(ctx, conn.Conn(), schema)
	}
	return migrate(ctx, conn.Conn(), schema, s.now, partitionSize)
}

// describe names the server for error messages, without the password.
func describe(c *pgx.ConnConfig) string {
	return fmt.Sprintf("%s@%s:%d/%s", c.User, c.Host, c.Port, c.Database)
}

// checkDurable refuses a connection on which a commit can return before it
// is on disk (THREATS T59): synchronous_commit=off, or fsync=off.
func checkDurable(ctx context.Context, conn *pgx.Conn) error {
	var syncCommit, fsync string
	err := conn.QueryRow(ctx, "SELECT current_setting('synchronous_commit'), current_setting('fsync')").
		Scan(&syncCommit, &fsync)
	if err != nil {
		return fmt.Errorf("read synchronous_commit: %w", err)
	}
	return durable(syncCommit, fsync)
}

// durable judges the two settings that checkDurable reads.
func durable(syncCommit, fsync string) error {
	if strings.EqualFold(syncCommit, "off") {
		return fmt.Errorf("%w: synchronous_commit is off, so a crash of the server loses acknowledged commits; "+
			"set it to on (or, for a throwaway test database only, set allow_async_commit: true)", ErrNotDurable)
	}
	if strings.EqualFold(fsync, "off") {
		return fmt.Errorf("%w: fsync is off, so a crash of the server loses acknowledged commits; "+
			"set it to on (or, for a throwaway test database only, set allow_async_commit: true)", ErrNotDurable)
	}
	return nil
}

// SchemaVersion returns the highest migration applied to the schema.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	var v int
	if err := s.pool.QueryRow(ctx, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations").Scan(&v); err != nil {
		return 0, fmt.Errorf("postgres: schema version: %w", dbErr(err))
	}
	return v, nil
}

// Generation returns the change counter, which every write to users, agents,
// delegations or keys increments in its transaction, from any instance.
func (s *Store) Generation(ctx context.Context) (int64, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	var g int64
	if err := s.pool.QueryRow(ctx, "SELECT value FROM generation WHERE id = 1").Scan(&g); err != nil {
		return 0, fmt.Errorf("postgres: generation: %w", dbErr(err))
	}
	return g, nil
}

// Ping checks that the server answers on a connection that may write: it
// fails with store.ErrUnavailable when the server cannot be reached, is a
// read-only standby, or no longer commits durably (unless that was allowed
// at Open).
func (s *Store) Ping(ctx context.Context) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	var readOnly, syncCommit, fsync string
	var g int64
	err := s.pool.QueryRow(ctx, `SELECT current_setting('transaction_read_only'), current_setting('synchronous_commit'),
		current_setting('fsync'), (SELECT value FROM generation WHERE id = 1)`).Scan(&readOnly, &syncCommit, &fsync, &g)
	if err != nil {
		return fmt.Errorf("postgres: ping: %w", dbErr(err))
	}
	if readOnly == "on" {
		return fmt.Errorf("postgres: ping: %w: the server is read-only (a standby?)", store.ErrUnavailable)
	}
	if s.checkDurable {
		if err := durable(syncCommit, fsync); err != nil {
			return fmt.Errorf("postgres: ping: %w: %w", store.ErrUnavailable, err)
		}
	}
	return nil
}

// Close ends the partitions' upkeep in progress, then closes the connection
// pool, waiting for the connections in use to be released. Listen's
// connections are its own and end with its context.
func (s *Store) Close() error {
	s.stopPartitioner()
	s.pool.Close()
	return nil
}

// bound gives ctx the store's call timeout unless it has an earlier deadline.
func (s *Store) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.timeout)
}

// write runs fn in one transaction, committing when fn returns nil and
// rolling back otherwise. fn's error is returned as is. A rollback that
// cannot be sent leaves the connection in a transaction, and the pool then
// closes it instead of reusing it.
func (s *Store) write(ctx context.Context, op string, fn func(ctx context.Context, tx pgx.Tx) error) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("%s: begin: %w", op, dbErr(err))
	}
	if err := fn(ctx, tx); err != nil {
		_ = tx.Rollback(ctx) // the error that matters is fn's
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("%s: commit: %w", op, dbErr(err))
	}
	return nil
}

// send runs the queued statements of b in one round trip and returns the
// first error, classified. Sent on the pool, outside a transaction, the
// statements form one implicit transaction: all of them commit or none.
func send(ctx context.Context, q interface {
	SendBatch(context.Context, *pgx.Batch) pgx.BatchResults
}, b *pgx.Batch) error {
	if b.Len() == 0 {
		return nil
	}
	return dbErr(q.SendBatch(ctx, b).Close())
}

// queueGeneration queues the increment of the change counter and the
// notification that announces it on channel (delivered when the
// transaction commits, to every instance's Listen).
func queueGeneration(b *pgx.Batch, channel string) {
	b.Queue(`WITH g AS (UPDATE generation SET value = value + 1 WHERE id = 1 RETURNING value)
		SELECT pg_notify($1, value::text) FROM g`, channel)
}

// storable reports whether s can be a key in PostgreSQL text: valid UTF-8
// without NUL. A lookup of any other key is store.ErrNotFound, since no such
// record can exist; a write of one fails as a bad record.
func storable(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsRune(s, 0)
}

// errNotStorable is the cause of the ErrNotFound for a key that cannot exist.
var errNotStorable = errors.New("not valid UTF-8 text without NUL")

// notFound is the error of a lookup of a key that cannot be stored.
func notFound() error {
	return fmt.Errorf("%w: key is %w", store.ErrNotFound, errNotStorable)
}

// dbErr classifies an error from pgx: no rows is store.ErrNotFound, a unique
// violation is store.ErrAlreadyExists, another integrity violation or a data
// exception (class 23 or 22: a bad record) stays as it is, and anything else
// (connection failures, timeouts, cancellations, serialization failures,
// deadlocks, a read-only server, a missing table) means the database could
// not serve the call: store.ErrUnavailable, with the cause also kept in the
// chain.
func dbErr(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%w: %w", store.ErrNotFound, err)
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case pe.Code == "23505": // unique_violation
			return fmt.Errorf("%w: %w", store.ErrAlreadyExists, err)
		case strings.HasPrefix(pe.Code, "23"), strings.HasPrefix(pe.Code, "22"):
			return err
		}
	}
	return fmt.Errorf("%w: %w", store.ErrUnavailable, err)
}
