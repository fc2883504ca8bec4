-- 0010_audit_archive: where the archived part of the audit log ends
-- (store.ArchivedLog). Records 1 to size were moved to archive segments
-- and may be deleted; record size+1 links to head. One row, written only by
-- MarkArchived, which only moves it forward; no row means nothing was
-- archived.

CREATE TABLE audit_archived (
	id   INTEGER PRIMARY KEY CHECK (id = 1),
	size INTEGER NOT NULL CHECK (size > 0),
	head BLOB NOT NULL,
	tree BLOB NOT NULL
);
