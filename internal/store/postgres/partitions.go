package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// The audit log's partitions (migration 16): events and event_actors are
// partitioned by RANGE (seq); partition k holds seq k*size to
// (k+1)*size - 1, in the tables events_p<k> and event_actors_p<k>, and a
// DEFAULT partition of each catches records past the last one.

// DefaultPartitionSize is how many audit records a partition holds in a
// schema laid out by this build; the size is kept in the schema
// (audit_partitioning), so every instance uses the one it was laid out with.
const DefaultPartitionSize = 1 << 20

// partitionLock is the first key of the advisory lock that serializes the
// making of partitions and time marks across instances; the second is
// hashtext of the schema. 0x70617274 is "part".
const partitionLock = 0x70617274

// partitionMigration is the migration that lays out the partitioned
// tables; partitionExisting runs in its transaction, after its SQL.
const partitionMigration = 16

// timeMarkEvery is how many records apart the time marks are: a time
// window reads at most this many records (and those not yet marked)
// before its bound. Migration 17 marks the existing records at the same
// spacing. A mark holds whatever the spacing of the others, so instances
// need not agree on it.
const timeMarkEvery = 4096

// ddlLockTimeout bounds how long making or dropping a partition waits for
// its table locks: a DROP waits behind the queries reading the log, and
// every append waits behind it. It gives up instead, and is tried again.
const ddlLockTimeout = "2s"

// partitioner makes partitions ahead of the log's head and marks its
// times, in the background after the appends that pass a mark.
type partitioner struct {
	// size is the schema's partition size, read at Open.
	size int64
	// markEvery is how many records apart the time marks are:
	// timeMarkEvery but in tests.
	markEvery int64
	// next is the head at which an append starts the next round.
	next atomic.Int64
	// background is whether appends start rounds.
	background bool
	// running is set while a round runs.
	running atomic.Bool
	// mu orders starting a round (wg.Add) before Close's wg.Wait.
	mu sync.Mutex
	// closed is set by Close; no round starts after it.
	closed bool
	// wg waits for the round in progress at Close.
	wg sync.WaitGroup
	// stop ends a round in progress at Close.
	stop context.Context
	// cancel cancels stop.
	cancel context.CancelFunc
}

// partitionName is the name of partition k of table.
func partitionName(table string, k int64) string { return fmt.Sprintf("%s_p%d", table, k) }

// readPartitionSize reads the schema's partition size.
func readPartitionSize(ctx context.Context, q querier) (int64, error) {
	var size int64
	if err := q.QueryRow(ctx, "SELECT size FROM audit_partitioning WHERE id = 1").Scan(&size); err != nil {
		return 0, fmt.Errorf("read the audit partition size: %w", dbErr(err))
	}
	return size, nil
}

// partitionExisting runs in the transaction of partitionMigration: it
// records the partition size and creates the range partitions of every
// record already written and of the next one, which migration 17 then
// fills.
func partitionExisting(ctx context.Context, tx pgx.Tx, size int64) error {
	if _, err := tx.Exec(ctx, "INSERT INTO audit_partitioning (id, size) VALUES (1, $1)", size); err != nil {
		return fmt.Errorf("partition the audit log: %w", dbErr(err))
	}
	var first, last int64
	if err := tx.QueryRow(ctx, `SELECT coalesce((SELECT min(seq) FROM events_unpartitioned), 0),
		(SELECT last_seq FROM events_head WHERE id = 1)`).Scan(&first, &last); err != nil {
		return fmt.Errorf("partition the audit log: %w", dbErr(err))
	}
	for k := first / size; k <= last/size+1; k++ {
		if err := createPartition(ctx, tx, k, size); err != nil {
			return fmt.Errorf("partition the audit log: %w", err)
		}
	}
	return nil
}

// errRangeFilled is a partition's range that records entered, in the
// DEFAULT partition, while createPartition made it without the parent's
// lock.
var errRangeFilled = errors.New("records entered the range in the DEFAULT partition meanwhile; moved at the next round")

// createPartition creates partition k of events and of event_actors,
// unless they exist: each as a table of its own, into which the records of
// its range that landed in the DEFAULT partition are moved, then attached.
// Attaching takes a SHARE UPDATE EXCLUSIVE lock on the parent, which
// appends do not wait for (CREATE TABLE … PARTITION OF would take an
// ACCESS EXCLUSIVE one), and scans the DEFAULT partition, normally empty,
// which it locks.
//
// When records of the range wait in the DEFAULT partition, the parent is
// locked ACCESS EXCLUSIVE first (before the DEFAULT partition, in the
// order readers lock them): a query planned before the attach does not
// scan the new partition, and one whose snapshot came after the move
// would no longer find those records in the DEFAULT partition either, so
// without it a committed record could be missing from a read. Records
// that arrive in the range between the look and the lock make the call
// fail (errRangeFilled); the upkeep's next round moves them under the lock.
func createPartition(ctx context.Context, tx pgx.Tx, k, size int64) error {
	for _, table := range []string{"events", "event_actors"} {
		name := partitionName(table, k)
		var exists bool
		if err := tx.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", name).Scan(&exists); err != nil {
			return fmt.Errorf("look for %s: %w", name, dbErr(err))
		}
		if exists {
			continue
		}
		ident, def := pgx.Identifier{name}.Sanitize(), pgx.Identifier{table + "_default"}.Sanitize()
		lo, hi := k*size, (k+1)*size
		waiting := fmt.Sprintf("SELECT EXISTS (SELECT 1 FROM %s WHERE seq >= %d AND seq < %d)", def, lo, hi)
		var pending bool
		if err := tx.QueryRow(ctx, waiting).Scan(&pending); err != nil {
			return fmt.Errorf("look into %s: %w", def, dbErr(err))
		}
		if pending {
			if _, err := tx.Exec(ctx, "LOCK TABLE "+table+" IN ACCESS EXCLUSIVE MODE"); err != nil {
				return fmt.Errorf("create %s: %w", name, dbErr(err))
			}
		}
		if _, err := tx.Exec(ctx, "LOCK TABLE "+def+" IN ACCESS EXCLUSIVE MODE"); err != nil {
			return fmt.Errorf("create %s: %w", name, dbErr(err))
		}
		if !pending {
			if err := tx.QueryRow(ctx, waiting).Scan(&pending); err != nil {
				return fmt.Errorf("look into %s: %w", def, dbErr(err))
			}
			if pending {
				return fmt.Errorf("create %s: %w", name, errRangeFilled)
			}
		}
		for _, q := range []string{
			"CREATE TABLE " + ident + " (LIKE " + table + " INCLUDING DEFAULTS INCLUDING CONSTRAINTS)",
			fmt.Sprintf("WITH moved AS (DELETE FROM %s WHERE seq >= %d AND seq < %d RETURNING *) INSERT INTO %s SELECT * FROM moved",
				def, lo, hi, ident),
			fmt.Sprintf("ALTER TABLE %s ATTACH PARTITION %s FOR VALUES FROM (%d) TO (%d)", table, ident, lo, hi),
		} {
			if _, err := tx.Exec(ctx, q); err != nil {
				return fmt.Errorf("create %s: %w", name, dbErr(err))
			}
		}
	}
	return nil
}

// observeHead is called with the head an append has just moved the log
// to (not yet committed): when it has passed the next mark, a round of
// upkeep starts in the background, unless one is running.
func (s *Store) observeHead(last int64) {
	p := s.part
	if p == nil || !p.background || last < p.next.Load() || !p.running.CompareAndSwap(false, true) {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		p.running.Store(false)
		return
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		defer p.running.Store(false)
		ctx, cancel := context.WithTimeout(p.stop, s.timeout)
		defer cancel()
		// A round that fails is tried again after the next append that
		// passes a mark; until then the DEFAULT partition takes the
		// records and the marks lag, which costs reads, not correctness.
		_ = s.upkeep(ctx)
	}()
}

// upkeep runs upkeepTx in a transaction of its own and sets when the
// next round starts: at the next mark, or when the head enters the next
// partition if that comes first (a partition smaller than the marks'
// spacing, as in the tests).
func (s *Store) upkeep(ctx context.Context) error {
	p := s.part
	var partErr error
	err := s.write(ctx, "audit upkeep", func(ctx context.Context, tx pgx.Tx) error {
		head, pe, err := upkeepTx(ctx, tx, p.size, p.markEvery)
		if err == nil {
			p.next.Store(min((head/p.markEvery+1)*p.markEvery, (head/p.size+1)*p.size))
		}
		partErr = pe
		return err
	})
	if err = cmp.Or(err, partErr); err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	return nil
}

// upkeepTx writes the time marks of the committed records not yet marked
// (every markEvery records) and creates the partition of the head and the
// next one, and those of any records in the DEFAULT partition, if
// missing, under the partition lock; when another transaction (another
// instance) holds the lock, it is doing the same, and upkeepTx returns.
// It reads the head as committed: every record up to it is committed, so a
// mark never misses a record that commits later. It returns the head, and
// apart the error of making the partitions (in a savepoint, so that the
// marks commit without them: a role that may not create tables still
// marks).
func upkeepTx(ctx context.Context, tx pgx.Tx, size, markEvery int64) (head int64, partErr, err error) {
	var locked bool
	if err := tx.QueryRow(ctx, "SELECT pg_try_advisory_xact_lock($1, hashtext(current_schema()))",
		partitionLock).Scan(&locked); err != nil || !locked {
		return 0, nil, dbErr(err)
	}
	if _, err := tx.Exec(ctx, "SET LOCAL lock_timeout = '"+ddlLockTimeout+"'"); err != nil {
		return 0, nil, dbErr(err)
	}
	var marked int64
	if err := tx.QueryRow(ctx, `SELECT (SELECT last_seq FROM events_head WHERE id = 1),
		coalesce((SELECT seq FROM event_time_marks ORDER BY max_time DESC, seq DESC LIMIT 1), 0)`).Scan(&head, &marked); err != nil {
		return 0, nil, dbErr(err)
	}
	for seq := (marked/markEvery + 1) * markEvery; seq <= head; seq += markEvery {
		if _, err := tx.Exec(ctx, markTimes, seq); err != nil {
			return 0, nil, fmt.Errorf("mark the times up to record %d: %w", seq, dbErr(err))
		}
	}
	rows, err := tx.Query(ctx, "SELECT DISTINCT seq / $1 FROM events_default WHERE seq >= 0", size)
	if err != nil {
		return 0, nil, dbErr(err)
	}
	ks, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return 0, nil, dbErr(err)
	}
	sp, err := tx.Begin(ctx)
	if err != nil {
		return 0, nil, dbErr(err)
	}
	for _, k := range append(ks, head/size, head/size+1) {
		if err := createPartition(ctx, sp, k, size); err != nil {
			if err := sp.Rollback(ctx); err != nil {
				return 0, nil, dbErr(err)
			}
			return head, err, nil
		}
	}
	return head, nil, dbErr(sp.Commit(ctx))
}

// markTimes writes the time mark of the records up to $1, a multiple of
// timeMarkEvery that the committed head has passed: the running maximum
// of their times, the last mark's and the greatest time written since it
// (a record without a time counts as -infinity). Marks run up in both
// max_time and seq, so the last is the greatest in the table's key.
const markTimes = `WITH last AS (SELECT max_time, seq FROM event_time_marks ORDER BY max_time DESC, seq DESC LIMIT 1)
INSERT INTO event_time_marks (max_time, seq)
SELECT greatest(coalesce((SELECT max_time FROM last), '-infinity'),
	coalesce((SELECT max(time) FROM events WHERE seq > coalesce((SELECT seq FROM last), 0) AND seq <= $1), '-infinity')), $1`

// sinceSeq is the seq after which every record whose time is $n or later
// lies: the seq of the last mark whose running maximum is before it, or
// 0. Every record up to that seq has a time before it, whatever the order
// the times were written in. As a bound on seq it lets the executor skip
// the partitions below it.
func sinceSeq(param string) string {
	return "coalesce((SELECT seq FROM event_time_marks WHERE max_time < " + param +
		" ORDER BY max_time DESC, seq DESC LIMIT 1), 0)"
}

// tokenSeq is a seq at or below which no record names the token whose
// jti is $n, as its jti or its parent: the seq of the last time mark whose
// running maximum is an hour before the token's issue (tokens.issued_at),
// or 0 when the store holds no such token. As a bound on seq it lets a
// lookup by jti skip the partitions written before the token was.
//
// It holds because a token's row and the record that issues it are
// written by one commit, the record with the issue time; every other
// record that names the token follows that one in seq, whatever time it
// carries (a verifier's clock, say), since nothing can name a token
// before it is issued; and every record up to the mark is older than the
// issue record. The hour is a margin for a record's time and the token's
// issue time taken from two readings of one clock.
func tokenSeq(param string) string {
	return "coalesce((SELECT seq FROM event_time_marks WHERE max_time < (SELECT issued_at - interval '1 hour' FROM tokens WHERE jti = " +
		param + ") ORDER BY max_time DESC, seq DESC LIMIT 1), 0)"
}

// dropArchivedPartition drops the oldest range partition of the log if
// every record it can hold is at or below through (archived), with its
// actors, request ids and time marks, and returns how many records it
// held; 0 and false when there is no such partition. It runs in the
// archive's transaction, under its lock.
func dropArchivedPartition(ctx context.Context, tx pgx.Tx, through int64) (int, bool, error) {
	size, err := readPartitionSize(ctx, tx)
	if err != nil {
		return 0, false, err
	}
	var oldest *int64 // nil when there is no range partition
	err = tx.QueryRow(ctx, `SELECT min(substr(c.relname, length('events_p') + 1)::bigint)
FROM pg_inherits AS i JOIN pg_class AS c ON c.oid = i.inhrelid
WHERE i.inhparent = 'events'::regclass AND c.relname ~ '^events_p[0-9]+$'`).Scan(&oldest)
	if err != nil || oldest == nil {
		return 0, false, dbErr(err)
	}
	k := *oldest
	hi := (k + 1) * size // the partition holds seq below hi
	if hi-1 > through {
		return 0, false, nil
	}
	if _, err := tx.Exec(ctx, "SET LOCAL lock_timeout = '"+ddlLockTimeout+"'"); err != nil {
		return 0, false, dbErr(err)
	}
	events, actors := pgx.Identifier{partitionName("events", k)}.Sanitize(), pgx.Identifier{partitionName("event_actors", k)}.Sanitize()
	var n int
	if err := tx.QueryRow(ctx, "SELECT count(*) FROM "+events).Scan(&n); err != nil {
		return 0, false, dbErr(err)
	}
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{"DELETE FROM event_request_ids WHERE seq < $1", []any{hi}},
		{"DELETE FROM event_time_marks WHERE seq < $1", []any{hi}},
		{"DROP TABLE " + events + ", " + actors, nil},
	} {
		if _, err := tx.Exec(ctx, q.sql, q.args...); err != nil {
			return 0, false, dbErr(err)
		}
	}
	return n, true, nil
}

// isLockTimeout is whether err is a lock_timeout's cancellation.
func isLockTimeout(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "55P03"
}

// startPartitioner reads the schema's partition size and runs a first
// round of upkeep (and, with background, lets appends start the next), whose failure (a role that may not create tables, say)
// only leaves the DEFAULT partition to take the records.
func (s *Store) startPartitioner(ctx context.Context, markEvery int64, background bool) error {
	size, err := readPartitionSize(ctx, s.pool)
	if err != nil {
		return err
	}
	stop, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.part = &partitioner{size: size, markEvery: markEvery, background: background, stop: stop, cancel: cancel}
	ctx, cancelRound := context.WithTimeout(ctx, s.timeout)
	defer cancelRound()
	_ = s.upkeep(ctx)
	return nil
}

// stopPartitioner ends the round of upkeep in progress and waits for it.
func (s *Store) stopPartitioner() {
	if s.part == nil {
		return
	}
	s.part.mu.Lock()
	s.part.closed = true
	s.part.cancel()
	s.part.mu.Unlock()
	s.part.wg.Wait()
}
