package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// postgresSampler reads the live size of one PostgreSQL schema, from a
// connection of its own.
type postgresSampler struct {
	schema string
	conn   *pgx.Conn
}

// openPostgresSampler connects to url to sample schema.
func openPostgresSampler(ctx context.Context, url, schema string) (*postgresSampler, error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("connecting to sample the size of schema %s: %w", schema, err)
	}
	return &postgresSampler{schema: schema, conn: conn}, nil
}

func (s *postgresSampler) Close() error { return s.conn.Close(context.Background()) }

// schemaRelations is every relation of the schema $1 that has storage of
// its own: tables, partitions and materialized views, each counted with
// its indexes and TOAST by pg_total_relation_size (a partitioned table
// has none; its partitions are listed).
const schemaRelations = `pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
	WHERE n.nspname = $1 AND c.relkind IN ('r', 'm')`

func (s *postgresSampler) sample(ctx context.Context, at time.Duration) (liveSize, error) {
	v := liveSize{At: at}
	q := `SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint FROM ` + schemaRelations
	if err := s.conn.QueryRow(ctx, q, s.schema).Scan(&v.LiveBytes); err != nil {
		return v, fmt.Errorf("sampling the size of schema %s: %w", s.schema, err)
	}
	for _, t := range []struct {
		table string
		dst   *int64
	}{{"events", &v.Records}, {"tokens", &v.Tokens}} {
		q := "SELECT count(*) FROM " + pgx.Identifier{s.schema, t.table}.Sanitize()
		if err := s.conn.QueryRow(ctx, q).Scan(t.dst); err != nil {
			return v, fmt.Errorf("sampling the size of schema %s (%s): %w", s.schema, q, err)
		}
	}
	return v, nil
}

// tables is each table's share of the schema with its indexes and TOAST,
// a partitioned table's partitions counted as one table; and each index's
// share, a partitioned index's partitions counted as one index.
func (s *postgresSampler) tables(ctx context.Context) (storeSize, error) {
	var sz storeSize
	// A partition and its indexes are named by their parent's name.
	const parent = `LEFT JOIN pg_inherits AS i ON i.inhrelid = c.oid LEFT JOIN pg_class AS p ON p.oid = i.inhparent`
	for _, q := range []struct {
		sql string
		dst *[]tableSize
	}{
		{`SELECT coalesce(p.relname, c.relname), sum(pg_total_relation_size(c.oid))::bigint
			FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace ` + parent + `
			WHERE n.nspname = $1 AND c.relkind IN ('r', 'm') GROUP BY 1 ORDER BY 2 DESC, 1`, &sz.Tables},
		{`SELECT coalesce(p.relname, c.relname), sum(pg_relation_size(c.oid))::bigint
			FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace ` + parent + `
			WHERE n.nspname = $1 AND c.relkind = 'i' GROUP BY 1 ORDER BY 2 DESC, 1`, &sz.Indexes},
	} {
		rows, err := s.conn.Query(ctx, q.sql, s.schema)
		if err != nil {
			return sz, fmt.Errorf("sizes per table of schema %s: %w", s.schema, err)
		}
		for rows.Next() {
			var t tableSize
			if err := rows.Scan(&t.Name, &t.Bytes); err != nil {
				rows.Close()
				return sz, fmt.Errorf("sizes per table of schema %s: %w", s.schema, err)
			}
			*q.dst = append(*q.dst, t)
		}
		if err := rows.Err(); err != nil {
			return sz, fmt.Errorf("sizes per table of schema %s: %w", s.schema, err)
		}
	}
	for _, t := range sz.Tables {
		sz.Bytes += t.Bytes
	}
	return sz, nil
}
