-- Concord store, schema version 1 (PostgreSQL).
--
-- The same model as migrations/sqlite/0001_initial.sql: an object version is (id, modified)
-- and is stored once, with the producer's bytes (`body`, TEXT: jsonb would reorder keys and
-- drop whitespace, and objects are served byte for byte). A collection holds versions with
-- their `date_added` (collection_entries). Timestamps are BIGINT nanoseconds since the Unix
-- epoch. Identifiers and other keys use the "C" collation, so that ORDER BY is byte order, as
-- in SQLite, whatever the database's default collation is: the two backends page identically.

CREATE TABLE collections (
    id          TEXT COLLATE "C" PRIMARY KEY,
    alias       TEXT COLLATE "C" UNIQUE,
    title       TEXT NOT NULL,
    description TEXT,
    created_ns  BIGINT NOT NULL
);

-- vid and seq come from sequences that a write batch draws from in blocks, so that a batch
-- can COPY object versions and the entries that refer to them in one go.
CREATE SEQUENCE object_versions_vid_seq;
CREATE TABLE object_versions (
    vid          BIGINT PRIMARY KEY DEFAULT nextval('object_versions_vid_seq'),
    id           TEXT COLLATE "C" NOT NULL,
    type         TEXT COLLATE "C" NOT NULL,
    spec_version TEXT COLLATE "C" NOT NULL,
    -- `modified`, else `created`; NULL for objects with neither (most SCOs).
    modified_ns  BIGINT,
    -- the same timestamp as written by the producer (keeps its precision).
    modified     TEXT,
    -- SHA-256 of the canonical JSON (sorted keys): tells a re-delivery from a conflict.
    content_hash BYTEA NOT NULL,
    body         TEXT NOT NULL
);
ALTER SEQUENCE object_versions_vid_seq OWNED BY object_versions.vid;
CREATE UNIQUE INDEX object_versions_id_modified
    ON object_versions (id, modified_ns) WHERE modified_ns IS NOT NULL;
CREATE UNIQUE INDEX object_versions_id_hash
    ON object_versions (id, content_hash) WHERE modified_ns IS NULL;

CREATE TABLE collection_entries (
    seq           BIGSERIAL PRIMARY KEY,
    collection_id TEXT COLLATE "C" NOT NULL REFERENCES collections (id) ON DELETE CASCADE,
    vid           BIGINT NOT NULL REFERENCES object_versions (vid),
    date_added_ns BIGINT NOT NULL,
    id            TEXT COLLATE "C" NOT NULL,
    type          TEXT COLLATE "C" NOT NULL,
    spec_version  TEXT COLLATE "C" NOT NULL,
    -- the TAXII version of the entry: modified, else created, else date_added.
    version_ns    BIGINT NOT NULL,
    UNIQUE (collection_id, vid)
);
-- Keyset pagination: WHERE collection_id = $1 AND (date_added_ns, id, version_ns, seq) > (…)
-- ORDER BY date_added_ns, id, version_ns, seq LIMIT n is one index range scan.
CREATE INDEX entries_page
    ON collection_entries (collection_id, date_added_ns, id, version_ns, seq);
-- match[type] pages without scanning the other types.
CREATE INDEX entries_by_type
    ON collection_entries (collection_id, type, date_added_ns, id, version_ns, seq);
-- match[id], object/versions endpoints, and the first/last version and newest spec_version
-- subqueries (MIN/MAX read from the end of an index range).
CREATE INDEX entries_by_id
    ON collection_entries (collection_id, id, spec_version, version_ns);
-- Deleting object versions that no collection holds any more.
CREATE INDEX entries_by_vid ON collection_entries (vid);

CREATE TABLE status_resources (
    id         TEXT COLLATE "C" PRIMARY KEY,
    created_ns BIGINT NOT NULL,
    body       TEXT NOT NULL
);

-- Node-wide settings (e.g. the hash of the admin token).
CREATE TABLE settings (
    key   TEXT COLLATE "C" PRIMARY KEY,
    value TEXT NOT NULL
);

-- The node-wide date_added clock: the date_added of the last write batch. Each batch, under
-- the write lock, sets it to max(now, last + 1 µs) and uses that, so date_added grows strictly
-- in commit order across every process that shares the database.
CREATE TABLE write_clock (
    one                BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one),
    last_date_added_ns BIGINT NOT NULL
);
INSERT INTO write_clock (one, last_date_added_ns) VALUES (TRUE, 0);
