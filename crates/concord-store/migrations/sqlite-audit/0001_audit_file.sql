-- The audit log's own file (issue 17, main schema 26): every table of the log but
-- audit_version_names, as schemas 3, 7, 12, 14, 24 and 25 of the main file left them, column
-- for column (concord_store::sqlite moves them here, naming each column).
-- See those migrations for what each column means.
--
-- Why a file of its own: SQLite in WAL mode drops a connection's whole page cache of a file
-- whenever that file's WAL changed since the connection last read it. With the log in the
-- main file, every partner page (one audit entry) made every reader connection read its
-- pages of the collection again. An append now changes only this file.
CREATE TABLE audit_log (
    seq             INTEGER PRIMARY KEY,
    time_ns         INTEGER NOT NULL,
    direction       TEXT NOT NULL,
    door            TEXT NOT NULL,
    partner         TEXT NOT NULL,
    collection_id   TEXT NOT NULL,
    object_id       TEXT NOT NULL,
    modified        TEXT NOT NULL,
    decision        TEXT NOT NULL,
    transformations TEXT NOT NULL,
    policy_version  TEXT NOT NULL,
    prev_hash       TEXT NOT NULL,
    hash            TEXT NOT NULL
);
CREATE INDEX audit_log_partner ON audit_log (partner, seq);
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
    hash           BLOB NOT NULL,
    names          BLOB
);
CREATE INDEX audit_entries_partner ON audit_entries (partner, seq);
CREATE INDEX audit_entries_time ON audit_entries (time_ns);
CREATE INDEX audit_entries_partner_time ON audit_entries (partner, time_ns);
CREATE TABLE audit_postings (
    bucket INTEGER NOT NULL,
    seq    INTEGER NOT NULL,
    PRIMARY KEY (bucket, seq)
) WITHOUT ROWID;
CREATE TABLE audit_checkpoints (
    no         INTEGER PRIMARY KEY,
    entry_seq  INTEGER NOT NULL,
    entry_hash BLOB NOT NULL,
    time_ns    INTEGER NOT NULL,
    prev       BLOB NOT NULL,
    key        BLOB NOT NULL,
    signature  BLOB NOT NULL
);
CREATE TABLE audit_archives (
    through_seq    INTEGER PRIMARY KEY,
    through_hash   BLOB NOT NULL,
    checkpoint_no  INTEGER NOT NULL,
    time_ns        INTEGER NOT NULL,
    file           TEXT NOT NULL,
    legacy_through INTEGER
);
-- Which main file this log belongs to: the same id is the main file's setting `audit.file`.
-- A store refuses to open with a log file that is missing or not its own (a copy of another
-- node's, or a new one made after deleting it) instead of starting an empty chain.
CREATE TABLE audit_file (
    id TEXT NOT NULL
);
-- A floor for new version rows (vid) of the main file. A write batch records its transfers
-- here before the main file commits (so a crash between the two leaves a record of more than
-- happened, never less); vids named by a batch that then did not commit must not be given
-- again to other objects, which the entry's names digest would report as renamed. One row.
CREATE TABLE audit_vid_floor (
    vid INTEGER NOT NULL
);
INSERT INTO audit_vid_floor (vid) VALUES (0);
CREATE TRIGGER audit_file_no_change BEFORE UPDATE ON audit_file
BEGIN SELECT RAISE(ABORT, 'the audit file id is fixed'); END;
CREATE TRIGGER audit_file_no_delete BEFORE DELETE ON audit_file
BEGIN SELECT RAISE(ABORT, 'the audit file id is fixed'); END;
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
WHEN OLD.seq > (SELECT COALESCE(MAX(legacy_through), 0) FROM audit_archives)
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only (only a legacy log carried by an archive may be removed)'); END;
CREATE TRIGGER audit_entries_no_update BEFORE UPDATE ON audit_entries
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
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
