package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mandate-dev/mandate/internal/audit"
	"github.com/mandate-dev/mandate/internal/store"
	"github.com/mandate-dev/mandate/internal/store/sqlite"
	"github.com/mandate-dev/mandate/internal/store/storetest"
)

// openAt opens the store at path and closes it when t ends.
func openAt(t testing.TB, path string) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return openAt(t, filepath.Join(t.TempDir(), "mandate.db"))
	})
}

// TestRefusedEvents: a sign-in write whose audit record the database
// refuses (a trigger) leaves no row.
func TestRefusedEvents(t *testing.T) {
	storetest.RunRefusedEvents(t, func(t *testing.T) (store.Store, func()) {
		path := filepath.Join(t.TempDir(), "mandate.db")
		s := openAt(t, path)
		return s, func() {
			if _, err := rawDB(t, path).Exec(`CREATE TRIGGER refuse_events BEFORE INSERT ON events
				BEGIN SELECT RAISE(ABORT, 'audit records refused'); END`); err != nil {
				t.Fatal(err)
			}
		}
	})
}

func TestConformanceReopen(t *testing.T) {
	storetest.RunReopen(t, func(t *testing.T) func() store.Store {
		path := filepath.Join(t.TempDir(), "mandate.db")
		return func() store.Store {
			s, err := sqlite.Open(t.Context(), path)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			return s
		}
	})
}

func TestConformanceFaultyHealed(t *testing.T) {
	// A healed Faulty is a transparent store: it passes the suite too.
	storetest.Run(t, func(t *testing.T) store.Store {
		f := storetest.NewFaulty(openAt(t, filepath.Join(t.TempDir(), "mandate.db")))
		f.FailAll(nil)
		f.Heal()
		return f
	})
}

// rawDB opens the file without the store, to look at it from outside.
func rawDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatalf("sql.Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestOpenDurabilityPragmas(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mandate.db")
	s := openAt(t, path)
	if err := s.Ping(t.Context()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	// journal_mode is a property of the file: WAL must have stuck.
	var mode string
	if err := rawDB(t, path).QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil {
		t.Fatalf("journal_mode: %v", err)
	}
	if mode != "wal" {
		t.Errorf("journal_mode = %q, want wal", mode)
	}
}

func TestOpenFileMode(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name   string
		create os.FileMode // 0 means the file does not exist yet
	}{
		{name: "ok/new-file"},
		{name: "ok/existing-world-readable", create: 0o644},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, filepath.Base(tc.name)+".db")
			if tc.create != 0 {
				if err := os.WriteFile(path, nil, tc.create); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(path, tc.create); err != nil {
					t.Fatal(err)
				}
			}
			s := openAt(t, path)
			if err := s.CreateUser(t.Context(), store.User{ID: "u"}); err != nil {
				t.Fatalf("CreateUser: %v", err)
			}
			for _, p := range []string{path, path + "-wal", path + "-shm"} {
				fi, err := os.Stat(p)
				if err != nil {
					t.Fatalf("stat: %v", err)
				}
				if got := fi.Mode().Perm(); got != 0o600 {
					t.Errorf("%s has mode %o, want 600", filepath.Base(p), got)
				}
			}
		})
	}
}

func TestOpenRefuses(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		path string
	}{
		{name: "fail/empty", path: ""},
		{name: "fail/memory", path: ":memory:"},
		{name: "fail/uri", path: "file:" + filepath.Join(dir, "x.db")},
		{name: "fail/query-in-path", path: filepath.Join(dir, "x.db?_pragma=synchronous(OFF)")},
		{name: "fail/missing-dir", path: filepath.Join(dir, "no", "such", "dir", "x.db")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := sqlite.Open(t.Context(), tc.path)
			if err == nil {
				s.Close()
				t.Fatalf("Open(%q) succeeded, want an error", tc.path)
			}
		})
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mandate.db")
	s, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	s.Close()
	if _, err := rawDB(t, path).Exec("INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, '9999_future.sql', 0)"); err != nil {
		t.Fatalf("insert: %v", err)
	}
	if s, err := sqlite.Open(t.Context(), path); err == nil {
		s.Close()
		t.Fatal("Open of a database from a newer build succeeded")
	}
}

func TestMigrationsIdempotent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mandate.db")
	var versions []int
	for range 3 {
		s, err := sqlite.Open(t.Context(), path)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		v, err := s.SchemaVersion(t.Context())
		if err != nil {
			t.Fatalf("SchemaVersion: %v", err)
		}
		versions = append(versions, v)
		s.Close()
	}
	if versions[0] < 1 || versions[1] != versions[0] || versions[2] != versions[0] {
		t.Errorf("schema versions over three opens = %v, want the same positive version", versions)
	}
	var rows int
	if err := rawDB(t, path).QueryRow("SELECT COUNT(*) FROM schema_migrations").Scan(&rows); err != nil {
		t.Fatalf("count: %v", err)
	}
	files, err := filepath.Glob("migrations/*.sql")
	if err != nil {
		t.Fatal(err)
	}
	if rows != len(files) {
		t.Errorf("%d schema_migrations rows, want %d (one per migration)", rows, len(files))
	}
}

// TestConcurrentOpen has several handles open and migrate a new file at
// once, as a server and a CLI command may.
func TestConcurrentOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mandate.db")
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			s, err := sqlite.Open(t.Context(), path)
			if err == nil {
				err = s.Close()
			}
			errs <- err
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Errorf("Open: %v", err)
		}
	}
}

func TestErrorsAfterClose(t *testing.T) {
	s, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "mandate.db"))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	s.Close()
	if err := s.Commit(t.Context(), store.Batch{Events: []store.Event{{ID: "e"}}}); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Commit after Close: err = %v, want ErrUnavailable", err)
	}
	if _, err := s.GetUser(t.Context(), "u"); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("GetUser after Close: err = %v, want ErrUnavailable", err)
	}
	if err := s.Ping(t.Context()); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Ping after Close: err = %v, want ErrUnavailable", err)
	}
}

// TestWriteLockHeld checks that a write blocked by another process's lock
// fails with ErrUnavailable when its deadline passes, rather than hanging.
func TestWriteLockHeld(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mandate.db")
	s := openAt(t, path)
	db := rawDB(t, path)
	conn, err := db.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(t.Context(), "BEGIN IMMEDIATE"); err != nil {
		t.Fatalf("BEGIN IMMEDIATE: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = s.UseNonce(ctx, "ns", "id", time.Now().Add(time.Hour))
	if !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("UseNonce under a held lock: err = %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("UseNonce took %v under a held lock; the deadline was 200ms", d)
	}
	if _, err := conn.ExecContext(t.Context(), "ROLLBACK"); err != nil {
		t.Fatalf("ROLLBACK: %v", err)
	}
	// It recovers without a restart (THREATS T60).
	if err := s.UseNonce(t.Context(), "ns", "id", time.Now().Add(time.Hour)); err != nil {
		t.Errorf("UseNonce after the lock was released: %v", err)
	}
}

func TestFaulty(t *testing.T) {
	ctx := t.Context()
	inner := openAt(t, filepath.Join(t.TempDir(), "mandate.db"))
	f := storetest.NewFaulty(inner)
	errBoom := errors.New("boom")

	f.Fail("Commit", nil)
	err := f.Commit(ctx, store.Batch{Tokens: []store.IssuedToken{{JTI: "t1"}}, Events: []store.Event{{ID: "e1"}}})
	if !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Commit: err = %v, want ErrUnavailable", err)
	}
	if _, err := inner.GetToken(ctx, "t1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a failed Commit reached the store: GetToken err = %v", err)
	}
	if err := f.UseNonce(ctx, "ns", "n", time.Now().Add(time.Hour)); err != nil {
		t.Errorf("UseNonce with only Commit failing: %v", err)
	}

	f.FailAll(errBoom)
	if err := f.Ping(ctx); !errors.Is(err, errBoom) {
		t.Errorf("Ping under FailAll: err = %v, want boom", err)
	}
	if err := f.Commit(ctx, store.Batch{}); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Commit under FailAll: err = %v, want the per-method fault", err)
	}

	if _, err := f.ListRevocations(ctx, 0, 0); !errors.Is(err, errBoom) {
		t.Errorf("ListRevocations under FailAll: err = %v, want boom", err)
	}

	f.Heal()
	if err := f.Commit(ctx, store.Batch{Tokens: []store.IssuedToken{{JTI: "t1"}}}); err != nil {
		t.Errorf("Commit after Heal: %v", err)
	}
	if err := f.RevokeToken(ctx, "t1", time.Now()); err != nil {
		t.Errorf("RevokeToken after Heal: %v", err)
	}
	// The revocation feed fails closed like the rest, and a failed
	// collection reaches nothing.
	for _, m := range []string{"ListRevocations", "RevocationSeq", "CollectRevocations"} {
		f.Fail(m, nil)
	}
	if _, err := f.ListRevocations(ctx, 0, 0); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("ListRevocations: err = %v, want ErrUnavailable", err)
	}
	if _, err := f.RevocationSeq(ctx); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("RevocationSeq: err = %v, want ErrUnavailable", err)
	}
	if _, err := f.CollectRevocations(ctx, time.Now().Add(time.Hour), time.Now().Add(time.Hour)); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("CollectRevocations: err = %v, want ErrUnavailable", err)
	}
	if rs, err := inner.ListRevocations(ctx, 0, 0); err != nil || len(rs) != 1 {
		t.Errorf("a failed CollectRevocations reached the store: ListRevocations = %v, %v; want one entry", rs, err)
	}
	// The audit log's readers and the checkpoints fail closed too, and a
	// failed call reaches nothing: no checkpoint, no key, no create call.
	for _, m := range []string{"EventsAfter", "AddCheckpoint", "Checkpoints", "LatestCheckpoint", "CheckpointKey"} {
		f.Fail(m, nil)
	}
	if _, err := f.EventsAfter(ctx, 0, 0); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("EventsAfter: err = %v, want ErrUnavailable", err)
	}
	cp := store.Checkpoint{Size: 1, Root: []byte{1}, Head: []byte{2}, Note: "n"}
	if err := f.AddCheckpoint(ctx, cp); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("AddCheckpoint: err = %v, want ErrUnavailable", err)
	}
	if _, err := f.Checkpoints(ctx, 0, 0); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Checkpoints: err = %v, want ErrUnavailable", err)
	}
	if _, err := f.LatestCheckpoint(ctx); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("LatestCheckpoint: err = %v, want ErrUnavailable", err)
	}
	created := false
	if _, err := f.CheckpointKey(ctx, func() (string, error) { created = true; return "k", nil }); !errors.Is(err, store.ErrUnavailable) || created {
		t.Errorf("CheckpointKey: err = %v, create called: %v; want ErrUnavailable without a call", err, created)
	}
	if _, err := inner.LatestCheckpoint(ctx); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a failed AddCheckpoint reached the store: LatestCheckpoint err = %v", err)
	}
	f.Heal()
	if got := f.Calls("Commit"); got != 3 {
		t.Errorf("Calls(Commit) = %d, want 3", got)
	}
	defer func() {
		if recover() == nil {
			t.Error("Fail of an unknown method did not panic")
		}
	}()
	f.Fail("Comit", nil)
}

// BenchmarkCommit commits batches shaped like the token endpoint's: per
// request one issued token with a random jti (as audit.NewID makes them)
// and its token.exchange record, with a delegation, a request id and a
// context, as an exchange writes them.
func BenchmarkCommit(b *testing.B) {
	for _, size := range []int{1, 8, 64} {
		b.Run(fmt.Sprintf("batch-%d", size), func(b *testing.B) {
			s := openAt(b, filepath.Join(b.TempDir(), "mandate.db"))
			ctx := context.Background()
			now := time.Now()
			b.ReportAllocs()
			for b.Loop() {
				batch := store.Batch{
					Tokens: make([]store.IssuedToken, 0, size),
					Events: make([]store.Event, 0, size),
				}
				for range size {
					jti := audit.NewID("")
					batch.Tokens = append(batch.Tokens, store.IssuedToken{
						JTI: jti, GrantType: "urn:ietf:params:oauth:grant-type:token-exchange",
						Subject: "user:sam", ClientID: "agent:argocd", Chain: []string{"agent:argocd"},
						DelegationID: "dlg_0123456789abcdef", Scopes: []string{"deploy:create"},
						Audience: "https://deploy.example", SubjectVersion: 1, Gen: 7,
						IssuedAt: now, ExpiresAt: now.Add(10 * time.Minute),
					})
					batch.Events = append(batch.Events, store.Event{
						ID: audit.NewID("evt_"), Time: now, RequestID: audit.NewID("req_"),
						Action: "token.exchange", Result: "granted",
						Performer: "agent:argocd", OnBehalf: "user:sam", Chain: []string{"agent:argocd"},
						ClientID: "agent:argocd", Scopes: []string{"deploy:create"},
						Requested: []string{"deploy:create"}, Audience: "https://deploy.example",
						Context:      []byte(`{"environment":"prod","trigger":"ci_pipeline"}`),
						DelegationID: "dlg_0123456789abcdef", JTI: jti,
					})
				}
				if err := s.Commit(ctx, batch); err != nil {
					b.Fatalf("Commit: %v", err)
				}
			}
			b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "tokens/s")
		})
	}
}

// BenchmarkSweep measures one batch of Sweep (how long it holds the write
// lock): 1,000 expired token rows deleted from a table that also holds as
// many live ones.
func BenchmarkSweep(b *testing.B) {
	s := openAt(b, filepath.Join(b.TempDir(), "mandate.db"))
	ctx := context.Background()
	now := time.Now()
	const batch = 1000
	fill := func(expires time.Time) {
		var bt store.Batch
		for range batch {
			bt.Tokens = append(bt.Tokens, store.IssuedToken{JTI: audit.NewID(""), GrantType: "urn:ietf:params:oauth:grant-type:token-exchange",
				Subject: "user:sam", ClientID: "agent:argocd", Chain: []string{"agent:argocd"}, Scopes: []string{"deploy:create"},
				IssuedAt: now, ExpiresAt: expires})
		}
		if err := s.Commit(ctx, bt); err != nil {
			b.Fatalf("Commit: %v", err)
		}
	}
	fill(now.Add(time.Hour))
	for b.Loop() {
		b.StopTimer()
		fill(now.Add(-time.Hour))
		b.StartTimer()
		got, err := s.Sweep(ctx, store.SweepCutoffs{Tokens: now}, batch)
		if err != nil || got.Tokens != batch {
			b.Fatalf("Sweep = %+v, %v; want %d tokens", got, err, batch)
		}
	}
}

// TestOpenPathWithHash: a '#' is a plain character of a file path (a fuzz
// seed's temporary directory has one): the database is made at that very
// path, durable, and opens again there.
func TestOpenPathWithHash(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "seed#0")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "m#.db")
	for range 2 {
		s, err := sqlite.Open(t.Context(), path)
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("no database at %s: %v", path, err)
	}
	entries, err := os.ReadDir(filepath.Dir(dir))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() != "seed#0" {
			t.Errorf("%s made beside the path asked for", e.Name())
		}
	}
}
