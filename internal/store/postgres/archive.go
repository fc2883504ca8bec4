package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mandate-dev/mandate/internal/store"
)

// archiveLock is the first key of the advisory lock that serializes
// MarkArchived and DeleteArchivedEvents; the second is hashtext of the
// schema. 0x61726368 is "arch".
const archiveLock = 0x61726368

// ArchivedLog returns where the archived part of the audit log ends, the
// zero ArchivedLog when nothing was archived.
func (s *Store) ArchivedLog(ctx context.Context) (store.ArchivedLog, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	a, err := archivedLog(ctx, s.pool)
	if err != nil {
		return store.ArchivedLog{}, fmt.Errorf("postgres: archived log: %w", err)
	}
	return a, nil
}

func archivedLog(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}) (store.ArchivedLog, error) {
	var a store.ArchivedLog
	err := q.QueryRow(ctx, "SELECT size, head, tree FROM audit_archived WHERE id = 1").Scan(&a.Size, &a.Head, &a.Tree)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.ArchivedLog{}, nil
	}
	if err != nil {
		return store.ArchivedLog{}, dbErr(err)
	}
	a.Head, a.Tree = bytesOut(a.Head), bytesOut(a.Tree)
	return a, nil
}

// lockArchive takes the archive's advisory lock for the transaction.
func lockArchive(ctx context.Context, tx pgx.Tx) error {
	_, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))", archiveLock)
	return dbErr(err)
}

// MarkArchived moves the archived mark from from to a, in one transaction
// under the archive's advisory lock, under the rules of
// store.AuditArchive.
func (s *Store) MarkArchived(ctx context.Context, from int64, a store.ArchivedLog) error {
	err := s.write(ctx, "mark archived", func(ctx context.Context, tx pgx.Tx) error {
		if err := lockArchive(ctx, tx); err != nil {
			return err
		}
		cur, err := archivedLog(ctx, tx)
		if err != nil {
			return err
		}
		if retry, err := store.CheckMarkMove(cur, from, a); retry || err != nil {
			return err
		}
		var (
			hash []byte
			last int64
		)
		err = tx.QueryRow(ctx, "SELECT (SELECT hash FROM events WHERE seq = $1), (SELECT last_seq FROM events_head WHERE id = 1)",
			a.Size).Scan(&hash, &last)
		if err != nil {
			return dbErr(err)
		}
		if err := store.CheckMarkRecord(a, hash, last); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO audit_archived (id, size, head, tree) VALUES (1, $1, $2, $3)
ON CONFLICT (id) DO UPDATE SET size = excluded.size, head = excluded.head, tree = excluded.tree`, a.Size, a.Head, a.Tree)
		return dbErr(err)
	})
	if err != nil {
		return fmt.Errorf("postgres: mark archived through %d: %w", a.Size, err)
	}
	return nil
}

// DeleteArchivedEvents deletes the oldest records with seq at most
// through, and their actor index rows and request ids, in one
// transaction: the oldest partition of the log whole (DROP TABLE) when
// every record it can hold is archived, else up to limit of them row by
// row (the records of a partition archived in part, or of the DEFAULT
// partition). A partition whose locks do not come within ddlLockTimeout
// (queries reading it) is deleted from row by row instead.
func (s *Store) DeleteArchivedEvents(ctx context.Context, through int64, limit int) (int, error) {
	n := 0
	err := s.write(ctx, "delete archived events", func(ctx context.Context, tx pgx.Tx) error {
		if err := lockArchive(ctx, tx); err != nil {
			return err
		}
		a, err := archivedLog(ctx, tx)
		if err != nil {
			return err
		}
		if through > a.Size {
			return fmt.Errorf("%w: record %d is not archived (the log is archived through %d)", store.ErrConflict, through, a.Size)
		}
		// Dropping in a savepoint, so that a lock wait given up leaves
		// the row-by-row way.
		sp, err := tx.Begin(ctx)
		if err != nil {
			return dbErr(err)
		}
		dropped, ok, err := dropArchivedPartition(ctx, sp, through)
		switch {
		case err != nil && !isLockTimeout(err):
			return err
		case err != nil:
			if err := sp.Rollback(ctx); err != nil {
				return dbErr(err)
			}
		case ok:
			n = dropped
			return dbErr(sp.Commit(ctx))
		default:
			if err := sp.Commit(ctx); err != nil {
				return dbErr(err)
			}
		}
		rows, err := tx.Query(ctx, "SELECT "+eventSelect+" FROM events WHERE seq <= $1 ORDER BY seq LIMIT $2",
			through, store.PageLimit(limit))
		if err != nil {
			return dbErr(err)
		}
		evs, err := pgx.AppendRows([]store.Event(nil), rows, scanEvent)
		if err != nil || len(evs) == 0 {
			return dbErr(err)
		}
		var actors []string
		var seqs []int64
		for _, e := range evs {
			for _, actor := range eventActors(e) {
				actors, seqs = append(actors, actor), append(seqs, e.Seq)
			}
		}
		if _, err := tx.Exec(ctx, `DELETE FROM event_actors WHERE (actor, seq) IN
(SELECT * FROM unnest($1::text[], $2::bigint[]))`, actors, seqs); err != nil {
			return dbErr(err)
		}
		if _, err := tx.Exec(ctx, "DELETE FROM event_request_ids WHERE seq >= $1 AND seq <= $2",
			evs[0].Seq, evs[len(evs)-1].Seq); err != nil {
			return dbErr(err)
		}
		tag, err := tx.Exec(ctx, "DELETE FROM events WHERE seq >= $1 AND seq <= $2", evs[0].Seq, evs[len(evs)-1].Seq)
		if err != nil {
			return dbErr(err)
		}
		n = int(tag.RowsAffected())
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("postgres: delete archived events through %d: %w", through, err)
	}
	return n, nil
}

// LeaseArchive takes or renews the archive lease for holder until ttl from
// the database's clock, in one statement, under the rules of
// store.AuditArchive.
func (s *Store) LeaseArchive(ctx context.Context, holder string, ttl time.Duration) (bool, error) {
	taken := false
	err := s.write(ctx, "lease archive", func(ctx context.Context, tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `INSERT INTO audit_archive_lease (id, holder, expires)
VALUES (1, $1, clock_timestamp() + make_interval(secs => $2))
ON CONFLICT (id) DO UPDATE SET holder = excluded.holder, expires = excluded.expires
WHERE audit_archive_lease.holder = excluded.holder OR audit_archive_lease.expires <= clock_timestamp()`,
			holder, ttl.Seconds())
		if err != nil {
			return dbErr(err)
		}
		taken = tag.RowsAffected() == 1
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("postgres: lease archive: %w", err)
	}
	return taken, nil
}

// RenewArchive extends holder's archive lease until ttl from the
// database's clock while holder still holds it, under the rules of
// store.AuditArchive.
func (s *Store) RenewArchive(ctx context.Context, holder string, ttl time.Duration) (bool, error) {
	held := false
	err := s.write(ctx, "renew archive lease", func(ctx context.Context, tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE audit_archive_lease SET expires = clock_timestamp() + make_interval(secs => $2)
WHERE id = 1 AND holder = $1`, holder, ttl.Seconds())
		if err != nil {
			return dbErr(err)
		}
		held = tag.RowsAffected() == 1
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("postgres: renew archive lease: %w", err)
	}
	return held, nil
}

// ReleaseArchive gives up holder's archive lease, if it holds it.
func (s *Store) ReleaseArchive(ctx context.Context, holder string) error {
	err := s.write(ctx, "release archive", func(ctx context.Context, tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "DELETE FROM audit_archive_lease WHERE id = 1 AND holder = $1", holder)
		return dbErr(err)
	})
	if err != nil {
		return fmt.Errorf("postgres: release archive: %w", err)
	}
	return nil
}
