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
-- a recorded legacy_through. Every other DELETE, every UPDATE and TRUNCATE are still refused.
ALTER TABLE audit_archives ADD COLUMN legacy_through BIGINT;
DROP TRIGGER audit_log_append_only ON audit_log;
CREATE FUNCTION audit_log_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE'
       AND OLD.seq <= (SELECT COALESCE(MAX(legacy_through), 0) FROM audit_archives) THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'the audit log is append-only (only a legacy log carried by an archive may be removed)';
END;
$$;
CREATE TRIGGER audit_log_guard BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_guard();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
