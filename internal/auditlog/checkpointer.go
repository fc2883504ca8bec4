package auditlog

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/mandate-dev/mandate/internal/auditchain"
	"github.com/mandate-dev/mandate/internal/store"
)

// Source is what the Checkpointer reads and writes.
type Source interface {
	EventsAfter(ctx context.Context, afterSeq int64, limit int) ([]store.Event, error)
	LatestCheckpoint(ctx context.Context) (store.Checkpoint, error)
	AddCheckpoint(ctx context.Context, c store.Checkpoint) error
	CheckpointKey(ctx context.Context, create func() (string, error)) (string, error)
}

// Checkpointer signs checkpoints of the audit log. It is safe for
// concurrent use; several instances on one database may each run one.
type Checkpointer struct {
	Store Source
	// Origin names the log in its checkpoints (the issuer).
	Origin string
	// Every is how often Run checkpoints a log that grew; default 10 s.
	Every time.Duration
	// ReadEvery is how often Run reads and checks the records appended
	// since its last read, ahead of the next checkpoint; default 250 ms.
	// Reading the log in small steps keeps the work off the request path:
	// read all at once every 10 s, 30,000 records at 3,000 tokens a second
	// took the one core for 0.4 s, and doubled the p99 latency at c=32.
	ReadEvery time.Duration
	// ReadPage is how many records a read takes at a time; default 16
	// (readPage). A store across the network wants larger pages: there a
	// page costs a round trip more than CPU.
	ReadPage int
	// Witness, when set, is a file every new checkpoint note is appended
	// to: a copy held outside the database.
	Witness string
	Now     func() time.Time
	Logger  *slog.Logger

	mu sync.Mutex // one read or checkpoint at a time
	// progress is the log as far as it has been read and checked: it
	// extends the latest stored checkpoint, or is behind it (then it is
	// dropped).
	progress progress
	hasRead  bool
}

// progress is a checked prefix of the log: its size, chain head and tree.
type progress struct {
	size int64
	head auditchain.Hash
	tree auditchain.Tree
}

// readPage is ReadPage's default, 16 records (about 0.2 ms of CPU with
// SQLite here), and readPause how long Run's reads sleep between pages.
// Sleeping, not just yielding, lets the scheduler poll the network: a
// goroutine that only yields runs again before any request that arrived
// meanwhile is seen.
const (
	readPage  = 16
	readPause = time.Millisecond
)

// sleep waits for d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// VerifierKey returns the public key auditors verify checkpoints with.
func (c *Checkpointer) VerifierKey(ctx context.Context) (string, error) {
	skey, err := c.Store.CheckpointKey(ctx, NewKey)
	if err != nil {
		return "", fmt.Errorf("auditlog: checkpoint key: %w", err)
	}
	return VerifierKey(skey)
}

// Run checkpoints every Every, and reads the log every ReadEvery, until ctx
// ends.
func (c *Checkpointer) Run(ctx context.Context) {
	every := cmp.Or(c.Every, 10*time.Second)
	t := time.NewTicker(every)
	defer t.Stop()
	read := time.NewTicker(cmp.Or(c.ReadEvery, 250*time.Millisecond))
	defer read.Stop()
	for {
		var err error
		select {
		case <-ctx.Done():
			return
		case <-read.C:
			_, err = c.read(ctx, readPause)
		case <-t.C:
			_, err = c.Checkpoint(ctx)
		}
		if err != nil && ctx.Err() == nil && c.Logger != nil {
			c.Logger.Error("audit checkpoint", slog.String("error", err.Error()))
		}
	}
}

// Read reads and checks the records appended since the last read, or since
// the latest stored checkpoint, and returns the size of the log read so
// far. The next checkpoint starts from there. A record that does not chain
// stops it: the error names the record.
func (c *Checkpointer) Read(ctx context.Context) (int64, error) {
	return c.read(ctx, 0)
}

// read is Read, sleeping pause between pages.
func (c *Checkpointer) read(ctx context.Context, pause time.Duration) (int64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var err error
	if c.hasRead {
		// Reading on from where the last read stopped needs no look at
		// the stored checkpoints: Checkpoint looks before it signs.
		err = c.readOn(ctx, pause)
	} else {
		_, err = c.readLocked(ctx, pause)
	}
	return c.progress.size, err
}

// readLocked brings c.progress up to the end of the log and returns the latest
// stored checkpoint (the zero Checkpoint at the genesis head when there is
// none).
func (c *Checkpointer) readLocked(ctx context.Context, pause time.Duration) (store.Checkpoint, error) {
	last, err := c.Store.LatestCheckpoint(ctx)
	switch {
	case errors.Is(err, store.ErrNotFound):
		last = store.Checkpoint{Head: auditchain.Genesis[:]}
	case err != nil:
		return store.Checkpoint{}, fmt.Errorf("auditlog: %w", err)
	}
	if !c.hasRead || c.progress.size < last.Size {
		// First read, or another instance checkpointed further: start from
		// the stored checkpoint.
		p := progress{size: last.Size}
		if len(last.Tree) > 0 {
			if err := json.Unmarshal(last.Tree, &p.tree); err != nil || !p.tree.Valid() || p.tree.N != last.Size {
				return store.Checkpoint{}, fmt.Errorf("auditlog: the checkpoint at size %d holds no valid tree", last.Size)
			}
		}
		copy(p.head[:], last.Head)
		c.progress, c.hasRead = p, true
	}
	if err := c.readOn(ctx, pause); err != nil {
		return store.Checkpoint{}, err
	}
	return last, nil
}

// readOn reads and checks the records after c.progress. It is called with
// c.mu held; with a pause, it lets go of c.mu while it sleeps between pages,
// so that a checkpoint asked for meanwhile does not wait for a long read
// (after a restart, say) to end, and goes on from wherever that left it.
func (c *Checkpointer) readOn(ctx context.Context, pause time.Duration) error {
	page := cmp.Or(c.ReadPage, readPage)
	for {
		evs, err := c.Store.EventsAfter(ctx, c.progress.size, page)
		if err != nil {
			return fmt.Errorf("auditlog: %w", err)
		}
		for _, ev := range evs {
			leaf := auditchain.LeafHash(ev)
			next := auditchain.Link(c.progress.head, leaf)
			if ev.Seq != c.progress.size+1 || string(ev.Hash) != string(next[:]) {
				return fmt.Errorf("auditlog: the log does not chain at record %d: not checkpointed", c.progress.size+1)
			}
			c.progress.tree.Append(leaf)
			c.progress.head, c.progress.size = next, ev.Seq
		}
		if len(evs) < page {
			return nil
		}
		if pause > 0 {
			c.mu.Unlock()
			sleep(ctx, pause)
			c.mu.Lock()
		}
	}
}

// Checkpoint extends the latest checkpoint over the records appended since,
// checking that each chains to the one before, and signs and stores a new
// one when the log grew. A log that does not chain is not checkpointed: the
// error names the first bad record.
func (c *Checkpointer) Checkpoint(ctx context.Context) (store.Checkpoint, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	last, err := c.readLocked(ctx, 0)
	if err != nil {
		return store.Checkpoint{}, err
	}
	size, head, tree := c.progress.size, c.progress.head, c.progress.tree
	if size == last.Size {
		return last, nil
	}
	skey, err := c.Store.CheckpointKey(ctx, NewKey)
	if err != nil {
		return store.Checkpoint{}, fmt.Errorf("auditlog: checkpoint key: %w", err)
	}
	root := tree.Root()
	msg, err := Sign(Checkpoint{Origin: c.Origin, Size: size, Root: root, Head: head}, skey)
	if err != nil {
		return store.Checkpoint{}, err
	}
	treeJSON, err := json.Marshal(tree)
	if err != nil {
		return store.Checkpoint{}, fmt.Errorf("auditlog: %w", err)
	}
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	cp := store.Checkpoint{Size: size, Root: root[:], Head: head[:], Tree: treeJSON, Note: msg, CreatedAt: now()}
	err = c.Store.AddCheckpoint(ctx, cp)
	if errors.Is(err, store.ErrAlreadyExists) {
		// Another instance checkpointed a longer log meanwhile: that one
		// covers this one, which is not stored.
		latest, lerr := c.Store.LatestCheckpoint(ctx)
		if lerr != nil {
			return store.Checkpoint{}, fmt.Errorf("auditlog: %w", lerr)
		}
		return latest, nil
	}
	if err != nil {
		return store.Checkpoint{}, fmt.Errorf("auditlog: %w", err)
	}
	if err := c.witness(msg); err != nil {
		return cp, err
	}
	return cp, nil
}

// witness appends the note to the witness file and syncs it.
func (c *Checkpointer) witness(msg string) error {
	if c.Witness == "" {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(c.Witness), 0o700); err != nil {
		return fmt.Errorf("auditlog: witness: %w", err)
	}
	f, err := os.OpenFile(c.Witness, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("auditlog: witness: %w", err)
	}
	// Each note starts on a line of its own, even after a note torn by a
	// crash before the last sync: SplitNotes then keeps them apart.
	_, err = f.WriteString("\n" + msg)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("auditlog: witness: %w", err)
	}
	return nil
}
