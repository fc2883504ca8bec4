package postgres

import (
	"cmp"
	"context"
	"embed"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mandate-dev/mandate/internal/store"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// migrationLock is the first key of the advisory lock that serializes
// migrations; the second is hashtext(schema), so that schemas migrate
// independently. 0x6d616e64 is "mand".
const migrationLock = 0x6d616e64

// migrations returns the embedded migrations in version order.
func migrations() ([]store.Migration, error) { return store.LoadMigrations(migrationFS) }

// latest is the version of the last embedded migration.
func latest(ms []store.Migration) int {
	if len(ms) == 0 {
		return 0
	}
	return ms[len(ms)-1].Version
}

// Migrate applies the pending migrations to the schema cfg names (creating
// the schema if it is missing) on one connection of its own, under the same
// advisory lock as Open, and returns. It is `mandate migrate`, for operators
// who run migrations with a role allowed to run DDL and start the servers
// with Config.SkipMigrations. It does not check durability, and it refuses a
// schema migrated by a newer build. It then makes the audit log's
// partitions that are due (upkeepTx), which a server whose role may not
// create tables cannot. Only ctx and the connect timeout bound
// it, not Config.CallTimeout: a migration of a large table may take long,
// and one waiting for the lock waits for another migration to finish.
func Migrate(ctx context.Context, cfg Config) error {
	pc, schema, err := cfg.connConfig()
	if err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	conn, err := pgx.ConnectConfig(ctx, pc.ConnConfig)
	if err != nil {
		return fmt.Errorf("postgres: migrate %s on %s: connect: %w", schema, describe(pc.ConnConfig), dbErr(err))
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if err := migrate(ctx, conn, schema, time.Now, cfg.partitions()); err != nil {
		return fmt.Errorf("postgres: migrate %s on %s: %w", schema, describe(pc.ConnConfig), err)
	}
	if err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		size, err := readPartitionSize(ctx, tx)
		if err != nil {
			return err
		}
		_, partErr, err := upkeepTx(ctx, tx, size, cmp.Or(cfg.markEvery, timeMarkEvery))
		return cmp.Or(err, partErr)
	}); err != nil {
		return fmt.Errorf("postgres: migrate %s on %s: audit partitions: %w", schema, describe(pc.ConnConfig), dbErr(err))
	}
	return nil
}

// currentVersion returns the schema's highest applied migration, or 0 when
// it has no schema_migrations table (or no schema) yet.
func currentVersion(ctx context.Context, q querier, schema string) (int, error) {
	var exists bool
	table := pgx.Identifier{schema, "schema_migrations"}.Sanitize()
	if err := q.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", table).Scan(&exists); err != nil {
		return 0, fmt.Errorf("read schema version: %w", dbErr(err))
	}
	if !exists {
		return 0, nil
	}
	var v int
	if err := q.QueryRow(ctx, "SELECT COALESCE(MAX(version), 0) FROM "+table).Scan(&v); err != nil {
		return 0, fmt.Errorf("read schema version: %w", dbErr(err))
	}
	return v, nil
}

// checkVersion refuses a schema that is not at this build's version.
func checkVersion(ctx context.Context, conn *pgx.Conn, schema string) error {
	ms, err := migrations()
	if err != nil {
		return err
	}
	v, err := currentVersion(ctx, conn, schema)
	if err != nil {
		return err
	}
	switch want := latest(ms); {
	case v > want:
		return fmt.Errorf("schema version %d is newer than this build's %d", v, want)
	case v < want:
		return fmt.Errorf("schema version %d is older than this build's %d: run `mandate migrate` first", v, want)
	}
	return nil
}

// migrate applies the pending migrations in one transaction that holds an
// advisory lock on the schema, so that concurrent openers apply each
// migration once: a second opener waits for the first and then finds
// nothing to do. The migration that adds the audit hash chain also chains
// the records written before it (chainExisting), in the same transaction. A
// schema already at this build's version is left without taking the lock
// or running any DDL, so a role without DDL rights can open it. A schema
// migrated by a newer build is refused.
//
// partitionSize is the audit log's partition size when the migrations lay
// out its partitions (partitionMigration); a schema laid out keeps its own.
func migrate(ctx context.Context, conn *pgx.Conn, schema string, now func() time.Time, partitionSize int64) error {
	ms, err := migrations()
	if err != nil {
		return err
	}
	want := latest(ms)
	v, err := currentVersion(ctx, conn, schema)
	if err != nil {
		return err
	}
	if v > want {
		return fmt.Errorf("schema version %d is newer than this build's %d", v, want)
	}
	if v == want {
		return nil
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("migrate: begin: %w", dbErr(err))
	}
	defer tx.Rollback(ctx) // after Commit, a no-op
	if err := migrateTx(ctx, tx, schema, ms, now, partitionSize); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("migrate: commit: %w", dbErr(err))
	}
	return nil
}

// migrateTx is migrate's transaction.
func migrateTx(ctx context.Context, tx pgx.Tx, schema string, ms []store.Migration, now func() time.Time, partitionSize int64) error {
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1, hashtext($2))", migrationLock, schema); err != nil {
		return fmt.Errorf("migrate: take the lock: %w", dbErr(err))
	}
	// CREATE SCHEMA IF NOT EXISTS would still need the CREATE right on the
	// database when the schema exists; look first.
	var exists bool
	if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", schema).Scan(&exists); err != nil {
		return fmt.Errorf("migrate: look for the schema: %w", dbErr(err))
	}
	ident := pgx.Identifier{schema}.Sanitize()
	if !exists {
		if _, err := tx.Exec(ctx, "CREATE SCHEMA "+ident); err != nil {
			return fmt.Errorf("migrate: create schema: %w", dbErr(err))
		}
	}
	// The migrations name their tables without a schema.
	if _, err := tx.Exec(ctx, "SET LOCAL search_path TO "+ident); err != nil {
		return fmt.Errorf("migrate: set search_path: %w", dbErr(err))
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    integer PRIMARY KEY,
		name       text NOT NULL,
		applied_at timestamptz NOT NULL)`); err != nil {
		return fmt.Errorf("migrate: create schema_migrations: %w", dbErr(err))
	}
	// Read again under the lock: another opener may have migrated meanwhile.
	current, err := currentVersion(ctx, tx, schema)
	if err != nil {
		return err
	}
	if want := latest(ms); current > want {
		return fmt.Errorf("schema version %d is newer than this build's %d", current, want)
	}
	for _, m := range ms {
		if m.Version <= current {
			continue
		}
		if _, err := tx.Exec(ctx, m.SQL); err != nil {
			return fmt.Errorf("apply %s: %w", m.Name, dbErr(err))
		}
		if m.Version == chainMigration {
			if err := chainExisting(ctx, tx); err != nil {
				return fmt.Errorf("apply %s: %w", m.Name, err)
			}
		}
		if m.Version == partitionMigration {
			if err := partitionExisting(ctx, tx, partitionSize); err != nil {
				return fmt.Errorf("apply %s: %w", m.Name, err)
			}
		}
		if _, err := tx.Exec(ctx, "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
			m.Version, m.Name, now().UTC()); err != nil {
			return fmt.Errorf("record %s: %w", m.Name, dbErr(err))
		}
	}
	return nil
}
