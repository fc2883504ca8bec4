package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/mandate-dev/mandate/internal/store"
)

// ArchivedLog returns where the archived part of the audit log ends, the
// zero ArchivedLog when nothing was archived.
func (s *Store) ArchivedLog(ctx context.Context) (store.ArchivedLog, error) {
	a, err := archivedLog(ctx, s.r)
	if err != nil {
		return store.ArchivedLog{}, fmt.Errorf("sqlite: archived log: %w", err)
	}
	return a, nil
}

func archivedLog(ctx context.Context, q querier) (store.ArchivedLog, error) {
	var a store.ArchivedLog
	err := q.QueryRowContext(ctx, "SELECT size, head, tree FROM audit_archived WHERE id = 1").Scan(&a.Size, &a.Head, &a.Tree)
	if errors.Is(err, sql.ErrNoRows) {
		return store.ArchivedLog{}, nil
	}
	if err != nil {
		return store.ArchivedLog{}, dbErr(err)
	}
	a.Head, a.Tree = bytesOut(a.Head), bytesOut(a.Tree)
	return a, nil
}

// MarkArchived moves the archived mark from from to a, in one write
// transaction, under the rules of store.AuditArchive.
func (s *Store) MarkArchived(ctx context.Context, from int64, a store.ArchivedLog) error {
	err := s.write(ctx, "mark archived", func(tx *sql.Tx) error {
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
		err = tx.QueryRowContext(ctx, "SELECT (SELECT hash FROM events WHERE seq = ?), (SELECT coalesce(max(seq), 0) FROM events)",
			a.Size).Scan(&hash, &last)
		if err != nil {
			return dbErr(err)
		}
		if err := store.CheckMarkRecord(a, hash, last); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO audit_archived (id, size, head, tree) VALUES (1, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET size = excluded.size, head = excluded.head, tree = excluded.tree`, a.Size, a.Head, a.Tree)
		return dbErr(err)
	})
	if err != nil {
		return fmt.Errorf("sqlite: mark archived through %d: %w", a.Size, err)
	}
	return nil
}

// DeleteArchivedEvents deletes up to limit of the oldest records with seq at
// most through, and their actor index rows, in one write transaction.
func (s *Store) DeleteArchivedEvents(ctx context.Context, through int64, limit int) (int, error) {
	n := 0
	err := s.write(ctx, "delete archived events", func(tx *sql.Tx) error {
		a, err := archivedLog(ctx, tx)
		if err != nil {
			return err
		}
		if through > a.Size {
			return fmt.Errorf("%w: record %d is not archived (the log is archived through %d)", store.ErrConflict, through, a.Size)
		}
		// A record's tokens enter the sweep's expiry index when the
		// record is indexed: index what goes first.
		if err := indexThrough(ctx, tx, through); err != nil {
			return err
		}
		// Only the columns eventActors reads: decoding whole records took
		// a third of a delete's time, inside the write lock.
		evs, err := list(ctx, tx, "events", "SELECT seq, performer, client_id, chain FROM events WHERE seq <= ? ORDER BY seq LIMIT ?",
			scanActors, through, store.PageLimit(limit))
		if err != nil {
			return err
		}
		if len(evs) == 0 {
			return nil
		}
		// The actor index has no index by seq: each row is deleted by its
		// key, from the actors the record names.
		for _, e := range evs {
			for _, actor := range eventActors(e) {
				if _, err := tx.ExecContext(ctx, "DELETE FROM event_actors WHERE actor = ? AND seq = ?", actor, e.Seq); err != nil {
					return dbErr(err)
				}
			}
		}
		res, err := tx.ExecContext(ctx, "DELETE FROM events WHERE seq >= ? AND seq <= ?", evs[0].Seq, evs[len(evs)-1].Seq)
		if err != nil {
			return dbErr(err)
		}
		rows, err := res.RowsAffected()
		n = int(rows)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("sqlite: delete archived events through %d: %w", through, err)
	}
	return n, nil
}

// LeaseArchive takes or renews the archive lease for holder until ttl from
// the store's clock, in one write transaction, under the rules of
// store.AuditArchive.
func (s *Store) LeaseArchive(ctx context.Context, holder string, ttl time.Duration) (bool, error) {
	taken := false
	err := s.write(ctx, "lease archive", func(tx *sql.Tx) error {
		now := s.now()
		res, err := tx.ExecContext(ctx, `INSERT INTO audit_archive_lease (id, holder, expires) VALUES (1, ?, ?)
ON CONFLICT (id) DO UPDATE SET holder = excluded.holder, expires = excluded.expires
WHERE audit_archive_lease.holder = excluded.holder OR audit_archive_lease.expires <= ?`,
			holder, now.Add(ttl).UnixMicro(), now.UnixMicro())
		if err != nil {
			return dbErr(err)
		}
		n, err := res.RowsAffected()
		taken = n == 1
		return err
	})
	if err != nil {
		return false, fmt.Errorf("sqlite: lease archive: %w", err)
	}
	return taken, nil
}

// RenewArchive extends holder's archive lease until ttl from the store's
// clock while holder still holds it, under the rules of
// store.AuditArchive.
func (s *Store) RenewArchive(ctx context.Context, holder string, ttl time.Duration) (bool, error) {
	held := false
	err := s.write(ctx, "renew archive lease", func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, "UPDATE audit_archive_lease SET expires = ? WHERE id = 1 AND holder = ?",
			s.now().Add(ttl).UnixMicro(), holder)
		if err != nil {
			return dbErr(err)
		}
		n, err := res.RowsAffected()
		held = n == 1
		return err
	})
	if err != nil {
		return false, fmt.Errorf("sqlite: renew archive lease: %w", err)
	}
	return held, nil
}

// ReleaseArchive gives up holder's archive lease, if it holds it.
func (s *Store) ReleaseArchive(ctx context.Context, holder string) error {
	err := s.write(ctx, "release archive", func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, "DELETE FROM audit_archive_lease WHERE id = 1 AND holder = ?", holder)
		return dbErr(err)
	})
	if err != nil {
		return fmt.Errorf("sqlite: release archive: %w", err)
	}
	return nil
}

// scanActors reads a row of seq, performer, client_id and chain: the
// fields eventActors needs.
func scanActors(sc scanner) (store.Event, error) {
	var (
		e     store.Event
		chain sql.NullString
	)
	if err := sc.Scan(&e.Seq, &e.Performer, &e.ClientID, &chain); err != nil {
		return store.Event{}, err
	}
	// A NULL chain is the performer alone (chainIn), an actor already.
	if !chain.Valid {
		return e, nil
	}
	var err error
	if e.Chain, err = listOut("chain", chain.String); err != nil {
		return store.Event{}, err
	}
	return e, nil
}
