package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mandate-dev/mandate/internal/store"
	"github.com/mandate-dev/mandate/internal/store/postgres"
	"github.com/mandate-dev/mandate/internal/store/postgres/pgtest"
	"github.com/mandate-dev/mandate/internal/store/storetest"
)

// envURL names the variable that points the tests at a PostgreSQL database,
// for example postgres://mandate:pw@127.0.0.1:5433/mandate_test?sslmode=disable.
// The role must be allowed to create schemas in it; each test works in a
// schema of its own and drops it at the end. .ci/run starts a throwaway
// cluster and sets it.
const envURL = "MANDATE_TEST_POSTGRES_URL"

// testURL returns the database URL, or skips t when there is none.
func testURL(t testing.TB) string { return pgtest.URL(t) }

// withParam returns the connection string u with one more parameter, in
// URL or key=value form.
func withParam(t testing.TB, u, key, value string) string {
	t.Helper()
	if !strings.Contains(u, "://") {
		return u + " " + key + "=" + value
	}
	pu, err := url.Parse(u)
	if err != nil {
		t.Fatalf("parse %s: %v", envURL, err)
	}
	q := pu.Query()
	q.Set(key, value)
	pu.RawQuery = q.Encode()
	return pu.String()
}

// newSchema returns a schema of the test's own (pgtest.NewSchema).
func newSchema(t testing.TB) string { return pgtest.NewSchema(t) }

// config is the Config of the test database and schema.
func config(t testing.TB, schema string) postgres.Config {
	return postgres.Config{URL: testURL(t), Schema: schema}
}

// openStore opens a store with cfg and closes it when t ends.
func openStore(t testing.TB, cfg postgres.Config) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// rawConn connects to the test database directly, with search_path set to
// schema, and closes the connection when t ends.
func rawConn(t testing.TB, schema string) *pgx.Conn {
	t.Helper()
	cfg, err := pgx.ParseConfig(testURL(t))
	if err != nil {
		t.Fatalf("parse %s: %v", envURL, err)
	}
	cfg.RuntimeParams["search_path"] = schema
	conn, err := pgx.ConnectConfig(context.Background(), cfg)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func TestConformance(t *testing.T) {
	testURL(t)
	t.Parallel()
	storetest.Run(t, func(t *testing.T) store.Store {
		return openStore(t, config(t, newSchema(t)))
	})
}

// TestRefusedEvents: a sign-in write whose audit record the database
// refuses (a trigger) leaves no row.
func TestRefusedEvents(t *testing.T) {
	testURL(t)
	t.Parallel()
	storetest.RunRefusedEvents(t, func(t *testing.T) (store.Store, func()) {
		schema := newSchema(t)
		s := openStore(t, config(t, schema))
		return s, func() {
			conn := rawConn(t, schema)
			if _, err := conn.Exec(t.Context(), `CREATE FUNCTION refuse_events() RETURNS trigger LANGUAGE plpgsql AS
				$$BEGIN RAISE EXCEPTION 'audit records refused'; END$$`); err != nil {
				t.Fatal(err)
			}
			if _, err := conn.Exec(t.Context(), `CREATE TRIGGER refuse_events BEFORE INSERT ON events
				FOR EACH ROW EXECUTE FUNCTION refuse_events()`); err != nil {
				t.Fatal(err)
			}
		}
	})
}

func TestConformanceReopen(t *testing.T) {
	testURL(t)
	t.Parallel()
	storetest.RunReopen(t, func(t *testing.T) func() store.Store {
		cfg := config(t, newSchema(t))
		return func() store.Store {
			s, err := postgres.Open(t.Context(), cfg)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			return s
		}
	})
}

// schemaVersion is the store's schema version and the number of rows in
// schema_migrations.
func schemaVersion(t *testing.T, schema string) (version, rows int) {
	t.Helper()
	err := rawConn(t, schema).QueryRow(t.Context(), "SELECT COALESCE(MAX(version), 0), COUNT(*) FROM schema_migrations").
		Scan(&version, &rows)
	if err != nil {
		t.Fatalf("read schema_migrations: %v", err)
	}
	return version, rows
}

func TestMigrations(t *testing.T) {
	testURL(t)
	t.Parallel()
	t.Run("ok/idempotent", func(t *testing.T) {
		t.Parallel()
		cfg := config(t, newSchema(t))
		var versions []int
		for range 3 {
			s, err := postgres.Open(t.Context(), cfg)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			v, err := s.SchemaVersion(t.Context())
			s.Close()
			if err != nil {
				t.Fatalf("SchemaVersion: %v", err)
			}
			versions = append(versions, v)
		}
		if err := postgres.Migrate(t.Context(), cfg); err != nil {
			t.Fatalf("Migrate on a migrated schema: %v", err)
		}
		if versions[0] < 1 || versions[1] != versions[0] || versions[2] != versions[0] {
			t.Errorf("schema versions over three opens = %v, want the same positive version", versions)
		}
		if v, rows := schemaVersion(t, cfg.Schema); v != versions[0] || rows != v {
			t.Errorf("schema_migrations: version %d in %d rows, want %d in %d (one per migration)", v, rows, versions[0], versions[0])
		}
	})
	// Several instances start at once on an empty database: the advisory
	// lock lets one migrate while the others wait and then find it done.
	t.Run("ok/concurrent-open", func(t *testing.T) {
		t.Parallel()
		cfg := config(t, newSchema(t))
		const n = 4
		var wg sync.WaitGroup
		errs := make([]error, n)
		start := make(chan struct{})
		for i := range n {
			wg.Go(func() {
				<-start
				s, err := postgres.Open(t.Context(), cfg)
				if err == nil {
					err = s.CreateUser(t.Context(), store.User{ID: fmt.Sprintf("u%d", i)})
					s.Close()
				}
				errs[i] = err
			})
		}
		close(start)
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("opener %d: %v", i, err)
			}
		}
		if v, rows := schemaVersion(t, cfg.Schema); v < 1 || rows != v {
			t.Errorf("schema_migrations: version %d in %d rows, want one row per migration", v, rows)
		}
	})
	t.Run("fail/newer-schema", func(t *testing.T) {
		t.Parallel()
		cfg := config(t, newSchema(t))
		openStore(t, cfg)
		if _, err := rawConn(t, cfg.Schema).Exec(t.Context(),
			"INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, '9999_future.sql', now())"); err != nil {
			t.Fatalf("insert: %v", err)
		}
		if s, err := postgres.Open(t.Context(), cfg); err == nil || !strings.Contains(err.Error(), "newer") {
			if err == nil {
				s.Close()
			}
			t.Errorf("Open of a schema from a newer build: err = %v, want a refusal", err)
		}
		if err := postgres.Migrate(t.Context(), cfg); err == nil {
			t.Error("Migrate of a schema from a newer build succeeded")
		}
		cfg.SkipMigrations = true
		if s, err := postgres.Open(t.Context(), cfg); err == nil {
			s.Close()
			t.Error("Open with SkipMigrations of a schema from a newer build succeeded")
		}
	})
	// An operator runs `mandate migrate`, then starts servers that do not
	// migrate: they refuse a schema that is behind.
	t.Run("ok/migrate-then-skip", func(t *testing.T) {
		t.Parallel()
		cfg := config(t, newSchema(t))
		cfg.SkipMigrations = true
		if s, err := postgres.Open(t.Context(), cfg); err == nil || !strings.Contains(err.Error(), "mandate migrate") {
			if err == nil {
				s.Close()
			}
			t.Fatalf("Open with SkipMigrations of an empty schema: err = %v, want a refusal naming `mandate migrate`", err)
		}
		if err := postgres.Migrate(t.Context(), cfg); err != nil {
			t.Fatalf("Migrate: %v", err)
		}
		s := openStore(t, cfg)
		if err := s.CreateUser(t.Context(), store.User{ID: "u"}); err != nil {
			t.Errorf("CreateUser: %v", err)
		}
	})
}

func TestConfigRefused(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  postgres.Config
	}{
		{name: "fail/no-url", cfg: postgres.Config{}},
		{name: "fail/bad-url", cfg: postgres.Config{URL: "postgres://u:secret@host:notaport/db"}},
		{name: "fail/schema-upper-case", cfg: postgres.Config{URL: "postgres://u@127.0.0.1:1/db", Schema: "Mandate"}},
		{name: "fail/schema-quote", cfg: postgres.Config{URL: "postgres://u@127.0.0.1:1/db", Schema: `x"; DROP TABLE users; --`}},
		{name: "fail/schema-too-long", cfg: postgres.Config{URL: "postgres://u@127.0.0.1:1/db", Schema: strings.Repeat("m", 56)}},
		{name: "fail/password-file-missing", cfg: postgres.Config{URL: "postgres://u@127.0.0.1:1/db", PasswordFile: "/nonexistent/pw"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := postgres.Open(t.Context(), tc.cfg)
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded, want an error")
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("the error quotes the password: %v", err)
			}
			if errors.Is(err, store.ErrUnavailable) {
				t.Errorf("a bad configuration is reported as unavailable: %v", err)
			}
			if err := postgres.Migrate(t.Context(), tc.cfg); err == nil {
				t.Error("Migrate succeeded, want an error")
			}
		})
	}
}

// TestDurability checks that Open refuses a server that acknowledges commits
// before they are on disk (THREATS T59), unless told to allow it.
func TestDurability(t *testing.T) {
	u := testURL(t)
	for _, tc := range []struct {
		name       string
		syncCommit string
		allow      bool
		wantErr    bool
	}{
		{name: "fail/synchronous-commit-off", syncCommit: "off", wantErr: true},
		{name: "ok/synchronous-commit-off-allowed", syncCommit: "off", allow: true},
		{name: "ok/synchronous-commit-local", syncCommit: "local"},
		{name: "ok/synchronous-commit-on", syncCommit: "on"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := config(t, newSchema(t))
			// Unknown URL parameters are sent as run-time settings, as a
			// per-role or per-database setting would be applied.
			cfg.URL = withParam(t, u, "synchronous_commit", tc.syncCommit)
			cfg.AllowAsyncCommit = tc.allow
			s, err := postgres.Open(t.Context(), cfg)
			if tc.wantErr {
				if err == nil {
					s.Close()
					t.Fatal("Open succeeded, want ErrNotDurable")
				}
				if !errors.Is(err, postgres.ErrNotDurable) || !strings.Contains(err.Error(), "synchronous_commit") {
					t.Errorf("Open: err = %v, want ErrNotDurable naming synchronous_commit", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer s.Close()
			if err := s.Ping(t.Context()); err != nil {
				t.Errorf("Ping: %v", err)
			}
		})
	}
}

// TestPassword checks that the password may come from a file or from
// PGPASSWORD instead of the URL. Against a server that does not ask for a
// password (trust), it only shows that these paths do not get in the way.
func TestPassword(t *testing.T) {
	u := testURL(t)
	if !strings.Contains(u, "://") {
		t.Skip(envURL + " is not a URL: password tests skipped")
	}
	pu, err := url.Parse(u)
	if err != nil {
		t.Fatalf("parse %s: %v", envURL, err)
	}
	pw, hasPW := pu.User.Password()
	bare := *pu
	bare.User = url.User(pu.User.Username())
	schema := newSchema(t)
	dir := t.TempDir()
	write := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	t.Run("ok/password-file", func(t *testing.T) {
		s := openStore(t, postgres.Config{URL: bare.String(), Schema: schema, PasswordFile: write("pw", pw+"\n")})
		if err := s.Ping(t.Context()); err != nil {
			t.Errorf("Ping: %v", err)
		}
	})
	t.Run("ok/password-file-wins-over-url", func(t *testing.T) {
		wrong := *pu
		wrong.User = url.UserPassword(pu.User.Username(), "wrong")
		if !hasPW {
			t.Skip("the server needs no password")
		}
		openStore(t, postgres.Config{URL: wrong.String(), Schema: schema, PasswordFile: write("pw2", pw)})
	})
	t.Run("fail/password-file-wrong", func(t *testing.T) {
		if !hasPW {
			t.Skip("the server needs no password")
		}
		s, err := postgres.Open(t.Context(), postgres.Config{URL: bare.String(), Schema: schema, PasswordFile: write("bad", "wrong\n")})
		if err == nil {
			s.Close()
			t.Fatal("Open with a wrong password succeeded")
		}
		if strings.Contains(err.Error(), pw) {
			t.Errorf("the error quotes the password: %v", err)
		}
	})
	t.Run("fail/password-file-empty", func(t *testing.T) {
		s, err := postgres.Open(t.Context(), postgres.Config{URL: bare.String(), Schema: schema, PasswordFile: write("empty", "\n")})
		if err == nil {
			s.Close()
			t.Fatal("Open with an empty password file succeeded")
		}
	})
	t.Run("ok/pgpassword", func(t *testing.T) {
		t.Setenv("PGPASSWORD", pw)
		s := openStore(t, postgres.Config{URL: bare.String(), Schema: schema})
		if err := s.Ping(t.Context()); err != nil {
			t.Errorf("Ping: %v", err)
		}
	})
}

// TestNotStorable checks keys PostgreSQL text cannot hold (NUL, invalid
// UTF-8): a lookup finds nothing, as for any unknown key, and the store is
// not reported unavailable.
func TestNotStorable(t *testing.T) {
	s := openStore(t, config(t, newSchema(t)))
	ctx := t.Context()
	for _, key := range []string{"a\x00b", "\xff\xfe"} {
		if _, err := s.GetUser(ctx, key); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetUser(%q): err = %v, want ErrNotFound", key, err)
		}
		if _, err := s.GetToken(ctx, key); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetToken(%q): err = %v, want ErrNotFound", key, err)
		}
		if err := s.RevokeToken(ctx, key, time.Now()); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("RevokeToken(%q): err = %v, want ErrNotFound", key, err)
		}
		if _, err := s.UpdateAgent(ctx, key, func(a store.Agent) (store.Agent, error) { return a, nil }); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("UpdateAgent(%q): err = %v, want ErrNotFound", key, err)
		}
		if evs, err := s.QueryEvents(ctx, store.EventFilter{JTI: key}); err != nil || len(evs) != 0 {
			t.Errorf("QueryEvents(JTI %q) = %v, %v; want none", key, evs, err)
		}
		if ds, err := s.ListDelegations(ctx, store.DelegationFilter{Subject: key}); err != nil || len(ds) != 0 {
			t.Errorf("ListDelegations(Subject %q) = %v, %v; want none", key, ds, err)
		}
		err := s.UseNonce(ctx, "client_assertion", key, time.Now().Add(time.Hour))
		if err == nil || errors.Is(err, store.ErrUnavailable) {
			t.Errorf("UseNonce(%q): err = %v, want a refusal that is not ErrUnavailable", key, err)
		}
		if err := s.CreateUser(ctx, store.User{ID: key}); err == nil || errors.Is(err, store.ErrUnavailable) {
			t.Errorf("CreateUser(%q): err = %v, want a refusal that is not ErrUnavailable", key, err)
		}
	}
	if err := s.Ping(ctx); err != nil {
		t.Errorf("Ping after the refusals: %v", err)
	}
}

// TestLockWaitHonoursDeadline checks that an update blocked by another
// session's row lock fails with ErrUnavailable when its deadline passes,
// rather than hanging, and works once the lock is released.
func TestLockWaitHonoursDeadline(t *testing.T) {
	schema := newSchema(t)
	s := openStore(t, config(t, schema))
	ctx := t.Context()
	if err := s.CreateUser(ctx, store.User{ID: "u"}); err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	conn := rawConn(t, schema)
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "SELECT 1 FROM users WHERE id = 'u' FOR UPDATE"); err != nil {
		t.Fatalf("lock: %v", err)
	}
	bump := func(u store.User) (store.User, error) { u.Version++; return u, nil }
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = s.UpdateUser(short, "u", bump)
	if !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("UpdateUser under a held lock: err = %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("UpdateUser took %v under a held lock; the deadline was 200ms", d)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if u, err := s.UpdateUser(ctx, "u", bump); err != nil || u.Version != 1 {
		t.Errorf("UpdateUser after the lock was released = %+v, %v; want Version 1", u, err)
	}
}

func BenchmarkCommit(b *testing.B) {
	for _, size := range []int{1, 64} {
		b.Run(fmt.Sprintf("batch-%d", size), func(b *testing.B) {
			s := openStore(b, config(b, newSchema(b)))
			ctx := context.Background()
			now := time.Now()
			n := 0
			for b.Loop() {
				batch := store.Batch{
					Tokens: make([]store.IssuedToken, 0, size),
					Events: make([]store.Event, 0, size),
				}
				for range size {
					n++
					jti := fmt.Sprintf("jti-%d", n)
					batch.Tokens = append(batch.Tokens, store.IssuedToken{
						JTI: jti, GrantType: "urn:ietf:params:oauth:grant-type:token-exchange",
						Subject: "user:sam", ClientID: "agent:argocd", Chain: []string{"agent:argocd"},
						Scopes: []string{"deploy:create"}, Audience: "https://deploy.example",
						IssuedAt: now, ExpiresAt: now.Add(10 * time.Minute),
					})
					batch.Events = append(batch.Events, store.Event{
						ID: "ev-" + jti, Time: now, Action: "token.exchange", Result: "ok",
						Performer: "agent:argocd", OnBehalf: "user:sam", Chain: []string{"agent:argocd"},
						ClientID: "agent:argocd", Scopes: []string{"deploy:create"}, JTI: jti,
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

// BenchmarkCommitParallel commits one token and its event per call from
// many goroutines at once on one store, so that the events_head lock, which
// orders the audit log and its chain, is contended (THREATS T72): the
// throughput of issuance without the group commit's batching.
func BenchmarkCommitParallel(b *testing.B) {
	s := openStore(b, config(b, newSchema(b)))
	ctx := context.Background()
	now := time.Now()
	var n atomic.Int64
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			jti := fmt.Sprintf("jti-%d", n.Add(1))
			err := s.Commit(ctx, store.Batch{
				Tokens: []store.IssuedToken{{JTI: jti, GrantType: "urn:ietf:params:oauth:grant-type:token-exchange",
					Subject: "user:sam", ClientID: "agent:argocd", Chain: []string{"agent:argocd"},
					Scopes: []string{"deploy:create"}, Audience: "https://deploy.example",
					IssuedAt: now, ExpiresAt: now.Add(10 * time.Minute)}},
				Events: []store.Event{{ID: "ev-" + jti, Time: now, Action: "token.exchange", Result: "ok",
					Performer: "agent:argocd", OnBehalf: "user:sam", Chain: []string{"agent:argocd"},
					ClientID: "agent:argocd", Scopes: []string{"deploy:create"}, JTI: jti}},
			})
			if err != nil {
				b.Errorf("Commit: %v", err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
}
