-- Schema 24 (issue 17): the legacy (schema 3) per-object log can be archived. Until now its
-- rows (about 490 bytes per object served) stayed in the database forever, since its
-- trigger refused every DELETE. The first `concord audit archive` of a node upgraded from
-- that log now writes the legacy rows into the sealed file, whole, before the transfer
-- entries (format concord-audit-archive-v2), and removes them in the same transaction as the
-- archived entries. The boundary it records names how far the legacy log went
-- (legacy_through, its last seq; NULL for every other archive, and for archives written
-- before this schema, which left the legacy log in place).
--
-- As for audit_entries (schema 7), only an archived prefix may go: a legacy row at or below
-- a recorded legacy_through. Every other DELETE, and every UPDATE, is still refused.
ALTER TABLE audit_archives ADD COLUMN legacy_through INTEGER;
DROP TRIGGER audit_log_no_delete;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
WHEN OLD.seq > (SELECT COALESCE(MAX(legacy_through), 0) FROM audit_archives)
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only (only a legacy log carried by an archive may be removed)'); END;
