-- Schema 7 (issue 17): the audit log keeps one entry per transfer (a page, a batch), not one
-- row per object version; signed checkpoints; archived prefixes. See the SQLite twin for the
-- columns. audit_log (schema 3) stays, read-only: the legacy segment.
--
-- The posting index is the `vids` column (the distinct vids of the entry, sorted) with a GIN
-- index: GIN keeps one compressed posting list per vid (a few bytes a posting), where a
-- (vid, seq) table would cost ~70 bytes a posting in PostgreSQL (tuple header, line pointer,
-- b-tree).
CREATE TABLE audit_entries (
    seq            BIGINT PRIMARY KEY,
    time_ns        BIGINT NOT NULL,
    direction      TEXT NOT NULL,
    door           TEXT NOT NULL,
    partner        TEXT NOT NULL,
    person         TEXT,
    collection_id  TEXT NOT NULL,
    policy_version TEXT NOT NULL,
    count          BIGINT NOT NULL,
    dictionary     TEXT NOT NULL,
    items          BYTEA NOT NULL,
    digest         BYTEA,
    prev_hash      BYTEA NOT NULL,
    hash           BYTEA NOT NULL,
    vids           BIGINT[] NOT NULL
);
CREATE INDEX audit_entries_partner ON audit_entries (partner, seq);
CREATE INDEX audit_entries_vids ON audit_entries USING gin (vids);
CREATE TABLE audit_version_names (
    vid       BIGINT PRIMARY KEY,
    object_id TEXT NOT NULL,
    version   TEXT NOT NULL
);
CREATE INDEX audit_version_names_id ON audit_version_names (object_id);
CREATE TABLE audit_checkpoints (
    no         BIGINT PRIMARY KEY,
    entry_seq  BIGINT NOT NULL,
    entry_hash BYTEA NOT NULL,
    time_ns    BIGINT NOT NULL,
    prev       BYTEA NOT NULL,
    key        BYTEA NOT NULL,
    signature  BYTEA NOT NULL
);
CREATE TABLE audit_archives (
    through_seq   BIGINT PRIMARY KEY,
    through_hash  BYTEA NOT NULL,
    checkpoint_no BIGINT NOT NULL,
    time_ns       BIGINT NOT NULL,
    file          TEXT NOT NULL
);
CREATE FUNCTION audit_entries_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND OLD.seq <= (SELECT COALESCE(MAX(through_seq), 0) FROM audit_archives) THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'the audit log is append-only (only an archived prefix may be removed)';
END;
$$;
CREATE TRIGGER audit_entries_guard BEFORE UPDATE OR DELETE ON audit_entries
    FOR EACH ROW EXECUTE FUNCTION audit_entries_guard();
CREATE TRIGGER audit_entries_no_truncate BEFORE TRUNCATE ON audit_entries
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_checkpoints_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_archives_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_archives
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
