-- 0019_audit_archive_lease: the archive lease (store.AuditArchive's
-- LeaseArchive), the same record as the SQLite backend's
-- 0024_audit_archive_lease: one archiver at a time writes segments when
-- several instances share the database and the archive directory. One row:
-- who holds it and until when, by the database's clock; a holder that
-- stopped without releasing it is replaced once that time has passed. No
-- row means no one holds it.

CREATE TABLE audit_archive_lease (
	id      integer PRIMARY KEY CHECK (id = 1),
	holder  text NOT NULL,
	expires timestamptz NOT NULL
);
