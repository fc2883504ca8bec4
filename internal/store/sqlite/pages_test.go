package sqlite

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mandate-dev/mandate/internal/store"
	"github.com/mandate-dev/mandate/internal/token"
)

// The WAL's layout (https://sqlite.org/fileformat2.html#walformat): a
// 32-byte header, then frames of a 24-byte header and one page; a frame's
// header starts with the page number, big-endian.
const (
	walHeader      = 32
	walFrameHeader = 24
)

// exchangeBatch is what one token exchange commits, shaped like the load
// tool's: a token and its token.exchange record, by agent i of agents, on
// behalf of one person, each agent under a delegation of its own.
func exchangeBatch(now time.Time, i, agents int) store.Batch {
	agent := fmt.Sprintf("agent:bench-%d", i%agents+1)
	jti := token.NewJTI(now)
	tok := store.IssuedToken{
		JTI: jti, GrantType: "urn:ietf:params:oauth:grant-type:token-exchange", Subject: "user:sam",
		ClientID: agent, Chain: []string{agent}, DelegationID: fmt.Sprintf("dlg_%016d", i%agents),
		Scopes: []string{"monitoring:read"}, Audience: "https://deploy.example", IssuedAt: now,
		ExpiresAt: now.Add(10 * time.Minute), Gen: 66,
	}
	ev := store.Event{
		ID: "evt_" + randHex(16), Time: now, RequestID: "req_" + randHex(16), Action: "token.exchange",
		Result: "granted", Performer: agent, OnBehalf: "user:sam", Chain: []string{agent}, ClientID: agent,
		Scopes: tok.Scopes, Requested: tok.Scopes, Audience: tok.Audience, DelegationID: tok.DelegationID, JTI: jti,
	}
	return store.Batch{Tokens: []store.IssuedToken{tok}, Events: []store.Event{ev}}
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// lonePages commits warm exchanges into a fresh store, then measures the
// WAL frames of each of measure lone exchange commits: it returns the
// frames per commit by B-tree (table or index) name, averaged, and the
// average bytes appended to the WAL per commit. The background
// checkpointer is stopped so that the WAL only grows while it measures.
func lonePages(t *testing.T, warm, measure, agents int) (by map[string]float64, walBytes, indexFrames float64) {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "mandate.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// Nothing runs in the background while it measures: the checkpointer
	// would reset the WAL, and the indexer's batches are counted apart.
	s.indexer.stop()
	s.indexer = nil
	if err := s.ckpt.stop(); err != nil {
		t.Fatal(err)
	}
	s.ckpt = nil
	now := time.Now()
	for i := range warm {
		if err := s.Commit(ctx, exchangeBatch(now.Add(time.Duration(i)*time.Millisecond), i, agents)); err != nil {
			t.Fatal(err)
		}
	}
	settle(t, s)
	if _, err := s.w.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
		t.Fatal(err)
	}
	wal := path + "-wal"
	var pages []uint32
	start := walSize(t, wal)
	for i := range measure {
		if err := s.Commit(ctx, exchangeBatch(now.Add(time.Duration(warm+i)*time.Millisecond), warm+i, agents)); err != nil {
			t.Fatal(err)
		}
	}
	end := walSize(t, wal)
	settle(t, s)
	indexFrames = float64(walSize(t, wal)-end) / float64(walFrameHeader+4096) / float64(measure)
	b, err := os.ReadFile(wal)
	if err != nil {
		t.Fatal(err)
	}
	pageSize := int64(binary.BigEndian.Uint32(b[8:12]))
	off := max(start, walHeader)
	for ; off+walFrameHeader+pageSize <= end; off += walFrameHeader + pageSize {
		pages = append(pages, binary.BigEndian.Uint32(b[off:off+4]))
	}
	owner := pageOwners(t, s)
	by = map[string]float64{}
	for _, p := range pages {
		name, ok := owner[p]
		if !ok {
			name = fmt.Sprintf("page %d (free or new)", p)
		}
		by[name] += 1 / float64(measure)
	}
	return by, float64(end-start) / float64(measure), indexFrames
}

// settle indexes every record, as the background indexer would.
func settle(t *testing.T, s *Store) {
	t.Helper()
	for {
		n, err := s.indexEvents(context.Background(), indexBatch)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
	}
}

func walSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// pageOwners maps each page of the database to the table or index it
// belongs to, from the dbstat virtual table.
func pageOwners(t *testing.T, s *Store) map[uint32]string {
	t.Helper()
	rows, err := s.r.QueryContext(context.Background(), "SELECT name, pageno FROM dbstat")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[uint32]string{}
	for rows.Next() {
		var name string
		var p uint32
		if err := rows.Scan(&name, &p); err != nil {
			t.Fatal(err)
		}
		out[p] = name
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// formatPages is by as lines "name frames", most frames first.
func formatPages(by map[string]float64) string {
	names := make([]string, 0, len(by))
	for n := range by {
		names = append(names, n)
	}
	slices.SortFunc(names, func(a, b string) int {
		if by[a] != by[b] {
			if by[a] > by[b] {
				return -1
			}
			return 1
		}
		return strings.Compare(a, b)
	})
	var sb strings.Builder
	total := 0.0
	for _, n := range names {
		fmt.Fprintf(&sb, "  %-28s %5.2f\n", n, by[n])
		total += by[n]
	}
	fmt.Fprintf(&sb, "  %-28s %5.2f", "total", total)
	return sb.String()
}

// TestLoneCommitPages measures what one exchange's commit appends to the
// WAL when it commits alone (concurrency 1): the frames by B-tree, and
// holds them to a bound. Each frame is a whole page (4 KiB) plus its
// header, and the kernel counts every 4 KiB page of the file it touches,
// so the frames of a lone commit are what it costs the disk.
func TestLoneCommitPages(t *testing.T) {
	by, bytes, indexing := lonePages(t, 3000, 200, 32)
	total := 0.0
	for _, n := range by {
		total += n
	}
	// The record's leaf and now and then page 1: about 1.2. A query
	// index written by the append again, a page of sqlite_sequence
	// (AUTOINCREMENT, before migration 21) or the token's leaf (before
	// migration 23, 1.7 with its splits) would add a frame or more.
	if total > 1.7 {
		t.Errorf("a lone exchange commit appends %.2f WAL frames, want at most 1.7", total)
	}
	t.Logf("WAL frames per lone exchange commit, by B-tree (3,000 exchanges before, 32 agents):\n%s\n"+
		"  WAL bytes per commit: %.0f\n  indexing them afterwards, in one batch: %.2f frames per record",
		formatPages(by), bytes, indexing)
}
