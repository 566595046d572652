-- Concord store, schema version 1 (SQLite).
--
-- An object version is (id, modified) and is stored once, with the producer's bytes
-- (`body`), whatever the number of collections that hold it. A collection holds versions
-- with their `date_added` (collection_entries). TAXII pagination walks collection_entries in
-- (date_added_ns, id, version_ns, seq) order, which the `entries_page` index serves.
-- Timestamps are integers: nanoseconds since the Unix epoch.

CREATE TABLE collections (
    id          TEXT PRIMARY KEY,
    alias       TEXT UNIQUE,
    title       TEXT NOT NULL,
    description TEXT,
    created_ns  INTEGER NOT NULL
);

CREATE TABLE object_versions (
    vid          INTEGER PRIMARY KEY,
    id           TEXT NOT NULL,
    type         TEXT NOT NULL,
    spec_version TEXT NOT NULL,
    -- `modified`, else `created`; NULL for objects with neither (most SCOs).
    modified_ns  INTEGER,
    -- the same timestamp as written by the producer (keeps its precision).
    modified     TEXT,
    -- SHA-256 of the canonical JSON (sorted keys): tells a re-delivery from a conflict.
    content_hash BLOB NOT NULL,
    body         TEXT NOT NULL
);
CREATE UNIQUE INDEX object_versions_id_modified
    ON object_versions (id, modified_ns) WHERE modified_ns IS NOT NULL;
CREATE UNIQUE INDEX object_versions_id_hash
    ON object_versions (id, content_hash) WHERE modified_ns IS NULL;

CREATE TABLE collection_entries (
    seq           INTEGER PRIMARY KEY,
    collection_id TEXT NOT NULL REFERENCES collections (id) ON DELETE CASCADE,
    vid           INTEGER NOT NULL REFERENCES object_versions (vid),
    date_added_ns INTEGER NOT NULL,
    id            TEXT NOT NULL,
    type          TEXT NOT NULL,
    spec_version  TEXT NOT NULL,
    -- the TAXII version of the entry: modified, else created, else date_added.
    version_ns    INTEGER NOT NULL,
    UNIQUE (collection_id, vid)
);
CREATE INDEX entries_page ON collection_entries (collection_id, date_added_ns, id, version_ns, seq);
CREATE INDEX entries_by_id ON collection_entries (collection_id, id, version_ns);
CREATE INDEX entries_by_vid ON collection_entries (vid);

CREATE TABLE status_resources (
    id         TEXT PRIMARY KEY,
    created_ns INTEGER NOT NULL,
    body       TEXT NOT NULL
);

-- Node-wide settings (e.g. the hash of the admin token).
CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
