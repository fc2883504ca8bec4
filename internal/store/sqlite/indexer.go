package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"time"
)

// The audit log's query indexes (events_on_behalf, events_action,
// events_jti, events_parent_jti, events_delegation, events_resource and
// the event_actors table) are kept by a background indexer, not by each
// append (migration 19). An append writes the record with indexed = 0,
// which no partial index holds; an exchange that commits alone then writes
// the log's last leaf, and not seven more B-tree pages, to the WAL before
// its answer. The indexer
// takes the records after the index head, at most indexBatch per write
// transaction: it marks them indexed (which enters them into the partial
// indexes), adds their event_actors rows and moves the head, atomically.
// The indexes are derived data and so are not part of the durability
// promise; QueryEvents reads the records after the head by seq, so every
// answer includes every committed record.
//
// The indexer looks at the tail (the records after the head) every
// indexPoll and indexes it once it holds indexAt records or indexEvery has
// passed since the last batch. Batches of a few hundred records keep the
// pages each one writes (the indexes' right edges, one leaf per agent and
// per delegation) shared by many records, and keep the write lock short: a
// batch of 256 takes a few milliseconds, where one of 1,250 (half a second
// at c=32) took 15–23 ms, during which every request waited.
const (
	indexPoll  = 50 * time.Millisecond
	indexAt    = 256
	indexEvery = time.Second
	indexBatch = 512
	// indexPause is the pause between two full batches of a catch-up.
	indexPause = 2 * time.Millisecond
)

// actorRows inserts the event_actors rows of the records in (?, ?]: each
// actor a record names (eventActors), once. A NULL chain is the performer
// alone (chainIn), whose row the first part adds.
const actorRows = `INSERT OR IGNORE INTO event_actors (actor, seq)
SELECT performer, seq FROM events WHERE seq > ?1 AND seq <= ?2 AND performer <> ''
UNION SELECT client_id, seq FROM events WHERE seq > ?1 AND seq <= ?2 AND client_id <> ''
UNION SELECT j.value, e.seq FROM events AS e, json_each(CASE WHEN json_valid(e.chain) THEN e.chain ELSE '[]' END) AS j
	WHERE e.seq > ?1 AND e.seq <= ?2 AND j.type = 'text' AND j.value <> ''`

// indexEvents indexes at most limit records after the index head, in one
// write transaction, and returns how many records it indexed (records
// archived meanwhile leave gaps in seq, which it skips).
func (s *Store) indexEvents(ctx context.Context, limit int) (int, error) {
	n := 0
	err := s.write(ctx, "index events", func(tx *sql.Tx) error {
		var err error
		n, _, err = indexTx(ctx, tx, limit)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("sqlite: index events: %w", err)
	}
	return n, nil
}

// indexTx indexes at most limit records after the index head inside tx:
// it writes the tokens rows of the tokens they carry (migration 23), marks
// them indexed, adds their event_actors rows and moves the head. It returns how many records it indexed and the new head.
func indexTx(ctx context.Context, tx *sql.Tx, limit int) (int, int64, error) {
	var head, through int64
	var count int
	if err := tx.QueryRowContext(ctx, "SELECT seq FROM event_index_head WHERE id = 1").Scan(&head); err != nil {
		return 0, 0, dbErr(err)
	}
	if err := tx.QueryRowContext(ctx,
		"SELECT coalesce(max(seq), 0), count(*) FROM (SELECT seq FROM events WHERE seq > ? ORDER BY seq LIMIT ?)",
		head, limit).Scan(&through, &count); err != nil {
		return 0, 0, dbErr(err)
	}
	if count == 0 {
		return 0, head, nil
	}
	if err := writeTokenRows(ctx, tx, head, through); err != nil {
		return 0, 0, err
	}
	for _, q := range []string{
		"UPDATE events SET indexed = 1 WHERE seq > ?1 AND seq <= ?2",
		actorRows,
		"UPDATE event_index_head SET seq = ?2 WHERE id = 1",
	} {
		if _, err := tx.ExecContext(ctx, q, head, through); err != nil {
			return 0, 0, dbErr(err)
		}
	}
	return count, through, nil
}

// writeTokenRows writes the tokens rows of the tokens that the records in
// (head, through] carry (migration 23), in seq order, each in the sweep's
// expiry index; a row a revocation wrote first stays as it is.
func writeTokenRows(ctx context.Context, tx *sql.Tx, head, through int64) error {
	rows, err := tx.QueryContext(ctx, "SELECT "+tailTokenCols+" FROM events WHERE seq > ? AND seq <= ? AND token IS NOT NULL ORDER BY seq",
		head, through)
	if err != nil {
		return fmt.Errorf("read the carried tokens: %w", dbErr(err))
	}
	var carried []tokenRow
	for rows.Next() {
		r, err := scanCarried(rows)
		if err != nil {
			rows.Close()
			return fmt.Errorf("read the carried tokens: %w", err)
		}
		carried = append(carried, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read the carried tokens: %w", dbErr(err))
	}
	return insertCarried(ctx, tx, carried)
}

// indexThrough indexes, inside tx, the records after the index head up to
// seq through, a batch at a time. DeleteArchivedEvents runs it first, so
// that no record leaves the log before the tokens it carries have their
// rows.
func indexThrough(ctx context.Context, tx *sql.Tx, through int64) error {
	for {
		n, head, err := indexTx(ctx, tx, indexBatch)
		if err != nil {
			return fmt.Errorf("index events: %w", err)
		}
		if n == 0 || head >= through {
			return nil
		}
	}
}

// eventIndexer runs indexEvents as the tail grows, until stopped.
type eventIndexer struct {
	quit chan struct{}
	done chan struct{}
	once sync.Once
}

func (s *Store) startIndexer() *eventIndexer {
	ix := &eventIndexer{quit: make(chan struct{}), done: make(chan struct{})}
	go ix.loop(s)
	return ix
}

func (ix *eventIndexer) loop(s *Store) {
	defer close(ix.done)
	t := time.NewTicker(indexPoll)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-ix.quit:
			return
		case <-t.C:
		}
		// A failure (the write lock held elsewhere, the disk full) is
		// left to the next tick: until then the records stay in the part
		// QueryEvents reads by seq.
		ix.pass(s, &last)
	}
}

// pass indexes the tail once it is due, a batch at a time while batches
// come back full (a tail left by a stopped indexer or another process),
// with a pause between them so that requests' commits get the write lock.
func (ix *eventIndexer) pass(s *Store, last *time.Time) {
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		var tail int64
		err := s.r.QueryRowContext(ctx, "SELECT coalesce((SELECT max(seq) FROM events), 0) - "+indexHead).Scan(&tail)
		n := 0
		if err == nil && (tail >= indexAt || (tail > 0 && time.Since(*last) >= indexEvery)) {
			if n, err = s.indexEvents(ctx, indexBatch); err == nil {
				*last = time.Now()
			}
		}
		cancel()
		if err != nil || n < indexBatch {
			return
		}
		select {
		case <-ix.quit:
			return
		case <-time.After(indexPause):
		}
	}
}

// stop ends the loop, after the batch in progress.
func (ix *eventIndexer) stop() {
	ix.once.Do(func() { close(ix.quit) })
	<-ix.done
}
