-- 0024_audit_archive_lease: the archive lease (store.AuditArchive's
-- LeaseArchive), so that one archiver at a time writes segments when
-- several instances share the database and the archive directory. One row:
-- who holds it and until when (Unix microseconds); a holder that stopped
-- without releasing it is replaced once that time has passed. No row means
-- no one holds it.

CREATE TABLE audit_archive_lease (
	id      INTEGER PRIMARY KEY CHECK (id = 1),
	holder  TEXT NOT NULL,
	expires INTEGER NOT NULL
);
