-- The audit log (issue 5, item 7): one row per object version that crossed a door (egress or
-- ingress), hash-chained: hash = SHA-256 over the canonical serialisation of the row's fields
-- and prev_hash (concord_store::audit::entry_hash). seq is assigned by the appender, 1, 2, 3…
-- without gaps. transformations is a JSON array of strings.
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
-- Append-only for Concord and anyone going through SQL without dropping these first; the
-- chain is what detects changes made around them.
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
