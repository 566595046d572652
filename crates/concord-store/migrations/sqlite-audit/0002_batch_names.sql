-- Names of the version rows a write batch's entries name (vid, object id, `modified` as the
-- batch's transaction saw them), written with the entries, before the main file commits, and
-- removed once it has. A crash between the two commits leaves entries naming rows the main
-- file never stored; at the next open the store turns these names into names of deleted rows
-- (the main file's audit_version_names), so that those entries still verify (their names
-- digest) instead of reading as rows renamed, and `audit show` still names them.
CREATE TABLE audit_batch_names (
    vid       INTEGER PRIMARY KEY,
    object_id TEXT NOT NULL,
    modified  TEXT
);
