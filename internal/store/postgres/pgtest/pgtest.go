// Package pgtest gives tests a PostgreSQL store of their own: a fresh schema
// in the database named by MANDATE_TEST_POSTGRES_URL, dropped when the test
// ends. Without that variable the tests that ask for one are skipped, and
// say so. It is a normal package so that tests of other packages (the
// server's threat tests) can run on PostgreSQL as well as SQLite.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mandate-dev/mandate/internal/store/postgres"
)

// EnvURL names the variable that holds the test database's URL, for
// example postgres://mandate:pw@127.0.0.1:5433/mandate_test?sslmode=disable.
// The role must be allowed to create schemas. .ci/run starts a throwaway
// cluster and sets it.
const EnvURL = "MANDATE_TEST_POSTGRES_URL"

// URL returns the database URL, or skips t when there is none.
func URL(t testing.TB) string {
	t.Helper()
	u := os.Getenv(EnvURL)
	if u == "" {
		t.Skip(EnvURL + " not set: PostgreSQL tests skipped")
	}
	return u
}

// NewSchema returns the name of a schema no test uses and drops it, with
// everything in it, when t ends (after the stores t opened are closed).
func NewSchema(t testing.TB) string {
	t.Helper()
	u := URL(t)
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	name := "mandate_test_" + hex.EncodeToString(b)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, u)
		if err != nil {
			t.Errorf("drop schema %s: connect: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+name+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", name, err)
		}
	})
	return name
}

// Open opens a store on a fresh schema and closes it when t ends.
func Open(t testing.TB) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), postgres.Config{URL: URL(t), Schema: NewSchema(t)})
	if err != nil {
		t.Fatalf("postgres.Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
