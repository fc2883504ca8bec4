package sqlite

import (
	"context"
	"database/sql"
	"sync"
	"time"
)

// WAL checkpoints. By default SQLite checkpoints inside the COMMIT that
// takes the write-ahead log past 1000 pages: that commit copies the pages
// into the database file and fsyncs it, and every request of the group
// waiting on it pays for it (a latency spike every few hundred tokens).
// Instead a background connection runs a PASSIVE checkpoint every
// checkpointEvery, which never blocks the writer, and the write connection
// checkpoints by itself only when the log passes writerCheckpointPages
// (the checkpointer stopped or cannot keep up, for example while a long
// read pins old frames). Commits stay durable either way: a commit returns
// once its frames are fsynced in the WAL (synchronous=FULL), checkpointed
// or not.
const (
	checkpointEvery       = 200 * time.Millisecond
	writerCheckpointPages = 8000
)

// walCheckpointer runs PASSIVE checkpoints on its own connection until
// stopped.
type walCheckpointer struct {
	db   *sql.DB
	quit chan struct{}
	done chan struct{}
	once sync.Once
	// passes counts the checkpoints run, for tests.
	mu     sync.Mutex
	passes int
}

func startCheckpointer(db *sql.DB, every time.Duration) *walCheckpointer {
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	c := &walCheckpointer{db: db, quit: make(chan struct{}), done: make(chan struct{})}
	go c.loop(every)
	return c
}

func (c *walCheckpointer) loop(every time.Duration) {
	defer close(c.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-c.quit:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		// A failure (the file busy, or gone) is left to the next tick, and
		// to the writer's own checkpoint past writerCheckpointPages.
		var busy, logPages, done int
		if err := c.db.QueryRowContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &logPages, &done); err == nil {
			c.mu.Lock()
			c.passes++
			c.mu.Unlock()
		}
		cancel()
	}
}

// runs is the number of checkpoints run so far.
func (c *walCheckpointer) runs() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.passes
}

// stop ends the loop and closes the connection.
func (c *walCheckpointer) stop() error {
	c.once.Do(func() { close(c.quit) })
	<-c.done
	return c.db.Close()
}
