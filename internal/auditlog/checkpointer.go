package auditlog

import (
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
	// Witness, when set, is a file every new checkpoint note is appended
	// to: a copy held outside the database.
	Witness string
	Now     func() time.Time
	Logger  *slog.Logger

	mu sync.Mutex // one checkpoint at a time
}

// VerifierKey returns the public key auditors verify checkpoints with.
func (c *Checkpointer) VerifierKey(ctx context.Context) (string, error) {
	skey, err := c.Store.CheckpointKey(ctx, NewKey)
	if err != nil {
		return "", fmt.Errorf("auditlog: checkpoint key: %w", err)
	}
	return VerifierKey(skey)
}

// Run checkpoints every Every until ctx ends.
func (c *Checkpointer) Run(ctx context.Context) {
	every := c.Every
	if every <= 0 {
		every = 10 * time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := c.Checkpoint(ctx); err != nil && ctx.Err() == nil && c.Logger != nil {
				c.Logger.Error("audit checkpoint", slog.String("error", err.Error()))
			}
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
	last, err := c.Store.LatestCheckpoint(ctx)
	switch {
	case errors.Is(err, store.ErrNotFound):
		last = store.Checkpoint{Head: auditchain.Genesis[:]}
	case err != nil:
		return store.Checkpoint{}, fmt.Errorf("auditlog: %w", err)
	}
	var tree auditchain.Tree
	if len(last.Tree) > 0 {
		if err := json.Unmarshal(last.Tree, &tree); err != nil || !tree.Valid() || tree.N != last.Size {
			return store.Checkpoint{}, fmt.Errorf("auditlog: the checkpoint at size %d holds no valid tree", last.Size)
		}
	}
	var head auditchain.Hash
	copy(head[:], last.Head)
	size := last.Size
	err = store.EachEvent(ctx, c.Store, size, func(ev store.Event) error {
		leaf := auditchain.LeafHash(ev)
		next := auditchain.Link(head, leaf)
		if ev.Seq != size+1 || string(ev.Hash) != string(next[:]) {
			return fmt.Errorf("the log does not chain at record %d: not checkpointed", size+1)
		}
		tree.Append(leaf)
		head, size = next, ev.Seq
		return nil
	})
	if err != nil {
		return store.Checkpoint{}, fmt.Errorf("auditlog: %w", err)
	}
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
