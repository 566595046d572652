-- Schema 7 (issue 17): the audit log keeps one entry per transfer (a page, a batch), not one
-- row per object version; signed checkpoints; archived prefixes.
--
-- audit_log (schema 3) stays as it is, read-only (its triggers remain): the legacy segment,
-- verified by its own chain. The first transfer links to its last hash and continues its seq,
-- so one chain runs through both.
--
-- audit_entries: see concord_store::audit::TransferEntry. items is the delta-varint encoding of
-- (vid, decision, transformation indices); dictionary a JSON array of strings; digest,
-- prev_hash and hash are 32-byte BLOBs. hash = concord_store::audit::transfer_hash.
CREATE TABLE audit_entries (
    seq            INTEGER PRIMARY KEY,
    time_ns        INTEGER NOT NULL,
    direction      TEXT NOT NULL,
    door           TEXT NOT NULL,
    partner        TEXT NOT NULL,
    person         TEXT,
    collection_id  TEXT NOT NULL,
    policy_version TEXT NOT NULL,
    count          INTEGER NOT NULL,
    dictionary     TEXT NOT NULL,
    items          BLOB NOT NULL,
    digest         BLOB,
    prev_hash      BLOB NOT NULL,
    hash           BLOB NOT NULL
);
CREATE INDEX audit_entries_partner ON audit_entries (partner, seq);
-- The posting index: which entries name a version row. About 10 bytes a posting in a
-- WITHOUT ROWID b-tree; not part of the chain (an index, rebuilt from the items if need be).
CREATE TABLE audit_postings (
    vid INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (vid, seq)
) WITHOUT ROWID;
-- Names of deleted version rows, written once at deletion, so that the log still names
-- the object id and version of a vid whose object_versions row is gone. vids are never
-- reused (object_versions inserts take a vid above both tables' maximum).
CREATE TABLE audit_version_names (
    vid       INTEGER PRIMARY KEY,
    object_id TEXT NOT NULL,
    version   TEXT NOT NULL
);
CREATE INDEX audit_version_names_id ON audit_version_names (object_id);
-- Signed heads (concord_store::audit::Checkpoint); BLOBs: entry_hash, prev, key (32 bytes),
-- signature (64 bytes).
CREATE TABLE audit_checkpoints (
    no         INTEGER PRIMARY KEY,
    entry_seq  INTEGER NOT NULL,
    entry_hash BLOB NOT NULL,
    time_ns    INTEGER NOT NULL,
    prev       BLOB NOT NULL,
    key        BLOB NOT NULL,
    signature  BLOB NOT NULL
);
-- Archived prefixes: the newest row is the boundary the chain continues from.
CREATE TABLE audit_archives (
    through_seq   INTEGER PRIMARY KEY,
    through_hash  BLOB NOT NULL,
    checkpoint_no INTEGER NOT NULL,
    time_ns       INTEGER NOT NULL,
    file          TEXT NOT NULL
);
CREATE TRIGGER audit_entries_no_update BEFORE UPDATE ON audit_entries
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
-- Only an archived prefix may go: entries at or below the recorded boundary.
CREATE TRIGGER audit_entries_no_delete BEFORE DELETE ON audit_entries
WHEN OLD.seq > (SELECT COALESCE(MAX(through_seq), 0) FROM audit_archives)
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only (only an archived prefix may be removed)'); END;
CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
BEGIN SELECT RAISE(ABORT, 'checkpoints are append-only'); END;
CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
BEGIN SELECT RAISE(ABORT, 'checkpoints are append-only'); END;
CREATE TRIGGER audit_archives_no_change BEFORE UPDATE ON audit_archives
BEGIN SELECT RAISE(ABORT, 'archive boundaries are append-only'); END;
CREATE TRIGGER audit_archives_no_delete BEFORE DELETE ON audit_archives
BEGIN SELECT RAISE(ABORT, 'archive boundaries are append-only'); END;
